"""UDE: a universal differential equation, known physics plus a neural network in one vector field."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from sciml.layers import Layer
from sciml.models._neural_ode import check_field_model


@dataclasses.dataclass(frozen=True, eq=False)
class UDE:
    """``du/dt = combine(known(t, u, physics), model(nn, u))``: the physics you know plus a network for
    the part you do not, as one vector field with params ``{"physics": ..., "nn": ...}``.

    A ``UDE`` is a vector field ``f(t, u, params)``: pass it to :func:`sciml.solve` (any solver, any
    adjoint), to the losses of ``sciml.losses``, or call it. ``physics`` gives the initial values of
    the physical parameters; :meth:`init` returns them, in the requested dtype, next to the network's
    params, so both are trained together (leave a parameter out of ``physics`` and close over it in
    ``known`` to keep it fixed). :meth:`network` evaluates the network's contribution alone, the
    input of symbolic recovery (:mod:`sciml.discovery`).

    A ``UDE`` compares and hashes by identity (it holds functions), so reusing one object reuses the
    compiled solves.

    Attributes:
        known: ``known(t, u, physics) -> du/dt`` part, the structure of ``u``.
        model: a stateless :class:`sciml.layers.Layer` taking ``u`` to the missing part.
        physics: initial physical parameters, a pytree of numbers (or ``None``).
        combine: ``combine(known_out, nn_out) -> du/dt``; default ``known_out + nn_out``.

    Example:
        >>> import jax, jax.numpy as jnp, sciml
        >>> from sciml import layers as L
        >>> def decay(t, u, p):                       # known: exponential decay at a learned rate
        ...     return -p["k"] * u
        >>> ude = sciml.UDE(decay, L.MLP(2, 2, width=8, depth=1), physics={"k": 0.5})
        >>> params = ude.init(jax.random.key(0), jnp.float64)
        >>> sorted(params), params["physics"]["k"].dtype
        (['nn', 'physics'], dtype('float64'))
        >>> sol = sciml.solve(ude, jnp.ones(2), (0.0, 1.0), args=params)
        >>> sol.ys.shape, sol.ys.dtype
        ((1, 2), dtype('float64'))
    """

    known: Callable
    model: Layer
    physics: Any = None
    combine: Callable | None = None

    def __post_init__(self):
        if not callable(self.known):
            raise TypeError(f"`UDE(known, model)` needs a function `known(t, u, physics)`; got "
                            f"{type(self.known).__name__}.")
        check_field_model(self.model, "UDE(known, model)", "u")
        for leaf in jax.tree_util.tree_leaves(self.physics):
            if not _is_number(leaf):
                raise TypeError(f"`UDE(physics=...)` holds initial values of the physical parameters, numbers "
                                f"or arrays; got a leaf {leaf!r}.")

    def init(self, key, dtype=jnp.float32) -> dict:
        """``{"physics": physics in dtype, "nn": the network's params}`` (the network is stateless, so
        no state is returned)."""
        nn, _ = self.model.init(key, dtype)
        physics = jax.tree_util.tree_map(lambda v: _in_dtype(v, dtype), self.physics)
        return {"physics": physics, "nn": nn}

    def network(self, params, u):
        """The network's contribution ``model(params["nn"], u)`` (any leading batch axes)."""
        return self.model(params["nn"], u)

    def __call__(self, t, u, params):
        known = self.known(t, u, params["physics"])
        learned = self.network(params, u)
        if self.combine is None:
            return jax.tree_util.tree_map(jnp.add, known, learned)
        return self.combine(known, learned)

    def solve(self, params, y0, t_span, **options):
        """``sciml.solve(self, y0, t_span, args=params, **options)``: any option of :func:`sciml.solve`
        (``solver=``, ``controller=``, ``adjoint=``, ...). The losses of ``sciml.losses`` take the same
        ``solver``, ``controller`` and ``adjoint`` for training."""
        from sciml._solve import solve

        return solve(self, y0, t_span, args=params, **options)


def _in_dtype(value, dtype):
    """A physical parameter as a ``dtype`` array (complex values keep their imaginary part)."""
    if jnp.iscomplexobj(value) and not jnp.issubdtype(dtype, jnp.complexfloating):
        dtype = jnp.result_type(dtype, jnp.complex64)
    return jnp.asarray(value, dtype)


def _is_number(value) -> bool:
    try:
        return bool(jnp.issubdtype(jnp.result_type(value), jnp.number))
    except TypeError:  # a string or another object JAX has no dtype for
        return False
