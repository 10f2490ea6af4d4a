"""Step-size control in the kernel loop: each controller of `sciml.solvers._control` restated in C.

A `KernelController` contributes the controller's state (arrays over the lanes), its initial value,
the decision after an attempted step (``accept[l]`` and the factor ``dt_next[l] = hs[l] * factor``,
from the error norm ``err[l]`` of the step ``hs[l]``) and the state after it. Each one computes what
its Python ``adapt`` computes, in the same order and with the same acceptance rule (``err <= 1`` for
the PI family, ``err < 1`` for PID), so the kernel and the XLA loop take the same steps.
"""

from __future__ import annotations

from sciml.solvers._control import IController, PIController, PIDController


class KernelController:
    """What a step-size controller contributes to the kernel loop (lists of C lines; the per-lane ones
    run inside a loop over the lanes ``l``)."""

    def declarations(self) -> list[str]:
        raise NotImplementedError

    def init(self, ctx) -> list[str]:
        """Per lane: the state before the first step."""
        raise NotImplementedError

    def adapt(self, ctx, error_order: float) -> list[str]:
        """Per lane: ``accept[l]`` and ``factor`` from ``err[l]`` (``error_order``: the solver's)."""
        raise NotImplementedError

    def update(self, ctx) -> list[str]:
        """Per lane, for a lane that attempted a step: the state after it."""
        raise NotImplementedError


def kernel_controller(controller) -> KernelController:
    """The kernel counterpart of ``controller``; a clear error for controllers without one."""
    if type(controller) in (PIController, IController):
        return PIKernel(controller)
    if type(controller) is PIDController:
        return PIDKernel(controller)
    raise ValueError(
        f"the kernel backends (`backend=\"c\"`, `\"cupy\"`) run `PIController`, `IController` and "
        f"`PIDController` from `sciml.solvers`; got `controller={controller!r}`. Use `backend=\"jax\"` for it.")


class PIKernel(KernelController):
    """`PIController.adapt` (and `IController`'s, its ``beta=0`` case, which keeps no error memory:
    ``err_prev ** 0`` is exactly 1)."""

    def __init__(self, controller: PIController):
        self.c = controller
        self.memory = controller.beta != 0

    def declarations(self) -> list[str]:
        return ["sciml_real err_prev[SCIML_LANES];"] * self.memory + ["int rejected[SCIML_LANES];"]

    def init(self, ctx) -> list[str]:
        return [f"err_prev[l] = {ctx.R(1e-4)};"] * self.memory + ["rejected[l] = 0;"]

    def adapt(self, ctx, error_order: float) -> list[str]:
        R, pow_, c = ctx.R, ctx.rf("pow"), self.c
        expo = 1.0 / error_order
        memory = f" * {pow_}(err_prev[l], {R(c.beta)})" if self.memory else ""
        return [
            f"accept[l] = err[l] <= {R(1)};",
            f"const sciml_real safe_err = err[l] > {R(0)} ? err[l] : {R(1)};",
            "if (accept[l]) {  /* only the factor that is used is computed: pow is the costliest call here */",
            f"    factor = err[l] > {R(0)} ? {R(c.safety)} * {pow_}(safe_err, {R(-(expo - 0.75 * c.beta))}){memory}"
            f" : {R(c.factormax)};",
            f"    factor = SCIML_MIN(SCIML_MAX(factor, {R(c.factormin)}), rejected[l] ? {R(1)} : {R(c.factormax)});",
            "} else {",
            f"    factor = isfinite(err[l]) ? SCIML_MIN(SCIML_MAX({R(c.safety)} * {pow_}(safe_err, {R(-expo)}), "
            f"{R(c.factormin)}), {R(c.safety)}) : {R(c.factormin)};",
            "}"]

    def update(self, ctx) -> list[str]:
        keep = [f"if (accept[l]) err_prev[l] = SCIML_MAX(err[l], {ctx.R(1e-4)});"] * self.memory
        return keep + ["rejected[l] = !accept[l];"]


class PIDKernel(KernelController):
    """`PIDController.adapt`: diffrax's PID control on the inverse error norms of the last two
    accepted steps (both 1 at the start)."""

    def __init__(self, controller: PIDController):
        self.c = controller

    def declarations(self) -> list[str]:
        return ["sciml_real prev_inv[SCIML_LANES], prev_prev_inv[SCIML_LANES];"]

    def init(self, ctx) -> list[str]:
        return [f"prev_inv[l] = {ctx.R(1)}; prev_prev_inv[l] = {ctx.R(1)};"]

    def adapt(self, ctx, error_order: float) -> list[str]:
        R, pow_, c = ctx.R, ctx.rf("pow"), self.c
        k = c.error_order if c.error_order is not None else error_order
        exponents = c.exponents(k)
        # a zero exponent's factor is exactly 1 (as in `PIDController.adapt`): no call
        powers = "".join(f" * {pow_}({x}, {R(e)})" for x, e in zip(("inv", "prev_inv[l]", "prev_prev_inv[l]"),
                                                                      exponents) if e != 0)
        return [
            f"accept[l] = err[l] < {R(1)};",
            f"const sciml_real inv = {R(1)} / err[l];",
            f"factor = {R(c.safety)}{powers};",
            f"factor = SCIML_MIN(SCIML_MAX(factor, accept[l] ? {R(1)} : {R(c.factormin)}), "
            f"accept[l] ? {R(c.factormax)} : {R(c.safety)});",
            f"if (factor != factor) factor = {R(c.factormin)};"]

    def update(self, ctx) -> list[str]:
        return [
            "if (accept[l]) {",
            f"    const sciml_real inv = {ctx.R(1)} / err[l];",
            "    prev_prev_inv[l] = prev_inv[l];",
            f"    prev_inv[l] = isfinite(inv) && inv != {ctx.R(0)} ? inv : {ctx.R(1)};",
            "}"]
