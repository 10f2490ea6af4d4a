"""The kernel run from the host (no XLA at all): what `sciml.solve_ivp` uses for calls with ``t_eval``,
where a whole solve takes tens of microseconds and any per-call tracing would dominate."""

from __future__ import annotations

import dataclasses
import threading

import jax
import numpy as np

from sciml.kernel._xla import fall_back, gave_up, not_served, state_unserved, unserved

#: per (options, shapes, dtypes): a `_Slot` holding the first call's launch, whose kernel, layout, dtypes
#: and arrays later calls reuse, so that they skip the checks of `f` and the lookups that cost more than a
#: small solve
_LAUNCHES: dict = {}
#: the same keys, where translating or building failed: "auto" goes straight to the XLA loop for them
_NO_KERNEL: set = set()


def solve_on_host(problem, options):
    """``{"ys", "scalars"}`` of a one-trajectory ``problem`` solved by the kernel on the host, or None
    where the kernel does not serve it and ``options.backend`` is ``"auto"`` (``"c"`` raises why)."""
    from sciml.kernel._build import run_c, run_launch
    from sciml.kernel._launch import _aval, outputs

    if gave_up(options.backend):
        return None
    y0 = np.asarray(problem.y0)
    reason = _unserved(problem, options, y0)
    if reason:
        if options.backend == "c":
            raise not_served(reason, "call")
        return None
    avals = tuple(_aval(x, False) for x in problem.args)
    key = (options, y0.shape, y0.dtype.str, avals, len(problem.ts))
    try:
        template = _LAUNCHES.get(key)
    except TypeError:  # an unhashable `fun` or argument: the full path, every call
        key = template = None
    if template is None:
        if key is not None and key in _NO_KERNEL and options.backend == "auto":
            return None
        one = dataclasses.replace(problem, y0=y0[None])
        try:
            launch, _ = run_c(one, dataclasses.replace(options, batched=(False,) * len(problem.args)), "c-single")
        except Exception as err:
            if not fall_back(err, options.backend):
                raise
            if key is not None:
                _NO_KERNEL.add(key)
            return None
        if key is not None:
            if len(_LAUNCHES) >= 128:
                _LAUNCHES.pop(next(iter(_LAUNCHES)))
            _LAUNCHES[key] = _Slot(launch)
        return host_result(launch, problem)
    if not template.lock.acquire(blocking=False):   # another thread runs this signature: arrays of its own
        launch = dataclasses.replace(template.launch, **_inputs(template.launch, problem, options, y0, avals),
                                     **outputs(template.launch.spec, template.launch.method, 1,
                                               template.launch.m, np))
        run_launch(launch, "c-single")
        return host_result(launch, problem)
    try:
        launch = template.launch
        for name, value in _inputs(launch, problem, options, y0, avals).items():
            if name == "args":
                for buffer, arg in zip(launch.args, value):
                    buffer[...] = arg
            else:
                getattr(launch, name)[...] = value
        template.run()
        return host_result(launch, problem)
    finally:
        template.lock.release()


class _Slot:
    """A built one-trajectory launch whose arrays later calls of the same signature refill in place: the
    kernel's arguments (numpy's ``.ctypes.data`` costs microseconds per array, as much as a small solve's
    own setup) are taken once. One call at a time uses it (``lock``); `host_result` copies the outputs."""

    def __init__(self, launch):
        from sciml.kernel._build import _entry_point

        # private copies: an input array may be a view of the caller's (e.g. of ``y0``)
        self.launch = dataclasses.replace(launch, y0s=launch.y0s.copy(), args=[a.copy() for a in launch.args],
                                          tp=launch.tp.copy(), ts=launch.ts.copy(), tol=launch.tol.copy())
        self.fn, pointer = _entry_point(launch.spec, launch.method, "c-single")
        self.values = [v if not p else v.ctypes.data for p, v in zip(pointer, self.launch.values())]
        self.lock = threading.Lock()

    def run(self):
        self.fn(*self.values)


def _inputs(launch, problem, options, y0, avals) -> dict:
    """The input arrays of ``launch`` for a new call with ``problem`` (same signature)."""
    from sciml.kernel._launch import arg_inputs, host_tolerance, time_inputs

    spec = launch.spec
    real, n = spec.state_dtype, spec.n
    tp, ts, _, _ = time_inputs(problem.t0, problem.t1, problem.dt0, options.max_step, np.asarray(problem.ts),
                               spec.time_dtype)
    y_treedef, y_avals = jax.tree_util.tree_structure(y0), ((y0.shape, y0.dtype),)
    tol = np.concatenate([host_tolerance(tol, name, y_treedef, y_avals, real, n)
                          for tol, name in ((problem.rtol, "rtol"), (problem.atol, "atol"))])
    # contiguous and in the kernel's dtype: the busy-slot path hands these arrays to the kernel as they are
    return dict(y0s=np.ascontiguousarray(y0[None], real), args=arg_inputs(problem.args, avals, 1, np, np.asarray),
                tp=tp, ts=ts, tol=tol)


def host_result(launch, problem, **counts) -> dict:
    """``{"ys", "scalars"}`` (what `sciml.solve_ivp` builds its result from) of a finished one-trajectory
    launch; ``counts`` replace the kernel's own ``nfev``/``njev``."""
    from sciml.kernel._kernel_spec import stat_names

    stats = dict(zip(stat_names(launch.method), launch.iout[0].tolist()), **counts)
    direction = 1.0 if problem.t1 >= problem.t0 else -1.0
    scalars = [stats["status"], launch.tout[0, 0] * direction, launch.tout[0, 1], 0, stats["nfev"],
               stats.get("njev", 0), stats.get("nlu", 0)]
    return {"ys": launch.ys[0].copy(), "scalars": np.asarray(scalars, np.float64)}


def _unserved(problem, options, y0) -> str:
    if problem.t0 == problem.t1:
        return "it needs t0 != t1"
    if options.mode == "dense":
        return "it has no `dense_output`"
    if options.mode != "ts":
        return "it saves at the given times only (pass `t_eval=`)"
    return state_unserved(y0.dtype) or unserved(options)
