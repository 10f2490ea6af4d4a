"""What a generated kernel is made of, shared by the source generator (`_codegen.py`) and the methods
(`_kernel_rk.py`, `_kernel_rosenbrock.py`): the spec a kernel is built from, its entry point's
parameters, and the helpers that spell per-lane C (a block of ``SCIML_LANES`` trajectories, every value
an array over the lanes)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from sciml.kernel._ctypes import c_type, literal, math_fn

#: batched args up to this many elements are copied into the block's local arrays
LOCAL_ARG_SIZE = 64
#: a loop over the lanes of a block
LANES = "SCIML_SIMD for (int l = 0; l < SCIML_LANES; ++l)"


#: trajectories per block on the CPU, ``SCIML_LANES`` of the C target (a SIMD vector of float64 with AVX-512;
#: two with AVX2)
C_LANES = 8


class _Host:
    """The marker for ``KernelSpec.rhs``/``jac``: evaluated by a callback into Python
    (`sciml.kernel._kernel_callback`)."""

    def __repr__(self) -> str:
        return "HOST"


HOST = _Host()


def is_host(spec) -> bool:
    """Whether the kernel of ``spec`` calls its field back in Python."""
    return spec.rhs is HOST


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
    for methods that need a Jacobian. ``controller`` is the step-size controller (``dtmax=None``: the
    largest step is an input of the kernel, not part of its source).
    """

    rhs: object
    n: int
    state_dtype: np.dtype
    time_dtype: np.dtype
    args: tuple[ArgSpec, ...]
    save: bool            # write the state at the shared save times (else only the final state)
    adaptive: bool
    auto_dt0: bool
    controller: Any
    jac: object = None


class Ctx:
    """Spelling helpers for one spec: literals and math functions in the state (R) and time (T) types."""

    def __init__(self, spec: KernelSpec):
        self.spec, self.n = spec, spec.n
        self.real, self.time = c_type(spec.state_dtype), c_type(spec.time_dtype)

    def lanes(self, *body: str, simd: bool = True) -> list[str]:
        """``body`` (statements using ``[l]``) for every lane of the block; ``simd=False`` for a body
        that combines lanes (``any |= ...``), which a SIMD loop may not."""
        head = LANES if simd else LANES.replace("SCIML_SIMD ", "")
        return [head + " {"] + ["    " + line for line in body] + ["}"]

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

    Every per-trajectory value is an array over the lanes: a state is ``x[n][SCIML_LANES]``, a scalar
    ``x[SCIML_LANES]``. In scope of ``step``: ``y`` (state), ``f0`` (f at ``(t, y)``), ``t``, ``hs``
    (the step in the time type), ``h`` (the same in the state type) and ``tn`` (scratch times for stage
    evaluations). ``step`` must fill ``y1`` and, for adaptive solves, ``err`` (``inf`` when not
    finite); ``f1_array`` names the array holding ``f(t_new, y1)`` afterwards if the method computes
    it (FSAL), else None. ``dense`` fills ``dc[p][j][l]``, the polynomial in theta, given also ``f1``.
    """

    error_order: int | None
    order: int
    fsal: bool
    fevals_per_step: int
    fevals_dense: int
    dense_degree: int
    f1_array: str | None
    stat_names: tuple[str, ...] = ()
    #: for an implicit method: the C expression (of lane ``l``) that is true when the step's Newton
    #: iteration converged or became non-finite (`sciml.solvers._base.Step.ok`); a step size that
    #: underflows while Newton fails then ends as NEWTON_FAILED, as in the XLA loop
    newton_ok: str | None = None
    #: for a method written for one trajectory per block only (a C ``if`` on lane 0), why the ensembles'
    #: targets ("c": lanes in lockstep; "cuda") do not run it; empty when every target does
    single_trajectory: str = ""

    def helpers(self, ctx: Ctx) -> list[str]:
        return []

    def declarations(self, ctx: Ctx) -> list[str]:
        raise NotImplementedError

    def step(self, ctx: Ctx) -> list[str]:
        raise NotImplementedError

    def dense(self, ctx: Ctx) -> list[str]:
        raise NotImplementedError

    def counters(self, ctx: Ctx) -> list[str]:
        """C expressions (of lane ``l``) of the extra statistics named in ``stat_names``."""
        return []

    def after_step(self, ctx: Ctx) -> list[str]:
        """Loop lines after the controller's decision (adaptive solves): a method that chooses its own
        steps (BDF: step size and order from its differences) sets ``dt_next[l]`` here from ``accept[l]``
        and ``err[l]``, as its Python ``after_step`` does in the XLA loop, and updates its state."""
        return []

    def fevals_counted(self, ctx: Ctx) -> list[str]:
        """C expressions (of lane ``l``) of evaluations of ``f`` the method counts itself (a Newton
        iteration's vary), added to ``nfev``."""
        return []


#: the stack that the n x n matrices of a kernel on OpenMP's or XLA's threads may take (they get a few MiB)
STACK_BYTES = 4 * 2**20


def matrices(ctx: Ctx, names: list[str], method: str) -> str:
    """The declaration of ``method``'s per-lane ``n x n`` matrices ``names``.

    A host kernel (a NumPy field's: one solve at a time per library, `_kernel_callback`) keeps them off
    the stack (``static``), where ``n`` in the hundreds would overflow it and crash the process; any other
    kernel (blocks of ``SCIML_LANES`` on OpenMP's threads, or one trajectory on XLA's) keeps them on the
    stack and is refused above `STACK_BYTES` with the size and the fix (``backend="auto"`` then runs the
    XLA loop). Raises ValueError there."""
    n = ctx.n
    declared = ", ".join(f"{name}[{n}][{n}][SCIML_LANES]" for name in names)
    if is_host(ctx.spec):
        return f"static sciml_real {declared};"
    size = len(names) * n * n * C_LANES * np.dtype(ctx.spec.state_dtype).itemsize
    if size > STACK_BYTES:
        raise ValueError(f"the kernel's `{method}` keeps {len(names)} n x n matrices per lane on the stack: n = {n} "
                         f"needs {size / 2**20:.0f} MiB (at most {STACK_BYTES // 2**20} MiB). Use `backend=\"jax\"` "
                         f"for it.")
    return f"sciml_real {declared};"


def state(name: str, ctx: Ctx) -> str:
    """The declaration of a state-sized array over the lanes."""
    return f"sciml_real {name}[{ctx.n}][SCIML_LANES];"


def combine(ctx: Ctx, dst: str, base: str | None, weights, ks, scale: str = "h[l]") -> list[str]:
    """``dst = base + scale * sum_i w_i ks_i`` elementwise, zero weights skipped, summed in the order of
    `sciml.solvers._explicit_rk._combine` (``base=None``: no base; ``scale`` may use the lane ``l``)."""
    terms = [(float(w), k) for w, k in zip(weights, ks) if float(w) != 0.0]
    if not terms:
        value = f"{base}[j][l]" if base is not None else ctx.R(0)
    else:
        acc = f"{ctx.R(terms[0][0])} * {terms[0][1]}[j][l]"
        for w, k in terms[1:]:  # left to right, parenthesised to pin the order
            acc = f"({acc}) + {ctx.R(w)} * {k}[j][l]"
        value = f"{scale} * ({acc})"
        value = f"{base}[j][l] + {value}" if base is not None else value
    return [f"for (int j = 0; j < {ctx.n}; ++j) {LANES} {dst}[j][l] = {value};"]


def hermite(ctx: Ctx, f1: str = "f1") -> list[str]:
    """``dc``, the cubic Hermite polynomial of the step from ``y``, ``y1``, ``f0`` and ``f1`` (the dense
    output of a method without its own), as `sciml.solvers._base.hermite`."""
    R = ctx.R
    return [f"for (int j = 0; j < {ctx.n}; ++j)"] + ["    " + x for x in ctx.lanes(
        "const sciml_real dy = y1[j][l] - y[j][l];",
        "dc[0][j][l] = y[j][l];",
        "dc[1][j][l] = h[l] * f0[j][l];",
        f"dc[2][j][l] = {R(3)} * dy - h[l] * ({R(2)} * f0[j][l] + {f1}[j][l]);",
        f"dc[3][j][l] = {R(-2)} * dy + h[l] * (f0[j][l] + {f1}[j][l]);")]


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


def local_arg(a: ArgSpec) -> bool:
    return a.batched and a.size <= LOCAL_ARG_SIZE


def arg_inputs(spec: KernelSpec) -> list[np.ndarray]:
    """The C expressions of every element of every args leaf, for lane ``l``, as the translator takes them."""
    out = []
    for k, a in enumerate(spec.args):
        form = "p->a{k}[{j}][l]" if local_arg(a) else ("p->a{k}[l][{j}]" if a.batched else "p->a{k}[{j}]")
        out.append(np.array([form.format(k=k, j=j) for j in range(a.size)], dtype=object))
    return out


def lane_function(name: str, params: str, prologue: list[str], lines: list[str]) -> str:
    """``SCIML_FN void name(params)`` running ``prologue`` + ``lines`` for every lane."""
    body = [LANES + " {"] + ["    " + x for x in prologue + lines] + ["}"]
    return "\n".join([f"SCIML_FN void {name}({params}) {{"] + ["    " + x for x in body] + ["}"]) + "\n"


