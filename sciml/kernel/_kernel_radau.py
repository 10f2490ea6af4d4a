"""RadauIIA5 in the kernel loop: `sciml.solvers.radau.RadauIIA5` (no mass matrix, a real state) restated
in C, so that a NumPy field's ``solve_ivp(method="Radau")`` runs its whole solve in compiled code with
only the field called back into Python.

The C takes the steps of the XLA loop's RadauIIA5 (Hairer & Wanner, *Solving ODEs II*, Sec. IV.8; the
RADAU5 code): the simplified Newton iteration on the transformed stages ``W = T^{-1} Z``
(`sciml.solvers._newton.solve` with ``MAX_ITER = 7``: its rate test, ``eta`` carried between solves,
RADAU5's shrink after a failure) from the last accepted step's collocation polynomial extrapolated into
the new step; one real LU of ``gamma/h I - J`` and one complex LU of ``mu/h I - J`` (the conjugate
system's solution is the conjugate), formed when ``J`` or ``h`` changed; ``J`` formed at the step's
start when asked for (first step, slow Newton convergence on an accepted step, a rejection with an old
one); the error estimate filtered through the real LU and refined once with ``f(t, y + err)`` after a
rejection or at the first step; and `RadauIIA5.after_step`'s Gustafsson step size with the step (and
so the factors) held while it would change little (the controller still decides acceptance). Dense
output: the collocation polynomial (degree 3).

Counters as the XLA loop's: ``nfev`` the first evaluation, the initial-step guess, three per Newton
iteration, one per refinement and ``f(t1, y1)`` after each accepted step (evaluated here, in
``after_step``, so that a rejected attempt costs no call); ``njev`` the Jacobians formed; ``nlu`` two
per factorisation (the real and the complex one, as scipy counts). The complex LU takes its pivots as
LAPACK's ``zgetrf`` (largest ``|re| + |im|``); it and the complex divisions round differently from
XLA's, so the two agree to rounding, not bit for bit.

Lanes: as `_kernel_bdf.py`: every value an array over the lanes, the Newton iteration running at most
``MAX_ITER`` rounds over all lanes with a per-lane done mask, the Jacobian and factorisations for all
lanes when any lane needs them (a lane whose ``J`` and step did not change gets back its factors bit
for bit).
"""

from __future__ import annotations

import numpy as np

from sciml.kernel._kernel_bdf import _table
from sciml.kernel._kernel_callback import host_jacobian_source
from sciml.kernel._kernel_rosenbrock import RosenbrockKernel, _jacobian_function, _lu_functions
from sciml.kernel._kernel_spec import Ctx, KernelMethod, is_host, matrices, state
from sciml.solvers import _radau_coefficients as C
from sciml.solvers.radau import (FIRST_REJECT, HOLD_STEP, MAX_FACTOR, MAX_ITER, MIN_FACTOR, SAFETY, SLOW_RATE,
                                 RadauIIA5)


def radau_kernel(solver) -> KernelMethod | None:
    """The kernel of ``solver`` if it is a `RadauIIA5`, else None; a ValueError for a mass matrix."""
    if not isinstance(solver, RadauIIA5):
        return None
    if solver.mass_matrix is not None:
        raise ValueError("the kernel's `RadauIIA5` has no mass matrix (DAE) support; `Rodas5P` takes one in "
                         "the kernel")
    return RadauKernel(solver)


def _complex_lu_functions(ctx: Ctx) -> str:
    """In-place complex LU (real and imaginary parts in two arrays) with LAPACK zgetrf's pivots (largest
    ``|re| + |im|``, the first of equals) and the matching solve, per lane. Divisions by a pivot use
    Smith's algorithm (no overflow in ``|c|^2``)."""
    n, fabs = ctx.n, ctx.rf("fabs")

    def inverse(re: str, im: str, out: str) -> list[str]:
        return [f"sciml_real {out}r, {out}i;",
                f"if ({fabs}({re}) >= {fabs}({im})) {{",
                f"    const sciml_real s = {im} / {re}, d = {re} + {im} * s;",
                f"    {out}r = {ctx.R(1)} / d; {out}i = -s / d;",
                "} else {",
                f"    const sciml_real s = {re} / {im}, d = {im} + {re} * s;",
                f"    {out}r = s / d; {out}i = {ctx.R(-1)} / d;",
                "}"]

    factor = ctx.lanes(
        f"for (int k = 0; k < {n}; ++k) {{",
        "    int p = k;",
        f"    sciml_real best = {fabs}(Ar[k][k][l]) + {fabs}(Ai[k][k][l]);",
        f"    for (int r = k + 1; r < {n}; ++r) {{",
        f"        const sciml_real v = {fabs}(Ar[r][k][l]) + {fabs}(Ai[r][k][l]);",
        "        if (v > best) { p = r; best = v; }",
        "    }",
        "    piv[k][l] = p;",
        f"    if (p != k) for (int c = 0; c < {n}; ++c) {{",
        "        sciml_real x = Ar[k][c][l]; Ar[k][c][l] = Ar[p][c][l]; Ar[p][c][l] = x;",
        "        x = Ai[k][c][l]; Ai[k][c][l] = Ai[p][c][l]; Ai[p][c][l] = x;",
        "    }",
        *["    " + x for x in inverse("Ar[k][k][l]", "Ai[k][k][l]", "v")],
        f"    for (int r = k + 1; r < {n}; ++r) {{",
        "        const sciml_real qr = Ar[r][k][l] * vr - Ai[r][k][l] * vi, qi = Ar[r][k][l] * vi + Ai[r][k][l] * vr;",
        "        Ar[r][k][l] = qr; Ai[r][k][l] = qi;",
        f"        for (int c = k + 1; c < {n}; ++c) {{",
        "            Ar[r][c][l] = Ar[r][c][l] - (qr * Ar[k][c][l] - qi * Ai[k][c][l]);",
        "            Ai[r][c][l] = Ai[r][c][l] - (qr * Ai[k][c][l] + qi * Ar[k][c][l]);",
        "        }",
        "    }",
        "}")
    solve = ctx.lanes(
        f"for (int k = 0; k < {n}; ++k) {{",
        "    const int p = piv[k][l];",
        "    sciml_real x = br[k][l]; br[k][l] = br[p][l]; br[p][l] = x;",
        "    x = bi[k][l]; bi[k][l] = bi[p][l]; bi[p][l] = x;",
        "}",
        f"for (int r = 1; r < {n}; ++r) for (int c = 0; c < r; ++c) {{",
        "    const sciml_real xr = br[c][l], xi = bi[c][l];",
        "    br[r][l] = br[r][l] - (Ar[r][c][l] * xr - Ai[r][c][l] * xi);",
        "    bi[r][l] = bi[r][l] - (Ar[r][c][l] * xi + Ai[r][c][l] * xr);",
        "}",
        f"for (int r = {n} - 1; r >= 0; --r) {{",
        f"    for (int c = r + 1; c < {n}; ++c) {{",
        "        const sciml_real xr = br[c][l], xi = bi[c][l];",
        "        br[r][l] = br[r][l] - (Ar[r][c][l] * xr - Ai[r][c][l] * xi);",
        "        bi[r][l] = bi[r][l] - (Ar[r][c][l] * xi + Ai[r][c][l] * xr);",
        "    }",
        *["    " + x for x in inverse("Ar[r][r][l]", "Ai[r][r][l]", "v")],
        "    const sciml_real xr = br[r][l], xi = bi[r][l];",
        "    br[r][l] = xr * vr - xi * vi; bi[r][l] = xr * vi + xi * vr;",
        "}")
    matrix = f"sciml_real Ar[{n}][{n}][SCIML_LANES], sciml_real Ai[{n}][{n}][SCIML_LANES]"
    return "\n".join(
        [f"SCIML_FN void sciml_clu_factor({matrix}, int piv[{n}][SCIML_LANES]) {{"] + ["    " + x for x in factor]
        + ["}", f"SCIML_FN void sciml_clu_solve({matrix}, int piv[{n}][SCIML_LANES], "
                f"sciml_real br[{n}][SCIML_LANES], sciml_real bi[{n}][SCIML_LANES]) {{"]
        + ["    " + x for x in solve] + ["}"]) + "\n"


def _row(ctx: Ctx, weights, name: str) -> str:
    """``w_0 name[0] + w_1 name[1] + w_2 name[2]`` at ``[j][l]``, left to right (a 3-row product)."""
    return " + ".join(f"{ctx.R(float(w))} * {name}[{m}][j][l]" for m, w in enumerate(weights))


class RadauKernel(KernelMethod):
    stat_names = ("njev", "nlu")
    fsal = True                 # f(t1, y1) is evaluated in after_step, for accepted steps only
    fevals_per_step = 0         # Newton's evaluations vary: counted in rad_nfev
    fevals_dense = 0
    dense_degree = 3
    f1_array = "rad_f1"
    newton_ok = "(rad_conv[l] || rad_bad[l])"
    #: the jacobian of a translated field: as the Rosenbrock kernel forms it (df/dt unused here)
    jacobian_jaxpr = RosenbrockKernel.jacobian_jaxpr

    def __init__(self, solver: RadauIIA5):
        self.order, self.error_order = solver.order, solver.error_order

    def helpers(self, ctx: Ctx) -> list[str]:
        jacobian = host_jacobian_source(ctx) if is_host(ctx.spec) else _jacobian_function(ctx)
        return [jacobian, _lu_functions(ctx), _complex_lu_functions(ctx)]

    def declarations(self, ctx: Ctx) -> list[str]:
        if not ctx.spec.adaptive:
            raise ValueError("the kernel's `RadauIIA5` chooses its own steps: it needs an adaptive solve")
        n, R, rf = ctx.n, ctx.R, ctx.rf
        eps = float(np.finfo(ctx.spec.state_dtype).eps)
        vectors = ["rad_ys", "rad_ur", "rad_ui", "rad_ze", "rad_e", "rad_fe", "rad_f1", "rad_scale", "dfdt"]
        return [
            matrices(ctx, ["rad_J", "rad_Wr", "rad_Cr", "rad_Ci"], "RadauIIA5"),
            f"int rad_pr[{n}][SCIML_LANES], rad_pc[{n}][SCIML_LANES];",
            f"sciml_real rad_x[3][{n}][SCIML_LANES], rad_dx[3][{n}][SCIML_LANES], rad_F[3][{n}][SCIML_LANES], "
            f"rad_Z[3][{n}][SCIML_LANES], rad_poly[3][{n}][SCIML_LANES], rad_try[3][{n}][SCIML_LANES];",
            *[state(v, ctx) for v in vectors],
            "sciml_real rad_eta[SCIML_LANES], rad_shrink[SCIML_LANES], rad_rate[SCIML_LANES], "
            "rad_err_acc[SCIML_LANES], rad_norm_old[SCIML_LANES], rad_eta_it[SCIML_LANES], "
            "rad_rate_it[SCIML_LANES], rad_shrink_it[SCIML_LANES], rad_en[SCIML_LANES];",
            "sciml_time rad_lu_dt[SCIML_LANES], rad_poly_dt[SCIML_LANES], rad_h_acc[SCIML_LANES];",
            "int rad_need_jac[SCIML_LANES], rad_jac_current[SCIML_LANES], rad_newton_ok[SCIML_LANES], "
            "rad_n_iter[SCIML_LANES], rad_started[SCIML_LANES], rad_rejected[SCIML_LANES], "
            "rad_refactor[SCIML_LANES], rad_refine[SCIML_LANES], rad_done[SCIML_LANES], rad_conv[SCIML_LANES], "
            "rad_bad[SCIML_LANES];",
            "long long rad_nfev[SCIML_LANES] = {0}, rad_njev[SCIML_LANES] = {0}, rad_nlu[SCIML_LANES] = {0};",
            # RadauIIA5.init
            *ctx.lanes(
                "rad_need_jac[l] = 1; rad_jac_current[l] = 0; rad_newton_ok[l] = 1; rad_n_iter[l] = 0;",
                "rad_started[l] = 0; rad_rejected[l] = 0; rad_conv[l] = 1; rad_bad[l] = 0;",
                f"rad_eta[l] = {R(1)}; rad_shrink[l] = {R(1)}; rad_rate[l] = {R(0)}; rad_err_acc[l] = {R(0)};",
                "rad_lu_dt[l] = 0; rad_poly_dt[l] = 1; rad_h_acc[l] = 0;",
                f"for (int p = 0; p < 3; ++p) for (int j = 0; j < {n}; ++j) rad_poly[p][j][l] = {R(0)};"),
            "sciml_real rad_rmin = rtol[0];",
            f"for (int j = 1; j < {n}; ++j) rad_rmin = SCIML_MIN(rad_rmin, rtol[j]);",
            # _newton.tolerance: max(10 eps / rtol, min(0.03, sqrt(rtol)))
            f"const sciml_real rad_tol = SCIML_MAX({R(10 * eps)} / rad_rmin, SCIML_MIN({R(0.03)}, "
            f"{rf('sqrt')}(rad_rmin)));"]

    def step(self, ctx: Ctx) -> list[str]:
        n, R, T = ctx.n, ctx.R, ctx.T
        lines = [_table(ctx, "rad_T", C.T), _table(ctx, "rad_TI", C.TI)]
        # a Jacobian at (t, y) (into Wr as scratch) when a lane needs one; factors when its J or step changed
        jac_call = ("sciml_jac_host(t, y, f0, dir, rad_Wr, dfdt);" if is_host(ctx.spec)
                    else "sciml_jac(t, y, &P, dir, rad_Wr, dfdt);")
        lines += ["int rad_jac_any = 0, rad_lu_any = 0;"]
        lines += ctx.lanes("rad_need_jac[l] = rad_need_jac[l] && active[l];",
                           "rad_refactor[l] = active[l] && (rad_need_jac[l] || hs[l] != rad_lu_dt[l]);",
                           "rad_jac_any |= rad_need_jac[l]; rad_lu_any |= rad_refactor[l];", simd=False)
        lines += ["if (rad_jac_any) {", "    " + jac_call]
        lines += ["    " + x for x in ctx.lanes(
            "if (!rad_need_jac[l]) continue;",
            f"for (int j = 0; j < {n}; ++j) for (int k = 0; k < {n}; ++k) rad_J[j][k][l] = rad_Wr[j][k][l];",
            "++rad_njev[l];")] + ["}"]
        lines += ["if (rad_lu_any) {"]
        lines += ["    " + x for x in ctx.lanes(
            "if (rad_refactor[l]) { rad_lu_dt[l] = hs[l]; rad_nlu[l] += 2; }",
            "const sciml_real hl = (sciml_real)rad_lu_dt[l];",
            f"const sciml_real g = {R(C.GAMMA)} / hl, mr = {R(C.MU.real)} / hl, mi = {R(C.MU.imag)} / hl;",
            f"for (int j = 0; j < {n}; ++j) for (int k = 0; k < {n}; ++k) {{",
            f"    rad_Wr[j][k][l] = (j == k ? g : {R(0)}) - rad_J[j][k][l];",
            f"    rad_Cr[j][k][l] = (j == k ? mr : {R(0)}) - rad_J[j][k][l];",
            f"    rad_Ci[j][k][l] = j == k ? mi : {R(0)};",
            "}")]
        lines += ["    sciml_lu_factor(rad_Wr, rad_pr);", "    sciml_clu_factor(rad_Cr, rad_Ci, rad_pc);", "}"]
        # the first iterate: the last accepted polynomial at s = 1 + c_i h / h_old, minus y, in W's variables
        s = [f"(sciml_real)({T(1)} + {T(c)} * (hs[l] / rad_poly_dt[l]))" for c in C.C]
        lines += ctx.lanes(
            f"sciml_real pw[3][3];",
            *[f"{{ const sciml_real s = {s[i]}; pw[{i}][0] = s - {R(1)}; "
              f"pw[{i}][1] = {ctx.rf('pow')}(s, {R(2)}) - {R(1)}; pw[{i}][2] = {ctx.rf('pow')}(s, {R(3)}) - {R(1)}; }}"
              for i in range(3)],
            f"for (int j = 0; j < {n}; ++j) {{",
            f"    sciml_real z[3];",
            "    for (int i = 0; i < 3; ++i) z[i] = rad_started[l] ? "
            "pw[i][0] * rad_poly[0][j][l] + pw[i][1] * rad_poly[1][j][l] + pw[i][2] * rad_poly[2][j][l] "
            f": {R(0)};",
            "    for (int i = 0; i < 3; ++i) rad_x[i][j][l] = rad_TI[i][0] * z[0] + rad_TI[i][1] * z[1] + rad_TI[i][2] * z[2];",
            f"    rad_scale[j][l] = atol[j] + rtol[j] * {ctx.rf('fabs')}(y[j][l]);",
            "}")
        lines += self._newton(ctx)
        # the stages, y1, the error estimate (refined once after a rejection or at the first step), the polynomial
        E = ", ".join(R(float(e)) for e in C.E)
        lines += ctx.lanes(
            "if (!active[l]) continue;",
            "rad_nfev[l] += 3 * rad_n_iter[l];",
            "rad_newton_ok[l] = rad_conv[l];",
            f"rad_eta[l] = {ctx.rf('pow')}(SCIML_MAX(rad_eta_it[l], {R(float(np.finfo(ctx.spec.state_dtype).eps))}), "
            f"{R(0.8)});",
            "rad_rate[l] = rad_rate_it[l]; rad_shrink[l] = rad_shrink_it[l];",
            "rad_jac_current[l] = rad_jac_current[l] || rad_need_jac[l];",
            "rad_need_jac[l] = 0;",
            f"const sciml_real e[3] = {{{E}}};",
            f"for (int j = 0; j < {n}; ++j) {{",
            "    for (int i = 0; i < 3; ++i) rad_Z[i][j][l] = rad_T[i][0] * rad_x[0][j][l] + rad_T[i][1] * "
            "rad_x[1][j][l] + rad_T[i][2] * rad_x[2][j][l];",
            "    y1[j][l] = y[j][l] + rad_Z[2][j][l];",
            "    rad_ze[j][l] = (e[0] * rad_Z[0][j][l] + e[1] * rad_Z[1][j][l] + e[2] * rad_Z[2][j][l]) / h[l];",
            "    rad_e[j][l] = f0[j][l] + rad_ze[j][l];",
            "}")
        V = C.V_INV
        lines += ctx.lanes(*[f"for (int j = 0; j < {n}; ++j) rad_try[{p}][j][l] = {_row(ctx, V[p], 'rad_Z')};"
                             for p in range(3)])
        lines += ["sciml_lu_solve(rad_Wr, rad_pr, rad_e);", "sciml_error_norm(rad_e, y, y1, rtol, atol, rad_en);",
                  "int rad_refine_any = 0;"]
        lines += ctx.lanes(f"rad_refine[l] = active[l] && (rad_rejected[l] || !rad_started[l]) && rad_en[l] > {R(1)};",
                           "rad_refine_any |= rad_refine[l];", simd=False)
        lines += ["if (rad_refine_any) {"]
        lines += ["    " + x for x in ctx.lanes(f"for (int j = 0; j < {n}; ++j) rad_ys[j][l] = y[j][l] + rad_e[j][l];")]
        lines += ["    sciml_f(t, rad_ys, &P, dir, rad_fe);"]
        lines += ["    " + x for x in ctx.lanes(f"for (int j = 0; j < {n}; ++j) rad_fe[j][l] = rad_fe[j][l] + rad_ze[j][l];")]
        lines += ["    sciml_lu_solve(rad_Wr, rad_pr, rad_fe);"]
        lines += ["    " + x for x in ctx.lanes(
            "if (!rad_refine[l]) continue;",
            "++rad_nfev[l];",
            f"for (int j = 0; j < {n}; ++j) rad_e[j][l] = rad_fe[j][l];")] + ["}"]
        lines += ["sciml_error_norm(rad_e, y, y1, rtol, atol, err);"]
        lines += ctx.lanes(f"if (!({self.newton_ok})) err[l] = (sciml_real)SCIML_INF;")
        return lines

    def _newton(self, ctx: Ctx) -> list[str]:
        """`sciml.solvers._newton.solve` on ``R(W) = T^{-1} F - (Lambda / h) W = 0`` from the first iterate,
        every lane at once; a lane stops when it converged, diverged or became non-finite."""
        n, R, rf, T = ctx.n, ctx.R, ctx.rf, ctx.T
        eps = R(float(np.finfo(ctx.spec.state_dtype).eps))
        Q, QI = C.Q, C.QI
        lines = ctx.lanes("rad_done[l] = !active[l]; rad_conv[l] = 0; rad_bad[l] = 0; rad_n_iter[l] = 0;",
                          f"rad_norm_old[l] = {R(0)}; rad_eta_it[l] = rad_eta[l]; rad_rate_it[l] = {R(0)};",
                          f"rad_shrink_it[l] = {R(0.5)};")
        body = ["int go = 0;"]
        body += ctx.lanes("go |= !rad_done[l];", simd=False)
        body += ["if (!go) break;"]
        for i, c in enumerate(C.C):   # F_i = f(t + c_i h, y + Z_i), Z = T W
            body += ctx.lanes(f"tn[l] = t[l] + {T(c)} * hs[l];",
                              f"for (int j = 0; j < {n}; ++j) rad_ys[j][l] = y[j][l] + ({_row(ctx, C.T[i], 'rad_x')});")
            body += [f"sciml_f(tn, rad_ys, &P, dir, rad_F[{i}]);"]
        # the residual, then its solve: the real system, and the complex one whose conjugate is not needed
        body += ctx.lanes(
            f"for (int j = 0; j < {n}; ++j) {{",
            *[f"    rad_dx[{i}][j][l] = ({_row(ctx, C.TI[i], 'rad_F')}) - ({_row(ctx, C.LAMBDA[i], 'rad_x')}) / h[l];"
              for i in range(3)],
            f"    rad_ur[j][l] = {R(QI[0, 0].real)} * rad_dx[1][j][l] + {R(QI[0, 1].real)} * rad_dx[2][j][l];",
            f"    rad_ui[j][l] = {R(QI[0, 0].imag)} * rad_dx[1][j][l] + {R(QI[0, 1].imag)} * rad_dx[2][j][l];",
            "}")
        body += ["sciml_lu_solve(rad_Wr, rad_pr, rad_dx[0]);", "sciml_clu_solve(rad_Cr, rad_Ci, rad_pc, rad_ur, rad_ui);"]
        body += ctx.lanes(
            "if (rad_done[l]) continue;",
            f"sciml_real sum = {R(0)};",
            f"for (int j = 0; j < {n}; ++j) {{",
            f"    rad_dx[1][j][l] = {R(2)} * ({R(Q[0, 0].real)} * rad_ur[j][l] - {R(Q[0, 0].imag)} * rad_ui[j][l]);",
            f"    rad_dx[2][j][l] = {R(2)} * ({R(Q[1, 0].real)} * rad_ur[j][l] - {R(Q[1, 0].imag)} * rad_ui[j][l]);",
            "}",
            f"for (int i = 0; i < 3; ++i) for (int j = 0; j < {n}; ++j) {{",
            "    const sciml_real v = rad_dx[i][j][l] / rad_scale[j][l]; sum = sum + v * v;",
            "}",
            f"const sciml_real norm = {rf('sqrt')}(sum / {R(3 * n)});",
            f"const sciml_real theta = norm / (rad_norm_old[l] > {R(0)} ? rad_norm_old[l] : {R(1)});",
            f"const sciml_real gap = SCIML_MAX({R(1)} - theta, {eps});",
            "const sciml_real eta_k = k == 0 ? rad_eta_it[l] : theta / gap;",
            f"const sciml_real late = {rf('pow')}(theta, (sciml_real)({MAX_ITER} - k)) / gap * norm / rad_tol;",
            f"const int diverging = k > 0 && (theta >= {R(1)} || late > {R(1)});",
            f"const sciml_real q = SCIML_MIN(SCIML_MAX(theta < {R(1)} ? late : {R(20)}, {R(1e-4)}), {R(20)});",
            f"if (diverging && theta < {R(0.99)}) rad_shrink_it[l] = {R(0.8)} * "
            f"{rf('pow')}(q, {R(-1)} / (sciml_real)({2 + MAX_ITER} - k));",
            "const int nonfinite = !isfinite(norm);",
            f"if (!(diverging && !nonfinite)) for (int i = 0; i < 3; ++i) for (int j = 0; j < {n}; ++j) "
            "rad_x[i][j][l] = rad_x[i][j][l] + rad_dx[i][j][l];",
            f"const int converged = !diverging && !nonfinite && (norm == {R(0)} || eta_k * norm <= rad_tol);",
            "rad_done[l] = diverging || nonfinite || converged;",
            "rad_conv[l] = converged; rad_bad[l] = nonfinite; rad_norm_old[l] = norm;",
            "rad_eta_it[l] = eta_k; if (k > 0) rad_rate_it[l] = theta; rad_n_iter[l] = k + 1;")
        return lines + [f"for (int k = 0; k < {MAX_ITER}; ++k) {{"] + ["    " + x for x in body] + ["}"]

    def after_step(self, ctx: Ctx) -> list[str]:
        """``f(t1, y1)`` for the accepted lanes, `RadauIIA5.after_step` and the loop's ``max_step`` clip."""
        n, R, rf = ctx.n, ctx.R, ctx.rf
        lo, hi = 1 / MAX_FACTOR, 1 / MIN_FACTOR
        lines = ["int rad_accept_any = 0;"]
        lines += ctx.lanes("rad_accept_any |= active[l] && accept[l];", simd=False)
        lines += ["if (rad_accept_any) sciml_f(t_new, y1, &P, dir, rad_f1);"]
        lines += ctx.lanes(
            "if (!active[l]) continue;",
            "const int failed = !rad_newton_ok[l];",
            f"const sciml_real fac = (sciml_real)SCIML_MIN({SAFETY!r}, {SAFETY * (1 + 2 * MAX_ITER)!r} / "
            f"(double)(rad_n_iter[l] + {2 * MAX_ITER}));",
            f"const sciml_real fe = isfinite(err[l]) ? err[l] : {R(1e10)};",
            f"const sciml_real quot = SCIML_MIN(SCIML_MAX({rf('pow')}(fe, {R(0.25)}) / fac, {R(lo)}), {R(hi)});",
            f"sciml_real quot_accept = quot;",
            f"if (rad_err_acc[l] > {R(0)}) {{   /* Gustafsson's predictive term, from the last accepted step */",
            "    const sciml_real ratio = (sciml_real)(rad_h_acc[l] / hs[l]);",
            f"    const sciml_real gus = ratio * {rf('pow')}(fe * fe / rad_err_acc[l], {R(0.25)}) / {R(SAFETY)};",
            f"    quot_accept = SCIML_MAX(quot, SCIML_MIN(SCIML_MAX(gus, {R(lo)}), {R(hi)}));",
            "}",
            f"sciml_real grow = {R(1)} / quot_accept;",
            f"if (rad_rejected[l]) grow = SCIML_MIN(grow, {R(1)});",
            f"const int hold = rad_rate[l] <= {R(SLOW_RATE)} && grow >= {R(HOLD_STEP[0])} && grow <= {R(HOLD_STEP[1])};",
            "sciml_time dt_solver;",
            "if (accept[l]) {",
            "    ++rad_nfev[l];",
            "    dt_solver = hold ? hs[l] : hs[l] * (sciml_time)grow;",
            f"    rad_need_jac[l] = rad_n_iter[l] > 2 && rad_rate[l] > {R(SLOW_RATE)};",
            "    rad_jac_current[l] = 0;",
            f"    for (int p = 0; p < 3; ++p) for (int j = 0; j < {n}; ++j) rad_poly[p][j][l] = rad_try[p][j][l];",
            "    rad_poly_dt[l] = hs[l]; rad_started[l] = 1; rad_rejected[l] = 0; rad_h_acc[l] = hs[l];",
            f"    rad_err_acc[l] = SCIML_MAX({R(1e-2)}, err[l]);",
            "} else {",
            f"    const sciml_real shrink = failed ? rad_shrink[l] : (rad_started[l] ? {R(1)} / quot : {R(FIRST_REJECT)});",
            "    dt_solver = hs[l] * (sciml_time)shrink;",
            "    rad_need_jac[l] = !rad_jac_current[l]; rad_rejected[l] = 1;",
            "}",
            "dt_next[l] = SCIML_MIN(dt_solver, dtmax);")
        return lines

    def dense(self, ctx: Ctx) -> list[str]:
        return [f"for (int j = 0; j < {ctx.n}; ++j)"] + ["    " + x for x in ctx.lanes(
            "dc[0][j][l] = y[j][l];",
            "for (int p = 0; p < 3; ++p) dc[p + 1][j][l] = rad_try[p][j][l];")]

    def counters(self, ctx: Ctx) -> list[str]:
        return ["rad_njev[l]", "rad_nlu[l]"]

    def fevals_counted(self, ctx: Ctx) -> list[str]:
        return ["rad_nfev[l]"]
