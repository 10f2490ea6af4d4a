"""The explicit Runge-Kutta step of the kernel loop, generated from the method's `ButcherTableau`.

The C restates `sciml.solvers._explicit_rk.ExplicitRK` (stages, FSAL, embedded error, DOP853's
combined estimator, continuous extension with lazy extra stages, Hermite otherwise): one template
serves every explicit method in `sciml.solvers`.
"""

from __future__ import annotations

from sciml.ensemble._codegen import Ctx, KernelMethod, combine
from sciml.solvers._explicit_rk import ExplicitRK


class ExplicitRKKernel(KernelMethod):
    def __init__(self, solver: ExplicitRK):
        tab = solver.tableau
        self.tab = tab
        self.order, self.error_order, self.fsal = solver.order, solver.error_order, solver.fsal
        self.fevals_per_step, self.fevals_dense = solver.fevals_per_step, solver.fevals_dense
        self.reuse_f1 = solver._reuse_f1
        self.dense_degree = tab.dense_degree if tab.b_dense is not None else 3
        s = len(tab.c)
        self.stages = ["f0"] + [f"k{i}" for i in range(1, s)]
        self.f1_array = self.stages[-1] if tab.fsal else None

    def declarations(self, ctx: Ctx) -> list[str]:
        n = ctx.n
        extra = [f"x{r}" for r in range(len(self.tab.c_extra)) if not (r == 0 and self.reuse_f1)]
        arrays = self.stages[1:] + ["ytmp"] + extra
        arrays += ["yerr"] + (["yerr3"] if self.tab.b_err3 is not None else [])
        return [f"sciml_real {name}[{n}];" for name in arrays]

    def step(self, ctx: Ctx) -> list[str]:
        tab, ks = self.tab, self.stages
        lines = []
        for i in range(1, len(tab.c)):
            lines += combine(ctx, "ytmp", "y", tab.a[i], ks[:i])
            lines.append(f"sciml_f(t + {ctx.T(tab.c[i])} * hs, ytmp, &P, dir, {ks[i]});")
        if tab.fsal:
            lines += combine(ctx, "y1", "y", tab.a[-1], ks[:-1])
        else:
            lines += combine(ctx, "y1", "y", tab.b, ks)
        if not ctx.spec.adaptive:
            return lines + ["const int ok = 1;"]
        lines += combine(ctx, "yerr", None, tab.b_err, ks)
        if tab.b_err3 is None:
            lines.append("const sciml_real err = sciml_error_norm(yerr, y, y1, rtol, atol);")
            return lines
        # Hairer's dop853.f: |e5|^2 / sqrt(|e5|^2 + 0.01 |e3|^2) of the two scaled norms.
        lines += combine(ctx, "yerr3", None, tab.b_err3, ks)
        lines += ["const sciml_real e5 = sciml_error_norm(yerr, y, y1, rtol, atol);",
                  "const sciml_real e3 = sciml_error_norm(yerr3, y, y1, rtol, atol);",
                  f"const sciml_real denom = {ctx.rf('sqrt')}(e5 * e5 + {ctx.R(0.01)} * e3 * e3);",
                  f"const sciml_real err = denom > {ctx.R(0)} ? e5 * e5 / denom : {ctx.R(0)};"]
        return lines

    def dense(self, ctx: Ctx) -> list[str]:
        tab, n, R = self.tab, ctx.n, ctx.R
        f1 = self.f1_array or "f1"
        if tab.b_dense is None:  # cubic Hermite, as `sciml.solvers._base.hermite`
            return [f"for (int j = 0; j < {n}; ++j) {{",
                    "    const sciml_real dy = y1[j] - y[j];",
                    "    dc[0][j] = y[j];",
                    "    dc[1][j] = h * f0[j];",
                    f"    dc[2][j] = {R(3)} * dy - h * ({R(2)} * f0[j] + {f1}[j]);",
                    f"    dc[3][j] = {R(-2)} * dy + h * (f0[j] + {f1}[j]);",
                    "}"]
        ks = list(self.stages)
        lines = []
        for r, (c, row) in enumerate(zip(tab.c_extra, tab.a_extra)):
            if r == 0 and self.reuse_f1:
                ks.append(f1)
                continue
            lines += combine(ctx, "ytmp", "y", row, ks)
            lines.append(f"sciml_f(t + {ctx.T(c)} * hs, ytmp, &P, dir, x{r});")
            ks.append(f"x{r}")
        lines.append(f"for (int j = 0; j < {n}; ++j) dc[0][j] = y[j];")
        for p in range(tab.dense_degree):
            lines += combine(ctx, f"dc[{p + 1}]", None, [row[p] for row in tab.b_dense], ks)
        return lines
