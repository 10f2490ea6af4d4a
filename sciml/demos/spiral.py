"""Spiral neural ODE: learn ``dy/dt = (y ** 3) @ A`` from 30 points of one trajectory.

The classic first neural ODE (torchdiffeq, DiffEqFlux): a small MLP is the whole vector field, and
the layer :class:`sciml.NeuralODE` solves it from the first data point to every sample time. Training
is Adam with a decaying learning rate, then L-BFGS; the trained model is saved with :func:`sciml.save`
so that ``sciml solve`` (or :func:`sciml.load`) can run it later.

This is the recipe behind ``sciml demo node`` and ``examples/spiral_neural_ode.py``.
"""

from __future__ import annotations

import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sciml import layers as L
from sciml.data import spiral
from sciml.demos import _plot
from sciml.io import save
from sciml.models import NeuralODE
from sciml.train import Phase, fit

#: training steps: (Adam, L-BFGS)
FULL_STEPS = (500, 300)
QUICK_STEPS = (60, 0)


def problem(seed: int = 0, dtype=jnp.float64):
    """``(node, params, loss_fn, data)``: the model, its initial params and the mean squared error."""
    data = spiral()
    node = NeuralODE(L.MLP(2, 2, width=16, depth=1, act="tanh"), t_span=(0.0, float(data.ts[-1])),
                     saveat=tuple(data.ts))
    params, _ = node.init(jax.random.key(seed), dtype)
    ys = jnp.asarray(data.ys, dtype)

    def loss_fn(p):
        return jnp.mean((node(p, ys[0]) - ys) ** 2)

    return node, params, loss_fn, data


def train(loss_fn, params, steps=FULL_STEPS, progress: bool = True):
    """Adam (learning rate 0.05, decaying tenfold) for ``steps[0]`` steps, then L-BFGS for ``steps[1]``
    (skipped when 0)."""
    return fit(loss_fn, params, _phases(*steps), progress=progress)


@functools.lru_cache(maxsize=8)
def _phases(n_adam: int, n_lbfgs: int) -> tuple[Phase, ...]:
    """The optimizers, made once per schedule: `fit` reuses its compiled step for the same objects."""
    schedule = optax.exponential_decay(0.05, n_adam, 0.1)
    phases = (Phase(optax.adam(schedule), n_adam, "Adam"), Phase(optax.lbfgs(), n_lbfgs, "L-BFGS"))
    return tuple(phase for phase in phases if phase.steps)


def run(out: str = "sciml-demo-node", quick: bool = False, progress: bool = True, seed: int = 0,
        log=print) -> dict:
    """Train the spiral, save the model to ``out/spiral_node.safetensors``, draw ``spiral.png`` and
    ``loss.png``; return a summary (final loss, model path, figures). Every file is written whole or not
    at all; without matplotlib it stops before training, with the command that installs it."""
    _plot.require_matplotlib()
    started = time.perf_counter()
    node, params, loss_fn, data = problem(seed)
    sizes = " => ".join(str(s) for s in [node.model.layers[0].in_size] + [d.out_size for d in node.model.layers])
    log(f"spiral neural ODE: {len(data.ts)} points on t in [0, {data.ts[-1]:g}]; MLP {sizes} "
        f"({L.count(params)} parameters)")
    result = train(loss_fn, params, QUICK_STEPS if quick else FULL_STEPS, progress)
    final = float(loss_fn(result.params))
    log(f"final loss (mean squared error): {final:.3e}")
    os.makedirs(out, exist_ok=True)
    model_path = os.path.join(out, "spiral_node.safetensors")
    save(model_path, result.params, model=node, metadata={"loss": final, "demo": "spiral"})
    figures = [_figure(out, node, result.params, data)]
    n_adam = (QUICK_STEPS if quick else FULL_STEPS)[0]
    figures.append(_plot.loss_curve({"Adam": result.losses[:n_adam], "L-BFGS": result.losses[n_adam:]}, out,
                                    title="spiral neural ODE: training loss"))
    log(f"model: {model_path}  (run it: sciml solve {model_path} --y0 y0.csv --t 0:1.5:31)")
    log(f"figures: {', '.join(figures)}  ({time.perf_counter() - started:.0f} s)")
    return {"loss": final, "model": model_path, "figures": figures, "params": result.params, "result": result}


def _figure(out, node, params, data) -> str:
    fine = np.linspace(0.0, data.ts[-1], 300)
    pred = np.asarray(node.solve(params, jnp.asarray(data.ys[0]), saveat=fine).ys)
    fig, (ax0, ax1) = _plot.figure(ncols=2, width=5.0)
    ax0.plot(data.ys[:, 0], data.ys[:, 1], "o", ms=4, label="data")
    ax0.plot(pred[:, 0], pred[:, 1], "-", label="neural ODE")
    ax0.set_xlabel("y1")
    ax0.set_ylabel("y2")
    ax0.set_title("phase portrait")
    ax0.legend()
    for j in range(2):
        ax1.plot(data.ts, data.ys[:, j], "o", ms=4, color=f"C{j}", label=f"data y{j + 1}")
        ax1.plot(fine, pred[:, j], "-", color=f"C{j}", label=f"neural ODE y{j + 1}")
    ax1.set_xlabel("t")
    ax1.set_title("trajectories")
    ax1.legend(fontsize=8)
    return _plot.save(fig, out, "spiral.png")
