"""Losses for fitting an ODE model to trajectory data: single shooting, multiple shooting, collocation.

Every loss is a pure function of the params, ready for ``jax.grad`` and :func:`sciml.fit`:

- :func:`single_shooting`: solve from the first point over the whole record, mean squared error.
- :func:`multiple_shooting`: solve short overlapping segments, each from its own start, plus a
  continuity penalty where segments meet; much better conditioned on long or oscillating records.
- :func:`collocation`: no solve at all: match the vector field to derivatives of a smoothed fit of
  the data (from :func:`smooth`). Crude but hundreds of times cheaper: the warm start before shooting.

``f`` is a vector field ``f(t, y, params)``: a :class:`sciml.UDE`, ``node.vector_field`` of a
:class:`sciml.NeuralODE`, or your own function. The shooting losses solve with ``throw=False``: a
failed solve (``max_steps``, a NaN) leaves NaN in its output, so the loss is NaN and :func:`sciml.fit`
stops with a message instead of training on garbage.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["single_shooting", "multiple_shooting", "collocation", "smooth", "segments"]


def single_shooting(f: Callable, params: Any, ts, ys, y0=None, *, solver=None, adjoint=None,
                    rtol=1e-6, atol=1e-6, max_steps: int = 4096, controller=None, mass_matrix=None) -> jax.Array:
    """Mean squared error of ``y(ts)`` solved from ``y0`` against the data ``ys``.

    Args:
        f: the vector field ``f(t, y, params)``.
        params: its parameters (what is trained).
        ts: times of the data, shape ``(m,)``, sorted; the solve runs from ``ts[0]`` to ``ts[-1]``.
        ys: data, shape ``(m, n)``.
        y0: initial state; default ``ys[0]``. Pass a trained value (e.g. ``params["u0"]``) when the
            first data point is noisy.
        solver: as for :func:`sciml.solve` (default ``Tsit5()``).
        adjoint: as for :func:`sciml.solve` (default ``Auto()``).
        rtol: relative tolerance of the solve.
        atol: absolute tolerance of the solve.
        max_steps: bound on step attempts; more make the loss NaN.
        controller: the step-size controller, as for :func:`sciml.solve`.
        mass_matrix: ``M`` of ``M y' = f`` (a DAE when singular), as for :func:`sciml.solve`; the
            algebraic components of ``y0`` are made consistent at ``ts[0]``.

    Returns:
        A scalar in the dtype of the solution.

    Example:
        >>> import jax, jax.numpy as jnp, sciml
        >>> ts = jnp.linspace(0.0, 1.0, 11)
        >>> ys = jnp.exp(-2.0 * ts)[:, None]
        >>> f = lambda t, y, k: -k * y
        >>> float(sciml.losses.single_shooting(f, 2.0, ts, ys)) < 1e-12
        True
    """
    from sciml._solve import solve

    ts, ys = jnp.asarray(ts), jnp.asarray(ys)
    _check_data(ts, ys, "single_shooting")
    y0 = ys[0] if y0 is None else y0
    sol = solve(f, y0, (ts[0], ts[-1]), args=params, saveat=ts, solver=solver, adjoint=adjoint, rtol=rtol,
                atol=atol, max_steps=max_steps, controller=controller, throw=False, mass_matrix=mass_matrix)
    return jnp.mean(jnp.abs(sol.ys - ys) ** 2)


def segments(m: int, group_size: int) -> np.ndarray:
    """Start indices of the shooting segments for ``m`` data points, each ``group_size`` points long.

    Consecutive segments share one point (the end of one is the start of the next). When
    ``group_size - 1`` does not divide ``m - 1``, the last segment starts earlier and overlaps more,
    so every segment has the same length (one batched solve covers them all).

    Example:
        >>> from sciml.losses import segments
        >>> segments(13, 5).tolist(), segments(12, 5).tolist()
        ([0, 4, 8], [0, 4, 7])
    """
    if not (isinstance(group_size, (int, np.integer)) and 2 <= group_size <= m):
        raise ValueError(f"`group_size` must be an int in [2, {m}] (points per segment, at most the {m} data "
                         f"points); got {group_size!r}.")
    starts = list(range(0, m - group_size + 1, group_size - 1))
    if starts[-1] + group_size < m:
        starts.append(m - group_size)
    return np.asarray(starts)


def multiple_shooting(f: Callable, params: Any, ts, ys, group_size: int, *, continuity: float = 100.0,
                      nodes=None, solver=None, adjoint=None, rtol=1e-6, atol=1e-6,
                      max_steps: int = 4096, controller=None, mass_matrix=None) -> jax.Array:
    """Multiple shooting: fit short segments, each solved from its own start, and penalise the jumps.

    The record is cut into segments of ``group_size`` points (see :func:`segments`), all solved in one
    batched solve. Segment ``i`` starts from the data point at its first time, or from ``nodes[i]``
    when given (trainable shooting nodes: pass e.g. ``params["nodes"]``, shape ``(k, n)``). The loss is
    the mean squared error of all segments against the data plus ``continuity`` times the mean squared
    gap between the end of each segment and the start of the next, which forces the pieces into one
    trajectory as training goes on.

    Args:
        f: the vector field ``f(t, y, params)``.
        params: its parameters.
        ts: times of the data, shape ``(m,)``, sorted.
        ys: data, shape ``(m, n)``.
        group_size: points per segment (>= 2).
        continuity: weight of the continuity penalty.
        nodes: optional segment initial states, shape ``(len(segments(m, group_size)), n)``.
        solver: as for :func:`sciml.solve`.
        adjoint: as for :func:`sciml.solve`.
        rtol: relative tolerance of the solves.
        atol: absolute tolerance of the solves.
        max_steps: bound on step attempts per segment.
        controller: the step-size controller, as for :func:`sciml.solve`.
        mass_matrix: ``M`` of ``M y' = f``, as for :func:`sciml.solve` (each segment's algebraic
            components are made consistent at its start).

    Example:
        >>> import jax.numpy as jnp, sciml
        >>> ts = jnp.linspace(0.0, 4.0, 21)
        >>> ys = jnp.stack([jnp.cos(ts), -jnp.sin(ts)], axis=-1)
        >>> f = lambda t, y, w: jnp.stack([y[1], -w * y[0]])
        >>> loss = sciml.losses.multiple_shooting(f, 1.0, ts, ys, group_size=6)
        >>> float(loss) < 1e-10
        True
    """
    from sciml._solve import solve

    ts, ys = jnp.asarray(ts), jnp.asarray(ys)
    _check_data(ts, ys, "multiple_shooting")
    starts = segments(ts.shape[0], group_size)
    index = starts[:, None] + np.arange(group_size)[None, :]
    seg_ts, seg_ys = ts[index], ys[index]
    if nodes is None:
        y0s = seg_ys[:, 0]
    else:
        y0s = jnp.asarray(nodes)
        if y0s.shape != seg_ys[:, 0].shape:
            raise ValueError(f"`nodes` must hold one initial state per segment, shape {seg_ys[:, 0].shape} "
                             f"({len(starts)} segments of {group_size} points); got shape {y0s.shape}.")

    def one(y0, t):
        sol = solve(f, y0, (t[0], t[-1]), args=params, saveat=t, solver=solver, adjoint=adjoint, rtol=rtol,
                    atol=atol, max_steps=max_steps, controller=controller, throw=False, mass_matrix=mass_matrix)
        return sol.ys

    pred = jax.vmap(one)(y0s, seg_ts)
    fit = jnp.mean(jnp.abs(pred - seg_ys) ** 2)
    if len(starts) == 1:
        return fit
    # Segment i + 1 starts at a time inside segment i (its last point, or earlier for an overlapping
    # last segment); compare segment i's prediction there with segment i + 1's initial state.
    meet = pred[np.arange(len(starts) - 1), starts[1:] - starts[:-1]]
    jump = jnp.mean(jnp.abs(meet - y0s[1:]) ** 2)
    return fit + continuity * jump


def smooth(ts, ys, num: int | None = None, lam: float | None = None):
    """A smoothing spline through noisy data and its derivative, the targets of :func:`collocation`.

    Each component gets its own cubic smoothing spline (``scipy.interpolate.make_smoothing_spline``);
    the smoothing strength ``lam`` is chosen by generalised cross-validation unless given.

    Args:
        ts: times, shape ``(m,)``, increasing.
        ys: data, shape ``(m, n)``.
        num: number of evenly spaced points to return (default ``4 * m``).
        lam: smoothing parameter for all components; ``None`` chooses per component.

    Returns:
        ``(t, u, du)``: times ``(num,)``, smoothed states ``(num, n)`` and their time derivatives,
        numpy arrays in the data's dtype.

    Example:
        >>> import numpy as np, sciml
        >>> ts = np.linspace(0.0, 3.0, 31)
        >>> ys = np.sin(ts)[:, None]
        >>> t, u, du = sciml.losses.smooth(ts, ys)
        >>> bool(np.max(np.abs(du[:, 0] - np.cos(t))) < 0.05)
        True
    """
    from scipy.interpolate import make_smoothing_spline

    ts, ys = np.asarray(ts), np.asarray(ys)
    if ts.ndim != 1 or ys.ndim != 2 or ys.shape[0] != ts.shape[0] or ts.shape[0] < 5:
        raise ValueError(f"`smooth(ts, ys)` needs ts of shape (m,) and ys of shape (m, n) with m >= 5; got "
                         f"{ts.shape} and {ys.shape}.")
    if np.any(np.diff(ts) <= 0):
        raise ValueError("`smooth(ts, ys)` needs strictly increasing `ts`.")
    t = np.linspace(ts[0], ts[-1], 4 * ts.shape[0] if num is None else int(num), dtype=ts.dtype)
    splines = [make_smoothing_spline(ts, ys[:, j], lam=lam) for j in range(ys.shape[1])]
    u = np.stack([s(t) for s in splines], axis=-1).astype(ys.dtype)
    du = np.stack([s.derivative()(t) for s in splines], axis=-1).astype(ys.dtype)
    return t.astype(ys.dtype), u, du


def collocation(f: Callable, params: Any, t, u, du) -> jax.Array:
    """Mean squared error between ``f(t, u, params)`` and the estimated derivatives ``du``.

    No ODE is solved, so a step costs one batched evaluation of ``f``: the warm start that gets a
    model close enough for shooting to converge quickly. Get ``(t, u, du)`` from :func:`smooth`.

    Args:
        f: the vector field ``f(t, y, params)`` for one state ``y`` of shape ``(n,)``.
        params: its parameters.
        t: collocation times, shape ``(k,)``.
        u: states there, shape ``(k, n)``.
        du: their estimated time derivatives, shape ``(k, n)``.

    Example:
        >>> import numpy as np, sciml
        >>> ts = np.linspace(0.0, 2.0, 41)
        >>> t, u, du = sciml.losses.smooth(ts, np.exp(-ts)[:, None])
        >>> float(sciml.losses.collocation(lambda t, y, k: -k * y, 1.0, t, u, du)) < 1e-4
        True
    """
    t, u, du = jnp.asarray(t), jnp.asarray(u), jnp.asarray(du)
    pred = jax.vmap(lambda ti, ui: f(ti, ui, params))(t, u)
    return jnp.mean(jnp.abs(pred - du) ** 2)


def _check_data(ts, ys, name):
    if ts.ndim != 1 or ys.ndim < 1 or ys.shape[0] != ts.shape[0] or ts.shape[0] < 2:
        raise ValueError(f"`{name}` needs ts of shape (m,) with m >= 2 and ys with m rows; got ts {ts.shape}, "
                         f"ys {ys.shape}.")
