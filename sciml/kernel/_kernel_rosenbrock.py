"""The Rosenbrock step of the kernel loop (Rodas5P and any method in the same ``u`` form).

The C restates `sciml.solvers.rosenbrock.AbstractRosenbrock._stages`: one Jacobian ``J = df/dy`` and
``df/dt`` per step attempt, both translated from the jaxpr of ``jax.jacfwd``/``jax.jvp`` of ``f``;
``I - h gamma J`` factored once (LU, partial pivoting) in the thread's registers, then one solve per
stage (Hairer & Wanner, *Solving ODEs II*, eq. IV.7.25). The error estimate and dense output are the
tableau's linear combinations of the stage increments.

With a constant mass matrix ``M`` (``M y' = f``, a DAE when ``M`` is singular; the solver carries it,
see `sciml.solvers._mass.MassMatrix`) the matrix is ``M - h gamma J`` and a stage's right-hand side
``f_i + M (1/h sum_j C_ij u_j) + d_i h df/dt`` (Hairer & Wanner IV.7, eq. 7.4'). ``M`` is part of
the source: its nonzero entries are written as literals, so kernels of different ``M`` differ in their
source and hence in their cache key (`_build.library_key`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sciml.kernel import _kernel_jacobian_reuse as jacobian_reuse
from sciml.kernel._kernel_callback import host_jacobian_source
from sciml.kernel._kernel_spec import (Ctx, KernelMethod, arg_inputs, combine, hermite, is_host, lane_function,
                                      matrices, state)
from sciml.kernel._translate import Translator


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
        self.name = type(solver).__name__
        self.order, self.error_order = solver.order, solver.error_order
        self.fevals_per_step = solver.fevals_per_step
        self.dense_degree = len(tab.dense) if tab.dense is not None else 3
        self.us = [f"u{i}" for i in range(tab.stages)]
        mass = getattr(solver, "mass_matrix", None)
        self.mass = None if mass is None else np.asarray(mass.value)   # (n, n), exact in the state dtype

    def jacobian_jaxpr(self, rhs, t_struct, y_flat, dynamic):
        """The closed jaxpr of ``(t, y, *args) -> (df/dy, df/dt)``, as `sciml.solvers._linsolve` forms them."""
        def jac(t, y, *args):
            J = jax.jacfwd(lambda v: rhs(t, v, *args))(y)
            dfdt = jax.jvp(lambda s: rhs(s, y, *args), (t,), (jnp.ones_like(t),))[1].astype(y.dtype)
            return J, dfdt

        return jax.make_jaxpr(jac)(t_struct, jax.ShapeDtypeStruct(y_flat.shape, y_flat.dtype), *dynamic)

    def helpers(self, ctx: Ctx) -> list[str]:
        jacobian = host_jacobian_source(ctx) if is_host(ctx.spec) else _jacobian_function(ctx)
        return [jacobian, _lu_functions(ctx)]

    def declarations(self, ctx: Ctx) -> list[str]:
        n = ctx.n
        arrays = self.us + ["ytmp", "fi", "acc", "rhs", "dfdt"] + (["yerr"] if ctx.spec.adaptive else [])
        return ([state(name, ctx) for name in arrays]
                + [matrices(ctx, ["W"], self.name), "sciml_real hg[SCIML_LANES];", f"int piv[{n}][SCIML_LANES];"]
                + (jacobian_reuse.declarations(ctx) if jacobian_reuse.reuses_jacobian(self.tab, ctx) else []))

    def step(self, ctx: Ctx, with_jacobian: list[str] = ()) -> list[str]:
        """The step's lines; ``with_jacobian``: lines run while ``W`` holds ``J = df/dy`` of the step,
        before it becomes the iteration matrix (AutoSwitch's power iteration; not for a W-method)."""
        tab, us, n, R = self.tab, self.us, ctx.n, ctx.R
        factor = _iteration_matrix(ctx, tab.gamma, self.mass) + ["sciml_lu_factor(W, piv);"]
        if jacobian_reuse.reuses_jacobian(tab, ctx):   # a W-method keeps J (in Jk, dk) and its factors
            if with_jacobian:
                raise ValueError(f"{self.name} reuses its Jacobian across steps: no step holds a fresh one")
            lines = jacobian_reuse.step_head(ctx, tab.gamma, _jacobian_call(ctx, "Jk", "dk"), factor)
        else:
            lines = [_jacobian_call(ctx, "W", "dfdt")] + list(with_jacobian) + factor
        for i in range(tab.stages):
            if i == 0:
                lines += combine(ctx, "rhs", "f0", [], [])
            else:
                lines += combine(ctx, "ytmp", "y", tab.a[i], us[:i], scale=R(1))
                lines += ctx.lanes(f"tn[l] = t[l] + {ctx.T(tab.c[i])} * hs[l];")
                lines.append("sciml_f(tn, ytmp, &P, dir, fi);")
                lines += combine(ctx, "acc", None, tab.C[i], us[:i], scale=f"({R(1)} / h[l])")
                lines += (combine(ctx, "rhs", "fi", [1.0], ["acc"], scale=R(1)) if self.mass is None
                          else _plus_mass_times(ctx, self.mass, "rhs", "fi", "acc"))
            if tab.d[i] != 0.0:
                lines += combine(ctx, "rhs", "rhs", [1.0], ["dfdt"], scale=f"({R(tab.d[i])} * h[l])")
            lines += ["sciml_lu_solve(W, piv, rhs);"]
            lines += combine(ctx, us[i], None, [1.0], ["rhs"], scale="hg[l]")
        lines += combine(ctx, "y1", "y", tab.m, us, scale=R(1))
        if ctx.spec.adaptive:
            lines += combine(ctx, "yerr", None, tab.m_err, us, scale=R(1))
            lines.append("sciml_error_norm(yerr, y, y1, rtol, atol, err);")
        return lines

    def dense(self, ctx: Ctx) -> list[str]:
        if self.tab.dense is None:
            return hermite(ctx)
        lines = combine(ctx, "dc[0]", "y", [], [])
        for p, row in enumerate(self.tab.dense):
            lines += combine(ctx, f"dc[{p + 1}]", None, row, self.us, scale=ctx.R(1))
        return lines

    def counters(self, ctx: Ctx) -> list[str]:
        if jacobian_reuse.reuses_jacobian(self.tab, ctx):   # njev: the host path reports the field's count
            return ["n_attempt[l]", "n_lu[l]"]
        return ["n_attempt[l]", "n_attempt[l]"]   # one Jacobian and one factorisation per step attempt


def _jacobian_call(ctx: Ctx, J: str, dfdt: str) -> str:
    """The C call that fills ``J`` with df/dy and ``dfdt`` with df/dt at ``(t, y)``."""
    if is_host(ctx.spec):
        return f"sciml_jac_host(t, y, f0, dir, {J}, {dfdt});"
    return f"sciml_jac(t, y, &P, dir, {J}, {dfdt});"


def _iteration_matrix(ctx: Ctx, gamma: float, mass) -> list[str]:
    """``hg = h gamma`` and ``W = I - hg J`` (``mass=None``) or ``M - hg J``, in place of ``J``, per lane.

    ``M - x`` is written ``M + (-x)`` (the same IEEE result) so that only ``M``'s nonzeros take a line."""
    n, R = ctx.n, ctx.R
    if mass is None:
        return ctx.lanes(f"hg[l] = h[l] * {R(gamma)};",
                         f"for (int j = 0; j < {n}; ++j) for (int k = 0; k < {n}; ++k)",
                         f"    W[j][k][l] = (j == k ? {R(1)} : {R(0)}) - hg[l] * W[j][k][l];")
    plus = [f"W[{j}][{k}][l] = {R(mass[j, k])} + W[{j}][{k}][l];" for j, k in zip(*np.nonzero(mass))]
    return ctx.lanes(f"hg[l] = h[l] * {R(gamma)};",
                     f"for (int j = 0; j < {n}; ++j) for (int k = 0; k < {n}; ++k) W[j][k][l] = -(hg[l] * W[j][k][l]);",
                     *plus)


def _plus_mass_times(ctx: Ctx, mass, dst: str, base: str, v: str) -> list[str]:
    """``dst = base + M v`` per lane, with ``M``'s nonzero entries as literals (a zero row adds nothing)."""
    body = []
    for j in range(ctx.n):
        terms = [f"{v}[{k}][l]" if mass[j, k] == 1 else f"{ctx.R(mass[j, k])} * {v}[{k}][l]"
                 for k in np.flatnonzero(mass[j])]
        body.append(f"{dst}[{j}][l] = {base}[{j}][l]" + (f" + ({' + '.join(terms)})" if terms else "") + ";")
    return ctx.lanes(*body)


def _jacobian_function(ctx: Ctx) -> str:
    """``sciml_jac(s, y, p, dir, J, dfdt)``: df/dy and df/dt of the forward-time field ``dir f(dir s, y)``."""
    spec, n = ctx.spec, ctx.n
    tr = Translator("w")
    inputs = [np.array(["t"], dtype=object), np.array([f"y[{j}][l]" for j in range(n)], dtype=object)]
    jac, dfdt = tr.translate(spec.jac, inputs + arg_inputs(spec))
    lines = tr.lines + [f"J[{j}][{k}][l] = (sciml_real)dir * (sciml_real)({jac[j, k]});"
                        for j in range(n) for k in range(n)]
    # d/ds [dir f(dir s, y)] = dir * dir * df/dt
    lines += [f"dfdt[{j}][l] = (sciml_real)dir * ((sciml_real)dir * (sciml_real)({dfdt[j]}));" for j in range(n)]
    params = (f"const sciml_time s[SCIML_LANES], const sciml_real y[{n}][SCIML_LANES], "
              f"const sciml_args* SCIML_RESTRICT p, const sciml_time dir, sciml_real J[{n}][{n}][SCIML_LANES], "
              f"sciml_real dfdt[{n}][SCIML_LANES]")
    return lane_function("sciml_jac", params, ["const sciml_time t = s[l] * dir;", "(void)t;"], lines)


def _lu_functions(ctx: Ctx) -> str:
    """In-place LU with partial pivoting (LAPACK getrf's choice of pivot) and the matching solve, per lane."""
    n, fabs = ctx.n, ctx.rf("fabs")
    factor = ctx.lanes(
        f"for (int k = 0; k < {n}; ++k) {{",
        "    int p = k;",
        f"    for (int r = k + 1; r < {n}; ++r) if ({fabs}(A[r][k][l]) > {fabs}(A[p][k][l])) p = r;",
        "    piv[k][l] = p;",
        f"    if (p != k) for (int c = 0; c < {n}; ++c) {{",
        "        const sciml_real x = A[k][c][l]; A[k][c][l] = A[p][c][l]; A[p][c][l] = x;",
        "    }",
        f"    for (int r = k + 1; r < {n}; ++r) {{",
        "        const sciml_real q = A[r][k][l] / A[k][k][l];",
        "        A[r][k][l] = q;",
        f"        for (int c = k + 1; c < {n}; ++c) A[r][c][l] = A[r][c][l] - q * A[k][c][l];",
        "    }",
        "}")
    solve = ctx.lanes(
        f"for (int k = 0; k < {n}; ++k) {{",
        "    const int p = piv[k][l];",
        "    const sciml_real x = b[k][l]; b[k][l] = b[p][l]; b[p][l] = x;",
        "}",
        f"for (int r = 1; r < {n}; ++r) for (int c = 0; c < r; ++c) b[r][l] = b[r][l] - A[r][c][l] * b[c][l];",
        f"for (int r = {n} - 1; r >= 0; --r) {{",
        f"    for (int c = r + 1; c < {n}; ++c) b[r][l] = b[r][l] - A[r][c][l] * b[c][l];",
        "    b[r][l] = b[r][l] / A[r][r][l];",
        "}")
    matrix = f"sciml_real A[{n}][{n}][SCIML_LANES]"
    return "\n".join(
        [f"SCIML_FN void sciml_lu_factor({matrix}, int piv[{n}][SCIML_LANES]) {{"] + ["    " + x for x in factor]
        + ["}", f"SCIML_FN void sciml_lu_solve({matrix}, int piv[{n}][SCIML_LANES], sciml_real b[{n}][SCIML_LANES]) {{"]
        + ["    " + x for x in solve] + ["}"]) + "\n"
