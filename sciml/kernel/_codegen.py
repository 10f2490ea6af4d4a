"""The kernel source: one C function solves a block of trajectories end to end; an entry point runs
many blocks.

The integration loop here is `sciml.solvers._loop.integrate` restated in C per trajectory: the same
first step (Hairer's guess), the same snapping of the last step onto ``t1``, the same step-size
controller (`_kernel_control.py`), Hairer's error norm, dense output at save points and status codes,
so a kernel solve agrees with `sciml.solve` to rounding. The method itself (`KernelMethod`: explicit
RK, Rosenbrock) supplies the step, its error estimate and its dense output. State lives in small local
arrays indexed by constants, which GPU compilers keep in registers.

A block holds ``SCIML_LANES`` trajectories, every per-trajectory value an array over the lanes and
every statement a loop over them: on the CPU (8 lanes) the compiler turns those loops into SIMD
instructions, while each lane still does exactly the arithmetic of its own trajectory (a lane that
has finished or been rejected is masked, never mixed with the others). On the GPU a block is one
trajectory in one thread (1 lane). The same body compiles as C99 (``target="c"``: OpenMP over blocks)
and as CUDA (``target="cuda"``); the two differ only in the prelude (lanes, qualifier macros,
infinity/NaN) and the entry point.
"""

from __future__ import annotations

import numpy as np

from sciml.kernel._ctypes import PRELUDES, TARGETS, c_type
from sciml.kernel._kernel_callback import HOST_FAILED, host_field_source, host_record
from sciml.kernel._kernel_control import kernel_controller
from sciml.kernel._kernel_spec import (C_LANES, Ctx, KernelMethod, KernelSpec, arg_inputs, entry_parameters, is_host,
                                       lane_function, local_arg, state)
from sciml.kernel._translate import Translator
from sciml.solvers._control import guess_order
from sciml.solvers._status import Status

_QUALIFIERS = {
    "c": (f"#define SCIML_LANES {C_LANES}\n#define SCIML_FN static inline\n#define SCIML_RESTRICT restrict\n"
          "#define SCIML_SIMD _Pragma(\"omp simd\")\n"),
    "c-single": ("#define SCIML_LANES 1\n#define SCIML_FN static inline\n#define SCIML_RESTRICT restrict\n"
                 "#define SCIML_SIMD\n"),
    "cuda": ("#define SCIML_LANES 1\n#define SCIML_FN __device__ static inline\n"
             "#define SCIML_RESTRICT __restrict__\n#define SCIML_SIMD\n"),
}
def kernel_source(spec: KernelSpec, method: KernelMethod, target: str) -> str:
    """The complete source for ``target`` ("c" or "cuda"); entry point ``sciml_ensemble``."""
    if target not in TARGETS:
        raise ValueError(f"`target` must be one of {TARGETS}; got {target!r}.")
    if method.single_trajectory and target != "c-single":
        raise ValueError(method.single_trajectory)
    return PRELUDES[target] + _QUALIFIERS[target] + kernel_body(spec, method) + _entry(spec, target)


def kernel_body(spec: KernelSpec, method: KernelMethod) -> str:
    """Everything but the prelude and the entry point: identical for every target."""
    ctx = Ctx(spec)
    parts = [f"typedef {ctx.real} sciml_real;", f"typedef {ctx.time} sciml_time;",
             "#define SCIML_MAX(a, b) ((a) != (a) || (a) > (b) ? (a) : (b))",
             "#define SCIML_MIN(a, b) ((a) != (a) || (a) < (b) ? (a) : (b))",
             _args_struct(spec), _rhs(spec, ctx)]
    if spec.adaptive:
        parts.append(_error_norm(ctx))
    if spec.auto_dt0:
        parts.append(_initial_step(ctx, guess_order(method, spec.controller)))
    trajectory = _trajectory(spec, method, ctx)   # first: it refuses what the kernel cannot hold, cheaply
    parts += method.helpers(ctx)
    parts.append(trajectory)
    return "\n".join(parts) + "\n"


def _args_struct(spec: KernelSpec) -> str:
    """Per-block arguments: small batched leaves copied per lane, others by pointer (per lane if batched)."""
    fields = []
    for k, a in enumerate(spec.args):
        t = c_type(a.dtype)
        if local_arg(a):
            fields.append(f"    {t} a{k}[{max(a.size, 1)}][SCIML_LANES];")
        else:
            fields.append(f"    const {t}* a{k}[SCIML_LANES];" if a.batched else f"    const {t}* a{k};")
    fields = fields or ["    int unused;"]
    return "typedef struct {\n" + "\n".join(fields) + "\n} sciml_args;\n"


def _rhs(spec: KernelSpec, ctx: Ctx) -> str:
    """``sciml_f(s, y, p, dir, dy)``: the translated vector field in forward time ``s = dir * t``, per lane."""
    if is_host(spec):
        return host_field_source(ctx)
    n = spec.n
    tr = Translator("v")
    inputs = [np.array(["t"], dtype=object), np.array([f"y[{j}][l]" for j in range(n)], dtype=object)]
    (out,) = tr.translate(spec.rhs, inputs + arg_inputs(spec))
    lines = tr.lines + [f"dy[{j}][l] = (sciml_real)dir * (sciml_real)({e});" for j, e in enumerate(out.ravel())]
    params = (f"const sciml_time s[SCIML_LANES], const sciml_real y[{n}][SCIML_LANES], "
              f"const sciml_args* SCIML_RESTRICT p, const sciml_time dir, sciml_real dy[{n}][SCIML_LANES]")
    return lane_function("sciml_f", params, ["const sciml_time t = s[l] * dir;", "(void)t;"], lines)


def _error_norm(ctx: Ctx) -> str:
    """Hairer's mixed RMS norm, as `sciml.solvers._control.error_norm` (non-finite -> inf), per lane."""
    R, n, fabs = ctx.R, ctx.n, ctx.rf("fabs")
    params = (f"const sciml_real e[{n}][SCIML_LANES], const sciml_real y0[{n}][SCIML_LANES], "
              f"const sciml_real y1[{n}][SCIML_LANES], const sciml_real* rtol, const sciml_real* atol, "
              f"sciml_real norm[SCIML_LANES]")
    return lane_function("sciml_error_norm", params, [], [
        f"sciml_real sum = {R(0)};",
        f"for (int j = 0; j < {n}; ++j) {{",
        f"    const sciml_real ay1 = {fabs}(y1[j][l]);",
        f"    const sciml_real scale = atol[j] + rtol[j] * SCIML_MAX({fabs}(y0[j][l]), ay1);",
        f"    const sciml_real ae = {fabs}(e[j][l]);",
        f"    const sciml_real ratio = scale > {R(0)} ? ae / scale : (ae == {R(0)} ? {R(0)} : (sciml_real)SCIML_INF);",
        f"    sum = sum + (ratio * ratio + {R(0)} * ay1);",
        "}",
        f"const sciml_real value = {ctx.rf('sqrt')}(sum / {R(n)});",
        "norm[l] = isfinite(value) ? value : (sciml_real)SCIML_INF;"])


def _initial_step(ctx: Ctx, error_order: float) -> str:
    """Hairer's initial step, as `sciml.solvers._control.initial_step` (one evaluation of f)."""
    R, n, rf = ctx.R, ctx.n, ctx.rf

    def rms(v):
        return [f"sum = {R(0)};",
                f"for (int j = 0; j < {n}; ++j) {{ const sciml_real r = scale[j][l] > {R(0)} ? "
                f"{rf('fabs')}({v}) / scale[j][l] : {R(0)}; "
                f"sum = sum + r * r; }}"]

    lines = [f"sciml_real scale[{n}][SCIML_LANES], y1[{n}][SCIML_LANES], f1[{n}][SCIML_LANES], "
             f"h0[SCIML_LANES], d1[SCIML_LANES];", "sciml_time t1[SCIML_LANES];"]
    lines += ctx.lanes(
        "sciml_real sum;",
        f"for (int j = 0; j < {n}; ++j) scale[j][l] = atol[j] + rtol[j] * {rf('fabs')}(y0[j][l]);",
        *rms("y0[j][l]"), f"const sciml_real d0 = {rf('sqrt')}(sum / {R(n)});",
        *rms("f0[j][l]"), f"d1[l] = {rf('sqrt')}(sum / {R(n)});",
        f"const int tiny = (d0 < {R(1e-5)}) | (d1[l] < {R(1e-5)});",
        f"h0[l] = tiny ? {R(1e-6)} : {R(0.01)} * d0 / d1[l];",
        "h0[l] = SCIML_MIN(h0[l], (sciml_real)max_dt);  /* f is never evaluated outside the span */",
        f"for (int j = 0; j < {n}; ++j) y1[j][l] = y0[j][l] + h0[l] * f0[j][l];",
        "t1[l] = t0[l] + (sciml_time)h0[l];")
    lines.append("sciml_f(t1, y1, p, dir, f1);")
    lines += ctx.lanes(
        "sciml_real sum;",
        *rms("(f1[j][l] - f0[j][l])"),
        f"const sciml_real d2 = {rf('sqrt')}(sum / {R(n)}) / h0[l];",
        "const sciml_real max_d = SCIML_MAX(d1[l], d2);",
        f"const sciml_real h1 = max_d <= {R(1e-15)} ? SCIML_MAX({R(1e-6)}, h0[l] * {R(1e-3)})",
        f"                                        : {rf('pow')}({R(0.01)} / max_d, {R(1.0 / error_order)});",
        f"dt[l] = (sciml_time)SCIML_MIN({R(100)} * h0[l], h1);")
    params = (f"const sciml_time t0[SCIML_LANES], const sciml_real y0[{n}][SCIML_LANES], "
              f"const sciml_real f0[{n}][SCIML_LANES], const sciml_args* p, const sciml_time dir, "
              f"const sciml_real* rtol, const sciml_real* atol, const sciml_time max_dt, sciml_time dt[SCIML_LANES]")
    return "\n".join([f"SCIML_FN void sciml_initial_step({params}) {{"] + ["    " + x for x in lines] + ["}"]) + "\n"


def _load_args(spec: KernelSpec, ctx: Ctx) -> list[str]:
    lines = ["sciml_args P;"]
    for k, a in enumerate(spec.args):
        if local_arg(a):
            lines += ctx.lanes(f"for (int j = 0; j < {a.size}; ++j) P.a{k}[j][l] = arg{k}[idx[l] * {a.size} + j];")
        elif a.batched:
            lines += ctx.lanes(f"P.a{k}[l] = arg{k} + idx[l] * {a.size};")
        else:
            lines.append(f"P.a{k} = arg{k};")
    return lines


def _controller(ctx: Ctx, method: KernelMethod) -> list[str]:
    """Step-size control, as the XLA loop's ``controller.adapt`` followed by its clipping: ``accept``,
    ``dt_next`` and ``nonfinite`` of every lane."""
    control = kernel_controller(ctx.spec.controller)
    return ctx.lanes(
        "sciml_real factor;",
        *control.adapt(ctx, method.error_order),
        "dt_next[l] = SCIML_MIN(hs[l] * (sciml_time)factor, dtmax);",
        "if (accept[l] && last[l]) dt_next[l] = SCIML_MAX(dt_next[l], dt[l]);",
        "nonfinite[l] = !isfinite(err[l]);")


def _save(ctx: Ctx, method: KernelMethod) -> list[str]:
    """Write the dense output at every save point in (t, t_new] of each lane's accepted step."""
    n, deg = ctx.n, method.dense_degree
    horner = f"dc[{deg}][j][l]"
    for p in range(deg - 1, -1, -1):
        horner = f"({horner}) * theta + dc[{p}][j][l]"
    lines = ["int need_any = 0;"]
    lines += ctx.lanes("need[l] = active[l] && accept[l] && save[l] < m && ts[save[l]] <= t_new[l];",
                       "need_any |= need[l];", simd=False)
    lines += ["if (need_any) {"] + ["    " + x for x in method.dense(ctx)]
    lines += ["    " + x for x in ctx.lanes(
        "if (!need[l]) continue;",
        "++n_dense[l];",
        "while (save[l] < m && ts[save[l]] <= t_new[l]) {",
        "    const sciml_time tw = ts[save[l]];",
        "    const sciml_real theta = (sciml_real)((tw - t[l]) / hs[l]);",
        f"    for (int j = 0; j < {n}; ++j) out[l][save[l] * {n} + j] = tw == t_new[l] ? y1[j][l] : {horner};",
        "    ++save[l];",
        "}")]
    return lines + ["}"]


def _trajectory(spec: KernelSpec, method: KernelMethod, ctx: Ctx) -> str:
    """``sciml_block(i0, ...)``: the integration loop of `sciml.solvers._loop.integrate` for the
    trajectories ``i0 .. i0 + SCIML_LANES - 1`` (lanes past ``n_traj`` are idle)."""
    n, T = spec.n, ctx.T
    eps = float(np.finfo(spec.time_dtype).eps)
    params = ", ".join(f"{t} SCIML_RESTRICT {name}" if t.endswith("*") else f"const {t} {name}"
                       for t, name in entry_parameters(spec))
    f1 = method.f1_array or "f1"
    lanes = ctx.lanes
    b = [" ".join(f"(void){name};" for _, name in entry_parameters(spec)),  # some are unused in some modes
         "long long idx[SCIML_LANES];", "int live[SCIML_LANES];"]
    b += lanes("live[l] = i0 + l < n_traj;", "idx[l] = live[l] ? i0 + l : i0;")
    b += _load_args(spec, ctx)
    b += ["const sciml_time s0 = tp[0], s1 = tp[1], dir = tp[2], dtmax = tp[4];",
          state("y", ctx), state("f0", ctx), state("y1", ctx)]
    if spec.adaptive or spec.auto_dt0:
        b.append(f"const sciml_real* rtol = tol; const sciml_real* atol = tol + {n};")
    if method.f1_array is None:
        b.append(state("f1", ctx))
    b += method.declarations(ctx)
    b += ["sciml_time t[SCIML_LANES], dt[SCIML_LANES], tn[SCIML_LANES], t_new[SCIML_LANES], hs[SCIML_LANES], "
          "dt_next[SCIML_LANES];",
          "sciml_real h[SCIML_LANES];",
          "int status[SCIML_LANES], last[SCIML_LANES], accept[SCIML_LANES], active[SCIML_LANES], "
          "nonfinite[SCIML_LANES];",
          "long long n_attempt[SCIML_LANES], n_accept[SCIML_LANES], n_dense[SCIML_LANES];",
          *(["int newton_failing[SCIML_LANES];"] if method.newton_ok is not None else []),
          f"const sciml_time snap = {T(64 * eps)} * SCIML_MAX({ctx.tf('fabs')}(s0), {ctx.tf('fabs')}(s1));"]
    control = kernel_controller(spec.controller) if spec.adaptive else None
    if control is not None:
        b += ["sciml_real err[SCIML_LANES];"] + control.declarations()
    if spec.save:
        b += ["int need[SCIML_LANES];", "long long save[SCIML_LANES];", "sciml_real* out[SCIML_LANES];"]
    b += lanes(f"for (int j = 0; j < {n}; ++j) y[j][l] = y0s[idx[l] * {n} + j];", "t[l] = s0;")
    b.append("sciml_f(t, y, &P, dir, f0);")
    b.append("sciml_initial_step(t, y, f0, &P, dir, rtol, atol, SCIML_MIN(s1 - s0, dtmax), dt);"
             if spec.auto_dt0 else "")
    b += lanes(*([] if spec.auto_dt0 else ["dt[l] = tp[3];"]),
               "dt[l] = SCIML_MIN(SCIML_MIN(dt[l], s1 - s0), dtmax);",
               "status[l] = live[l] ? 0 : -1;  /* -1: an idle lane past the last trajectory */",
               f"for (int j = 0; j < {n}; ++j) if (live[l] && !(isfinite(y[j][l]) && isfinite(f0[j][l]))) "
               f"status[l] = {int(Status.NONFINITE)};",
               "n_attempt[l] = 0; n_accept[l] = 0; n_dense[l] = 0;",
               *(["newton_failing[l] = 0;"] if method.newton_ok is not None else []),
               *(control.init(ctx) if control is not None else []))
    if spec.save:
        b += lanes("save[l] = 0;",
                   f"out[l] = ys + idx[l] * m * {n};",
                   "for (long long q = 0; q < m && live[l]; ++q) {",
                   "    const int at_start = ts[q] <= s0;",
                   f"    for (int j = 0; j < {n}; ++j) out[l][q * {n} + j] = at_start ? y[j][l] : (sciml_real)SCIML_NAN;",
                   "    save[l] += at_start;",
                   "}")
        if method.dense_degree:
            b.append(f"sciml_real dc[{method.dense_degree + 1}][{n}][SCIML_LANES];")
    loop = ["int any = 0;"]
    loop += lanes("active[l] = t[l] < s1 && status[l] == 0;", "any |= active[l];", simd=False)
    loop += [f"if (!any{' || ' + HOST_FAILED if is_host(spec) else ''}) break;"]
    loop += lanes("last[l] = dt[l] >= s1 - t[l] - snap;", "hs[l] = last[l] ? s1 - t[l] : dt[l];",
                  "h[l] = (sciml_real)hs[l];")
    loop += method.step(ctx)
    loop += lanes("t_new[l] = last[l] ? s1 : t[l] + hs[l];")
    if spec.adaptive:
        loop += _controller(ctx, method) + method.after_step(ctx)
    else:
        loop += lanes("int finite = 1;", f"for (int j = 0; j < {n}; ++j) finite = finite && isfinite(y1[j][l]);",
                      "nonfinite[l] = !finite;", "accept[l] = finite;", "dt_next[l] = dt[l];")
    if method.f1_array is None:  # every lane evaluates; a rejected lane keeps its f0
        loop += ["sciml_f(t_new, y1, &P, dir, f1);"]
        loop += lanes(f"for (int j = 0; j < {n}; ++j) f1[j][l] = accept[l] ? f1[j][l] : f0[j][l];")
    if spec.save:
        loop += _save(ctx, method)
    if is_host(spec):
        loop += host_record(ctx, method)
    # An implicit method whose Newton iteration keeps failing shrinks the step until it underflows or its
    # matrix is singular and the state NaN: both are Newton's failure (`sciml.solvers._loop`'s rule).
    newton = method.newton_ok is not None
    nonfinite_cause = f"(newton ? {int(Status.NEWTON_FAILED)} : {int(Status.NONFINITE)})" if newton else str(
        int(Status.NONFINITE))
    update = ["if (!active[l]) continue;"]
    if newton:
        update.append(f"const int newton = !({method.newton_ok}) || newton_failing[l];")
    update.append(f"if (accept[l]) for (int j = 0; j < {n}; ++j) if (!isfinite({f1}[j][l])) "
                  f"status[l] = {nonfinite_cause};")
    if control is not None:
        cause = f"nonfinite[l] ? {int(Status.NONFINITE)} : {int(Status.DT_UNDERFLOW)}"
        cause = f"newton ? {int(Status.NEWTON_FAILED)} : ({cause})" if newton else cause
        update += [f"if (!accept[l] && t[l] + dt_next[l] <= t[l]) status[l] = {cause};", *control.update(ctx)]
    else:
        update.append(f"if (nonfinite[l]) status[l] = {nonfinite_cause};")
    if newton:
        update.append("newton_failing[l] = !accept[l] && newton;")
    update += ["++n_attempt[l];",
               "if (accept[l]) {",
               "    t[l] = t_new[l];",
               f"    for (int j = 0; j < {n}; ++j) {{ y[j][l] = y1[j][l]; f0[j][l] = {f1}[j][l]; }}",
               "    ++n_accept[l];",
               "}",
               "dt[l] = dt_next[l];",
               f"if (n_attempt[l] >= max_steps && t[l] < s1 && status[l] == 0) status[l] = {int(Status.MAX_STEPS)};"]
    loop += lanes(*update)
    b += ["for (;;) {"] + ["    " + line for line in loop] + ["}"]
    nfev = (f"1 + {int(spec.auto_dt0)} + {method.fevals_per_step} * n_attempt[l] + {int(not method.fsal)} * n_accept[l]"
            f" + {method.fevals_dense} * n_dense[l]" + "".join(f" + {x}" for x in method.fevals_counted(ctx)))
    stats = ["status[l]", nfev, "n_accept[l]", "n_attempt[l] - n_accept[l]"] + method.counters(ctx)
    width = len(stats)
    b += lanes("if (!live[l]) continue;",
               f"for (int j = 0; j < {n}; ++j) yf[idx[l] * {n} + j] = y[j][l];",
               "tout[2 * idx[l]] = t[l];", "tout[2 * idx[l] + 1] = dt[l];",
               *[f"iout[{width} * idx[l] + {k}] = (int)({expr});" for k, expr in enumerate(stats)])
    lines = [f"SCIML_FN void sciml_block(const long long i0, {params}) {{"]
    lines += ["    " + line for line in b if line] + ["}"]
    return "\n".join(lines) + "\n"


def _entry(spec: KernelSpec, target: str) -> str:
    params = entry_parameters(spec)
    signature = ", ".join(f"{t} {name}" for t, name in params)
    call = ", ".join(name for _, name in params)
    if target in ("c", "c-single"):
        # One trajectory per call ("c-single") would only pay OpenMP's start-up of a parallel region.
        parallel = "    #pragma omp parallel for schedule(dynamic, 4)\n" if target == "c" else ""
        return (f"void sciml_ensemble({signature}) {{\n"
                f"    long long b;\n"
                f"{parallel}"
                f"    for (b = 0; b < (n_traj + SCIML_LANES - 1) / SCIML_LANES; ++b) "
                f"sciml_block(b * SCIML_LANES, {call});\n}}\n")
    return (f"extern \"C\" __global__ void sciml_ensemble({signature}) {{\n"
            f"    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;\n"
            f"    if (i < n_traj) sciml_block(i, {call});\n}}\n")
