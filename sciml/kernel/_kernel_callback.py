"""The kernel's vector field (and Jacobian) as calls back into Python, for a field JAX cannot trace.

A kernel whose `KernelSpec` has ``rhs=HOST`` (and, for Rosenbrock methods, ``jac=HOST``) runs the
same integration loop as a translated one, but its ``sciml_f`` copies the state into a buffer the
Python side owns and calls a function pointer (a ``ctypes.CFUNCTYPE`` around the user's field, see
`sciml.kernel._callback`), which writes ``dy/dt`` into a second buffer. The source does not depend
on the field, so one build serves every Python field of the same size, dtype and method.

A callback that fails (the user's exception, stored on the Python side) returns nonzero: the kernel
marks the run failed, fills the outputs of that evaluation with NaN and leaves the loop at its next
iteration, so the Python side re-raises the exception right away. One trajectory per call only
(``target="c-single"``): the buffers are the library's globals, so the Python side never runs two
solves of one library at the same time.
"""

from __future__ import annotations

from sciml.kernel._kernel_spec import Ctx, lane_function


#: the C expression that is true once a callback failed (the loop stops at its next iteration)
HOST_FAILED = "sciml_host_failed"


def host_field_source(ctx: Ctx) -> str:
    """The globals, their setter and ``sciml_f`` of a kernel whose field is a Python callback."""
    n = ctx.n
    setup = "\n".join([
        "typedef int (*sciml_host_fn)(double);",
        "static sciml_host_fn sciml_host_f = 0, sciml_host_jac = 0, sciml_host_rec = 0;",
        "static sciml_real *sciml_host_y = 0, *sciml_host_dy = 0, *sciml_host_J = 0, *sciml_host_dfdt = 0, "
        "*sciml_host_dc = 0;",
        f"static int {HOST_FAILED} = 0, sciml_host_dense = 0;",
        "void sciml_set_host(sciml_host_fn f, sciml_host_fn jac, sciml_host_fn rec, sciml_real* y, sciml_real* dy, "
        "sciml_real* J, sciml_real* dfdt, sciml_real* dc, int dense) {",
        "    sciml_host_f = f; sciml_host_jac = jac; sciml_host_rec = rec; sciml_host_y = y; sciml_host_dy = dy;",
        "    sciml_host_J = J; sciml_host_dfdt = dfdt; sciml_host_dc = dc; sciml_host_dense = dense;",
        f"    {HOST_FAILED} = 0;",
        "}", ""])
    params = (f"const sciml_time s[SCIML_LANES], const sciml_real y[{n}][SCIML_LANES], "
              f"const sciml_args* SCIML_RESTRICT p, const sciml_time dir, sciml_real dy[{n}][SCIML_LANES]")
    # the field sees t in the state's real dtype, as a translated field does
    return setup + lane_function("sciml_f", params, ["(void)p;"], [
        f"for (int j = 0; j < {n}; ++j) sciml_host_y[j] = y[j][l];",
        f"if ({HOST_FAILED} || sciml_host_f((double)(sciml_real)(s[l] * dir))) {{",
        f"    {HOST_FAILED} = 1;",
        f"    for (int j = 0; j < {n}; ++j) dy[j][l] = (sciml_real)SCIML_NAN;",
        "} else {",
        f"    for (int j = 0; j < {n}; ++j) dy[j][l] = (sciml_real)dir * sciml_host_dy[j];",
        "}"])


def host_jacobian_source(ctx: Ctx) -> str:
    """``sciml_jac_host(s, y, f0, dir, J, dfdt)``: df/dy and df/dt of the forward-time field from the
    Python side (which gets ``f(t, y)`` in its ``dy`` buffer, so finite differences cost n + 1 calls)."""
    n = ctx.n
    params = (f"const sciml_time s[SCIML_LANES], const sciml_real y[{n}][SCIML_LANES], "
              f"const sciml_real f0[{n}][SCIML_LANES], const sciml_time dir, "
              f"sciml_real J[{n}][{n}][SCIML_LANES], sciml_real dfdt[{n}][SCIML_LANES]")
    return lane_function("sciml_jac_host", params, [], [
        f"for (int j = 0; j < {n}; ++j) {{",
        "    sciml_host_y[j] = y[j][l]; sciml_host_dy[j] = (sciml_real)dir * f0[j][l];",
        "}",
        f"if ({HOST_FAILED} || sciml_host_jac((double)(sciml_real)(s[l] * dir))) {{",
        f"    {HOST_FAILED} = 1;",
        f"    for (int j = 0; j < {n}; ++j) {{ dfdt[j][l] = (sciml_real)SCIML_NAN; "
        f"for (int k = 0; k < {n}; ++k) J[j][k][l] = (sciml_real)SCIML_NAN; }}",
        "} else {",
        # forward time s = dir t: d/dy [dir f] = dir J; d/ds [dir f(dir s, y)] = dir * dir * df/dt
        f"    for (int j = 0; j < {n}; ++j) for (int k = 0; k < {n}; ++k) "
        f"J[j][k][l] = (sciml_real)dir * sciml_host_J[j * {n} + k];",
        f"    for (int j = 0; j < {n}; ++j) dfdt[j][l] = (sciml_real)dir * ((sciml_real)dir * sciml_host_dfdt[j]);",
        "}"])


def host_record(ctx: Ctx, method) -> list[str]:
    """Loop lines after each accepted step: when the Python side asked for it (``rec`` set), the new
    state (and with ``dense`` the step's dense-output polynomial ``dc``) into the buffers and a call of
    ``rec(t_new)``, so that a solve records every step (scipy's default output) and its dense output."""
    n, deg = ctx.n, method.dense_degree
    dense = method.dense(ctx)
    return ["if (sciml_host_rec && active[0] && accept[0]) {",
            "    if (sciml_host_dense) {"] + ["        " + x for x in dense] + [
            f"        for (int p = 0; p <= {deg}; ++p) for (int j = 0; j < {n}; ++j) "
            f"sciml_host_dc[p * {n} + j] = dc[p][j][0];",
            "    }",
            f"    for (int j = 0; j < {n}; ++j) sciml_host_y[j] = y1[j][0];",
            f"    if (sciml_host_rec((double)(t_new[0] * dir))) {HOST_FAILED} = 1;",
            "}"]
