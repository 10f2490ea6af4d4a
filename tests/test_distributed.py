"""Multi-process programs on JAX's distributed runtime (`sciml.distributed`): 2 local CPU processes, one
device each, coordinator on 127.0.0.1, every run under a hard deadline (`tests/processes.py`).

The oracle of every multi-process result is the same computation in one process: an ensemble gives
the single-process statuses and step counts exactly and the states to rounding (jax) or exactly (the
C kernel solves each trajectory alone); a data-parallel `fit` over a batch split across processes
reaches the parameters of one process with the whole batch after 20 steps (float64, to 1e-12), also
when it is stopped, and every process restarted and resumed from the checkpoint process 0 wrote.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import sciml
from sciml.distributed import DistributedError, settings
from tests.processes import ROOT, report, run_processes

# -- reading the settings (no processes) ----------------------------------------------------------


def test_settings_come_from_arguments_then_jax_variables_then_slurm():
    slurm = {"SLURM_PROCID": "3", "SLURM_NTASKS": "4", "SLURM_STEP_NODELIST": "node[007-010],gpu2",
             "SLURM_JOB_ID": "4097"}
    assert settings(None, None, None, slurm) == ("node007:61441", 4, 3)
    env = {**slurm, "JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"}
    assert settings(None, None, None, env) == ("10.0.0.1:1234", 2, 1)
    assert settings("127.0.0.1:99", 8, 5, env) == ("127.0.0.1:99", 8, 5)


@pytest.mark.parametrize("kw, match", [
    (dict(env={}), r"needs `coordinator_address`, `num_processes`, `process_id`"),
    (dict(num_processes=2, process_id=2), r"`process_id` must be an int in \[0, 2\)"),
    (dict(num_processes=0, process_id=0), r"`num_processes` must be a positive int"),
    (dict(coordinator_address="localhost", num_processes=2, process_id=0), r"must be 'host:port'"),
    (dict(env={"JAX_NUM_PROCESSES": "two"}), r"JAX_NUM_PROCESSES='two' must be an integer"),
])
def test_bad_settings_name_the_setting_and_where_it_is_read(kw, match):
    env = kw.pop("env", {"JAX_COORDINATOR_ADDRESS": "127.0.0.1:1234"})
    args = (kw.get("coordinator_address"), kw.get("num_processes"), kw.get("process_id"), env)
    with pytest.raises(ValueError, match=match):
        settings(*args)


def test_initialize_after_jax_started_is_refused_with_the_fix():
    import jax

    jax.devices()   # JAX has started in this process
    with pytest.raises(DistributedError, match=r"before any JAX work"):
        sciml.distributed.initialize("127.0.0.1:1234", 2, 0)


def test_a_process_started_as_one_of_several_refuses_to_work_alone(monkeypatch):
    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
    with pytest.raises(DistributedError, match=r"JAX_NUM_PROCESSES=2.*call `sciml.distributed.initialize\(\)`"):
        sciml.distributed.global_batch(np.ones(4))
    with pytest.raises(DistributedError, match=r"`solve_ensemble\(backend=\"c\"\)` runs in a process"):
        sciml.solve_ensemble(lambda t, y, k: -k * y, np.ones((2, 1)), (0.0, 1.0), args=np.ones(2), backend="c")


# -- ensembles over several processes -----------------------------------------------------------

PROBLEM = r"""
import numpy as np
def lorenz(t, u, p):
    import jax.numpy as jnp
    return jnp.stack([p[0] * (u[1] - u[0]), u[0] * (p[1] - u[2]) - u[1], u[0] * u[1] - p[2] * u[2]])
N = 7                                                     # odd: padded to a multiple of the devices
PARAMS = np.stack([np.full(N, 10.0), np.linspace(0.0, 28.0, N), np.full(N, 8.0 / 3.0)], axis=1)
Y0S = np.array([1.0, 0.0, 0.0]) + 0.1 * np.arange(N)[:, None]
KW = dict(saveat=np.linspace(0.0, 1.0, 5), rtol=1e-8, atol=1e-8, max_steps=60)   # some hit max_steps
FIELDS = ("ys", "t_final", "y_final", "status")
"""

ENSEMBLE = PROBLEM + r"""
import sys, jax, jax.numpy as jnp, sciml
sciml.distributed.initialize()
out, me = sys.argv[1], jax.process_index()
found = {}
for backend in ("jax", "c"):
    ens = sciml.solve_ensemble(lorenz, Y0S, (0.0, 1.0), args=PARAMS, backend=backend, **KW)
    assert not ens.ys.is_fully_addressable, "not a global array"
    for name in FIELDS:
        found[f"{backend}_{name}"] = sciml.distributed.to_host(getattr(ens, name))
    for name in ("nfev", "naccept", "nreject"):
        found[f"{backend}_{name}"] = sciml.distributed.to_host(ens.stats[name])
    try:
        ens.raise_if_failed()
    except sciml.SolveError as err:
        print(f"ENSEMBLE-ERROR {backend}: {err}", flush=True)
np.savez(f"{out}/ensemble_{me}.npz", **found)

# throw=True inside a jitted step over a batch split across the processes: every process raises
def final(p, y0):
    return sciml.solve(lorenz, y0, (0.0, 1.0), args=p, **KW).y_final
step = jax.jit(jax.vmap(final))
per = 8 // jax.process_count()                            # 8 rows: N plus a copy of the first
mine = slice(me * per, me * per + per)
rows = np.concatenate([PARAMS, PARAMS[:1]]), np.concatenate([Y0S, Y0S[:1]])
batch = sciml.distributed.global_batch((rows[0][mine], rows[1][mine]))
try:
    jax.block_until_ready(step(*batch))
    print("JIT-NO-ERROR", flush=True)
except Exception as err:
    line = next(l for l in str(err).splitlines() if "SolveError:" in l)
    print("JIT-ERROR", line.split("SolveError:", 1)[1].strip(), flush=True)
"""


@pytest.fixture(scope="module")
def problem():
    namespace = {}
    exec(PROBLEM, namespace)
    return namespace


# 2 processes in the default run (the "within a few minutes" of CI: ~15 s); 4 with the slow set
@pytest.mark.parametrize("n", [2, pytest.param(4, marks=pytest.mark.slow)])
def test_ensemble_over_several_processes_is_the_single_process_ensemble(problem, tmp_path, n):
    results = run_processes(ENSEMBLE, n, args=[tmp_path], timeout=300 * n // 2)
    assert all(r.returncode == 0 for r in results), report(results)
    p = problem
    for backend in ("jax", "c"):
        one = sciml.solve_ensemble(p["lorenz"], p["Y0S"], (0.0, 1.0), args=p["PARAMS"], backend=backend, **p["KW"])
        assert set(np.asarray(one.status).tolist()) == {0, 1}, "the oracle should mix successes and failures"
        for me in range(n):
            got = np.load(tmp_path / f"ensemble_{me}.npz")
            np.testing.assert_array_equal(got[f"{backend}_status"], one.status)
            for name in ("nfev", "naccept", "nreject"):
                np.testing.assert_array_equal(got[f"{backend}_{name}"], one.stats[name])
            for name in ("ys", "t_final", "y_final"):
                if backend == "c":            # the kernel solves each trajectory alone: the same bits
                    np.testing.assert_array_equal(got[f"c_{name}"], getattr(one, name))
                else:   # XLA's code for a batch of 2, 4 and 7 may round differently: the step-size
                        # control turns that into t_final 5e-11 apart on a trajectory stopped by max_steps
                        # (4 processes), y_final 3e-9 apart; agreement to about the solve's rtol of 1e-8
                    np.testing.assert_allclose(got[f"jax_{name}"], getattr(one, name), rtol=1e-7, atol=1e-7)
        errors = [[line for line in r.output.splitlines() if line.startswith(f"ENSEMBLE-ERROR {backend}")]
                  for r in results]
        assert all(e == errors[0] for e in errors) and len(errors[0]) == 1, report(results)
        bad = np.flatnonzero(np.asarray(one.status) != 0)
        assert f"{bad.size} of 7 trajectories failed; the first (index {bad[0]})" in errors[0][0]
    jit_errors = [[line for line in r.output.splitlines() if line.startswith("JIT-")] for r in results]
    assert all(e == jit_errors[0] for e in jit_errors), report(results)   # every process raised, the same error
    assert jit_errors[0][0].startswith(f"JIT-ERROR {bad.size} of 8 trajectories failed; trajectory {bad[0]} of 8:")
    assert "max_steps=60" in jit_errors[0][0]


# -- data-parallel training ---------------------------------------------------------------------

TRAINING = r"""
import numpy as np, jax, jax.numpy as jnp, optax, sciml
from sciml import layers as L
node = sciml.NeuralODE(L.MLP(2, 2, 4, 1, act="tanh"), (0.0, 1.0), saveat=(1.0,), rtol=1e-8, atol=1e-8)
PARAMS0, _ = node.init(jax.random.PRNGKey(0), jnp.float64)
rng = np.random.default_rng(0)
Y0 = rng.normal(size=(8, 2))
TARGET = np.stack([np.cos(1.0) * Y0[:, 0], -Y0[:, 1]], 1)
def loss(params, batch):
    y0, target = batch
    return jnp.mean((node(params, y0).reshape(y0.shape) - target) ** 2)
OPTIMIZER, STEPS = optax.adam(1e-2), 20
"""

FIT = "import sciml\nsciml.distributed.initialize()\n" + TRAINING + r"""
import sys, sciml.train
out, stage, me = sys.argv[1], sys.argv[2], jax.process_index()
writes = []
real_write = sciml.train.write_checkpoint
sciml.train.write_checkpoint = lambda *a: (writes.append(a[0]), real_write(*a))
per = 8 // jax.process_count()
rows = slice(me * per, me * per + per)
batch = sciml.distributed.global_batch((Y0[rows], TARGET[rows]))
stop_at_12 = [lambda info: info.step == 11] if stage == "first" else []
result = sciml.fit(loss, PARAMS0, OPTIMIZER, STEPS, data=batch, progress=False, callbacks=stop_at_12,
                   checkpoint=f"{out}/run.sciml", checkpoint_every=5, resume=stage == "resume")
leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(result.params)]
np.savez(f"{out}/{stage}_{me}.npz", losses=result.losses, *leaves)
print("WRITES", me, len(writes), result.steps, result.reason, flush=True)
"""


@pytest.mark.parametrize("n", [2, pytest.param(4, marks=pytest.mark.slow)])   # 2: ~40 s of the default run
def test_data_parallel_fit_over_processes_is_one_process_with_the_whole_batch(tmp_path, n):
    namespace = {}
    exec(TRAINING, namespace)
    batch = (namespace["Y0"], namespace["TARGET"])
    one = sciml.fit(namespace["loss"], namespace["PARAMS0"], namespace["OPTIMIZER"], namespace["STEPS"],
                    data=batch, progress=False)
    want = [np.asarray(x) for x in __import__("jax").tree_util.tree_leaves(one.params)]

    first = run_processes(FIT, n, args=[tmp_path, "first"], timeout=300 * n // 2)
    assert all(r.returncode == 0 for r in first), report(first)
    # stopped by the callback after 12 steps: checkpoints at 5 and 10 and on stopping, by process 0 only
    assert "WRITES 0 3 12 callback" in first[0].output, report(first)
    assert all(f"WRITES {me} 0 12 callback" in first[me].output for me in range(1, n)), report(first)
    resumed = run_processes(FIT, n, args=[tmp_path, "resume"], timeout=300 * n // 2)
    assert all(r.returncode == 0 for r in resumed), report(resumed)
    assert "WRITES 0 3 20 completed" in resumed[0].output, report(resumed)
    for me in range(n):
        got = np.load(tmp_path / f"resume_{me}.npz")
        np.testing.assert_allclose(got["losses"], one.losses, rtol=1e-12)
        for k, leaf in enumerate(want):
            np.testing.assert_allclose(got[f"arr_{k}"], leaf, rtol=1e-12, atol=1e-14)


# -- failures of the program itself: bounded, with an error --------------------------------------

DIES = r"""
import os, jax, numpy as np, sciml
sciml.distributed.initialize(heartbeat_timeout=5)
if jax.process_index() == 1:
    os._exit(3)                                  # dies without a word
x = sciml.distributed.global_batch(np.ones(1))
print(float(jax.jit(lambda x: x.sum())(x)))      # waits for process 1, which never comes
print("NOT-REACHED", flush=True)
"""


def test_a_dead_process_stops_the_others_with_an_error_in_bounded_time():
    results = run_processes(DIES, 2, timeout=120)
    assert results[1].returncode == 3
    assert results[0].returncode not in (0, None), report(results)   # None: still waiting at the deadline
    assert "NOT-REACHED" not in results[0].output
    assert "unhealthy" in results[0].output or "heartbeat" in results[0].output, report(results)


MISMATCH = r"""
import os, sciml
count = 3 if os.environ["JAX_PROCESS_ID"] == "1" else 2
sciml.distributed.initialize(num_processes=count, heartbeat_timeout=5)
"""


def test_processes_started_with_different_counts_are_refused():
    results = run_processes(MISMATCH, 2, timeout=120)
    assert results[1].returncode not in (0, None), report(results)
    assert ("this process (id 1) was started with `num_processes=3` but the coordinator (process 0) with 2"
            in results[1].output), report(results)


# -- the documented example ---------------------------------------------------------------------


@pytest.mark.slow
def test_the_two_process_example_of_the_docs_runs(tmp_path):
    page = (ROOT / "docs" / "scale.md").read_text()
    example = re.search(r"^```py\n(# two_processes\.py.*?)^```$", page, re.MULTILINE | re.DOTALL).group(1)
    results = run_processes(example, 2, timeout=300, cwd=tmp_path)
    assert all(r.returncode == 0 for r in results), report(results)
    lines = [[line.split()[1:] for line in r.output.splitlines() if line.startswith(f"{me} ")]
             for me, r in enumerate(results)]
    assert len(lines[0]) == 1 and lines[0] == lines[1], report(results)     # the same losses on both
    first, last = map(float, lines[0][0])
    assert last < first
