"""Figures for the demos: matplotlib without pyplot (no display, no global backend change)."""

from __future__ import annotations

import os

from sciml._atomic import atomic_write


def require_matplotlib() -> None:
    """Raise an ImportError that gives the install command if matplotlib is missing. A demo calls it
    before training, so that a missing extra costs no training time."""
    try:
        import matplotlib.figure  # noqa: F401
    except ImportError:
        raise ImportError("the demos draw their figures with matplotlib, which is not installed: "
                          "`pip install \"sciml-jax[examples]\"` (or `pip install matplotlib`).") from None


def figure(ncols: int = 1, width: float = 6.0, height: float = 4.0):
    """A new ``(figure, axes)`` drawn with the Agg backend."""
    require_matplotlib()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, axes


def save(fig, out: str, name: str) -> str:
    """Write ``fig`` as ``out/name`` (PNG, whole or not at all) and return the path."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, name)
    atomic_write(path, lambda file: fig.savefig(file, format="png", dpi=120), what=f"the figure {name!r}")
    return path


def loss_curve(losses: dict, out: str, name: str = "loss.png", title: str = "training loss") -> str:
    """The loss history of consecutive training stages, one colour per stage (empty ones left out), on a
    log scale."""
    fig, ax = figure()
    start = 0
    for label, values in losses.items():
        if not len(values):
            continue
        ax.semilogy(range(start, start + len(values)), values, label=label)
        start += len(values)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    return save(fig, out, name)
