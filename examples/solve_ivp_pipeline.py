"""A trained neural ODE inside simulation-pipeline code written for scipy.integrate.solve_ivp.

Pipelines are often written against scipy's `solve_ivp(fun, t_span, y0, t_eval=...)`. `sciml.solve_ivp`
has the same call shape and result fields, so the pipeline takes it as a drop-in: here the same
`simulate` function runs a trained model (the spiral neural ODE) with scipy and with sciml, and the two
agree to the tolerance. sciml compiles the solve once and reuses it for every initial state; scipy calls
the model from Python at every stage of every step.

Run:  python examples/solve_ivp_pipeline.py [--quick] [--out DIR]
Writes solve_ivp_pipeline.png into --out.
"""

import time

import jax
import numpy as np
import scipy.integrate

import sciml
from sciml.demos import _plot, script_arguments, spiral


def simulate(solve_ivp, fun, initial_states, t_eval):
    """Pipeline code: runs `fun` from every initial state with any scipy-compatible `solve_ivp`."""
    runs = []
    for y0 in initial_states:
        res = solve_ivp(fun, (t_eval[0], t_eval[-1]), y0, t_eval=t_eval, rtol=1e-8, atol=1e-8)
        if not res.success:
            raise RuntimeError(f"the simulation from {y0} failed: {res.message}")
        runs.append(res.y.T)
    return np.stack(runs)


def main():
    args = script_arguments(__doc__, "solve_ivp_pipeline")
    node, params, loss_fn, data = spiral.problem()
    # --quick (CI) runs the pipeline on the untrained network: the pipeline code is what is shown here
    trained = params if args.quick else spiral.train(loss_fn, params, progress=not args.no_progress).params

    def fun(t, y):                       # the trained model as a vector field, written with JAX
        return node.vector_field(t, y, trained)

    numpy_fun = jax.jit(fun)             # what scipy calls: one compiled evaluation per call
    angles = np.linspace(0.0, 2 * np.pi, 4 if args.quick else 12, endpoint=False)
    starts = np.stack([2.0 * np.cos(angles), 2.0 * np.sin(angles)], axis=1)
    t_eval = np.linspace(0.0, 1.5, 61)

    timings = {}
    for name, solver, f in (("scipy (RK45)", scipy.integrate.solve_ivp, lambda t, y: np.asarray(numpy_fun(t, y))),
                            ("sciml (Tsit5)", sciml.solve_ivp, fun)):
        simulate(solver, f, starts[:1], t_eval)                       # warm up (sciml compiles here)
        begin = time.perf_counter()
        timings[name] = (simulate(solver, f, starts, t_eval), time.perf_counter() - begin)
    (ref, t_ref), (ours, t_ours) = timings.values()
    print(f"{len(starts)} trajectories: scipy {t_ref:.3f} s, sciml {t_ours:.3f} s; largest difference "
          f"{np.max(np.abs(ours - ref)):.2e} (both at rtol=atol=1e-8)")

    fig, ax = _plot.figure(width=5.5, height=5.0)
    for k in range(len(starts)):
        first = k == 0
        ax.plot(ref[k, :, 0], ref[k, :, 1], "-", color="0.6", lw=3, label="scipy.integrate.solve_ivp" if first else None)
        ax.plot(ours[k, :, 0], ours[k, :, 1], "--", color="C3", lw=1.2, label="sciml.solve_ivp" if first else None)
    ax.plot(starts[:, 0], starts[:, 1], "ko", ms=3, label="initial states")
    ax.set_xlabel("y1")
    ax.set_ylabel("y2")
    ax.set_title("trained spiral model, run by the same pipeline code")
    ax.legend(fontsize=8)
    print(f"figure: {_plot.save(fig, args.out, 'solve_ivp_pipeline.png')}")


if __name__ == "__main__":
    main()
