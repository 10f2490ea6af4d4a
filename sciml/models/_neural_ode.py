"""NeuralODE: a layer whose forward pass solves ``dy/dt = model(y)`` from its input."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax.numpy as jnp
import numpy as np

from sciml._validate_solver_options import mass_matrix_array
from sciml.layers import Layer
from sciml.models._strategy import decode_strategy, encode_strategy


@dataclasses.dataclass(frozen=True)
class NeuralODE(Layer):
    """``y(t1)`` (or ``y`` at ``saveat``) of ``dy/dt = model(y)``, ``y(t0) = x``: a neural ODE as a layer.

    The input ``x`` is the initial state, shape ``(..., n)``; leading axes are a batch that is solved
    as one ODE system (one step-size sequence for the whole batch, as in torchdiffeq), so ``model``
    sees the batch too. With ``augment=k`` the state gets ``k`` extra dimensions that start at zero
    (an augmented neural ODE, Dupont et al. 2019): ``model`` maps ``n + k`` features to ``n + k`` and
    the output keeps all ``n + k`` (follow it with a layer that reads what it needs).

    The output is ``y(t1)``, shape ``(..., n + augment)``, or with ``saveat`` the states at those times
    stacked on a new leading axis, shape ``(len(saveat), ..., n + augment)``. Dtypes follow the layer
    rule: float32 input and params give float32 states and gradients, float64 gives float64.

    Gradients flow through the solve with ``adjoint`` (``sciml.adjoints.Auto()`` by default). A
    solve that fails (too many steps, a NaN) raises :class:`sciml.SolveError` (inside ``jit``: at the
    boundary); under :func:`sciml.fit` use the losses of ``sciml.losses``, which turn a failed solve
    into a NaN loss that ``fit`` stops on.

    The model must be stateless (no BatchNorm or Dropout): its params are all the ODE depends on.

    Attributes:
        model: the vector field, a :class:`sciml.layers.Layer` mapping ``n + augment`` features to as many.
        t_span: ``(t0, t1)``, the interval the forward pass integrates over.
        solver: a solver from ``sciml.solvers`` (default ``Tsit5()``).
        controller: a step-size controller from ``sciml.solvers`` (default ``PIController()``; see
            :func:`sciml.solve`). Saved with the model by :func:`sciml.save`.
        adjoint: a sensitivity method from ``sciml.adjoints`` (default ``Auto()``).
        saveat: times inside ``t_span`` at which to return the state, or ``None`` for ``y(t1)`` only.
        augment: number of zero-initialised extra state dimensions.
        rtol: relative tolerance of the adaptive solver.
        atol: absolute tolerance of the adaptive solver.
        max_steps: bound on step attempts per solve.
        mass_matrix: ``M`` of ``M y' = model(y)``, a constant ``(n + augment, n + augment)`` matrix (a DAE
            when singular: zero rows are algebraic equations); solved by ``Rodas5P``, ``Rosenbrock23``,
            ``RadauIIA5`` or ``BDF`` (see :func:`sciml.solve`). It takes one state of shape
            ``(n,)``: ``jax.vmap`` the call for a batch. Saved with the model.

    Parameters:
        model: params of ``model``

    Example:
        >>> import jax, jax.numpy as jnp, sciml
        >>> from sciml import layers as L
        >>> node = sciml.NeuralODE(L.MLP(2, 2, width=16, depth=1), t_span=(0.0, 1.0))
        >>> params, state = node.init(jax.random.key(0))
        >>> node(params, jnp.ones((5, 2))).shape       # a batch of 5 initial states
        (5, 2)
        >>> node = sciml.NeuralODE(L.MLP(3, 3, width=16, depth=1), (0.0, 1.0), saveat=(0.5, 1.0), augment=1)
        >>> params, state = node.init(jax.random.key(0))
        >>> node(params, jnp.ones(2)).shape            # 2 save times, 2 + 1 augmented dimensions
        (2, 3)
    """

    model: Layer
    t_span: tuple[float, float] = (0.0, 1.0)
    solver: Any = None
    adjoint: Any = None
    saveat: tuple[float, ...] | None = None
    augment: int = 0
    rtol: float = 1e-6
    atol: float = 1e-6
    max_steps: int = 10_000
    controller: Any = None
    mass_matrix: tuple[tuple[float, ...], ...] | None = None

    def __post_init__(self):
        super().__post_init__()
        check_field_model(self.model, "NeuralODE(model, ...)", "the state y")
        object.__setattr__(self, "t_span", _time_pair(self.t_span))
        if self.saveat is not None:
            object.__setattr__(self, "saveat", _save_times(self.saveat, self.t_span))
        if isinstance(self.augment, bool) or not isinstance(self.augment, (int, np.integer)) or self.augment < 0:
            raise ValueError(f"`NeuralODE(augment=...)` is a number of extra dimensions, an int >= 0; got "
                             f"{self.augment!r}.")
        object.__setattr__(self, "augment", int(self.augment))
        if self.mass_matrix is not None:
            object.__setattr__(self, "mass_matrix", _square_matrix(self.mass_matrix))
        if isinstance(self.max_steps, bool) or not isinstance(self.max_steps, (int, np.integer)) or self.max_steps < 1:
            raise ValueError(f"`NeuralODE(max_steps=...)` must be a positive int; got {self.max_steps!r}.")

    def sublayers(self):
        return {"model": self.model}

    def init(self, key, dtype=jnp.float32):
        params, state = self.model.init(key, dtype)
        return {"model": params}, {"model": state}

    def vector_field(self, t, y, params):
        """``dy/dt = model(params["model"], y)``, the ODE this layer solves (``f(t, y, args)`` for
        :func:`sciml.solve` and the losses of ``sciml.losses``)."""
        return self.model(params["model"], y)

    def initial_state(self, x):
        """``x`` with the ``augment`` zero dimensions appended (the ODE's initial state)."""
        x = jnp.asarray(x)
        if not self.augment:
            return x
        return jnp.concatenate([x, jnp.zeros(x.shape[:-1] + (self.augment,), x.dtype)], axis=-1)

    def solve(self, params, x, t_span=None, saveat=None, **options):
        """The full :class:`sciml.Solution` from ``x`` (``t_span``/``saveat`` default to the layer's).

        ``options`` go to :func:`sciml.solve` and override the layer's ``solver``, ``controller``,
        ``adjoint``, ``rtol``, ``atol`` and ``max_steps`` (e.g. ``throw=False``).
        """
        from sciml._solve import solve

        y0 = self.initial_state(x)
        real = jnp.zeros((), y0.dtype).real.dtype
        saveat = self.saveat if saveat is None else saveat
        if saveat is not None and not isinstance(saveat, str):
            saveat = np.asarray(saveat, real) if not hasattr(saveat, "aval") else saveat
        settings = dict(solver=self.solver, controller=self.controller, adjoint=self.adjoint, rtol=self.rtol,
                        atol=self.atol, max_steps=self.max_steps)
        if self.mass_matrix is not None:
            if y0.ndim != 1:
                raise ValueError(f"`NeuralODE(mass_matrix=...)` solves one state of shape (n,); got a batch of shape "
                                 f"{x.shape}. Call it under `jax.vmap` for a batch of initial states.")
            settings["mass_matrix"] = np.asarray(self.mass_matrix)
        settings.update(options)
        return solve(self.vector_field, y0, self.t_span if t_span is None else t_span, args=params,
                     saveat=saveat, **settings)

    def apply(self, params, x, state):
        sol = self.solve(params, x)
        return (sol.ys[-1] if self.saveat is None else sol.ys), state

    def describe(self) -> str:
        extra = "".join(f", {name}={getattr(self, name)!r}" for name in ("saveat", "augment")
                        if getattr(self, name))
        return f"NeuralODE(t_span={self.t_span}{extra})"

    def to_config(self) -> dict:
        strategies = {name: None for name in _STRATEGIES}
        config = super(NeuralODE, dataclasses.replace(self, **strategies)).to_config()
        for name in _STRATEGIES:
            config["fields"][name] = encode_strategy(getattr(self, name), name)
        return config

    @classmethod
    def from_fields(cls, fields):
        fields = dict(fields)
        for name in _STRATEGIES:
            fields[name] = decode_strategy(fields.get(name), name)
        return cls(**fields)


#: the fields of a `NeuralODE` that hold a solver, a step-size controller or an adjoint (saved by name)
_STRATEGIES = ("solver", "controller", "adjoint")


def check_field_model(model, call: str, state: str) -> None:
    """The network inside a vector field (of `NeuralODE`, `UDE`) must be a stateless `Layer`."""
    owner = call.split("(")[0]
    if not isinstance(model, Layer):
        raise TypeError(f"`{call}` needs a `sciml.layers.Layer` as `model`; got {type(model).__name__}. Wrap a "
                        f"function with `sciml.layers.WrappedFunction`.")
    if model.has_state():
        raise TypeError(f"`{owner}` needs a stateless `model` (no BatchNorm or Dropout): the vector field must "
                        f"depend on the params and {state} only.")


def _time_pair(t_span) -> tuple[float, float]:
    try:
        t0, t1 = (float(t) for t in t_span)
    except (TypeError, ValueError):
        raise ValueError(f"`NeuralODE(t_span=...)` must be a pair of numbers (t0, t1); got {t_span!r}.") from None
    if not (math.isfinite(t0) and math.isfinite(t1)) or t0 == t1:
        raise ValueError(f"`NeuralODE(t_span=...)` must be finite with t0 != t1; got ({t0}, {t1}).")
    return t0, t1


def _square_matrix(matrix) -> tuple[tuple[float, ...], ...]:
    """A mass matrix as a tuple of rows of floats (hashable, and saved with the model as it is)."""
    m = mass_matrix_array(matrix, None, "`NeuralODE(mass_matrix=...)`")   # its size is checked at the solve
    return tuple(tuple(float(v) for v in row) for row in m.astype(np.float64))


def _save_times(saveat, t_span) -> tuple[float, ...]:
    times = np.asarray(saveat, dtype=np.float64)
    if times.ndim != 1 or times.size == 0:
        raise ValueError(f"`NeuralODE(saveat=...)` must be a non-empty 1-D sequence of times; got shape "
                         f"{times.shape}.")
    t0, t1 = t_span
    lo, hi = min(t0, t1), max(t0, t1)
    direction = 1.0 if t1 > t0 else -1.0
    if np.any(times < lo) or np.any(times > hi) or np.any(np.diff(times) * direction < 0):
        raise ValueError(f"`NeuralODE(saveat=...)` must be sorted in the direction of `t_span={t_span}` and "
                         f"inside it; got {times.tolist()}.")
    return tuple(float(t) for t in times)
