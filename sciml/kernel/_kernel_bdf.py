"""The BDF (NDF) method of the kernel loop: `sciml.solvers.bdf.BDF` (``linear_solver="lu"``, no mass
matrix) restated in C, so that a NumPy field runs its whole solve in compiled code with only the field
called back into Python.

The XLA loop pays a few dozen small XLA operations per step, several times the cost of a NumPy field
call of moderate size; here a step costs the field calls and the arithmetic. The C takes the steps of
the XLA loop: the same backward differences ``D`` rescaled by ``(R U)^T`` for a new step, the same
simplified Newton iteration (`sciml.solvers._newton`: its convergence test, ``eta`` carried over
between solves, ``MAX_ITER``), the Jacobian kept until Newton fails with an old one and the factors
of ``I - c J`` until ``c`` changes, the error estimate ``error_const[q] d`` held to ``local_tolerance``
times the tolerances, and `BDF.after_step`'s choice of step size and order (which replaces the
controller's step; the controller still decides acceptance, as in `sciml.solvers._loop`). Dense output
is the method's interpolating polynomial (degree ``q``, rows above ``q`` zero).

Counters: ``nfev`` as the XLA loop counts it (the first evaluation, the initial-step guess and every
Newton iteration); ``njev`` the Jacobians formed, ``nlu`` the factorisations. Forming a Jacobian
evaluates ``f`` at the predicted state first; the first Newton iteration of that attempt evaluates
``f`` at the same point and uses that value (no second call).

Lanes: every value is an array over the lanes of a block, the Newton iteration runs at most ``MAX_ITER``
rounds over all lanes with a per-lane done mask, and the Jacobian and the factorisation run for all
lanes when any lane needs them (a lane whose ``J`` and ``c`` did not change gets back the factors it
had, bit for bit). References: Shampine & Reichelt, "The MATLAB ODE suite" (1997); scipy's
``scipy/integrate/_ivp/bdf.py``.
"""

from __future__ import annotations

import numpy as np

from sciml.kernel._kernel_callback import host_jacobian_source
from sciml.kernel._kernel_rosenbrock import RosenbrockKernel, _jacobian_function, _lu_functions
from sciml.kernel._kernel_spec import Ctx, KernelMethod, is_host, matrices, state
from sciml.solvers import _newton
from sciml.solvers.bdf import _BASIS, _U, ALPHA, BDF, ERROR_CONST, GAMMA, MAX_FACTOR, MAX_ORDER, MIN_FACTOR, ROWS

MAX_ITER = _newton.MAX_ITER


def bdf_kernel(solver) -> KernelMethod | None:
    """The kernel of ``solver`` if it is a `BDF`, else None; a ValueError naming the option for a
    `BDF` the kernel does not run (a mass matrix, ``linear_solver="gmres"``)."""
    if not isinstance(solver, BDF):
        return None
    if solver.mass_matrix is not None:
        raise ValueError("the kernel's `BDF` has no mass matrix (DAE) support; `Rodas5P` takes one in the kernel")
    if solver.linear_solver != "lu":
        raise ValueError(f"the kernel's `BDF` factors `I - c J` densely (`linear_solver=\"lu\"`), not "
                         f"`linear_solver={solver.linear_solver!r}`")
    return BDFKernel(solver)


def _table(ctx: Ctx, name: str, values) -> str:
    """A local constant array of literals in the state's type."""
    values = np.asarray(values, np.float64)
    if values.ndim == 1:
        body = ", ".join(ctx.R(v) for v in values)
    else:
        body = ", ".join("{" + ", ".join(ctx.R(v) for v in row) + "}" for row in values)
    dims = "".join(f"[{d}]" for d in values.shape)
    return f"const sciml_real {name}{dims} = {{{body}}};"


class BDFKernel(KernelMethod):
    stat_names = ("njev", "nlu")
    fsal = True                 # f(t1, y1) is the derivative of the step polynomial
    fevals_per_step = 0         # Newton's evaluations vary: counted in bdf_nfev
    fevals_dense = 0
    dense_degree = MAX_ORDER
    f1_array = "bdf_f1"
    newton_ok = "(bdf_conv[l] || bdf_bad[l])"
    #: the jacobian of a translated field: as the Rosenbrock kernel forms it (df/dt unused here)
    jacobian_jaxpr = RosenbrockKernel.jacobian_jaxpr

    def __init__(self, solver: BDF):
        self.order, self.error_order = solver.order, solver.error_order
        self.local_tolerance = float(solver.local_tolerance)

    def helpers(self, ctx: Ctx) -> list[str]:
        jacobian = host_jacobian_source(ctx) if is_host(ctx.spec) else _jacobian_function(ctx)
        return [jacobian, _lu_functions(ctx)]

    def declarations(self, ctx: Ctx) -> list[str]:
        if not ctx.spec.adaptive:
            raise ValueError("the kernel's `BDF` chooses its own steps: it needs an adaptive solve")
        n, R, rf = ctx.n, ctx.R, ctx.rf
        lt, eps = R(self.local_tolerance), float(np.finfo(ctx.spec.state_dtype).eps)
        vectors = ["bdf_ypred", "bdf_psi", "bdf_scale", "bdf_x", "bdf_r", "bdf_fv", "bdf_fpred", "bdf_yt", "bdf_f1",
                   "bdf_yerr", "bdf_e", "dfdt"]
        return [
            f"sciml_real bdf_D[{ROWS}][{n}][SCIML_LANES], bdf_Dw[{ROWS}][{n}][SCIML_LANES], "
            f"bdf_co[{MAX_ORDER + 1}][{n}][SCIML_LANES];",
            matrices(ctx, ["bdf_J", "bdf_W"], "BDF"),
            f"int bdf_piv[{n}][SCIML_LANES];",
            *[state(v, ctx) for v in vectors],
            "sciml_real bdf_c[SCIML_LANES], bdf_lu_c[SCIML_LANES], bdf_eta[SCIML_LANES], bdf_norm_old[SCIML_LANES], "
            "bdf_eta_it[SCIML_LANES], bdf_nm[3][SCIML_LANES];",
            "sciml_time bdf_h[SCIML_LANES];",
            "int bdf_started[SCIML_LANES] = {0}, bdf_q[SCIML_LANES], bdf_n_equal[SCIML_LANES], "
            "bdf_need_jac[SCIML_LANES], bdf_jac_current[SCIML_LANES], bdf_newton_ok[SCIML_LANES], "
            "bdf_n_iter[SCIML_LANES], bdf_same[SCIML_LANES], bdf_refactor[SCIML_LANES], bdf_done[SCIML_LANES], "
            "bdf_conv[SCIML_LANES], bdf_bad[SCIML_LANES], bdf_choose[SCIML_LANES];",
            "long long bdf_nfev[SCIML_LANES] = {0}, bdf_njev[SCIML_LANES] = {0}, bdf_nlu[SCIML_LANES] = {0};",
            # BDF.bind_tolerances: every internal norm works at the local tolerances
            f"sciml_real bdf_rtol[{n}], bdf_atol[{n}];",
            f"for (int j = 0; j < {n}; ++j) {{ bdf_rtol[j] = rtol[j] * {lt}; bdf_atol[j] = atol[j] * {lt}; }}",
            "sciml_real bdf_rmin = bdf_rtol[0];",
            f"for (int j = 1; j < {n}; ++j) bdf_rmin = SCIML_MIN(bdf_rmin, bdf_rtol[j]);",
            # _newton.tolerance: max(10 eps / rtol, min(0.03, sqrt(rtol)))
            f"const sciml_real bdf_tol = SCIML_MAX({R(10 * eps)} / bdf_rmin, SCIML_MIN({R(0.03)}, "
            f"{rf('sqrt')}(bdf_rmin)));"]

    def step(self, ctx: Ctx) -> list[str]:
        n, R, rf = ctx.n, ctx.R, ctx.rf
        eps = R(float(np.finfo(ctx.spec.state_dtype).eps))
        k_max = MAX_ORDER + 1
        lines = [_table(ctx, "bdf_alpha", ALPHA), _table(ctx, "bdf_gamma", GAMMA), _table(ctx, "bdf_U", _U),
                 _table(ctx, "bdf_err_const", ERROR_CONST / self.local_tolerance)]
        # BDF.init on the first attempt (the loop's first step dt); a later restart cannot happen here
        # (the kernel adds no jumps to the state, so y is always D[0])
        lines += ctx.lanes(
            "if (!bdf_started[l]) {",
            f"    for (int j = 0; j < {n}; ++j) {{",
            f"        for (int r = 0; r < {ROWS}; ++r) bdf_D[r][j][l] = {R(0)};",
            "        bdf_D[0][j][l] = y[j][l]; bdf_D[1][j][l] = (sciml_real)dt[l] * f0[j][l];",
            "    }",
            "    bdf_h[l] = dt[l]; bdf_q[l] = 1; bdf_n_equal[l] = 0; bdf_need_jac[l] = 1; bdf_jac_current[l] = 0;",
            f"    bdf_newton_ok[l] = 1; bdf_n_iter[l] = 0; bdf_eta[l] = {R(1)}; bdf_lu_c[l] = {R(0)};",
            "    bdf_started[l] = 1;",
            "}",
            # _rescale: Dw = (R(factor) U)^T D on rows 0..q, the rest copied
            "const int q = bdf_q[l];",
            "const sciml_real factor = (sciml_real)(hs[l] / bdf_h[l]);",
            "bdf_same[l] = hs[l] == bdf_h[l];",
            f"sciml_real Rm[{k_max}][{k_max}], RU[{k_max}][{k_max}];",
            f"for (int c = 0; c < {k_max}; ++c) Rm[0][c] = {R(1)};",
            f"for (int r = 1; r < {k_max}; ++r) for (int c = 0; c < {k_max}; ++c)",
            f"    Rm[r][c] = c == 0 ? {R(0)} : Rm[r - 1][c] * (((sciml_real)(r - 1) - factor * (sciml_real)c) / (sciml_real)r);",
            f"for (int r = 0; r < {k_max}; ++r) for (int c = 0; c < {k_max}; ++c) {{",
            f"    sciml_real s = {R(0)};",
            "    if (r <= q && c <= q) for (int m = 0; m <= q; ++m) s = s + Rm[r][m] * bdf_U[m][c];",
            "    RU[r][c] = s;",
            "}",
            f"for (int j = 0; j < {n}; ++j) {{",
            f"    for (int i = 0; i < {ROWS}; ++i) {{",
            "        if (i > q) { bdf_Dw[i][j][l] = bdf_D[i][j][l]; continue; }",
            f"        sciml_real s = {R(0)};",
            "        for (int k = 0; k <= q; ++k) s = s + RU[k][i] * bdf_D[k][j][l];",
            "        bdf_Dw[i][j][l] = s;",
            "    }",
            # the prediction, psi, c and Newton's scale
            f"    sciml_real yp = {R(0)}, ps = {R(0)};",
            "    for (int i = 0; i <= q; ++i) { yp = yp + bdf_Dw[i][j][l]; ps = ps + bdf_gamma[i] * bdf_Dw[i][j][l]; }",
            "    bdf_ypred[j][l] = yp; bdf_psi[j][l] = ps / bdf_alpha[q];",
            f"    bdf_scale[j][l] = bdf_atol[j] + bdf_rtol[j] * {rf('fabs')}(yp);",
            f"    bdf_x[j][l] = {R(0)};",
            "}",
            "bdf_c[l] = h[l] / bdf_alpha[q];",
            "tn[l] = t[l] + hs[l];")
        # a Jacobian (into W as scratch) when a lane needs one; factors when a lane's J or c changed
        jac_call = ("sciml_jac_host(tn, bdf_ypred, bdf_fpred, dir, bdf_W, dfdt);" if is_host(ctx.spec)
                    else "sciml_jac(tn, bdf_ypred, &P, dir, bdf_W, dfdt);")
        lines += ["int bdf_jac_any = 0, bdf_lu_any = 0;"]
        lines += ctx.lanes("bdf_need_jac[l] = bdf_need_jac[l] && active[l];",
                           "bdf_refactor[l] = active[l] && (bdf_need_jac[l] || bdf_c[l] != bdf_lu_c[l]);",
                           "bdf_jac_any |= bdf_need_jac[l]; bdf_lu_any |= bdf_refactor[l];", simd=False)
        lines += ["if (bdf_jac_any) {", "    sciml_f(tn, bdf_ypred, &P, dir, bdf_fpred);", "    " + jac_call]
        lines += ["    " + x for x in ctx.lanes(
            "if (!bdf_need_jac[l]) continue;",
            f"for (int j = 0; j < {n}; ++j) for (int k = 0; k < {n}; ++k) bdf_J[j][k][l] = bdf_W[j][k][l];",
            "++bdf_njev[l];")] + ["}"]
        lines += ["if (bdf_lu_any) {"]
        lines += ["    " + x for x in ctx.lanes(
            "if (bdf_refactor[l]) { bdf_lu_c[l] = bdf_c[l]; ++bdf_nlu[l]; }",
            f"for (int j = 0; j < {n}; ++j) for (int k = 0; k < {n}; ++k)",
            f"    bdf_W[j][k][l] = (j == k ? {R(1)} : {R(0)}) - bdf_lu_c[l] * bdf_J[j][k][l];")]
        lines += ["    sciml_lu_factor(bdf_W, bdf_piv);", "}"]
        lines += self._newton(ctx, eps)
        # BDF.step's new state, the difference update, the step polynomial, y1, f1 and the error
        lines += ctx.lanes(
            "if (!active[l]) continue;",
            "const int q = bdf_q[l];",
            "bdf_nfev[l] += bdf_n_iter[l];",
            "bdf_newton_ok[l] = bdf_conv[l];",
            f"bdf_eta[l] = {rf('pow')}(SCIML_MAX(bdf_eta_it[l], {eps}), {R(0.8)});",
            "bdf_jac_current[l] = bdf_jac_current[l] || bdf_need_jac[l];",
            "bdf_need_jac[l] = 0;",
            f"for (int j = 0; j < {n}; ++j) {{",
            "    const sciml_real d = bdf_x[j][l];",
            "    bdf_Dw[q + 2][j][l] = d - bdf_Dw[q + 1][j][l];",
            "    bdf_Dw[q + 1][j][l] = d;",
            f"    sciml_real s = {R(0)};",
            "    for (int i = q; i >= 0; --i) { s = s + bdf_Dw[i][j][l]; bdf_Dw[i][j][l] = s + d; }",
            "    y1[j][l] = bdf_Dw[0][j][l];",
            "    bdf_yerr[j][l] = bdf_err_const[q] * d;",
            "}")
        lines += ["{", "    " + _table(ctx, "bdf_basis", _BASIS)]
        lines += ["    " + x for x in ctx.lanes(
            "const int q = bdf_q[l];",
            f"for (int j = 0; j < {n}; ++j) {{",
            f"    sciml_real df = {R(0)};",
            f"    for (int p = 0; p <= {MAX_ORDER}; ++p) {{",
            f"        sciml_real s = {R(0)};",
            "        for (int k = p; k <= q; ++k) s = s + bdf_basis[k][p] * bdf_Dw[k][j][l];",
            "        bdf_co[p][j][l] = s;",
            "        df = df + (sciml_real)p * s;",
            "    }",
            "    bdf_f1[j][l] = df / h[l];",
            "}")]
        lines += ["}", "sciml_error_norm(bdf_yerr, y, y1, rtol, atol, err);"]
        lines += ctx.lanes("if (!(bdf_conv[l] || bdf_bad[l])) err[l] = (sciml_real)SCIML_INF;")
        return lines

    def _newton(self, ctx: Ctx, eps: str) -> list[str]:
        """`sciml.solvers._newton.solve` on ``c f(tn, ypred + x) - (psi + x) = 0`` from ``x = 0``, every
        lane at once; a lane stops when it converged, diverged or became non-finite."""
        n, R, rf = ctx.n, ctx.R, ctx.rf
        lines = ctx.lanes("bdf_done[l] = !active[l]; bdf_conv[l] = 0; bdf_bad[l] = 0; bdf_n_iter[l] = 0;",
                          f"bdf_norm_old[l] = {R(0)}; bdf_eta_it[l] = bdf_eta[l];")
        body = ["int go = 0;"]
        body += ctx.lanes("go |= !bdf_done[l];", simd=False)
        body += ["if (!go) break;",
                 # the first iterate is the prediction, where a Jacobian formed now already evaluated f
                 "sciml_real (*fv)[SCIML_LANES] = k == 0 && bdf_jac_any ? bdf_fpred : bdf_fv;",
                 "if (fv == bdf_fv) {"]
        body += ["    " + x for x in ctx.lanes(f"for (int j = 0; j < {n}; ++j) bdf_yt[j][l] = bdf_ypred[j][l] + bdf_x[j][l];")]
        body += ["    sciml_f(tn, bdf_yt, &P, dir, bdf_fv);", "}"]
        body += ctx.lanes(f"for (int j = 0; j < {n}; ++j) "
                          "bdf_r[j][l] = bdf_c[l] * fv[j][l] - (bdf_psi[j][l] + bdf_x[j][l]);")
        body += ["sciml_lu_solve(bdf_W, bdf_piv, bdf_r);"]
        body += ctx.lanes(
            "if (bdf_done[l]) continue;",
            f"sciml_real sum = {R(0)};",
            f"for (int j = 0; j < {n}; ++j) {{ const sciml_real v = bdf_r[j][l] / bdf_scale[j][l]; sum = sum + v * v; }}",
            f"const sciml_real norm = {rf('sqrt')}(sum / {R(n)});",
            f"const sciml_real theta = norm / (bdf_norm_old[l] > {R(0)} ? bdf_norm_old[l] : {R(1)});",
            f"const sciml_real gap = SCIML_MAX({R(1)} - theta, {eps});",
            "const sciml_real eta_k = k == 0 ? bdf_eta_it[l] : theta / gap;",
            f"const sciml_real late = {rf('pow')}(theta, (sciml_real)({MAX_ITER} - k)) / gap * norm / bdf_tol;",
            f"const int diverging = k > 0 && (theta >= {R(1)} || late > {R(1)});",
            "const int nonfinite = !isfinite(norm);",
            f"if (!(diverging && !nonfinite)) for (int j = 0; j < {n}; ++j) bdf_x[j][l] = bdf_x[j][l] + bdf_r[j][l];",
            f"const int converged = !diverging && !nonfinite && (norm == {R(0)} || eta_k * norm <= bdf_tol);",
            "bdf_done[l] = diverging || nonfinite || converged;",
            "bdf_conv[l] = converged; bdf_bad[l] = nonfinite; bdf_norm_old[l] = norm;",
            "bdf_eta_it[l] = eta_k; bdf_n_iter[l] = k + 1;")
        return lines + [f"for (int k = 0; k < {MAX_ITER}; ++k) {{"] + ["    " + x for x in body] + ["}"]

    def after_step(self, ctx: Ctx) -> list[str]:
        """`BDF.after_step` and the loop's ``max_step`` clip: ``dt_next`` and the state after the attempt."""
        n, R, rf = ctx.n, ctx.R, ctx.rf
        safety = 0.9 * (2 * MAX_ITER + 1)
        # orders q - 1, q, q + 1 judged from the differences, where a lane chooses its order
        lines = ["int bdf_choose_any = 0;"]
        lines += ctx.lanes("bdf_choose[l] = active[l] && accept[l] && "
                           "(bdf_same[l] ? bdf_n_equal[l] : 0) + 1 >= bdf_q[l] + 1;",
                           "bdf_choose_any |= bdf_choose[l];", simd=False)
        lines += ["if (bdf_choose_any) {", "    " + _table(ctx, "bdf_const", ERROR_CONST)]
        for k, shift in enumerate((-1, 0, 1)):   # error of order q + shift from D[q + 1 + shift]
            lines += ["    " + x for x in ctx.lanes(
                f"const int o = SCIML_MIN(bdf_q[l] + {shift}, {MAX_ORDER});",
                f"for (int j = 0; j < {n}; ++j) bdf_e[j][l] = bdf_const[o > 0 ? o : 0] * bdf_Dw[bdf_q[l] + {1 + shift}][j][l];")]
            lines += [f"    sciml_error_norm(bdf_e, y, y1, bdf_rtol, bdf_atol, bdf_nm[{k}]);"]
        lines += ["}"]
        lines += ctx.lanes(
            "if (!active[l]) continue;",
            "const int q = bdf_q[l];",
            "const int failed = !bdf_newton_ok[l], retry = failed && !bdf_jac_current[l];",
            f"const double safety = {safety!r} / (double)({2 * MAX_ITER} + bdf_n_iter[l]);",
            "sciml_time dt_solver;",
            "if (accept[l]) {",
            f"    for (int r = 0; r < {ROWS}; ++r) for (int j = 0; j < {n}; ++j) bdf_D[r][j][l] = bdf_Dw[r][j][l];",
            "    bdf_h[l] = hs[l];",
            "    bdf_n_equal[l] = (bdf_same[l] ? bdf_n_equal[l] : 0) + 1;",
            "    bdf_jac_current[l] = 0;",
            "    dt_solver = hs[l];",
            "    if (bdf_choose[l]) {",
            f"        sciml_real norms[3] = {{q > 1 ? bdf_nm[0][l] : (sciml_real)SCIML_INF, bdf_nm[1][l], "
            f"q < {MAX_ORDER} ? bdf_nm[2][l] : (sciml_real)SCIML_INF}};",
            "        int best = 0; sciml_real top = 0;",
            "        for (int k = 0; k < 3; ++k) {",
            f"            const sciml_real expo = {R(-1)} / (sciml_real)(q + k);",
            f"            const sciml_real fk = norms[k] > {R(0)} ? {rf('pow')}(norms[k], expo) : (sciml_real)SCIML_INF;",
            "            if (k == 0 || fk > top) { best = k; top = fk; }",
            "        }",
            f"        const double grow = SCIML_MIN({MAX_FACTOR!r}, safety * (double)top);",
            "        dt_solver = hs[l] * (sciml_time)grow;",
            "        bdf_q[l] = q + best - 1; bdf_n_equal[l] = 0;",
            "    }",
            "} else {",
            "    bdf_n_equal[l] = 0; bdf_need_jac[l] = retry;",
            f"    const double safe_err = err[l] > {R(0)} ? (double)err[l] : 1.0;",
            f"    const double shrink = SCIML_MAX({MIN_FACTOR!r}, safety * pow(safe_err, -1.0 / (double)(q + 1)));",
            "    dt_solver = failed ? (retry ? hs[l] : (sciml_time)0.5 * hs[l]) : hs[l] * (sciml_time)shrink;",
            "}",
            "dt_next[l] = SCIML_MIN(dt_solver, dtmax);")
        return lines

    def dense(self, ctx: Ctx) -> list[str]:
        return [f"for (int p = 0; p <= {MAX_ORDER}; ++p) for (int j = 0; j < {ctx.n}; ++j)"] + [
            "    " + x for x in ctx.lanes("dc[p][j][l] = bdf_co[p][j][l];")]

    def counters(self, ctx: Ctx) -> list[str]:
        return ["bdf_njev[l]", "bdf_nlu[l]"]

    def fevals_counted(self, ctx: Ctx) -> list[str]:
        return ["bdf_nfev[l]"]
