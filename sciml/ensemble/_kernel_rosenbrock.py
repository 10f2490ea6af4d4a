"""The Rosenbrock step of the kernel loop (Rodas5P and any method in the same ``u`` form).

The C restates `sciml.solvers.rosenbrock.AbstractRosenbrock._stages`: one Jacobian ``J = df/dy`` and
``df/dt`` per step attempt, both translated from the jaxpr of ``jax.jacfwd``/``jax.jvp`` of ``f``;
``I - h gamma J`` factored once (LU, partial pivoting) in the thread's registers, then one solve per
stage (Hairer & Wanner, *Solving ODEs II*, eq. IV.7.25). The error estimate and dense output are the
tableau's linear combinations of the stage increments.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sciml.ensemble._codegen import Ctx, KernelMethod, combine
from sciml.ensemble._translate import Translator


def rosenbrock_kernel(solver) -> KernelMethod | None:
    """The kernel of a Rosenbrock ``solver`` in the generic ``u`` form, else None."""
    from sciml.solvers.rosenbrock import AbstractRosenbrock

    if isinstance(solver, AbstractRosenbrock) and solver.tableau.m_err is not None:
        return RosenbrockKernel(solver)
    return None


class RosenbrockKernel(KernelMethod):
    stat_names = ("njev", "nlu")
    fsal = False
    fevals_dense = 0
    f1_array = None

    def __init__(self, solver):
        self.tab = tab = solver.tableau
        self.order, self.error_order = solver.order, solver.error_order
        self.fevals_per_step = solver.fevals_per_step
        self.dense_degree = len(tab.dense) if tab.dense is not None else 3
        self.us = [f"u{i}" for i in range(tab.stages)]

    def jacobian_jaxpr(self, rhs, t_struct, y_flat, dynamic):
        """The closed jaxpr of ``(t, y, *args) -> (df/dy, df/dt)``, as `sciml.solvers._linsolve` forms them."""
        def jac(t, y, *args):
            J = jax.jacfwd(lambda v: rhs(t, v, *args))(y)
            dfdt = jax.jvp(lambda s: rhs(s, y, *args), (t,), (jnp.ones_like(t),))[1].astype(y.dtype)
            return J, dfdt

        return jax.make_jaxpr(jac)(t_struct, jax.ShapeDtypeStruct(y_flat.shape, y_flat.dtype), *dynamic)

    def helpers(self, ctx: Ctx) -> list[str]:
        return [_jacobian_function(ctx), _lu_functions(ctx)]

    def declarations(self, ctx: Ctx) -> list[str]:
        n = ctx.n
        arrays = self.us + ["ytmp", "fi", "acc", "rhs", "dfdt", "yerr"]
        return ([f"sciml_real {name}[{n}];" for name in arrays]
                + [f"sciml_real W[{n}][{n}];", f"int piv[{n}];"])

    def step(self, ctx: Ctx) -> list[str]:
        tab, us, n, R = self.tab, self.us, ctx.n, ctx.R
        lines = ["sciml_jac(t, y, &P, dir, W, dfdt);",
                 f"const sciml_real hg = h * {R(tab.gamma)};",
                 f"for (int j = 0; j < {n}; ++j) for (int k = 0; k < {n}; ++k)",
                 f"    W[j][k] = (j == k ? {R(1)} : {R(0)}) - hg * W[j][k];",
                 "sciml_lu_factor(W, piv);"]
        for i in range(tab.stages):
            if i == 0:
                lines.append(f"for (int j = 0; j < {n}; ++j) rhs[j] = f0[j];")
            else:
                lines += combine(ctx, "ytmp", "y", tab.a[i], us[:i], scale=R(1))
                lines.append(f"sciml_f(t + {ctx.T(tab.c[i])} * hs, ytmp, &P, dir, fi);")
                lines += combine(ctx, "acc", None, tab.C[i], us[:i], scale=f"({R(1)} / h)")
                lines.append(f"for (int j = 0; j < {n}; ++j) rhs[j] = fi[j] + acc[j];")
            if tab.d[i] != 0.0:
                lines.append(f"for (int j = 0; j < {n}; ++j) rhs[j] = rhs[j] + ({R(tab.d[i])} * h) * dfdt[j];")
            lines += ["sciml_lu_solve(W, piv, rhs);",
                      f"for (int j = 0; j < {n}; ++j) {us[i]}[j] = hg * rhs[j];"]
        lines += combine(ctx, "y1", "y", tab.m, us, scale=R(1))
        if ctx.spec.adaptive:
            lines += combine(ctx, "yerr", None, tab.m_err, us, scale=R(1))
            lines.append("const sciml_real err = sciml_error_norm(yerr, y, y1, rtol, atol);")
        else:
            lines.append("const int ok = 1;")
        return lines

    def dense(self, ctx: Ctx) -> list[str]:
        if self.tab.dense is None:
            raise ValueError(f"the kernel backends need the dense output of {self.tab.name!r} for `saveat`.")
        lines = [f"for (int j = 0; j < {ctx.n}; ++j) dc[0][j] = y[j];"]
        for p, row in enumerate(self.tab.dense):
            lines += combine(ctx, f"dc[{p + 1}]", None, row, self.us, scale=ctx.R(1))
        return lines

    def counters(self) -> list[str]:
        return ["n_attempt", "n_attempt"]   # one Jacobian and one factorisation per step attempt


def _jacobian_function(ctx: Ctx) -> str:
    """``sciml_jac(s, y, p, dir, J, dfdt)``: df/dy and df/dt of the forward-time field ``dir f(dir s, y)``."""
    spec, n = ctx.spec, ctx.n
    tr = Translator("w")
    inputs = [np.array(["t"], dtype=object), np.array([f"y[{j}]" for j in range(n)], dtype=object)]
    inputs += [np.array([f"p->a{k}[{j}]" for j in range(a.size)], dtype=object) for k, a in enumerate(spec.args)]
    jac, dfdt = tr.translate(spec.jac, inputs)
    body = ["const sciml_time t = s * dir;", "(void)t;"] + tr.lines
    body += [f"J[{j}][{k}] = (sciml_real)dir * (sciml_real)({jac[j, k]});" for j in range(n) for k in range(n)]
    # d/ds [dir f(dir s, y)] = dir * dir * df/dt
    body += [f"dfdt[{j}] = (sciml_real)dir * ((sciml_real)dir * (sciml_real)({dfdt[j]}));" for j in range(n)]
    lines = [f"SCIML_FN void sciml_jac(const sciml_time s, const sciml_real* SCIML_RESTRICT y, "
             f"const sciml_args* SCIML_RESTRICT p, const sciml_time dir, sciml_real J[{n}][{n}], "
             f"sciml_real* SCIML_RESTRICT dfdt) {{"]
    return "\n".join(lines + ["    " + line for line in body] + ["}"]) + "\n"


def _lu_functions(ctx: Ctx) -> str:
    """In-place LU with partial pivoting (LAPACK getrf's choice of pivot) and the matching solve."""
    n, rf = ctx.n, ctx.rf
    return f"""SCIML_FN void sciml_lu_factor(sciml_real A[{n}][{n}], int piv[{n}]) {{
    for (int k = 0; k < {n}; ++k) {{
        int p = k;
        for (int r = k + 1; r < {n}; ++r) if ({rf('fabs')}(A[r][k]) > {rf('fabs')}(A[p][k])) p = r;
        piv[k] = p;
        if (p != k) for (int c = 0; c < {n}; ++c) {{ const sciml_real x = A[k][c]; A[k][c] = A[p][c]; A[p][c] = x; }}
        for (int r = k + 1; r < {n}; ++r) {{
            const sciml_real l = A[r][k] / A[k][k];
            A[r][k] = l;
            for (int c = k + 1; c < {n}; ++c) A[r][c] = A[r][c] - l * A[k][c];
        }}
    }}
}}
SCIML_FN void sciml_lu_solve(sciml_real A[{n}][{n}], const int piv[{n}], sciml_real* b) {{
    for (int k = 0; k < {n}; ++k) {{ const sciml_real x = b[k]; b[k] = b[piv[k]]; b[piv[k]] = x; }}
    for (int r = 1; r < {n}; ++r) for (int c = 0; c < r; ++c) b[r] = b[r] - A[r][c] * b[c];
    for (int r = {n} - 1; r >= 0; --r) {{
        for (int c = r + 1; c < {n}; ++c) b[r] = b[r] - A[r][c] * b[c];
        b[r] = b[r] / A[r][r];
    }}
}}
"""
