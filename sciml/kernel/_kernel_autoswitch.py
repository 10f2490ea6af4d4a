"""AutoSwitch in the kernel loop: Tsit5 and Rodas5P in one solve, the step of each attempt taken by one of them.

The C restates `sciml.solvers.autoswitch.AutoSwitch` step for step, composed of the two methods' own
kernels (`ExplicitRKKernel`, `RosenbrockKernel`): the flag ``stiff_mode`` picks the method of the next
attempt; after a Tsit5 attempt ``|dt lambda|`` is estimated from its last two stages (no evaluations),
after a Rodas5P attempt by one power-iteration step ``W J W^-1 v`` with the Jacobian that attempt has
just formed (the XLA loop's ``jax.jvp`` of the same field at the same point: for a NumPy field that JVP is
``J v`` with the same finite-difference ``J``; for a traced one it agrees to rounding); after every
accepted step the hysteresis counters and ``dtfac`` as in `AutoSwitch.after_step`. The step-size
controller runs with the smaller error order of the two; each step's dense output is the polynomial of
the method that took it.

Which method steps is a C ``if`` on the block's one trajectory, so the kernel runs one trajectory per
block (``target="c-single"``: `sciml.solve`'s and a NumPy field's `solve_ivp`); the ensembles' blocks of
lanes in lockstep would need both methods per attempt and a select, which is not built (they are refused,
naming ``backend="jax"``).
"""

from __future__ import annotations

from sciml.kernel._kernel_rk import ExplicitRKKernel
from sciml.kernel._kernel_rosenbrock import RosenbrockKernel
from sciml.kernel._kernel_spec import Ctx, KernelMethod, combine, state


def autoswitch_kernel(solver) -> KernelMethod | None:
    """The kernel of an `AutoSwitch` ``solver`` (Tsit5 + Rodas5P, its defaults), None for another solver.
    Raises ValueError for another pair of methods."""
    from sciml.solvers import Rodas5P, Tsit5
    from sciml.solvers.autoswitch import AutoSwitch

    if not isinstance(solver, AutoSwitch):
        return None
    if solver.nonstiff != Tsit5() or solver.stiff != Rodas5P():
        raise ValueError("the kernel runs `AutoSwitch` with its default methods, `nonstiff=Tsit5()` and "
                         "`stiff=Rodas5P()`")
    return AutoSwitchKernel(solver)


class AutoSwitchKernel(KernelMethod):
    fsal = True               # f(t + dt, y1): Tsit5's last stage, or evaluated after a Rodas5P attempt
    fevals_per_step = 0       # counted per method (`fevals_counted`)
    fevals_dense = 0
    f1_array = "f1"
    stat_names = ("njev", "nlu", "nswitch", "nstiff")
    single_trajectory = ("the ensemble kernels (`solve_ensemble(backend=\"c\")`, `\"cupy\"`) step blocks of "
                         "trajectories in lockstep, and `AutoSwitch` picks its method per trajectory: the kernel "
                         "runs it one trajectory at a time only (`sciml.solve`, `sciml.solve_ivp`). Use "
                         "`backend=\"jax\"` for an ensemble")

    def __init__(self, solver):
        self.solver = solver
        self.nonstiff = ExplicitRKKernel(solver.nonstiff)
        self.stiff = RosenbrockKernel(solver.stiff)
        self.order, self.error_order = solver.order, solver.error_order
        self.dense_degree = max(self.nonstiff.dense_degree, self.stiff.dense_degree)
        self.bound = solver._bound     # the length of Tsit5's real stability interval

    def jacobian_jaxpr(self, rhs, t_struct, y_flat, dynamic):
        return self.stiff.jacobian_jaxpr(rhs, t_struct, y_flat, dynamic)

    def helpers(self, ctx: Ctx) -> list[str]:
        return self.nonstiff.helpers(ctx) + self.stiff.helpers(ctx)

    def declarations(self, ctx: Ctx) -> list[str]:
        if not ctx.spec.adaptive:
            raise ValueError("the kernel runs `AutoSwitch` with adaptive steps only (it switches on the steps its "
                             "controller proposes)")
        shared = []   # both methods' scratch (``ytmp``, ``yerr``) is declared once
        for line in self.nonstiff.declarations(ctx) + self.stiff.declarations(ctx):
            if line not in shared:
                shared.append(line)
        R, n = ctx.R, ctx.n
        return shared + [state(name, ctx) for name in ("f1", "sw_v", "sw_weight", "sw_u", "sw_w", "sw_yprev")] + [
            "int stiff_mode[SCIML_LANES], step_stiff[SCIML_LANES], sw_count[SCIML_LANES];",
            "sciml_real sw_rho[SCIML_LANES];",
            "long long n_stiff_attempt[SCIML_LANES], n_switch[SCIML_LANES], n_stiff[SCIML_LANES];",
        ] + ctx.lanes(f"stiff_mode[l] = {int(self.solver.stiff_first)}; step_stiff[l] = 0; sw_count[l] = 0;",
                      f"sw_rho[l] = {R(0)}; n_stiff_attempt[l] = 0; n_switch[l] = 0; n_stiff[l] = 0;",
                      f"for (int j = 0; j < {n}; ++j) sw_v[j][l] = {R(1)} / {ctx.rf('sqrt')}({R(n)});")

    def _weights(self, ctx: Ctx) -> list[str]:
        """``sw_weight = 1 / (atol + rtol |y|)`` (0 where that is 0), as `autoswitch._weights`."""
        R = ctx.R
        return ctx.lanes(
            f"for (int j = 0; j < {ctx.n}; ++j) {{",
            f"    const sciml_real scale = atol[j] + rtol[j] * {ctx.rf('fabs')}(y[j][l]);",
            f"    sw_weight[j][l] = scale > {R(0)} ? {R(1)} / scale : {R(0)};",
            "}")

    def _explicit_estimate(self, ctx: Ctx) -> list[str]:
        """`AutoSwitch._explicit_estimate`: ``|W (k_s - k_{s-1})| / |W (Y_s - Y_{s-1})|`` from Tsit5's last
        two stages (both at ``t + dt``; ``Y_s`` is ``y1``), and the direction ``W (k_s - k_{s-1})``."""
        tab, ks, R, n = self.nonstiff.tab, self.nonstiff.stages, ctx.R, ctx.n
        sqrt = ctx.rf("sqrt")
        lines = combine(ctx, "sw_yprev", "y", tab.a[-2], ks[:len(tab.a[-2])])
        return lines + ctx.lanes(
            f"sciml_real num2 = {R(0)}, den2 = {R(0)};",
            f"for (int j = 0; j < {n}; ++j) {{",
            f"    sw_w[j][l] = sw_weight[j][l] * ({ks[-1]}[j][l] - {ks[-2]}[j][l]);",
            "    num2 = num2 + sw_w[j][l] * sw_w[j][l];",
            "    const sciml_real dy = sw_weight[j][l] * (y1[j][l] - sw_yprev[j][l]);",
            "    den2 = den2 + dy * dy;",
            "}",
            f"const sciml_real num = {sqrt}(num2), den = {sqrt}(den2);",
            f"sw_rho[l] = den > {R(0)} && isfinite(num) ? num / den : {R(0)};",
            f"const sciml_real unit = num > {R(0)} ? num : {R(1)};",
            f"if (sw_rho[l] > {R(0)}) for (int j = 0; j < {n}; ++j) sw_v[j][l] = sw_w[j][l] / unit;",
            f"for (int j = 0; j < {n}; ++j) f1[j][l] = {ks[-1]}[j][l];   /* FSAL: f(t + dt, y1) */")

    def _power_iteration(self, ctx: Ctx) -> list[str]:
        """One power-iteration step on ``W J W^-1`` while ``W`` (the Rosenbrock matrix) holds ``J``: the
        stiff branch of `AutoSwitch.step` (its ``jax.jvp`` is ``J u``)."""
        R, n = ctx.R, ctx.n
        return ctx.lanes(
            f"for (int j = 0; j < {n}; ++j) "
            f"sw_u[j][l] = sw_v[j][l] * (sw_weight[j][l] > {R(0)} ? {R(1)} / sw_weight[j][l] : {R(0)});",
            f"sciml_real sum = {R(0)};",
            f"for (int j = 0; j < {n}; ++j) {{",
            f"    sciml_real jv = {R(0)};",
            f"    for (int k = 0; k < {n}; ++k) jv = jv + W[j][k][l] * sw_u[k][l];",
            "    sw_w[j][l] = sw_weight[j][l] * jv;",
            "    sum = sum + sw_w[j][l] * sw_w[j][l];",
            "}",
            f"const sciml_real rho = {ctx.rf('sqrt')}(sum);",
            f"const int ok = isfinite(rho) && rho > {R(0)};",
            f"if (ok) for (int j = 0; j < {n}; ++j) sw_v[j][l] = sw_w[j][l] / rho;",
            f"sw_rho[l] = ok ? rho : {R(0)};")

    def step(self, ctx: Ctx) -> list[str]:
        stiff = (self.stiff.step(ctx, with_jacobian=self._power_iteration(ctx))
                 + ctx.lanes("tn[l] = t[l] + hs[l];", "++n_stiff_attempt[l];")
                 + ["sciml_f(tn, y1, &P, dir, f1);"])
        nonstiff = self.nonstiff.step(ctx) + self._explicit_estimate(ctx)
        # one trajectory per block (`single_trajectory`): lane 0 is the block's
        return (self._weights(ctx) + ctx.lanes("step_stiff[l] = stiff_mode[l];")
                + ["if (stiff_mode[0]) {"] + _indent(stiff) + ["} else {"] + _indent(nonstiff) + ["}"])

    def after_step(self, ctx: Ctx) -> list[str]:
        """`AutoSwitch.after_step` (the counters, the switch, ``dtfac``) and the loop's ``max_step`` clip."""
        s, R, T = self.solver, ctx.R, ctx.T
        return ctx.lanes(
            f"const sciml_real stiffness = sw_rho[l] * (sciml_real){ctx.tf('fabs')}(dt_next[l]) / {R(self.bound)};",
            f"const int verdict = stiffness > (stiff_mode[l] ? {R(s.nonstifftol)} : {R(s.stifftol)});",
            "int count = sw_count[l];",
            "if (accept[l]) count = verdict ? (count < 0 ? 1 : count + 1) : (count > 0 ? -1 : count - 1);",
            f"const int to_stiff = accept[l] && !stiff_mode[l] && count > {s.maxstiffstep};",
            f"const int to_nonstiff = accept[l] && stiff_mode[l] && count < {-s.maxnonstiffstep};",
            f"if (to_stiff) dt_next[l] = dt_next[l] * {T(s.dtfac)};",
            f"if (to_nonstiff) dt_next[l] = SCIML_MIN(dt_next[l] / {T(s.dtfac)}, hs[l]);",
            "dt_next[l] = SCIML_MIN(dt_next[l], dtmax);",
            "n_stiff[l] += accept[l] && stiff_mode[l];",
            "n_switch[l] += to_stiff || to_nonstiff;",
            "stiff_mode[l] = stiff_mode[l] ^ (to_stiff || to_nonstiff);",
            "sw_count[l] = count;")

    def dense(self, ctx: Ctx) -> list[str]:
        def padded(method):   # the rows above the method's degree are zero, as AutoSwitch pads them
            zero = [f"for (int j = 0; j < {ctx.n}; ++j) dc[{p}][j][l] = {ctx.R(0)};"
                    for p in range(method.dense_degree + 1, self.dense_degree + 1)]
            return _indent(method.dense(ctx) + (ctx.lanes(*zero) if zero else []))

        return ["if (step_stiff[0]) {"] + padded(self.stiff) + ["} else {"] + padded(self.nonstiff) + ["}"]

    def counters(self, ctx: Ctx) -> list[str]:
        # Rodas5P forms one Jacobian and one factorisation per attempt
        return ["n_stiff_attempt[l]", "n_stiff_attempt[l]", "n_switch[l]", "n_stiff[l]"]

    def fevals_counted(self, ctx: Ctx) -> list[str]:
        # as the XLA loop's AutoSwitch counts: per Rodas5P attempt its stages, f(t + dt, y1) and the JVP
        return [f"{self.nonstiff.fevals_per_step} * (n_attempt[l] - n_stiff_attempt[l]) + "
                f"{self.stiff.fevals_per_step + 2} * n_stiff_attempt[l]"]


def _indent(lines: list[str]) -> list[str]:
    return ["    " + line for line in lines]
