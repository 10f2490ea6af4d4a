"""The explicit Runge-Kutta step of the kernel loop, generated from the method's `ButcherTableau`.

The C restates `sciml.solvers._explicit_rk.ExplicitRK` (stages, FSAL, embedded error, DOP853's
combined estimator, continuous extension with lazy extra stages, Hermite otherwise): one template
serves every explicit method in `sciml.solvers`.
"""

from __future__ import annotations

from sciml.kernel._kernel_spec import Ctx, KernelMethod, combine, hermite, state
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
        extra = [f"x{r}" for r in range(len(self.tab.c_extra)) if not (r == 0 and self.reuse_f1)] \
            if ctx.spec.save else []
        arrays = self.stages[1:] + ["ytmp"] + extra
        if ctx.spec.adaptive:
            arrays += ["yerr"] + (["yerr3"] if self.tab.b_err3 is not None else [])
        return [state(name, ctx) for name in arrays]

    def _stage(self, ctx: Ctx, c: float, row, ks, out: str) -> list[str]:
        return (combine(ctx, "ytmp", "y", row, ks)
                + ctx.lanes(f"tn[l] = t[l] + {ctx.T(c)} * hs[l];")
                + [f"sciml_f(tn, ytmp, &P, dir, {out});"])

    def step(self, ctx: Ctx) -> list[str]:
        tab, ks = self.tab, self.stages
        lines = []
        for i in range(1, len(tab.c)):
            lines += self._stage(ctx, tab.c[i], tab.a[i], ks[:i], ks[i])
        lines += combine(ctx, "y1", "y", tab.a[-1] if tab.fsal else tab.b, ks[:-1] if tab.fsal else ks)
        if not ctx.spec.adaptive:
            return lines
        lines += combine(ctx, "yerr", None, tab.b_err, ks)
        lines.append("sciml_error_norm(yerr, y, y1, rtol, atol, err);")
        if tab.b_err3 is None:
            return lines
        # Hairer's dop853.f: |e5|^2 / sqrt(|e5|^2 + 0.01 |e3|^2) of the two scaled norms.
        lines += combine(ctx, "yerr3", None, tab.b_err3, ks)
        lines += ["{", "    sciml_real e3[SCIML_LANES];", "    sciml_error_norm(yerr3, y, y1, rtol, atol, e3);"]
        lines += ["    " + x for x in ctx.lanes(
            f"const sciml_real denom = {ctx.rf('sqrt')}(err[l] * err[l] + {ctx.R(0.01)} * e3[l] * e3[l]);",
            f"err[l] = denom > {ctx.R(0)} ? err[l] * err[l] / denom : {ctx.R(0)};")]
        return lines + ["}"]

    def dense(self, ctx: Ctx) -> list[str]:
        tab = self.tab
        f1 = self.f1_array or "f1"
        if tab.b_dense is None:
            return hermite(ctx, f1)
        ks = list(self.stages)
        lines = []
        for r, (c, row) in enumerate(zip(tab.c_extra, tab.a_extra)):
            if r == 0 and self.reuse_f1:
                ks.append(f1)
                continue
            lines += self._stage(ctx, c, row, ks, f"x{r}")
            ks.append(f"x{r}")
        lines += combine(ctx, "dc[0]", "y", [], [])
        for p in range(tab.dense_degree):
            lines += combine(ctx, f"dc[{p + 1}]", None, [row[p] for row in tab.b_dense], ks)
        return lines
