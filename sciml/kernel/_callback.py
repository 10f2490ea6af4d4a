"""The generated kernel run from the host with the vector field called back into Python: what
`sciml.solve_ivp` uses for a field JAX cannot trace (NumPy, Python control flow on ``t``, a call into
another library).

The integration loop is the kernel's compiled C (`_codegen.py` with ``rhs=HOST``, see
`_kernel_callback.py`); only the field, and for Rosenbrock methods its Jacobian, run in Python, each
through a ``ctypes`` function pointer that reads the state from a NumPy buffer and writes into
another. The kernel's source depends on the size, dtypes, method and step-size controller only, so
every Python field of one shape shares one build.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import threading

import jax
import numpy as np

from sciml._validate import time_dtype as time_dtype_of
from sciml.kernel._host import host_result
from sciml.kernel._kernel_spec import HOST, KernelSpec
from sciml.solvers._status import Status
from sciml.kernel._xla import controller_unserved, fall_back, gave_up, not_served, solver_unserved, state_unserved

#: ``int callback(double t)``: 0 when the buffers are filled, nonzero when the Python side failed
CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_double)


@dataclasses.dataclass(frozen=True, eq=False)
class _HostKernel:
    spec: KernelSpec
    method: object
    entry: object
    pointer: tuple
    set_host: object
    busy: threading.Lock


def host_spec(solver, controller, n: int, state_dtype: str, time_dtype: str, save: bool, adaptive: bool,
              auto_dt0: bool) -> tuple[KernelSpec, object]:
    """The `KernelSpec` (``rhs=HOST``) and kernel method of a callback kernel."""
    from sciml.kernel._launch import kernel_method, kernel_static_controller

    method = kernel_method(solver)
    spec = KernelSpec(rhs=HOST, n=n, state_dtype=np.dtype(state_dtype), time_dtype=np.dtype(time_dtype), args=(),
                      save=save, adaptive=adaptive, auto_dt0=auto_dt0,
                      controller=kernel_static_controller(controller),
                      jac=HOST if hasattr(method, "jacobian_jaxpr") else None)
    return spec, method


@functools.lru_cache(maxsize=64)
def _host_kernel(solver, controller, n: int, state_dtype: str, time_dtype: str, save: bool, adaptive: bool,
                 auto_dt0: bool) -> _HostKernel:
    """The built callback kernel for one (method, controller, size, dtypes, mode)."""
    from sciml.kernel._build import _entry_point, load_library
    from sciml.kernel._launch import source_for

    spec, method = host_spec(solver, controller, n, state_dtype, time_dtype, save, adaptive, auto_dt0)
    library = load_library(source_for(spec, method, "c-single"))
    entry, pointer = _entry_point(spec, method, "c-single")
    set_host = library.sciml_set_host
    set_host.restype = None
    set_host.argtypes = [CALLBACK] * 3 + [ctypes.c_void_p] * 5 + [ctypes.c_int]
    return _HostKernel(spec, method, entry, pointer, set_host, threading.Lock())


def solve_python_field(field, problem, options, save_ts=None, events=None) -> dict | None:
    """``{"ys", "scalars"}`` of a one-trajectory ``problem`` whose field is ``field`` (a
    `sciml._callback_field.PythonField`), solved by the kernel with the field called back; None where
    the kernel does not serve the call and ``options.backend`` is ``"auto"`` (``"c"`` raises why).

    ``options.mode`` ``"ts"`` saves at ``save_ts``; ``"steps"`` records every step (``"ts"``: the
    times, ``"ys"`` the states); ``"dense"`` also records each step's dense output (``"dense"``:
    coefficients ``(steps, degree + 1, n)`` of the polynomial in ``theta = (t - t_k) / (e_k - t_k)``,
    ``"steps"`` the ends ``e_k`` of those steps, ``"step_ys"`` the states at the step times)
    and saves at ``save_ts`` when given. ``events`` (a `sciml._callback_events.HostEvents`, for
    ``options.events``) is told every accepted step with its dense output and may stop the solve there.
    An exception raised by the field or an event stops the solve and is raised here, with its own
    traceback.
    """
    from sciml.kernel._build import run_launch
    from sciml.kernel._launch import Launch, host_tolerance, outputs, time_inputs

    if gave_up(options.backend):
        return None
    y0 = np.asarray(problem.y0)
    reason = _unserved(problem, options, field.dtype)
    if reason:
        if options.backend == "c":
            raise not_served(reason, "call")
        return None
    real, n = field.dtype, int(y0.size)
    ts_user = None if save_ts is None else np.asarray(save_ts)
    time_dtype = np.dtype(time_dtype_of(problem.t0, problem.t1, ts_user, real))
    try:
        kernel = _host_kernel(options.solver, options.controller, n, real.str, time_dtype.str, True,
                              options.adaptive, options.auto_dt0)
    except Exception as err:
        if not fall_back(err, options.backend):
            raise
        return None
    if not kernel.busy.acquire(blocking=False):  # a field that itself solves with the same kernel
        return None
    try:
        spec, method = kernel.spec, kernel.method
        tp, ts, m, _ = time_inputs(problem.t0, problem.t1, problem.dt0, options.max_step, ts_user, time_dtype)
        tree = jax.tree_util.tree_structure(y0)
        tol = np.concatenate([host_tolerance(tol, name, tree, ((y0.shape, real),), real, n)
                              for tol, name in ((problem.rtol, "rtol"), (problem.atol, "atol"))])
        launch = Launch(spec=spec, method=method, n_traj=1, y0s=np.ascontiguousarray(y0.reshape(1, n), real),
                        args=[], tp=tp, ts=ts, m=m, tol=tol, max_steps=options.max_steps,
                        **outputs(spec, method, 1, m, np))
        y, dy = np.zeros(n, real), np.zeros(n, real)
        J, dfdt = np.zeros((n, n) if spec.jac is not None else 1, real), np.zeros(n, real)
        dc = np.zeros((method.dense_degree + 1, n), real)
        steps_t, steps_y, steps_dc, steps_end = [float(problem.t0)], [y0.astype(real)], [], []
        dense = options.mode == "dense" or events is not None
        if events is not None:
            events.start(float(problem.t0), y0.astype(real))

        def record(t):
            try:
                steps_t.append(t)
                steps_end.append(t)
                steps_y.append(y.copy())
                if dense:
                    steps_dc.append(dc.copy())
                if events is not None and events.step(steps_t[-2], t, steps_y[-1], steps_dc[-1]):
                    steps_t[-1], steps_y[-1] = events.t_stop, events.y_stop
                    return 1   # stops the loop; not a failure: field.error stays None
                return 0
            except BaseException as err:  # noqa: BLE001 - an event function's own error, re-raised below
                field.error = err
                return 1

        # the ctypes objects must live until the kernel returns
        c_field = CALLBACK(lambda t: field.evaluate_into(t, y, dy))
        c_jac = CALLBACK(lambda t: field.jacobian_into(t, y, dy, J, dfdt))
        c_record = CALLBACK(record) if options.mode != "ts" or events is not None else CALLBACK()
        kernel.set_host(c_field, c_jac, c_record, y.ctypes.data, dy.ctypes.data, J.ctypes.data, dfdt.ctypes.data,
                        dc.ctypes.data, int(dense))
        run_launch(launch, "c-single")
    finally:
        kernel.busy.release()
    field.raise_error()
    out = host_result(launch, problem, nfev=field.nfev, njev=field.njev)
    if events is not None:
        out.update(events.outputs())
        if events.t_stop is not None:
            out["scalars"][:2] = int(Status.EVENT), events.t_stop
            if m:   # save points past the event were written by the step that crossed it
                out["ys"][(np.asarray(ts_user, np.float64) - events.t_stop) * tp[2] > 0] = np.nan
    if options.mode != "ts":
        out["scalars"][3] = len(steps_t) - 1
        out["ts"] = np.asarray(steps_t)
        if m == 0:
            out["ys"] = np.stack(steps_y)
    if options.mode == "dense":
        out["dense"] = np.stack(steps_dc) if steps_dc else np.zeros((0, method.dense_degree + 1, n), real)
        out["steps"], out["step_ys"] = np.asarray(steps_end), np.stack(steps_y)
    return out


def _unserved(problem, options, dtype) -> str:
    if problem.t0 == problem.t1:
        return "it needs t0 != t1"
    if options.mass_matrix is not None:   # no front door passes one to a NumPy field (solve_ivp has no M)
        return "the NumPy-field kernel has no mass matrix (DAE) support"
    return state_unserved(dtype) or solver_unserved(options.solver) or controller_unserved(options.controller)
