"""DAE reactor UDE: a network learns an unknown reaction rate in a reactor whose mass balance is an
algebraic equation, from noisy data, while the known rate constant is fitted beside it.

A batch reactor runs A -> B -> C. The first reaction follows an unknown rate law r1(a) (the truth,
hidden from the fit, is Michaelis-Menten: r1 = 1.0 a / (0.5 + a)); the second is first order,
r2 = k2 b, with k2 = 0.3 to be estimated. Nothing leaves the reactor, so C is not integrated but
given by the conservation law, the algebraic equation of an index-1 DAE `M y' = f(y)`:

    a' = -r1(a)
    b' =  r1(a) - k2 b
    0  =  a + b + c - total          (M = diag(1, 1, 0))

All three concentrations are measured at 41 times with noise (std 0.01, seed 0). A `sciml.UDE` keeps
the known physics (the stoichiometry, the first-order r2, the conservation law, and that r1 vanishes
without A) and learns the rest of r1: r1 = a g(a) with g a small network (softplus output, so the rate
is non-negative). Adam then L-BFGS fit the network and k2 together through `Rodas5P` solves of the
DAE (`sciml.losses.single_shooting(..., mass_matrix=M)`); --quick runs 30 Adam steps only. The script
prints the recovered k2 and the error of the learned r1 against the truth, checks that the fitted
trajectory keeps a + b + c = total, and writes dae_reactor.png (data and fit, learned rate vs truth)
into --out.

Run:  python examples/dae_reactor_ude.py [--quick] [--out DIR]
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import sciml
from sciml import layers as L
from sciml import solvers as S
from sciml.demos import _plot, script_arguments

VMAX, KM, K2 = 1.0, 0.5, 0.3             # the true rate law of A -> B and the rate constant of B -> C
TOTAL = 1.0                              # the conserved total concentration
Y0 = jnp.array([TOTAL, 0.0, 0.0])        # the reactor is loaded with A only (known)
M = np.diag([1.0, 1.0, 0.0])             # the third row is the algebraic conservation law
TS = np.linspace(0.0, 10.0, 41)
NOISE = 0.01


def true_rate(a):
    return VMAX * a / (KM + a)


def balances(u, r1, k2):
    """The right-hand side of `M y' = f`: the mass balances of A and B, then the conservation law."""
    a, b, c = u
    return jnp.stack([-r1, r1 - k2 * b, a + b + c - TOTAL])


def reduced_reactor(t, ab, args):
    """The true model as an ODE in (a, b), c eliminated by the conservation law: the data come from it
    (an explicit solve compiles in a fraction of the time of a DAE solve)."""
    a, b = ab
    return jnp.stack([-true_rate(a), true_rate(a) - K2 * b])


# the rate of A -> B: a g(a), g a network of a with a softplus output. The factor a is known physics:
# without A there is no reaction, so a cannot go negative whatever the network says.
rate_net = L.Chain(lambda u: u[..., :1],
                   L.SkipConnection(L.Chain(L.MLP(1, 1, width=8, depth=1, act="tanh"), jax.nn.softplus), "mul"))


def learned_rate(nn, a):
    """The network's rate of A -> B at concentrations ``a`` of A, shape ``a.shape``."""
    u = jnp.stack([a, jnp.zeros_like(a), jnp.zeros_like(a)], axis=-1)
    return rate_net(nn, u)[..., 0]


def known(t, u, physics):
    return balances(u, 0.0, physics["k2"])   # everything but r1, which the network supplies


def with_rate(known_part, r1):
    return known_part + jnp.concatenate([-r1, r1, jnp.zeros_like(r1)])


ude = sciml.UDE(known, rate_net, physics={"k2": 1.0}, combine=with_rate)


def main():
    args = script_arguments(__doc__, "dae_reactor_ude")
    ab = np.asarray(sciml.solve(reduced_reactor, Y0[:2], (0.0, float(TS[-1])), saveat=TS, solver=S.Tsit5(),
                                rtol=1e-10, atol=1e-12).ys)
    clean = np.column_stack([ab, TOTAL - ab.sum(axis=1)])
    data = clean + NOISE * np.random.default_rng(0).standard_normal(clean.shape)

    def loss(params):
        return sciml.losses.single_shooting(ude, params, TS, data, y0=Y0, solver=S.Rodas5P(), mass_matrix=M,
                                            rtol=1e-7, atol=1e-9)

    params = ude.init(jax.random.key(0), jnp.float64)
    start = time.perf_counter()
    phases = [sciml.Phase(optax.adam(2e-2), 30 if args.quick else 400, "Adam")]
    if not args.quick:                     # the L-BFGS polish (its compilation would dominate a quick run)
        phases.append(sciml.Phase(optax.lbfgs(), 100, "L-BFGS"))
    result = sciml.fit(loss, params, phases, progress=not args.no_progress)
    fitted = result.params
    print(f"loss {result.losses[0]:.3e} -> {result.losses[-1]:.3e} in {result.steps} steps "
          f"({time.perf_counter() - start:.1f} s); noise variance {NOISE ** 2:.1e}")

    k2 = float(fitted["physics"]["k2"])
    print(f"k2 = {k2:.4f} (truth {K2}, relative error {abs(k2 - K2) / K2:.1%})")
    a_seen = np.linspace(clean[:, 0].min(), TOTAL, 200)          # the range of A that the data visit
    r_true = true_rate(a_seen)
    r_learned = np.asarray(learned_rate(fitted["nn"], jnp.asarray(a_seen)))
    error = np.max(np.abs(r_learned - r_true)) / np.max(r_true)
    print(f"r1(a) for a in [{a_seen[0]:.3f}, {TOTAL}]: max |learned - truth| = {error:.1%} of the largest rate")

    dense_ts = np.linspace(0.0, float(TS[-1]), 401)
    # Y0 is consistent (a + b + c = total), so this solve skips the algebraic initialisation (init="none")
    trajectory = np.asarray(ude.solve(fitted, Y0, (0.0, float(TS[-1])), saveat=dense_ts, solver=S.Rodas5P(),
                                      mass_matrix=M, rtol=1e-7, atol=1e-9, init="none").ys)
    drift = np.max(np.abs(trajectory.sum(axis=1) - TOTAL))
    print(f"conservation on the fitted trajectory: max |a + b + c - total| = {drift:.1e}")

    fig, (ax0, ax1) = _plot.figure(ncols=2, width=5.5)
    for j, name in enumerate("ABC"):
        ax0.plot(TS, data[:, j], "o", ms=3, color=f"C{j}", label=f"data {name}")
        ax0.plot(dense_ts, trajectory[:, j], "-", color=f"C{j}", label=f"UDE {name}")
    ax0.set_xlabel("t")
    ax0.set_ylabel("concentration")
    ax0.set_title(f"A -> B -> C with a + b + c = {TOTAL:g} (drift {drift:.0e})")
    ax0.legend(fontsize=8, ncols=2)
    ax1.plot(a_seen, r_true, "k-", lw=2, label=f"true rate {VMAX:g} a / ({KM:g} + a)")
    ax1.plot(a_seen, np.asarray(learned_rate(params["nn"], jnp.asarray(a_seen))), ":",
             label="network, before training")
    ax1.plot(a_seen, r_learned, "--", label=f"network, trained (max error {error:.1%})")
    ax1.set_xlabel("concentration of A")
    ax1.set_ylabel("rate of A -> B")
    ax1.set_title(f"the learned rate; k2 = {k2:.3f} (truth {K2:g})")
    ax1.legend(fontsize=8)
    print(f"figure: {_plot.save(fig, args.out, 'dae_reactor.png')}")


if __name__ == "__main__":
    main()
