"""The first stage of the one solve pipeline: a front door's arguments become a `Problem` and `Options`.

    front door (solve | solve_ivp | solve_ensemble | NeuralODE/UDE)
      -> prepare(...)            this file: the one validator (`_validate.py`), the one args split
      -> Problem + Options       the values (a pytree, traced) and the static options (hashable)
      -> integrate(options, problem)   `_integrate.py`: the adjoint's XLA loop, or the kernel backend

`Problem` holds every array a solve depends on; `Options` holds everything else and selects (and keys the
cache of) the compiled program. An ensemble is the same problem with a leading trajectory axis on
``y0`` and on the arguments that ``Options.batched`` marks.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import numpy as np

from sciml import _validate as V
from sciml import _validate_solver_options as SO
from sciml.solvers._control import PIController

#: the `saveat` modes that record every step
SAVEAT_MODES = V.SAVEAT_MODES


def is_array(x) -> bool:
    """Whether an ``args`` leaf is a value (traced, differentiable) rather than part of the program
    (a layer, a callable, a string): arrays of any library, NumPy scalars and Python numbers."""
    return (isinstance(x, (jax.Array, np.ndarray, np.generic, bool, int, float, complex))
            or hasattr(x, "__cuda_array_interface__"))


@dataclasses.dataclass(frozen=True)
class StaticArgs:
    """The part of ``args`` that is not an array, with the structure to put ``args`` back together."""

    treedef: Any
    is_dynamic: tuple[bool, ...]
    leaves: tuple

    def rebuild(self, dynamic) -> Any:
        """The user's ``args`` from its array leaves ``dynamic`` (in leaf order)."""
        it_d, it_s = iter(dynamic), iter(self.leaves)
        return jax.tree_util.tree_unflatten(self.treedef, [next(it_d) if d else next(it_s) for d in self.is_dynamic])


def split_args(args) -> tuple[list, StaticArgs]:
    """``(array leaves, StaticArgs)``: the one split of ``args`` into values and program."""
    leaves, treedef = jax.tree_util.tree_flatten(args)
    dynamic = tuple(is_array(x) for x in leaves)
    return ([x for x, d in zip(leaves, dynamic) if d],
            StaticArgs(treedef, dynamic, tuple(x for x, d in zip(leaves, dynamic) if not d)))


@dataclasses.dataclass(frozen=True)
class Options:
    """Everything but array values: selects one compiled program (hashable when ``f`` and the static
    args are)."""

    f: Callable
    solver: Any
    adjoint: Any
    controller: Any
    mode: str                          # "final" | "ts" | "steps" | "dense"
    max_steps: int
    adaptive: bool
    auto_dt0: bool
    static_args: StaticArgs
    events: tuple | None = None
    event_records: int = 1
    jac: Callable | None = None
    jac_sparsity: Any = None           # a `JacobianSparsity`: df/dy from one product per column group
    backend: str = "auto"              # "auto" | "jax" | "c" (ensembles: also "cupy")
    batched: tuple[bool, ...] | None = None   # ensembles: per array leaf of args, one entry per trajectory
    # M y' = f: a `MassMatrix` (static: structure, not a parameter; see solvers/_mass.py); the solvers
    # that take one carry it too. init: "solve" | "check" | "none", the consistent initialisation.
    mass_matrix: Any = None
    init: str = "solve"

    @property
    def max_step(self) -> float | None:
        return self.controller.dtmax


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Problem:
    """The values of one solve (or of an ensemble, with a leading trajectory axis on ``y0`` and the
    batched ``args``). A pytree: it crosses ``jit`` as it is."""

    y0: Any                            # the initial state, a pytree of floating or complex arrays
    t0: Any
    t1: Any
    args: list                         # the array leaves of ``args`` (see `StaticArgs`)
    ts: Any                            # save times (``Options.mode == "ts"``), else None
    rtol: Any                          # a scalar or a pytree like (one trajectory's) ``y0``
    atol: Any
    dt0: Any                           # None: Hairer's automatic guess

    @property
    def n_traj(self) -> int:
        """Trajectories of an ensemble problem (the leading axis of ``y0``)."""
        return int(jax.tree_util.tree_leaves(self.y0)[0].shape[0])


class _Defaults:
    """The default solver, adjoint and controller: frozen objects, made once (per call they would cost
    more than the rest of a small `solve_ivp`)."""

    @functools.cached_property
    def solver(self):
        from sciml.solvers import Tsit5
        return Tsit5()

    @functools.cached_property
    def adjoint(self):
        from sciml.adjoints import Auto
        return Auto()

    controller = PIController()


_DEFAULTS = _Defaults()


def prepare(f: Callable, y0, t_span, args=None, *, solver=None, saveat=None, rtol=1e-6, atol=1e-6, dt0=None,
            max_steps: int = 100_000, adjoint=None, events=None, adaptive: bool = True, max_step=None,
            event_records: int = 1, jac=None, jac_sparsity=None, backend: str = "auto", controller=None,
            ensemble: bool = False, args_axes=0, names: V.Names = V.SOLVE,
            scipy_span: bool = False, mass_matrix=None, init: str = "solve") -> tuple[Problem, Options]:
    """Check a front door's arguments (each error names the argument, in the front door's own words,
    and the fix) and split them into the values and the static options of the solve.

    ``ensemble=True``: ``y0`` has a leading trajectory axis, and so do the leaves of ``args`` that
    ``args_axes`` (like `jax.vmap`'s ``in_axes``) marks with 0. ``scipy_span`` accepts scipy's spans:
    ``t0 == t1`` (where scipy's `solve_ivp` returns ``y0``) and an infinite ``t1``.
    """
    solver = _DEFAULTS.solver if solver is None else solver
    adjoint = _DEFAULTS.adjoint if adjoint is None else adjoint
    controller = _DEFAULTS.controller if controller is None else controller
    V.check_static(f, y0, t_span, args, saveat, solver, adjoint, controller, max_steps, adaptive, dt0, events,
                   max_step, event_records, backend, names, ensemble)
    SO.check_jac(jac, y0, solver)
    sparsity = SO.check_jac_sparsity(jac_sparsity, y0, solver)
    mass = SO.check_mass_matrix(mass_matrix, y0, solver, adjoint, init, ensemble)
    if mass is not None and getattr(solver, "takes_mass_matrix", False):
        solver = dataclasses.replace(solver, mass_matrix=mass)
    mode, ts = V.saveat_mode(saveat, names, ensemble)
    t0, t1 = t_span[0], t_span[1]
    V.check_values(t0, t1, y0, ts, rtol, atol, dt0, names, ensemble, scipy_span)
    dynamic, static_args = split_args(args)
    batched = None
    if ensemble:
        batched = V.batched_args(args, args_axes, static_args.is_dynamic, V.n_trajectories(y0, names))
    if max_step is not None:
        if not dataclasses.is_dataclass(controller):
            raise TypeError(f"`max_step` is set as the controller's `dtmax`, which needs a dataclass controller "
                            f"(as those of `sciml.solvers` are); got {controller!r}. Give your controller its "
                            f"`dtmax` and leave `max_step` unset.")
        controller = dataclasses.replace(controller, dtmax=float(max_step))
    options = Options(f=f, solver=solver, adjoint=adjoint, controller=controller, mode=mode,
                      max_steps=int(max_steps), adaptive=bool(adaptive), auto_dt0=dt0 is None,
                      static_args=static_args, events=tuple(events) if events else None,
                      event_records=int(event_records), jac=jac, jac_sparsity=sparsity, backend=backend,
                      batched=batched, mass_matrix=mass, init=init)
    return Problem(y0=y0, t0=t0, t1=t1, args=dynamic, ts=ts, rtol=rtol, atol=atol, dt0=dt0), options
