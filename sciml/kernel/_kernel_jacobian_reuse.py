"""Jacobian reuse in the kernel's Rosenbrock step, for W-methods whose field is called back into Python.

A Rosenbrock-W method (``RosenbrockTableau.w_method``, e.g. ROS34PW2) keeps its order with any matrix in
place of ``J`` (Hairer & Wanner, *Solving ODEs II*, Sec. IV.7), and its embedded error estimate stays
valid, so a Jacobian formed at an earlier step may serve later ones, and so may the factors of
``W = I - hf gamma J`` formed for an earlier step ``hf`` (the W-method with ``A = (hf / h) J``) while
``hf / h`` stays near 1 and ``n`` is large enough for a factorisation to cost more than a few calls;
else ``W`` is factored again for the new ``h``. That pays where a Jacobian is dear: for a NumPy
field (``rhs=HOST``) it is ``n + 1`` calls into Python by finite differences (~9 us each), against 4
calls a step for ROS34PW2. A translated field's Jacobian is compiled code costing less than the
``O(n^3)`` factorisation that each step needs anyway, so that kernel forms it every attempt, exactly
as the XLA loop does (its results equal ``backend="jax"``'s to rounding).

A Jacobian is formed again (``jac_age`` counts the accepted steps since it was formed)

* after ``MAX_AGE`` accepted steps, and
* after a rejected attempt that used an old one (the step may have failed because of it). A rejected
  attempt with a fresh one keeps it: the retry starts from the same ``(t, y)``, where it is exact.

A rejection is recognised at the next attempt by its start time: an accepted step moves ``t``. Host
kernels run one trajectory per block (``target="c-single"``), so the Jacobian call is skipped as a
whole; ``njev`` of a host solve is the field's own count of the Jacobians it formed.
"""

from __future__ import annotations

from sciml.kernel._kernel_spec import Ctx, is_host, matrices, state

#: Accepted steps a Jacobian serves at most. A stale Jacobian costs no accuracy (the error estimate
#: holds for any matrix) but on a nonlinear problem it shrinks the steps the controller accepts as the
#: solution drifts from where it was formed, without always causing a rejection that would renew it.
#: Measured (ROS34PW2, NumPy fields, rtol 1e-4 and 1e-6; field calls): HIRES and OREGO take about the
#: same calls with 12 or 50 (7797 / 7817, 9098 / 9070 at 1e-6) but 1.7-2.3x more with 1000; Van der
#: Pol (mu = 1e3) and ROBER are within 3 % between 12 and 50, and 12-17 % under a Jacobian every step
#: at 1e-6; the linear 100-point heat equation (a Jacobian is 101 calls, a step 4) takes
#: 3 Jacobians with 50 instead of 10 with 12.
MAX_AGE = 50
#: The factors of ``I - hf gamma J`` serve a step ``h`` with ``HF_LOW <= hf / h <= HF_HIGH``: that is
#: the W-method with ``A = (hf / h) J``, whose stability function stays bounded by 1 in the left half
#: plane for ``0.7 <= hf / h <= 2`` (checked numerically on ROS34PW2's tableau; ``|R(-inf)| <= 0.4`` in
#: the band, against 0 for ``A = J``). Only for ``n >= FACTOR_REUSE_N``: the other ``A`` costs some
#: rejections (ROBER at rtol 1e-6: 5862 calls instead of 3962), which pay only where a factorisation
#: costs more than a few calls (~0.1 ms at n = 100, where the heat equation's 114 steps then take 13
#: factorisations instead of 114, and about a third less time).
HF_LOW, HF_HIGH = 0.8, 1.25
FACTOR_REUSE_N = 64


def reuses_jacobian(tableau, ctx: Ctx) -> bool:
    """Whether the kernel of ``tableau`` keeps its Jacobian across steps: W-methods, NumPy fields."""
    return bool(getattr(tableau, "w_method", False)) and is_host(ctx.spec)


def declarations(ctx: Ctx) -> list[str]:
    """The kept Jacobian ``Jk``, ``df/dt`` ``dk``, the step ``hf`` of the factors and the bookkeeping."""
    n = ctx.n
    return [matrices(ctx, ["Jk"], "Rosenbrock-W"), "sciml_real hf[SCIML_LANES];", state("dk", ctx),
            "sciml_time jac_t[SCIML_LANES];",
            "int jac_age[SCIML_LANES] = {0}, jac_formed[SCIML_LANES] = {0}, jac_old[SCIML_LANES] = {0};",
            "long long n_lu[SCIML_LANES] = {0};"]


def step_head(ctx: Ctx, gamma: float, call: str, factor: list[str]) -> list[str]:
    """The start of a step: ``call`` (which fills ``Jk``, ``dk``) when the kept Jacobian must be
    replaced; ``J`` copied into ``W`` and ``factor`` (which turns ``W`` into the LU factors of
    ``I - h gamma J``) when the factors must be; ``hg = h gamma`` and ``df/dt`` for the stages."""
    n, R = ctx.n, ctx.R
    lines = ["int jac_need = 0, lu_need = 0;"]
    lines += ctx.lanes(
        "if (jac_formed[l]) {",
        "    if (t[l] != jac_t[l]) ++jac_age[l];           /* the last attempt was accepted */",
        f"    else if (jac_old[l]) jac_age[l] = {MAX_AGE};  /* rejected with an old Jacobian */",
        "}",
        "jac_t[l] = t[l];",
        f"jac_need |= !jac_formed[l] || jac_age[l] >= {MAX_AGE};", simd=False)
    lines += ["if (jac_need) {", "    " + call]
    lines += ["    " + x for x in ctx.lanes("jac_formed[l] = 1; jac_age[l] = 0;")] + ["}"]
    lines += ctx.lanes("jac_old[l] = jac_age[l] > 0;",
                       f"lu_need |= jac_need || !(hf[l] <= {R(HF_HIGH)} * h[l] && hf[l] >= {R(HF_LOW)} * h[l])"
                       f"{' || 1' if n < FACTOR_REUSE_N else ''};",
                       simd=False)
    lines += ["if (lu_need) {"]
    lines += ["    " + x for x in ctx.lanes(
        f"for (int j = 0; j < {n}; ++j) for (int k = 0; k < {n}; ++k) W[j][k][l] = Jk[j][k][l];",
        "hf[l] = h[l]; ++n_lu[l];")]
    lines += ["    " + x for x in factor] + ["}"]
    lines += ctx.lanes(f"hg[l] = h[l] * {R(gamma)};",
                       f"for (int j = 0; j < {n}; ++j) dfdt[j][l] = dk[j][l];")
    return lines
