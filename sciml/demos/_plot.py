"""Figures for the demos: matplotlib without pyplot (no display, no global backend change)."""

from __future__ import annotations

import os


def figure(ncols: int = 1, width: float = 6.0, height: float = 4.0):
    """A new ``(figure, axes)`` drawn with the Agg backend."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("the demos draw their figures with matplotlib: `pip install \"sciml-jax[examples]\"` "
                          "(or `pip install matplotlib`).") from None
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, axes


def save(fig, out: str, name: str) -> str:
    """Write ``fig`` as ``out/name`` (PNG) and return the path."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, name)
    fig.savefig(path, dpi=120)
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
