"""Streaming ensembles: `solve_ensemble(..., batch_size=k, output=, reduce=)`.

Oracles: the unchunked ensemble (trajectory i of a chunked solve is trajectory i of the whole solve; the
jax backend runs each chunk as its own vmapped batch, so it is compared bit for bit with the unchunked
solve of the same chunk shapes, and to rounding with one batch of all trajectories, which XLA may round
differently), and NumPy's mean/var/min/max/histogram of the unchunked result.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sciml
from sciml.ensemble import Fold, Histogram, MeanVar, MinMax, StreamedEnsemble
from sciml.solvers import Status
from tests.ensemble.problems import blowup, lorenz_ensemble, tolerances

N, K = 11, 4                 # 3 chunks, the last padded with one real and three copies
TS = np.linspace(0.0, 1.0, 5)
DTYPES = [np.float64, np.float32]


def _lorenz(dtype):
    f, _, t_span, _ = lorenz_ensemble(dtype)
    rho = np.linspace(0.0, 28.0, N)
    params = np.stack([np.full(N, 10.0), rho, np.full(N, 8.0 / 3.0)], axis=1).astype(dtype)
    y0s = (np.array([1.0, 0.0, 0.0]) + 0.05 * np.arange(N)[:, None]).astype(dtype)
    rtol, atol = tolerances(dtype)
    return f, y0s, t_span, dict(args=params, saveat=TS.astype(dtype), rtol=rtol, atol=atol)


def _unchunked_pieces(f, y0s, t_span, kw, backend="jax"):
    """Plain (unchunked) solves of the trajectories of each chunk, padding included, joined and cut to N:
    on the jax backend, the same vmapped program as the streamed chunks."""
    index = np.minimum(np.arange(12), N - 1).reshape(3, K)
    pieces = [sciml.solve_ensemble(f, y0s[i], t_span, backend=backend, **{**kw, "args": kw["args"][i]})
              for i in index]
    return jax.tree_util.tree_map(lambda *p: np.concatenate(p)[:N], *pieces)


@pytest.fixture(scope="module", params=DTYPES, ids=["float64", "float32"])
def lorenz(request):
    """The problem and its unchunked solution (see `_unchunked_pieces`)."""
    f, y0s, t_span, kw = _lorenz(request.param)
    return request.param, (f, y0s, t_span, kw), _unchunked_pieces(f, y0s, t_span, kw)


def _final_x(ens):
    return ens.ys[:, -1, 0]


def _assert_same_solution(got, want):
    for name in ("ts", "ys", "t_final", "y_final", "status", "_last_dt"):
        a, b = np.asarray(getattr(got, name)), np.asarray(getattr(want, name))
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    for key in ("nfev", "naccept", "nreject"):
        assert np.array_equal(np.asarray(got.stats[key]), np.asarray(want.stats[key])), key


def test_chunked_jax_is_the_unchunked_ensemble(lorenz):
    dtype, (f, y0s, t_span, kw), reference = lorenz
    chunked = sciml.solve_ensemble(f, y0s, t_span, batch_size=K, **kw)
    assert isinstance(chunked.ys, np.ndarray) and chunked.ys.shape == (N, len(TS), 3)
    _assert_same_solution(chunked, reference)  # bit for bit


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_chunked_c_is_the_unchunked_ensemble(dtype):
    f, y0s, t_span, kw = _lorenz(dtype)
    whole = sciml.solve_ensemble(f, y0s, t_span, backend="c", **kw)
    chunked = sciml.solve_ensemble(f, y0s, t_span, backend="c", batch_size=K, **kw)
    _assert_same_solution(chunked, jax.tree_util.tree_map(np.asarray, whole))  # one C lane per trajectory
    assert chunked.backend == "c" and chunked.ys.dtype == dtype
    moments = sciml.solve_ensemble(f, y0s, t_span, backend="c", batch_size=K, reduce=MeanVar(), **kw).value
    assert moments.mean.dtype == dtype and moments.variance.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 1e-5
    ys = np.asarray(whole.ys, np.float64)
    np.testing.assert_allclose(moments.mean, ys.mean(0), rtol=tol, atol=tol * np.abs(ys).max())


def test_mean_variance_against_numpy(lorenz):
    dtype, (f, y0s, t_span, kw), whole = lorenz
    result = sciml.solve_ensemble(f, y0s, t_span, batch_size=K, reduce=MeanVar(), **kw)
    ys = np.asarray(whole.ys)
    assert isinstance(result, StreamedEnsemble) and result.success and result.value.count == N
    assert result.status_counts["SUCCESS"] == N
    assert result.value.mean.dtype == dtype and result.value.variance.dtype == dtype
    # float64: to 1e-12; float32: the state's own rounding over N values
    tol = 1e-12 if dtype == np.float64 else 1e-5
    scale = np.abs(ys.astype(np.float64)).max()
    np.testing.assert_allclose(result.value.mean, ys.astype(np.float64).mean(0), rtol=tol, atol=tol * scale)
    np.testing.assert_allclose(result.value.variance, ys.astype(np.float64).var(0), rtol=tol, atol=tol * scale ** 2)
    sample = sciml.solve_ensemble(f, y0s, t_span, batch_size=K, output=_final_x, reduce=MeanVar(ddof=1), **kw)
    np.testing.assert_allclose(sample.value.variance, np.asarray(_final_x(whole), np.float64).var(ddof=1),
                               rtol=tol)


def test_mean_variance_of_large_offsets_is_stable():
    """Values 1e8 + small spread: a sum-of-squares formula loses every digit of the variance here."""
    x = 1e8 + np.random.default_rng(0).standard_normal((1000, 2))
    state = MeanVar().init(jax.ShapeDtypeStruct((100, 2), jnp.float64))
    update = jax.jit(MeanVar().update)
    for chunk in x.reshape(10, 100, 2):
        state = update(state, jnp.asarray(chunk), jnp.ones(100, bool))
    moments = MeanVar().finish(state)
    np.testing.assert_allclose(moments.mean, x.mean(0), rtol=1e-15)
    np.testing.assert_allclose(moments.variance, x.var(0), rtol=1e-8)


@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
def test_mean_variance_of_complex_values(dtype):
    """The mean keeps the complex dtype; the variance is real, the mean of |x - mean|^2 (NumPy's)."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((30, 2)) + 1j * rng.standard_normal((30, 2))).astype(dtype)
    valid = np.arange(30) % 7 != 3
    update = jax.jit(MeanVar().update)
    state = MeanVar().init(jax.ShapeDtypeStruct((10, 2), dtype))
    for chunk, mask in zip(x.reshape(3, 10, 2), valid.reshape(3, 10)):
        state = update(state, jnp.asarray(chunk), jnp.asarray(mask))
    moments = MeanVar().finish(state)
    assert moments.mean.dtype == dtype and moments.variance.dtype == np.zeros((), dtype).real.dtype
    tol = 1e-14 if dtype == np.complex128 else 1e-5
    np.testing.assert_allclose(moments.mean, x[valid].astype(np.complex128).mean(0), rtol=tol)
    np.testing.assert_allclose(moments.variance, x[valid].astype(np.complex128).var(0), rtol=tol)
    assert moments.count == valid.sum()


def test_min_max_histogram_and_fold_against_numpy(lorenz):
    dtype, (f, y0s, t_span, kw), whole = lorenz
    x = np.asarray(_final_x(whole))
    extrema = sciml.solve_ensemble(f, y0s, t_span, batch_size=K, output=_final_x, reduce=MinMax(), **kw).value
    assert extrema.min.dtype == dtype and extrema.min == x.min() and extrema.max == x.max()
    edges = np.linspace(np.floor(x.min()), np.ceil(x.max()) - 1, 6)
    hist = sciml.solve_ensemble(f, y0s, t_span, batch_size=K, output=_final_x, reduce=Histogram(edges), **kw).value
    inside = x[(x >= edges[0]) & (x <= edges[-1])]
    np.testing.assert_array_equal(hist.counts, np.histogram(inside, edges)[0])
    assert int(hist.below) == np.sum(x < edges[0]) and int(hist.above) == np.sum(x > edges[-1])
    assert int(hist.counts.sum() + hist.below + hist.above + hist.nan) == N
    total = Fold(jnp.zeros(3, dtype), lambda s, y, valid: s + jnp.sum(jnp.where(valid[:, None], y, 0), axis=0))
    summed = sciml.solve_ensemble(f, y0s, t_span, batch_size=K, output=jax.vmap(lambda sol: sol.y_final),
                                  reduce=total, **kw).value
    assert summed.dtype == dtype
    np.testing.assert_allclose(summed, np.asarray(whole.y_final).sum(0), rtol=10 * np.finfo(dtype).eps)


def test_output_alone_concatenates_in_trajectory_order(lorenz):
    dtype, (f, y0s, t_span, kw), whole = lorenz
    result = sciml.solve_ensemble(f, y0s, t_span, batch_size=K, output=jax.vmap(lambda sol: sol.ys[-1]), **kw)
    assert result.value.shape == (N, 3) and result.value.dtype == dtype
    assert np.array_equal(result.value, np.asarray(whole.ys)[:, -1])


def test_the_chunk_program_compiles_once():
    f, y0s, t_span, kw = _lorenz(np.float64)
    traces = []

    def output(ens):
        traces.append(1)
        return ens.ys[:, -1]

    sciml.solve_ensemble(f, y0s, t_span, batch_size=K, output=output, reduce=MeanVar(), **kw)  # 3 chunks
    assert len(traces) == 2  # one shape probe and one trace of the jitted chunk, whatever the chunk count


# y' = k y^2 from y0 = 1 blows up at t = 1/k: every third trajectory (k = 2) fails before t1 = 1
K_BLOWUP = np.where(np.arange(N) % 3 == 1, 2.0, 0.5)


@pytest.mark.parametrize("backend", ["jax", "c"])
def test_failures_are_counted_and_left_out_of_reductions(backend):
    y0s = np.ones((N, 1))
    kw = dict(args=K_BLOWUP, backend=backend, rtol=1e-8, atol=1e-8, max_steps=2000)
    whole = _unchunked_pieces(blowup, y0s, (0.0, 1.0), {k: v for k, v in kw.items() if k != "backend"}, backend)
    ok = np.asarray(whole.success)
    assert (~ok).sum() == 4
    result = sciml.solve_ensemble(blowup, y0s, (0.0, 1.0), batch_size=K, output=jax.vmap(lambda s: s.y_final[0]),
                                  reduce=MeanVar(), **kw)
    assert not result.success and result.first_failure == 1
    codes = np.bincount(np.asarray(whole.status), minlength=len(Status))
    assert result.status_counts == {s.name: int(codes[s]) for s in Status}
    assert result.value.count == ok.sum()
    np.testing.assert_allclose(result.value.mean, np.asarray(whole.y_final)[ok, 0].mean(), rtol=1e-12)
    assert "index 1" in result.message()
    with pytest.raises(sciml.SolveError, match=r"trajectory 1 of 11 failed.*stopped after trajectories 0\.\.3"):
        sciml.solve_ensemble(blowup, y0s, (0.0, 1.0), batch_size=K, output=jax.vmap(lambda s: s.y_final[0]),
                             reduce=MeanVar(), throw=True, **kw)


def test_progress_bar_counts_trajectories(capsys):
    f, y0s, t_span, kw = _lorenz(np.float64)
    sciml.solve_ensemble(f, y0s, t_span, batch_size=K, output=_final_x, reduce=MeanVar(), progress=True, **kw)
    assert f"{N}/{N}" in capsys.readouterr().err


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True, "8"])
def test_batch_size_must_be_a_positive_int(batch_size):
    f, y0s, t_span, kw = _lorenz(np.float64)
    with pytest.raises(ValueError, match="`batch_size` must be a positive int"):
        sciml.solve_ensemble(f, y0s, t_span, batch_size=batch_size, **kw)


def test_streaming_arguments_need_batch_size():
    f, y0s, t_span, kw = _lorenz(np.float64)
    for extra in (dict(output=_final_x), dict(reduce=MeanVar()), dict(progress=True)):
        name = next(iter(extra))
        with pytest.raises(ValueError, match=f"`{name}` stream the ensemble in chunks: pass `batch_size=`"):
            sciml.solve_ensemble(f, y0s, t_span, **extra, **kw)


def test_bad_output_and_reduce_are_named():
    f, y0s, t_span, kw = _lorenz(np.float64)
    with pytest.raises(TypeError, match="`reduce` must be a reduction"):
        sciml.solve_ensemble(f, y0s, t_span, batch_size=K, reduce=np.mean, **kw)
    with pytest.raises(TypeError, match="`output` must be a function"):
        sciml.solve_ensemble(f, y0s, t_span, batch_size=K, output=3, **kw)
    with pytest.raises(ValueError, match=r"`output` must return arrays with the chunk's trajectories .*\(here 4\)"):
        sciml.solve_ensemble(f, y0s, t_span, batch_size=K, output=lambda ens: ens.ys.sum(0), **kw)
    growing = Fold(jnp.zeros(3), lambda s, y, valid: jnp.concatenate([s, y[:, -1, 0]]))
    with pytest.raises(ValueError, match="`reduce`'s update must keep its state's structure, shapes and dtypes"):
        sciml.solve_ensemble(f, y0s, t_span, batch_size=K, reduce=growing, **kw)
    narrowing = Fold(jnp.zeros(3), lambda s, y, valid: (s + y[0, -1]).astype(jnp.float32))
    with pytest.raises(ValueError, match="`reduce`'s update must keep"):
        sciml.solve_ensemble(f, y0s, t_span, batch_size=K, reduce=narrowing, **kw)
    with pytest.raises(TypeError, match="cannot run inside `jax.jit`"):
        jax.jit(lambda y: sciml.solve_ensemble(f, y, t_span, batch_size=K, reduce=MeanVar(), **kw).value.mean)(y0s)
    with pytest.raises(TypeError, match="needs floating or complex outputs"):
        sciml.solve_ensemble(f, y0s, t_span, batch_size=K, output=lambda ens: ens.status, reduce=MeanVar(), **kw)


TWO_PROCESSES = r"""
import sys
import numpy as np, sciml
sciml.distributed.initialize()
import jax, sciml.kernel
from sciml.ensemble import MeanVar

assert jax.process_count() == 2 and jax.device_count() == 2, jax.devices()
rows = []                                    # trajectories each kernel call of this process solved
solve_c = sciml.kernel.solve_c
sciml.kernel.solve_c = lambda problem, options: rows.append(problem.n_traj) or solve_c(problem, options)
n, ts = 11, np.linspace(0.0, 1.0, 3)
ks = np.linspace(0.5, 2.0, n)
decay = lambda t, y, k: -k * y
for backend in ("jax", "c"):
    kw = dict(args=ks, saveat=ts, rtol=1e-10, atol=1e-10, backend=backend, batch_size=2)  # 2 per device
    whole = sciml.solve_ensemble(decay, np.ones((n, 1)), (0.0, 1.0), **kw)                # 3 chunks of 4
    assert whole.ys.shape == (n, 3, 1) and (whole.status == 0).all()
    np.testing.assert_allclose(whole.ys[..., 0], np.exp(-np.outer(ks, ts)), rtol=1e-8)
    result = sciml.solve_ensemble(decay, np.ones((n, 1)), (0.0, 1.0), reduce=MeanVar(), **kw)
    np.testing.assert_allclose(result.value.mean, whole.ys.mean(0), rtol=1e-12)
    np.testing.assert_allclose(result.value.variance, whole.ys.var(0), rtol=1e-12, atol=1e-16)
    assert result.value.count == n and result.status_counts["SUCCESS"] == n
assert set(rows) == {2}, rows                 # each process solved only its devices' rows of a chunk
print("two processes ok", jax.process_index())
"""


def test_streaming_over_two_processes():
    """``batch_size`` per device over a mesh that spans two processes (one CPU device each), on the jax
    and c backends: each process solves its rows of every chunk, reductions combine across processes,
    and un-reduced outputs are gathered on every process. Processes stop by themselves (bounded time)."""
    import socket

    root = Path(__file__).resolve().parents[2]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1", "JAX_PLATFORMS": "cpu",
           "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JAX_NUM_PROCESSES": "2",
           "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", TWO_PROCESSES], env={**env, "JAX_PROCESS_ID": str(i)},
                              cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    try:
        outs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for i, (p, out) in enumerate(zip(procs, outs)):
        assert p.returncode == 0 and f"two processes ok {i}" in out, out
