"""Stiff neural ODE: learn the slow reaction rate of Robertson's (ROBER) kinetics with Rodas5P.

Robertson's chemical system A -> B (k1 = 0.04, slow), 2B -> B + C (k2 = 3e7, fast), B + C -> A + C
(k3 = 1e4, fast) is the classic stiff problem: rates 9 orders of magnitude apart. Here the fast
reactions are known and the slow conversion rate r1(A) is a neural network (softplus output, so the
rate stays non-negative). Every training step solves the stiff system with the Rosenbrock method
`Rodas5P` and differentiates it with the `Interpolating` adjoint, which integrates the adjoint backward
on the stored forward dense output: stable where re-solving the stiff state backward would not be.

Run:  python examples/stiff_neural_ode.py [--quick] [--out DIR]
Writes stiff_neural_ode.png (trajectories and the learned rate) into --out.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import sciml
from sciml import adjoints as A
from sciml import layers as L
from sciml import solvers as S
from sciml.demos import _plot, script_arguments

K1, K2, K3 = 0.04, 3e7, 1e4            # Robertson's rate constants
Y0 = jnp.array([1.0, 0.0, 0.0])         # all A at t = 0
T_END = 100.0
TS = np.concatenate([[0.0], np.geomspace(1e-3, T_END, 25)])   # samples on a log scale


def kinetics(y, r1):
    """Mass action for the fast reactions, with the slow rate r1 given."""
    a, b, c = y
    return jnp.stack([-r1 + K3 * b * c, r1 - K3 * b * c - K2 * b ** 2, K2 * b ** 2])


def robertson(t, y, args):
    return kinetics(y, K1 * y[0])


rate_net = L.MLP(1, 1, width=8, depth=1, act="tanh")


def learned_rate(params, a):
    """The network's rate of A -> B as a function of the concentration of A (non-negative)."""
    return 0.1 * jax.nn.softplus(rate_net(params, a[..., None])[..., 0])


def neural_kinetics(t, y, params):
    return kinetics(y, learned_rate(params, y[0]))


def solve(field, params, **options):
    return sciml.solve(field, Y0, (0.0, T_END), args=params, saveat=TS, solver=S.Rodas5P(), rtol=1e-6,
                       atol=1e-9, max_steps=2000, **options)


def main():
    args = script_arguments(__doc__, "stiff_neural_ode")
    data = np.asarray(solve(robertson, None, adjoint=A.Direct()).ys)    # the measurements: A and C

    def loss(params):
        sol = solve(neural_kinetics, params, adjoint=A.Interpolating(), throw=False)
        return jnp.mean((sol.ys[:, [0, 2]] - data[:, [0, 2]]) ** 2)

    params, _ = rate_net.init(jax.random.key(0), jnp.float64)
    start = time.perf_counter()
    phases = [sciml.Phase(optax.adam(1e-2), 8 if args.quick else 200, "Adam")]
    if not args.quick:                     # the L-BFGS polish (its compilation is most of a quick run)
        phases.append(sciml.Phase(optax.lbfgs(), 60, "L-BFGS"))
    result = sciml.fit(loss, params, phases, progress=not args.no_progress)
    print(f"loss {result.losses[0]:.3e} -> {float(loss(result.params)):.3e} in {result.steps} steps "
          f"({time.perf_counter() - start:.1f} s, Rodas5P + Interpolating adjoint)")
    explicit = sciml.solve(robertson, Y0, (0.0, T_END), solver=S.Tsit5(), rtol=1e-6, atol=1e-9, max_steps=2000,
                           throw=False)
    print(f"for comparison, Tsit5 on the same problem: {explicit.message()}")

    fig, (ax0, ax1) = _plot.figure(ncols=2, width=5.5)
    fitted = np.asarray(solve(neural_kinetics, result.params, adjoint=A.Direct()).ys)
    for j, (name, scale) in enumerate((("A", 1.0), ("B x 1e4", 1e4), ("C", 1.0))):
        ax0.semilogx(TS[1:], scale * data[1:, j], "o", ms=4, color=f"C{j}", label=f"data {name}")
        ax0.semilogx(TS[1:], scale * fitted[1:, j], "-", color=f"C{j}", label=f"neural ODE {name}")
    ax0.set_xlabel("t")
    ax0.set_title("Robertson kinetics (B never measured)")
    ax0.legend(fontsize=8)
    a = np.linspace(data[:, 0].min(), 1.0, 100)
    ax1.plot(a, K1 * a, "k-", lw=2, label="true rate 0.04 A")
    ax1.plot(a, np.asarray(learned_rate(params, jnp.asarray(a))), ":", label="network, before training")
    ax1.plot(a, np.asarray(learned_rate(result.params, jnp.asarray(a))), "--", label="network, trained")
    ax1.set_xlabel("concentration of A")
    ax1.set_ylabel("rate of A -> B")
    ax1.set_title("the learned slow rate")
    ax1.legend(fontsize=8)
    print(f"figure: {_plot.save(fig, args.out, 'stiff_neural_ode.png')}")


if __name__ == "__main__":
    main()
