"""The kernel source: one C function solves one trajectory end to end; an entry point runs many.

The integration loop here is `sciml.solvers._loop.integrate` restated in C for one trajectory: the
same first step (Hairer's guess), the same snapping of the last step onto ``t1``, PI controller,
Hairer's error norm, dense output at save points and status codes, so a kernel solve agrees with
`sciml.solve` to rounding. The method itself (`KernelMethod`: explicit RK, Rosenbrock) supplies the
step, its error estimate and its dense output. State lives in small local arrays indexed by constants,
which GPU compilers keep in registers.

The same body compiles as C99 (``target="c"``: a loop over trajectories, OpenMP-parallel) and as CUDA
(``target="cuda"``: one thread per trajectory); the two differ only in the prelude (qualifier macros,
infinity/NaN) and the entry point.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sciml.ensemble._ctypes import PRELUDES, TARGETS, c_type, literal, math_fn
from sciml.ensemble._translate import Translator
from sciml.solvers._control import PIController
from sciml.solvers._status import Status

_QUALIFIERS = {
    "c": "#define SCIML_FN static inline\n#define SCIML_RESTRICT restrict\n",
    "cuda": "#define SCIML_FN __device__ static inline\n#define SCIML_RESTRICT __restrict__\n",
}
#: batched args up to this many elements are copied into the trajectory's registers
_LOCAL_ARG_SIZE = 64


@dataclasses.dataclass(frozen=True)
class ArgSpec:
    """One array leaf of ``args`` as the kernel sees it: per-trajectory ``size`` and whether it is batched."""

    dtype: np.dtype
    size: int
    batched: bool


@dataclasses.dataclass(frozen=True, eq=False)
class KernelSpec:
    """Everything the generated source depends on.

    ``rhs`` is the closed jaxpr of ``(t, y, *args) -> dy`` for one trajectory (``y``, ``dy``: ``(n,)``
    in ``state_dtype``, ``t`` in ``time_dtype``); ``jac`` that of ``(t, y, *args) -> (df/dy, df/dt)``
    for methods that need a Jacobian.
    """

    rhs: object
    n: int
    state_dtype: np.dtype
    time_dtype: np.dtype
    args: tuple[ArgSpec, ...]
    save: bool            # write the state at the shared save times (else only the final state)
    adaptive: bool
    auto_dt0: bool
    jac: object = None


class Ctx:
    """Spelling helpers for one spec: literals and math functions in the state (R) and time (T) types."""

    def __init__(self, spec: KernelSpec):
        self.spec, self.n = spec, spec.n
        self.real, self.time = c_type(spec.state_dtype), c_type(spec.time_dtype)

    def R(self, x) -> str:
        return literal(x, self.spec.state_dtype)

    def T(self, x) -> str:
        return literal(x, self.spec.time_dtype)

    def rf(self, name: str) -> str:
        return math_fn(name, self.spec.state_dtype)

    def tf(self, name: str) -> str:
        return math_fn(name, self.spec.time_dtype)


class KernelMethod:
    """What a method contributes to the kernel loop (see `_kernel_rk.py`, `_kernel_rosenbrock.py`).

    Arrays in scope of ``step``: ``y`` (state), ``f0`` (f at ``(t, y)``), scalars ``t``, ``hs`` (the
    step in the time type), ``h`` (the same in the state type). ``step`` must fill ``y1`` and, for
    adaptive solves, set ``sciml_real err`` (``inf`` when not finite) and ``int ok``; ``f1_array``
    names the array holding ``f(t_new, y1)`` afterwards if the method computes it (FSAL), else None.
    ``dense`` fills ``dc[p][j]``, the polynomial in theta, given also ``f1``.
    """

    error_order: int | None
    order: int
    fsal: bool
    fevals_per_step: int
    fevals_dense: int
    dense_degree: int
    f1_array: str | None
    stat_names: tuple[str, ...] = ()

    def helpers(self, ctx: Ctx) -> list[str]:
        return []

    def declarations(self, ctx: Ctx) -> list[str]:
        raise NotImplementedError

    def step(self, ctx: Ctx) -> list[str]:
        raise NotImplementedError

    def dense(self, ctx: Ctx) -> list[str]:
        raise NotImplementedError

    def counters(self) -> list[str]:
        """C expressions of the extra statistics named in ``stat_names`` (e.g. Jacobian count)."""
        return []


def combine(ctx: Ctx, dst: str, base: str | None, weights, ks, scale: str = "h") -> list[str]:
    """``dst = base + scale * sum_i w_i ks_i`` elementwise, zero weights skipped, summed in the order of
    `sciml.solvers._explicit_rk._combine` (``base=None``: no base)."""
    terms = [(float(w), k) for w, k in zip(weights, ks) if float(w) != 0.0]
    if not terms:
        value = f"{base}[j]" if base is not None else ctx.R(0)
        return [f"for (int j = 0; j < {ctx.n}; ++j) {dst}[j] = {value};"]
    acc = f"{ctx.R(terms[0][0])} * {terms[0][1]}[j]"
    for w, k in terms[1:]:  # left to right, parenthesised to pin the order
        acc = f"({acc}) + {ctx.R(w)} * {k}[j]"
    value = f"{scale} * ({acc})"
    value = f"{base}[j] + {value}" if base is not None else value
    return [f"for (int j = 0; j < {ctx.n}; ++j) {dst}[j] = {value};"]


def stat_names(method: KernelMethod) -> tuple[str, ...]:
    """Names of the integer outputs of each trajectory, in order."""
    return ("status", "nfev", "naccept", "nreject") + tuple(method.stat_names)


def entry_parameters(spec: KernelSpec) -> list[tuple[str, str]]:
    """``(C type, name)`` of the entry point's parameters; the backends pass arrays in this order."""
    real, time = c_type(spec.state_dtype), c_type(spec.time_dtype)
    params = [("long long", "n_traj"), (f"const {real}*", "y0s")]
    params += [(f"const {c_type(a.dtype)}*", f"arg{k}") for k, a in enumerate(spec.args)]
    params += [(f"const {time}*", "tp"), (f"const {time}*", "ts"), ("long long", "m"),
               (f"const {real}*", "tol"), ("long long", "max_steps"), (f"{real}*", "ys"),
               (f"{real}*", "yf"), (f"{time}*", "tout"), ("int*", "iout")]
    return params


def kernel_source(spec: KernelSpec, method: KernelMethod, target: str) -> str:
    """The complete source for ``target`` ("c" or "cuda"); entry point ``sciml_ensemble``."""
    if target not in TARGETS:
        raise ValueError(f"`target` must be one of {TARGETS}; got {target!r}.")
    return PRELUDES[target] + _QUALIFIERS[target] + kernel_body(spec, method) + _entry(spec, target)


def kernel_body(spec: KernelSpec, method: KernelMethod) -> str:
    """Everything but the prelude and the entry point: identical for every target."""
    ctx = Ctx(spec)
    parts = [f"typedef {ctx.real} sciml_real;", f"typedef {ctx.time} sciml_time;",
             "#define SCIML_MAX(a, b) ((a) != (a) || (a) > (b) ? (a) : (b))",
             "#define SCIML_MIN(a, b) ((a) != (a) || (a) < (b) ? (a) : (b))",
             _args_struct(spec), _rhs(spec, ctx), _error_norm(ctx)]
    if spec.auto_dt0:
        parts.append(_initial_step(ctx, method.error_order or method.order + 1))
    parts += method.helpers(ctx)
    parts.append(_trajectory(spec, method, ctx))
    return "\n".join(parts) + "\n"


def _args_struct(spec: KernelSpec) -> str:
    fields = []
    for k, a in enumerate(spec.args):
        local = a.batched and a.size <= _LOCAL_ARG_SIZE
        fields.append(f"    {c_type(a.dtype)} a{k}[{max(a.size, 1)}];" if local
                      else f"    const {c_type(a.dtype)}* a{k};")
    fields = fields or ["    int unused;"]
    return "typedef struct {\n" + "\n".join(fields) + "\n} sciml_args;\n"


def _rhs(spec: KernelSpec, ctx: Ctx) -> str:
    """``sciml_f(s, y, p, dir, dy)``: the translated vector field in forward time ``s = dir * t``."""
    tr = Translator("v")
    inputs = [np.array(["t"], dtype=object), np.array([f"y[{j}]" for j in range(spec.n)], dtype=object)]
    inputs += [np.array([f"p->a{k}[{j}]" for j in range(a.size)], dtype=object) for k, a in enumerate(spec.args)]
    (out,) = tr.translate(spec.rhs, inputs)
    body = ["const sciml_time t = s * dir;", "(void)t;"] + tr.lines
    body += [f"dy[{j}] = (sciml_real)dir * (sciml_real)({e});" for j, e in enumerate(out.ravel())]
    lines = ["SCIML_FN void sciml_f(const sciml_time s, const sciml_real* SCIML_RESTRICT y, "
             "const sciml_args* SCIML_RESTRICT p, const sciml_time dir, sciml_real* SCIML_RESTRICT dy) {"]
    lines += ["    " + line for line in body] + ["}"]
    return "\n".join(lines) + "\n"


def _error_norm(ctx: Ctx) -> str:
    """Hairer's mixed RMS norm, as `sciml.solvers._control.error_norm` (non-finite -> inf)."""
    R, n = ctx.R, ctx.n
    return f"""SCIML_FN sciml_real sciml_error_norm(const sciml_real* e, const sciml_real* y0, const sciml_real* y1,
                                     const sciml_real* rtol, const sciml_real* atol) {{
    sciml_real sum = {R(0)};
    for (int j = 0; j < {n}; ++j) {{
        const sciml_real ay1 = {ctx.rf('fabs')}(y1[j]);
        const sciml_real scale = atol[j] + rtol[j] * SCIML_MAX({ctx.rf('fabs')}(y0[j]), ay1);
        const sciml_real ae = {ctx.rf('fabs')}(e[j]);
        const sciml_real ratio = scale > {R(0)} ? ae / scale : (ae == {R(0)} ? {R(0)} : (sciml_real)SCIML_INF);
        sum = sum + (ratio * ratio + {R(0)} * ay1);
    }}
    const sciml_real norm = {ctx.rf('sqrt')}(sum / {R(n)});
    return isfinite(norm) ? norm : (sciml_real)SCIML_INF;
}}
"""


def _initial_step(ctx: Ctx, error_order: int) -> str:
    """Hairer's initial step, as `sciml.solvers._control.initial_step` (one evaluation of f)."""
    R, n, rf = ctx.R, ctx.n, ctx.rf
    return f"""SCIML_FN sciml_real sciml_rms(const sciml_real* v, const sciml_real* scale) {{
    sciml_real sum = {R(0)};
    for (int j = 0; j < {n}; ++j) {{ const sciml_real r = {rf('fabs')}(v[j]) / scale[j]; sum = sum + r * r; }}
    return {rf('sqrt')}(sum / {R(n)});
}}
SCIML_FN sciml_time sciml_initial_step(const sciml_time t0, const sciml_real* y0, const sciml_real* f0,
                                       const sciml_args* p, const sciml_time dir,
                                       const sciml_real* rtol, const sciml_real* atol) {{
    sciml_real scale[{n}], y1[{n}], f1[{n}], df[{n}];
    for (int j = 0; j < {n}; ++j) scale[j] = atol[j] + rtol[j] * {rf('fabs')}(y0[j]);
    const sciml_real d0 = sciml_rms(y0, scale), d1 = sciml_rms(f0, scale);
    const int tiny = (d0 < {R(1e-5)}) | (d1 < {R(1e-5)});
    const sciml_real h0 = tiny ? {R(1e-6)} : {R(0.01)} * d0 / d1;
    for (int j = 0; j < {n}; ++j) y1[j] = y0[j] + h0 * f0[j];
    sciml_f(t0 + (sciml_time)h0, y1, p, dir, f1);
    for (int j = 0; j < {n}; ++j) df[j] = f1[j] - f0[j];
    const sciml_real d2 = sciml_rms(df, scale) / h0;
    const sciml_real max_d = SCIML_MAX(d1, d2);
    const sciml_real h1 = max_d <= {R(1e-15)} ? SCIML_MAX({R(1e-6)}, h0 * {R(1e-3)})
                                           : {rf('pow')}({R(0.01)} / max_d, {R(1.0 / error_order)});
    return (sciml_time)SCIML_MIN({R(100)} * h0, h1);
}}
"""


def _load_args(spec: KernelSpec) -> list[str]:
    lines = ["sciml_args P;"]
    for k, a in enumerate(spec.args):
        offset = f"i * {a.size}" if a.batched else "0"
        if a.batched and a.size <= _LOCAL_ARG_SIZE:
            lines += [f"P.a{k}[{j}] = arg{k}[{offset} + {j}];" for j in range(a.size)]
        else:
            lines.append(f"P.a{k} = arg{k} + {offset};")
    return lines


def _trajectory(spec: KernelSpec, method: KernelMethod, ctx: Ctx) -> str:
    """``sciml_trajectory(i, ...)``: the integration loop of `sciml.solvers._loop.integrate`."""
    n, R, T = spec.n, ctx.R, ctx.T
    eps = float(np.finfo(spec.time_dtype).eps)
    params = ", ".join(f"{t} SCIML_RESTRICT {name}" if t.endswith("*") else f"const {t} {name}"
                       for t, name in entry_parameters(spec)[1:])
    f1 = method.f1_array or "f1"
    b = []  # body lines
    b += _load_args(spec)
    b += ["const sciml_time s0 = tp[0], s1 = tp[1], dir = tp[2], dtmax = tp[4];",
          f"const sciml_real* rtol = tol; const sciml_real* atol = tol + {n};",
          f"sciml_real y[{n}], f0[{n}], y1[{n}];"]
    if method.f1_array is None:
        b.append(f"sciml_real f1[{n}];")
    b += method.declarations(ctx)
    b += [f"for (int j = 0; j < {n}; ++j) y[j] = y0s[i * {n} + j];",
          "sciml_time t = s0;",
          "sciml_f(t, y, &P, dir, f0);"]
    b.append("sciml_time dt = sciml_initial_step(t, y, f0, &P, dir, rtol, atol);" if spec.auto_dt0
             else "sciml_time dt = tp[3];")
    b += ["dt = SCIML_MIN(dt, s1 - s0);",
          "dt = SCIML_MIN(dt, dtmax);",
          "int status = 0;",
          f"for (int j = 0; j < {n}; ++j) if (!(isfinite(y[j]) && isfinite(f0[j]))) status = {int(Status.NONFINITE)};",
          f"const sciml_time snap = {T(64 * eps)} * SCIML_MAX({ctx.tf('fabs')}(s0), {ctx.tf('fabs')}(s1));",
          "long long n_attempt = 0, n_accept = 0, n_dense = 0;"]
    if spec.adaptive:
        b += [f"sciml_real err_prev = {R(1e-4)};", "int rejected = 0;"]
    if spec.save:
        b += [f"sciml_real* SCIML_RESTRICT out = ys + i * m * {n};",
              "long long save = 0;",
              "for (long long q = 0; q < m; ++q) {",
              f"    const int at_start = ts[q] <= s0;",
              f"    for (int j = 0; j < {n}; ++j) out[q * {n} + j] = at_start ? y[j] : (sciml_real)SCIML_NAN;",
              "    save += at_start;",
              "}"]
        if method.dense_degree:
            b.append(f"sciml_real dc[{method.dense_degree + 1}][{n}];")
    loop = ["const int last = dt >= s1 - t - snap;",
            "const sciml_time hs = last ? s1 - t : dt;",
            "const sciml_real h = (sciml_real)hs;"]
    loop += method.step(ctx)
    loop.append("const sciml_time t_new = last ? s1 : t + hs;")
    if spec.adaptive:
        eo, pi = method.error_order, PIController()  # the controller `sciml.solve` uses
        loop += [
            "const int accept = err <= " + R(1) + ";",
            f"const sciml_real safe_err = err > {R(0)} ? err : {R(1)};",
            "sciml_real factor;",
            "if (accept) {  /* only the factor that is used is computed: pow is the costliest call here */",
            f"    factor = err > {R(0)} ? {R(pi.safety)} * {ctx.rf('pow')}(safe_err, {R(-(1.0 / eo - 0.75 * pi.beta))})"
            f" * {ctx.rf('pow')}(err_prev, {R(pi.beta)}) : {R(pi.factormax)};",
            f"    factor = SCIML_MIN(SCIML_MAX(factor, {R(pi.factormin)}), rejected ? {R(1)} : {R(pi.factormax)});",
            "} else {",
            f"    factor = isfinite(err) ? SCIML_MIN(SCIML_MAX({R(pi.safety)} * {ctx.rf('pow')}(safe_err, "
            f"{R(-1.0 / eo)}), {R(pi.factormin)}), {R(pi.safety)}) : {R(pi.factormin)};",
            "}",
            "sciml_time dt_next = hs * (sciml_time)factor;",
            "dt_next = SCIML_MIN(dt_next, dtmax);",
            f"if (accept) err_prev = SCIML_MAX(err, {R(1e-4)});",
            "rejected = !accept;",
            "if (accept && last) dt_next = SCIML_MAX(dt_next, dt);",
            "const int nonfinite = !isfinite(err);"]
    else:
        loop += ["int finite = ok;",
                 f"for (int j = 0; j < {n}; ++j) finite = finite && isfinite(y1[j]);",
                 "const int nonfinite = !finite, accept = finite;",
                 "const sciml_time dt_next = dt;"]
    if method.f1_array is None:
        loop += ["if (accept) sciml_f(t_new, y1, &P, dir, f1);",
                 "else for (int j = 0; j < " + str(n) + "; ++j) f1[j] = f0[j];"]
    if spec.save:
        loop += ["if (accept && save < m && ts[save] <= t_new) {", "    ++n_dense;"]
        loop += ["    " + line for line in method.dense(ctx)]
        loop += ["    while (save < m && ts[save] <= t_new) {",
                 "        const sciml_time tw = ts[save];",
                 "        const sciml_real theta = (sciml_real)((tw - t) / hs);",
                 f"        for (int j = 0; j < {n}; ++j) {{"]
        deg = method.dense_degree
        horner = f"dc[{deg}][j]"
        for p in range(deg - 1, -1, -1):
            horner = f"({horner}) * theta + dc[{p}][j]"
        loop += [f"            out[save * {n} + j] = tw == t_new ? y1[j] : {horner};",
                 "        }", "        ++save;", "    }", "}"]
    loop += ["if (accept) {",
             f"    for (int j = 0; j < {n}; ++j) if (!isfinite({f1}[j])) status = {int(Status.NONFINITE)};",
             "}"]
    if spec.adaptive:
        loop.append(f"if (!accept && t + dt_next <= t) status = nonfinite ? {int(Status.NONFINITE)} : "
                    f"{int(Status.DT_UNDERFLOW)};")
    else:
        loop.append(f"if (nonfinite) status = {int(Status.NONFINITE)};")
    loop += ["++n_attempt;",
             "if (accept) {",
             "    t = t_new;",
             f"    for (int j = 0; j < {n}; ++j) {{ y[j] = y1[j]; f0[j] = {f1}[j]; }}",
             "    ++n_accept;",
             "}",
             "dt = dt_next;",
             f"if (n_attempt >= max_steps && t < s1 && status == 0) status = {int(Status.MAX_STEPS)};"]
    b += ["while (t < s1 && status == 0) {"] + ["    " + line for line in loop] + ["}"]
    nfev = (f"1 + {int(spec.auto_dt0)} + {method.fevals_per_step} * n_attempt + {int(not method.fsal)} * n_accept"
            f" + {method.fevals_dense} * n_dense")
    stats = ["status", nfev, "n_accept", "n_attempt - n_accept"] + method.counters()
    width = len(stats)
    b += [f"for (int j = 0; j < {n}; ++j) yf[i * {n} + j] = y[j];",
          "tout[2 * i] = t;", "tout[2 * i + 1] = dt;"]
    b += [f"iout[{width} * i + {k}] = (int)({expr});" for k, expr in enumerate(stats)]
    lines = [f"SCIML_FN void sciml_trajectory(const long long i, {params}) {{"]
    lines += ["    " + line for line in b] + ["}"]
    return "\n".join(lines) + "\n"


def _entry(spec: KernelSpec, target: str) -> str:
    params = entry_parameters(spec)
    signature = ", ".join(f"{t} {name}" for t, name in params)
    call = ", ".join(name for _, name in params[1:])
    if target == "c":
        return (f"void sciml_ensemble({signature}) {{\n"
                f"    long long i;\n"
                f"    #pragma omp parallel for schedule(dynamic, 16)\n"
                f"    for (i = 0; i < n_traj; ++i) sciml_trajectory(i, {call});\n}}\n")
    return (f"extern \"C\" __global__ void sciml_ensemble({signature}) {{\n"
            f"    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;\n"
            f"    if (i < n_traj) sciml_trajectory(i, {call});\n}}\n")
