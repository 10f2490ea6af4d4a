"""Generated inputs of a streamed ensemble: `solve_ensemble(f, None, t_span, inputs=make, n_trajectories=N,
batch_size=k, ...)`.

Oracle: the same ensemble given as arrays (`y0s`, `args`), streamed in the same chunks: each chunk is the
same problem, so statuses, states, reductions and concatenated outputs are equal bit for bit, on the jax
backend (the same vmapped program per chunk) and the C kernel (one lane per trajectory).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sciml
from sciml.ensemble import MeanVar
from tests.ensemble.problems import blowup
from tests.ensemble.test_streaming import DTYPES, K, N, _assert_same_solution, _final_x, _lorenz


def _generators(y0s, params):
    """The same inputs from a NumPy function (called on the host) and a jax.numpy one (jitted)."""
    seen = []

    def on_host(indices):
        indices = np.asarray(indices)          # NumPy: JAX cannot trace this, so it runs on the host
        seen.append(indices)
        return y0s[indices], params[indices]

    def traced(indices):
        return jnp.asarray(y0s)[indices], jnp.asarray(params)[indices]

    return on_host, traced, seen


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("backend", ["jax", "c"])
def test_generated_inputs_are_the_given_arrays(backend, dtype):
    f, y0s, t_span, kw = _lorenz(dtype)
    params = kw.pop("args")
    on_host, traced, seen = _generators(y0s, params)
    kw.update(backend=backend, batch_size=K)  # 3 chunks, the last padded
    generated = dict(inputs=on_host, n_trajectories=N)

    whole = sciml.solve_ensemble(f, y0s, t_span, args=params, **kw)
    _assert_same_solution(sciml.solve_ensemble(f, None, t_span, **generated, **kw), whole)
    assert [list(i) for i in seen] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10]]   # each index once, in order
    assert all(i.dtype == np.int64 for i in seen)

    moments = sciml.solve_ensemble(f, y0s, t_span, args=params, reduce=MeanVar(), **kw)
    for make in (on_host, traced):
        got = sciml.solve_ensemble(f, None, t_span, inputs=make, n_trajectories=N, reduce=MeanVar(), **kw)
        assert got.value.mean.dtype == dtype and got.value.count == N
        assert np.array_equal(got.value.mean, moments.value.mean)
        assert np.array_equal(got.value.variance, moments.value.variance)
        assert got.status_counts == moments.status_counts and got.success

    outputs = sciml.solve_ensemble(f, None, t_span, **generated, output=_final_x, **kw)
    assert outputs.value.dtype == dtype and np.array_equal(outputs.value, whole.ys[:, -1, 0])


def test_a_traced_generator_compiles_once_per_chunk_shape(capsys):
    f, y0s, t_span, kw = _lorenz(np.float64)
    params = kw.pop("args")
    traces = []

    def make(indices):
        traces.append(indices.shape)
        return jnp.asarray(y0s)[indices], jnp.asarray(params)[indices]

    result = sciml.solve_ensemble(f, None, t_span, inputs=make, n_trajectories=N, batch_size=K, output=_final_x,
                                  progress=True, **kw)
    assert traces == [(K,), (N % K,)]        # jitted: the full chunks, then the shorter last one
    assert result.value.shape == (N,) and f"{N}/{N}" in capsys.readouterr().err


# y' = k y^2 from y0 = 1 blows up at t = 1/k: only trajectory 9 (k = 2, in the last chunk) fails before t1 = 1
def _blowup_inputs(indices):
    k = np.where(np.asarray(indices) == 9, 2.0, 0.5)
    return np.ones((len(k), 1)), k


@pytest.mark.parametrize("backend", ["jax", "c"])
def test_a_failure_is_named_by_its_global_index(backend):
    kw = dict(inputs=_blowup_inputs, n_trajectories=N, batch_size=K, backend=backend, rtol=1e-8, atol=1e-8,
              max_steps=2000)
    result = sciml.solve_ensemble(blowup, None, (0.0, 1.0), output=jax.vmap(lambda s: s.y_final[0]),
                                  reduce=MeanVar(), **kw)
    assert result.first_failure == 9 and result.value.count == N - 1 and "index 9" in result.message()
    assert result.status_counts["SUCCESS"] == N - 1
    with pytest.raises(sciml.SolveError, match=r"trajectory 9 of 11 failed.*stopped after trajectories 0\.\.10"):
        sciml.solve_ensemble(blowup, None, (0.0, 1.0), reduce=MeanVar(), throw=True, **kw)


def _misuse_problem():
    f, y0s, t_span, kw = _lorenz(np.float64)
    params = kw.pop("args")
    return f, y0s, params, t_span, kw


def test_misuses_of_inputs_are_named():
    f, y0s, params, t_span, kw = _misuse_problem()
    on_host, _, _ = _generators(y0s, params)
    gen = dict(inputs=on_host, n_trajectories=N)
    cases = [
        (dict(**gen), ValueError, "`inputs` generates each chunk's .* pass `batch_size=`"),
        (dict(**gen, batch_size=K, y0s=y0s), ValueError, "`y0s` must be None with `inputs=`"),
        (dict(**gen, batch_size=K, args=params), ValueError, "`args` must be None with `inputs=`"),
        (dict(inputs=on_host, batch_size=K), ValueError, "`inputs=` needs .* `n_trajectories=N`"),
        (dict(n_trajectories=N, batch_size=K, y0s=y0s, args=params), ValueError,
         "`n_trajectories` counts the trajectories that `inputs=` generates"),
        (dict(inputs=on_host, n_trajectories=0, batch_size=K), ValueError, "`n_trajectories` must be a positive int"),
        (dict(inputs=y0s, n_trajectories=N, batch_size=K), TypeError, "`inputs` must be a function of a chunk's"),
        (dict(inputs=lambda i: y0s[i], n_trajectories=N, batch_size=K), TypeError,
         r"`inputs` must return a pair `\(y0s, args\)`.*chunk 0 \(trajectories 0..3\)"),
        (dict(inputs=lambda i: (y0s[:3], params[i]), n_trajectories=N, batch_size=K), ValueError,
         r"`inputs` returned `y0s` of shapes \[\(3, 3\)\] for chunk 0 .* one entry per index \(4\)"),
        (dict(inputs=lambda i: (y0s[i], params[:2]), n_trajectories=N, batch_size=K), ValueError,
         r"`inputs` returned `args` that do not fit chunk 0 .*leading axis must have one entry per trajectory"),
    ]
    for extra, error, message in cases:
        call = dict(y0s=None, args=None, **kw)
        call.update(extra)
        with pytest.raises(error, match=message):
            sciml.solve_ensemble(f, call.pop("y0s"), t_span, **call)


@pytest.mark.parametrize("change", ["dtype", "shape"])
def test_a_chunk_that_changes_its_inputs_is_named(change):
    f, y0s, params, t_span, kw = _misuse_problem()

    def make(indices):
        y = y0s[indices]
        if indices[0] >= K:    # every chunk after the first
            y = y.astype(np.float32) if change == "dtype" else np.concatenate([y, y], axis=1)
        return y, params[indices]

    with pytest.raises(ValueError, match=r"`inputs` returned `y0s` leaves \['float(32|64)\[k, [36]\]'\].* for chunk 1 "
                                         r"\(trajectories 4..7\), but `y0s` leaves \['float64\[k, 3\]'\]"):
        sciml.solve_ensemble(f, None, t_span, inputs=make, n_trajectories=N, batch_size=K, reduce=MeanVar(), **kw)


def test_inputs_are_refused_in_a_multi_process_program(monkeypatch):
    f, y0s, params, t_span, kw = _misuse_problem()
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    with pytest.raises(ValueError, match="`inputs=` is not supported in a multi-process program"):
        sciml.solve_ensemble(f, None, t_span, inputs=lambda i: (y0s[i], params[i]), n_trajectories=N,
                             batch_size=K, **kw)


def _scaled_lorenz(t, y, args):
    params, scale = args
    return _lorenz(np.float64)[0](t, y, params) * scale


@pytest.mark.parametrize("backend", ["jax", "c"])
def test_shared_arguments_come_from_each_chunk(backend):
    """`args_axes` marks a leaf shared: `inputs` returns it with every chunk, unbatched."""
    f, y0s, t_span, kw = _lorenz(np.float64)
    params = kw.pop("args")
    kw.update(backend=backend, batch_size=K, args_axes=(0, None), output=_final_x)
    scale = np.array([1.0, 0.5, 2.0])
    given = sciml.solve_ensemble(_scaled_lorenz, y0s, t_span, args=(params, scale), **kw)
    made = sciml.solve_ensemble(_scaled_lorenz, None, t_span, inputs=lambda i: (y0s[i], (params[i], scale)),
                                n_trajectories=N, **kw)
    assert np.array_equal(made.value, given.value) and made.status_counts == given.status_counts
