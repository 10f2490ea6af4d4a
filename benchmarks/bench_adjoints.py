"""Gradients through an ODE solve: every sciml adjoint against diffrax (and torchdiffeq if installed).

Workload: one neural-ODE training step, the loss and its gradient. The data come from the spiral
``dy/dt = (y^3) A``, ``A = [[-0.1, 2], [-2, -0.1]]``, ``y0 = [2, 0]``, saved at 100 points of
``t in [0, 1.5]``; the model is ``dy/dt = MLP(y^3)`` with an MLP 2-64-64-2 (tanh), solved with Tsit5 at
rtol=atol=1e-6 in float64; the loss is the mean squared error at the 100 points. Both libraries get
the same parameters, data and ``max_steps`` (4096). Times are medians over interleaved repeats (each
call waited for); compile time is tracing + XLA compilation of the jitted loss-and-gradient, after a
neutral warm-up (the gradient of the field alone, once), so that the process's first-use costs fall on
neither side.

Targets: sciml's best method <= 0.7x diffrax's best; sciml's Backsolve <= 0.25x diffrax's
BacksolveAdjoint; compile time <= 0.5x diffrax's. Both sides' accepted and rejected step counts are
printed: the ratio compares equal work only where they are equal.

``--batch N`` adds the same training step on a batch of N initial states (``y0 + 0.1 * noise``, the
data solved from each), vmapped on both sides: sciml's Direct against diffrax's
RecursiveCheckpointAdjoint, twice: each library with its defaults, and with equal work (sciml's
``PIDController()`` from diffrax's effective first step, which takes exactly diffrax's steps).
Target: <= 1.0x diffrax with equal accepted steps.

    python benchmarks/bench_adjoints.py [--repeats 15] [--batch 256]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import sciml  # noqa: E402
from benchmarks._timing import compiled, interleaved_medians, ms, table, us  # noqa: E402
from sciml import adjoints as A  # noqa: E402
from sciml import layers as L  # noqa: E402
from sciml import solvers as S  # noqa: E402

MAX_STEPS = 4096
TOL = 1e-6
SPIRAL = np.array([[-0.1, 2.0], [-2.0, -0.1]])
Y0 = jnp.array([2.0, 0.0])
TS = jnp.linspace(0.0, 1.5, 100)
MODEL = L.MLP(2, 2, width=64, depth=2, act="tanh")

METHODS = {
    "Direct": A.Direct(),
    "Direct(checkpoints=8)": A.Direct(checkpoints=8),
    "Backsolve": A.Backsolve(),
    "Interpolating": A.Interpolating(),
    "Quadrature": A.Quadrature(),
    "Forward": A.Forward(),
}


def data():
    sol = sciml.solve(lambda t, y, a: (y ** 3) @ a, Y0, (0.0, 1.5), args=jnp.asarray(SPIRAL), saveat=TS,
                      rtol=1e-10, atol=1e-10)
    return sol.ys


def field(t, y, params):
    return MODEL(params, y ** 3)


def sciml_step(adjoint):
    def loss(params, target):
        sol = sciml.solve(field, Y0, (0.0, 1.5), args=params, saveat=TS, rtol=TOL, atol=TOL,
                          max_steps=MAX_STEPS, adjoint=adjoint)
        return jnp.mean((sol.ys - target) ** 2)

    return jax.jit(jax.value_and_grad(loss))


def sciml_steps(y0, **solve_options):
    """Accepted and rejected steps of sciml's forward solve from ``y0`` (the default controller unless
    ``solve_options`` say otherwise)."""
    def run(params):
        sol = sciml.solve(field, y0, (0.0, 1.5), args=params, saveat=TS, rtol=TOL, atol=TOL, max_steps=MAX_STEPS,
                          **solve_options)
        return sol.stats["naccept"], sol.stats["nreject"]
    return run


def diffrax_steps(y0):
    import diffrax

    def run(params):
        sol = diffrax.diffeqsolve(diffrax.ODETerm(field), diffrax.Tsit5(), 0.0, 1.5, None, y0, args=params,
                                  saveat=diffrax.SaveAt(ts=TS), max_steps=MAX_STEPS,
                                  stepsize_controller=diffrax.PIDController(rtol=TOL, atol=TOL))
        return sol.stats["num_accepted_steps"], sol.stats["num_rejected_steps"]
    return run


#: diffrax 0.7 makes its first-step guess only for a bare ``ODETerm``; ``diffeqsolve`` wraps the term
#: first, so every solve starts with dt0 = 0.01 and then grows by up to 10x a step (its PID defaults).
#: sciml's ``PIDController()`` with the same dt0 takes exactly diffrax's steps: equal work.
SAME_WORK = {"controller": S.PIDController(), "dt0": 0.01}


def batch_steps(n: int, **solve_options):
    """(sciml Direct, diffrax RecursiveCheckpointAdjoint) loss-and-gradient on a batch of ``n`` initial
    states, and their arguments. ``solve_options`` go to sciml's solves (e.g. ``SAME_WORK``)."""
    import diffrax

    y0s = Y0 + 0.1 * jax.random.normal(jax.random.PRNGKey(1), (n, 2), jnp.float64)
    spiral = lambda t, y, a: (y ** 3) @ a  # noqa: E731
    targets = jax.vmap(lambda y0: sciml.solve(spiral, y0, (0.0, 1.5), args=jnp.asarray(SPIRAL), saveat=TS,
                                              rtol=1e-10, atol=1e-10).ys)(y0s)

    def ours(params, y0s, targets):
        def one(y0, target):
            sol = sciml.solve(field, y0, (0.0, 1.5), args=params, saveat=TS, rtol=TOL, atol=TOL,
                              max_steps=MAX_STEPS, adjoint=A.Direct(), **solve_options)
            return jnp.mean((sol.ys - target) ** 2)
        return jnp.mean(jax.vmap(one)(y0s, targets))

    def theirs(params, y0s, targets):
        def one(y0, target):
            sol = diffrax.diffeqsolve(diffrax.ODETerm(field), diffrax.Tsit5(), 0.0, 1.5, None, y0, args=params,
                                      saveat=diffrax.SaveAt(ts=TS), max_steps=MAX_STEPS,
                                      stepsize_controller=diffrax.PIDController(rtol=TOL, atol=TOL))
            return jnp.mean((sol.ys - target) ** 2)
        return jnp.mean(jax.vmap(one)(y0s, targets))

    return (jax.jit(jax.value_and_grad(ours)), jax.jit(jax.value_and_grad(theirs))), (y0s, targets)


def diffrax_step(adjoint_name):
    import diffrax

    adjoint = {"RecursiveCheckpointAdjoint": diffrax.RecursiveCheckpointAdjoint(),
               "BacksolveAdjoint": diffrax.BacksolveAdjoint()}[adjoint_name]

    def loss(params, target):
        sol = diffrax.diffeqsolve(diffrax.ODETerm(field), diffrax.Tsit5(), 0.0, 1.5, None, Y0, args=params,
                                  saveat=diffrax.SaveAt(ts=TS), max_steps=MAX_STEPS, adjoint=adjoint,
                                  stepsize_controller=diffrax.PIDController(rtol=TOL, atol=TOL))
        return jnp.mean((sol.ys - target) ** 2)

    return jax.jit(jax.value_and_grad(loss))


def torchdiffeq_steps(params, target):
    """torchdiffeq's odeint (backprop through the solver) and odeint_adjoint, or {} if not installed."""
    try:
        import torch
        import torchdiffeq
    except ImportError:
        return {}
    torch.set_default_dtype(torch.float64)
    net = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(),
                              torch.nn.Linear(64, 2))
    with torch.no_grad():
        for layer, name in zip((net[0], net[2], net[4]), ("layer_0", "layer_1", "layer_2")):
            layer.weight.copy_(torch.tensor(np.asarray(params[name]["weight"]).T))
            layer.bias.copy_(torch.tensor(np.asarray(params[name]["bias"])))

    class Field(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, t, y):
            return self.net(y ** 3)

    func, y0 = Field(), torch.tensor(np.asarray(Y0))
    ts, tgt = torch.tensor(np.asarray(TS)), torch.tensor(np.asarray(target))

    def step(odeint):
        def run():
            func.zero_grad()
            loss = torch.mean((odeint(func, y0, ts, rtol=TOL, atol=TOL, method="dopri5") - tgt) ** 2)
            loss.backward()
            return loss.detach()
        return run

    return {"torchdiffeq odeint": step(torchdiffeq.odeint), "torchdiffeq odeint_adjoint": step(torchdiffeq.odeint_adjoint)}


def batch_row(n: int, params, label: str, solve_options: dict, repeats: int) -> float:
    """Time one batched training step against diffrax's and print the ratio and both step counts."""
    (ours_b, theirs_b), (y0s, targets) = batch_steps(n, **solve_options)
    b_args = (params, y0s, targets)
    run_ours, c_ours = compiled(ours_b, *b_args)
    run_theirs, c_theirs = compiled(theirs_b, *b_args)
    t_ours, t_theirs = interleaved_medians([(run_ours, b_args), (run_theirs, b_args)], max(3, repeats // 3))
    ours_n = jax.jit(jax.vmap(lambda y0: sciml_steps(y0, **solve_options)(params)))(y0s)
    theirs_n = jax.jit(jax.vmap(lambda y0: diffrax_steps(y0)(params)))(y0s)
    print(f"batch of {n} ({label}): sciml Direct {ms(t_ours)} vs diffrax RecursiveCheckpointAdjoint "
          f"{ms(t_theirs)}: {t_ours / t_theirs:.2f}x (compile {c_ours / c_theirs:.2f}x); accepted steps "
          f"summed sciml {int(jnp.sum(ours_n[0]))} vs diffrax {int(jnp.sum(theirs_n[0]))}, rejected "
          f"{int(jnp.sum(ours_n[1]))} vs {int(jnp.sum(theirs_n[1]))}")
    return t_ours / t_theirs


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--methods", nargs="*", default=list(METHODS), help="sciml methods to time")
    parser.add_argument("--batch", type=int, default=0, help="also time a batch of this many initial states")
    opts = parser.parse_args(argv)
    params, _ = MODEL.init(jax.random.PRNGKey(0), dtype=jnp.float64)
    target = data()
    args = (params, target)
    # Neutral warm-up: JAX's first traces of the field's operations and of their derivatives cost
    # ~0.1-0.3 s once per process; whichever side compiled first would pay them, so neither does.
    jax.block_until_ready(jax.jit(jax.grad(lambda p: jnp.sum(field(0.0, Y0, p) ** 2)))(params))

    entries = [(f"sciml {name}", sciml_step(METHODS[name])) for name in opts.methods]
    entries += [(f"diffrax {name}", diffrax_step(name)) for name in ("RecursiveCheckpointAdjoint", "BacksolveAdjoint")]
    executables, compile_s, grads = {}, {}, {}
    for label, step in entries:
        executables[label], compile_s[label] = compiled(step, *args)
        grads[label] = executables[label](*args)[1]
    times = dict(zip(executables, interleaved_medians([(executables[k], args) for k in executables], opts.repeats)))

    for label, run in torchdiffeq_steps(params, target).items():
        run()
        samples = []
        for _ in range(max(3, opts.repeats // 3)):
            start = time.perf_counter()
            run()
            samples.append(time.perf_counter() - start)
        times[label], compile_s[label] = float(np.median(samples)), float("nan")

    reference = grads["diffrax RecursiveCheckpointAdjoint"]
    flat = lambda g: np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(g)])  # noqa: E731
    diffrax_best = min(times["diffrax RecursiveCheckpointAdjoint"], times["diffrax BacksolveAdjoint"])
    diffrax_compile = min(compile_s["diffrax RecursiveCheckpointAdjoint"], compile_s["diffrax BacksolveAdjoint"])
    rows = []
    for label in times:
        err = (np.linalg.norm(flat(grads[label]) - flat(reference)) / np.linalg.norm(flat(reference))
               if label in grads else float("nan"))
        rows.append([label, us(times[label]), f"{times[label] / diffrax_best:.2f}", ms(compile_s[label])
                     if np.isfinite(compile_s[label]) else "-",
                     f"{compile_s[label] / diffrax_compile:.2f}" if np.isfinite(compile_s[label]) else "-",
                     f"{err:.1e}"])
    print(f"neural-ODE step (MLP 2-64-64-2 tanh, Tsit5, rtol=atol={TOL}, 100 saves, float64, "
          f"max_steps={MAX_STEPS} for both libraries); ratios against diffrax's best")
    print(table(["method", "loss+grad", "x diffrax", "compile", "x diffrax", "grad vs diffrax"], rows,
                [34, 12, 10, 9, 10, 16]))
    ours = {k: v for k, v in times.items() if k.startswith("sciml")}
    best = min(ours, key=ours.get)
    summary = {
        "best": best,
        "best_ratio": ours[best] / diffrax_best,
        "backsolve_ratio": times.get("sciml Backsolve", float("nan")) / times["diffrax BacksolveAdjoint"],
        "compile_ratio": min(v for k, v in compile_s.items() if k.startswith("sciml")) / diffrax_compile,
    }
    print(f"best sciml: {best} at {summary['best_ratio']:.2f}x diffrax's best (target <= 0.7); Backsolve "
          f"{summary['backsolve_ratio']:.2f}x diffrax's BacksolveAdjoint (target <= 0.25); fastest compile "
          f"{summary['compile_ratio']:.2f}x diffrax's (target <= 0.5)")
    ours_steps = [int(x) for x in jax.jit(sciml_steps(Y0))(params)]
    their_steps = [int(x) for x in jax.jit(diffrax_steps(Y0))(params)]
    same_steps = [int(x) for x in jax.jit(sciml_steps(Y0, **SAME_WORK))(params)]
    print(f"steps (accepted, rejected): sciml {tuple(ours_steps)} (with diffrax's controller and first step "
          f"{tuple(same_steps)}), diffrax {tuple(their_steps)}")
    summary["steps"] = (ours_steps, their_steps)
    if opts.batch:
        summary["batch"] = {label: batch_row(opts.batch, params, label, options, opts.repeats)
                            for label, options in (("defaults", {}), ("same work", SAME_WORK))}
    if "torchdiffeq odeint" not in times:
        print("torchdiffeq: not installed, skipped")
    return summary


if __name__ == "__main__":
    main()
