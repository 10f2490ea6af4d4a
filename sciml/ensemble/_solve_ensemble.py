"""`sciml.solve_ensemble`: one ODE, many initial states and parameters, on a choice of backends; a front
door of the one pipeline (`prepare` with a trajectory axis, then batching of `integrate` or the kernel)."""

from __future__ import annotations

from typing import Any, Callable

from sciml._problem import prepare
from sciml._validate import Names
from sciml.ensemble._generated_inputs import GeneratedInputs, check_generated
from sciml.ensemble._solution import EnsembleSolution
from sciml.ensemble._streaming import GivenInputs, check_streaming, chunk_lanes, solve_streaming, stream_mesh

ENSEMBLE = Names(y0="y0s")

BACKENDS = ("jax", "c", "cupy")


def solve_ensemble(f: Callable, y0s: Any, t_span, args: Any = None, *, args_axes: Any = 0,
                   backend: str = "jax", solver=None, saveat=None, rtol=1e-6, atol=1e-6, dt0=None,
                   max_steps: int = 100_000, adaptive: bool = True, max_step=None, mesh=None,
                   throw: bool = False, controller=None, batch_size: int | None = None,
                   output: Callable | None = None, reduce=None, progress: bool = False, mass_matrix=None,
                   init: str = "solve", inputs: Callable | None = None, n_trajectories: int | None = None):
    """Solve ``dy/dt = f(t, y, args)`` for many trajectories at once.

    Trajectory ``i`` starts from the ``i``-th entry of ``y0s`` (leading axis) and sees the ``i``-th
    entry of every batched leaf of ``args``; its result is what ``sciml.solve`` gives for it alone
    (same method, tolerances, step control, status). A failing trajectory only sets its own status.

    Args:
        f: vector field ``f(t, y, args)`` for ONE trajectory (``y`` like one entry of ``y0s``).
        y0s: initial states, a pytree of arrays whose leading axis runs over trajectories (None with
            ``inputs``).
        t_span: ``(t0, t1)``, shared by all trajectories.
        args: what ``f`` needs; which leaves are per-trajectory is said by ``args_axes``.
        args_axes: like ``jax.vmap``'s ``in_axes`` for ``args``: ``0`` (default) means every array
            leaf of ``args`` has one entry per trajectory along its leading axis, ``None`` means
            ``args`` is shared by all, and a pytree prefix of ``args`` with ``0``/``None`` entries mixes
            them, e.g. ``args=(rhos, weights), args_axes=(0, None)``.
        backend: ``"jax"`` (vmapped `sciml.solve`, sharded over the devices of ``mesh``; any solver,
            any ``f``), ``"c"`` (``f`` translated to C and compiled for this CPU; blocks of 8
            trajectories in SIMD lanes, OpenMP over the cores) or ``"cupy"`` (the same kernel on an
            NVIDIA GPU, one thread per trajectory).
        solver: a solver from ``sciml.solvers`` (default ``Tsit5()``). The kernel backends run the
            explicit Runge-Kutta methods and ``Rodas5P``.
        saveat: ``None`` (final states) or an array of times inside ``t_span`` shared by all.
        rtol: relative tolerance, a scalar or a pytree like one ``y0``.
        atol: absolute tolerance, likewise.
        dt0: first step (``None``: Hairer's automatic guess, per trajectory); required with
            ``adaptive=False``.
        max_steps: bound on step attempts per trajectory (``Status.MAX_STEPS`` past it).
        adaptive: ``False`` takes fixed steps of ``dt0``.
        max_step: largest step allowed.
        mesh: ``backend="jax"`` only: a `jax.sharding.Mesh` to split the trajectories over (all its
            axes together). Default: every device, when there is more than one.
        throw: raise :class:`sciml.SolveError` if any trajectory failed (default: report it in
            ``status`` only).
        controller: the step-size controller (as for `sciml.solve`), honoured by every backend.
        batch_size: stream the ensemble: solve this many trajectories at a time (per device when
            ``backend="jax"`` shards over a mesh), so memory is bounded by a chunk. Alone, it returns the
            whole `EnsembleSolution` in host memory (NumPy arrays). See the "Scale" page of the docs.
        output: with ``batch_size``: a function of a chunk's `EnsembleSolution` giving arrays with the
            chunk's trajectories on the leading axis (``jax.vmap`` a function of one trajectory).
        reduce: with ``batch_size``: a `sciml.ensemble.Reduction` (`MeanVar`, `MinMax`, `Histogram`,
            `Fold`) folded over the chunks' outputs (default output: ``ens.ys``) of the successful
            trajectories. With ``output`` or ``reduce`` the result is a `sciml.ensemble.StreamedEnsemble`.
        progress: with ``batch_size``: a tqdm progress bar over the trajectories solved.
        mass_matrix: ``M`` of ``M y' = f`` for every trajectory (a constant ``(n, n)`` array; singular for
            a DAE), as for `sciml.solve`; ``backend="jax"`` with ``Rodas5P``, ``Rosenbrock23``,
            ``RadauIIA5`` or ``BDF``, ``"c"``/``"cupy"`` with ``Rodas5P``.
        init: with a singular ``mass_matrix``: each trajectory's consistent initialisation, as for
            `sciml.solve` (``"solve"``, ``"check"`` or ``"none"``).
        inputs: with ``batch_size``, instead of ``y0s`` and ``args`` (both None): a function of a chunk's
            trajectory indices (an int64 array of shape ``(k,)``) returning ``(y0s, args)`` for them, with
            ``k`` entries on the leading axis of ``y0s`` and of ``args``'s batched leaves (``args_axes``
            as usual). Called just before each chunk is solved, so no input of the whole ensemble is ever
            held; jitted when JAX can trace it, else called on the host with NumPy indices. Every chunk
            must have the first's structure, dtypes and trailing shapes. Not yet in multi-process programs.
        n_trajectories: with ``inputs``: the number of trajectories, ``N``; indices run over ``0..N-1``.

    Returns:
        An :class:`EnsembleSolution` (``ts``, ``ys``, ``t_final``, ``y_final``, ``status``,
        ``stats``, ``message()``), every field with the trajectory axis first.
        With ``output`` or ``reduce``: a `sciml.ensemble.StreamedEnsemble` (``value``,
        ``status_counts``, ``first_failure``, ``message()``).

    Raises:
        ValueError: for inconsistent inputs (the message names the argument and the fix).
        sciml.ensemble.UnsupportedPrimitiveError: a kernel backend met an operation in ``f`` it cannot
            translate (``backend="jax"`` handles every ``f``).
        sciml.ensemble.BackendUnavailableError: no C compiler (``"c"``) or no CuPy/GPU (``"cupy"``).

    Example:
        >>> import jax.numpy as jnp, sciml
        >>> def decay(t, y, k):
        ...     return -k * y
        >>> ks = jnp.array([0.5, 1.0, 2.0])
        >>> ens = sciml.solve_ensemble(decay, jnp.ones((3, 1)), (0.0, 1.0), args=ks, rtol=1e-8, atol=1e-8)
        >>> bool(jnp.allclose(ens.ys[:, -1, 0], jnp.exp(-ks), rtol=1e-6))
        True
    """
    if mesh is not None and backend != "jax":
        raise ValueError(f"`mesh` shards `backend=\"jax\"` over devices; `backend={backend!r}` runs on "
                         f"one {'GPU' if backend == 'cupy' else 'host'}. Drop `mesh` or use `backend=\"jax\"`.")
    check_streaming(batch_size, output, reduce, progress)
    check_generated(inputs, n_trajectories, y0s, args, batch_size)
    generated = None
    if inputs is not None:   # the first chunk is generated here and goes through `prepare` as arrays would
        shards = stream_mesh(mesh) if backend == "jax" else None     # `batch_size` per device of a mesh
        devices = 1 if shards is None else shards.devices.size
        generated = GeneratedInputs(inputs, n_trajectories, chunk_lanes(n_trajectories, batch_size, devices),
                                    args_axes)
        y0s, args = generated.first
    problem, options = prepare(f, y0s, t_span, args, solver=solver, saveat=saveat, rtol=rtol, atol=atol, dt0=dt0,
                               max_steps=max_steps, adaptive=adaptive, max_step=max_step, backend=backend,
                               controller=controller, ensemble=True, args_axes=args_axes,
                               names=ENSEMBLE, mass_matrix=mass_matrix, init=init)
    if backend != "jax":          # the one "can the kernel serve this?" (the solver, a user's controller)
        from sciml.kernel import not_served, unserved
        reason = unserved(options)
        if reason:
            raise not_served(reason, "ensemble", backend, has_auto=False)   # ensembles have no "auto"
    if batch_size is not None:
        source = GivenInputs(problem, options) if generated is None else generated.bind(problem, options)
        return solve_streaming(source, options, backend=backend, mesh=mesh, batch_size=batch_size,
                               output=output, reduce=reduce, throw=throw, progress=progress)
    if backend == "jax":
        from sciml.ensemble._jax_backend import solve_jax
        ens = solve_jax(problem, options, mesh)
    elif backend == "c":
        from sciml.ensemble._multiprocess import is_multiprocess, solve_c_global
        from sciml.kernel import solve_c
        ens = (solve_c_global(problem, options) if is_multiprocess()   # each process solves its share
               else EnsembleSolution(**solve_c(problem, options), backend="c"))
    else:
        from sciml.kernel import solve_cupy
        ens = EnsembleSolution(**solve_cupy(problem, options), backend="cupy")
    return ens.raise_if_failed() if throw else ens
