"""`sciml.fit`: it minimises, runs optimizer phases, keeps dtypes, stops on NaN with the last good params,
and resumes from a checkpoint to exactly the params of an uninterrupted run.

The loss is a small least-squares problem with a known minimiser (the oracle), shared by every test so
that each optimizer's step compiles once.
"""

from __future__ import annotations

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sciml

# least squares |M w - v|^2 + |w_extra|^2 with the minimiser W_STAR = solve(M, v)
M = np.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.5]])
V = np.array([1.0, -2.0, 0.5])
W_STAR = np.linalg.solve(M, V)


def loss(params):
    m = jnp.asarray(M, params["w"].dtype)
    v = jnp.asarray(V, params["w"].dtype)
    return jnp.sum((m @ params["w"] - v) ** 2) + jnp.sum(params["b"] ** 2)


def initial(dtype=jnp.float64):
    return {"w": jnp.zeros(3, dtype), "b": jnp.ones((2,), dtype)}


ADAM = optax.adam(0.05)
LBFGS = optax.lbfgs()
PHASES = [sciml.Phase(ADAM, 40, "adam"), sciml.Phase(LBFGS, 15, "lbfgs")]


def test_adam_then_lbfgs_reaches_the_minimiser():
    result = sciml.fit(loss, initial(), PHASES, progress=False)
    np.testing.assert_allclose(result.params["w"], W_STAR, atol=1e-8)
    np.testing.assert_allclose(result.params["b"], 0.0, atol=1e-8)
    assert result.losses.shape == (55,) and result.losses.dtype == np.float64
    assert result.reason == "completed" and result.steps == 55
    assert result.losses[-1] < 1e-12 < result.losses[0]
    np.testing.assert_allclose(result.losses[0], float(loss(initial())))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_dtypes_are_kept_end_to_end(dtype):
    seen = []
    result = sciml.fit(loss, initial(dtype), PHASES, progress=False,
                       callbacks=[lambda info: seen.append((info.loss, jax.tree_util.tree_leaves(info.params)))])
    for leaf in jax.tree_util.tree_leaves(result.params):
        assert leaf.dtype == dtype
    for _, leaves in seen:
        assert all(leaf.dtype == dtype for leaf in leaves)
    # every optimizer-state leaf shaped like a parameter (moments, L-BFGS memory) keeps its dtype
    param_shapes = {leaf.shape for leaf in jax.tree_util.tree_leaves(initial(dtype))}
    for leaf in jax.tree_util.tree_leaves(result.opt_state):
        if leaf.ndim and leaf.shape[-1:] in {s[-1:] for s in param_shapes} and jnp.issubdtype(leaf.dtype, jnp.floating):
            assert leaf.dtype == dtype
    tolerance = 1e-4 if dtype == jnp.float32 else 1e-8
    np.testing.assert_allclose(result.params["w"], W_STAR, atol=tolerance)


def test_each_phase_compiles_once():
    traces = []

    def counted(params):
        traces.append(1)
        return loss(params)

    sciml.fit(counted, initial(), [sciml.Phase(ADAM, 30)], progress=False)
    assert len(traces) == 1  # one trace of the value-and-grad for 30 steps


def test_a_nonfinite_loss_stops_with_the_last_good_params():
    def fragile(params):  # finite while w[0] < 0.2, NaN beyond
        return loss(params) + jnp.where(params["w"][0] < 0.2, 0.0, jnp.nan)

    result = sciml.fit(fragile, initial(), optax.sgd(0.01), steps=500, progress=False)
    assert result.reason == "nonfinite"
    assert "non-finite" in result.message and f"step {result.steps}" in result.message
    assert float(fragile(result.params)) == float(loss(result.params))   # the returned params are good
    assert np.all(np.isfinite(result.losses)) and len(result.losses) == result.steps
    assert "learning rate" in result.message


def test_a_nonfinite_initial_loss_returns_the_initial_params():
    result = sciml.fit(lambda p: loss(p) * jnp.nan, initial(), ADAM, steps=5, progress=False)
    assert result.reason == "nonfinite" and result.steps == 0
    np.testing.assert_array_equal(result.params["w"], initial()["w"])


def test_a_callback_stops_training():
    result = sciml.fit(loss, initial(), ADAM, steps=100, progress=False, callbacks=[lambda info: info.step == 9])
    assert result.reason == "callback" and result.steps == 10


def test_early_stopping_target_and_patience():
    target = sciml.fit(loss, initial(), PHASES, progress=False, early_stopping=sciml.EarlyStopping(target=1e-3))
    assert target.reason == "target" and target.losses[-1] <= 1e-3 < target.losses[-2]

    # SGD with a learning rate that makes the loss oscillate without improving: patience ends the
    # phase, and the next phase starts from (and the result returns) the best params seen
    bouncing = optax.sgd(0.35)
    result = sciml.fit(loss, initial(), [sciml.Phase(bouncing, 200), sciml.Phase(LBFGS, 15)], progress=False,
                       early_stopping=sciml.EarlyStopping(patience=5))
    assert result.steps < 215 and "phase 1 ended at step" in result.message
    np.testing.assert_allclose(result.params["w"], W_STAR, atol=1e-8)


def test_resuming_across_an_early_stop_ends_at_the_same_bits(tmp_path):
    phases = [sciml.Phase(optax.sgd(0.35), 200), sciml.Phase(LBFGS, 15)]
    early = sciml.EarlyStopping(patience=5)
    reference = sciml.fit(loss, initial(), phases, progress=False, early_stopping=early)
    ended = int(reference.message.split("ended at step ")[1].split(" ")[0])
    path, kept = tmp_path / "early.safetensors", tmp_path / "killed.safetensors"

    def kill_after_the_early_stop(info):   # as if the process died right after step `ended` was saved
        if info.step == ended + 1:
            shutil.copyfile(path, kept)
            raise KeyboardInterrupt

    sciml.fit(loss, initial(), phases, progress=False, early_stopping=early, checkpoint=path, checkpoint_every=1,
              callbacks=[kill_after_the_early_stop])
    resumed = sciml.fit(loss, initial(), phases, progress=False, early_stopping=early, checkpoint=kept, resume=True)
    np.testing.assert_array_equal(resumed.losses, reference.losses)
    assert np.asarray(resumed.params["w"]).tobytes() == np.asarray(reference.params["w"]).tobytes()


def _interrupt_at(step):
    def callback(info):
        if info.step == step:
            raise KeyboardInterrupt
    return callback


@pytest.mark.parametrize("interrupt", [17, 48])  # inside the Adam phase, inside the L-BFGS phase
def test_interrupted_and_resumed_training_ends_at_the_same_bits(tmp_path, interrupt):
    reference = sciml.fit(loss, initial(), PHASES, progress=False)
    path = tmp_path / "fit.safetensors"
    stopped = sciml.fit(loss, initial(), PHASES, progress=False, checkpoint=path, checkpoint_every=5,
                        callbacks=[_interrupt_at(interrupt)])
    assert stopped.reason == "interrupted" and "resume=True" in stopped.message
    resumed = sciml.fit(loss, initial(), PHASES, progress=False, checkpoint=path, resume=True)
    for a, b in zip(jax.tree_util.tree_leaves(resumed.params), jax.tree_util.tree_leaves(reference.params)):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    np.testing.assert_array_equal(resumed.losses, reference.losses)
    for a, b in zip(jax.tree_util.tree_leaves(resumed.opt_state), jax.tree_util.tree_leaves(reference.opt_state)):
        np.testing.assert_array_equal(a, b)


def test_resume_without_a_checkpoint_starts_fresh_and_checkpoints_are_periodic(tmp_path):
    path = tmp_path / "new.safetensors"
    writes = []

    def watch(info):
        if os.path.exists(path):
            writes.append((info.step, os.stat(path).st_mtime_ns))

    result = sciml.fit(loss, initial(), ADAM, steps=12, progress=False, checkpoint=path, checkpoint_every=4,
                       resume=True, callbacks=[watch])
    assert result.steps == 12 and path.exists()
    assert [step for step, _ in writes][0] == 4   # first written after 4 steps
    meta = sciml.io.read_metadata(path)
    assert meta["phase"] == 1 and meta["format"] == "sciml.fit/2"


def test_a_corrupted_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "fit.safetensors"
    sciml.fit(loss, initial(), ADAM, steps=3, progress=False, checkpoint=path)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF                                   # flip bits inside a tensor
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum|corrupt"):
        sciml.fit(loss, initial(), ADAM, steps=3, progress=False, checkpoint=path, resume=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=str(path.name)):
        sciml.fit(loss, initial(), ADAM, steps=3, progress=False, checkpoint=path, resume=True)


def test_a_checkpoint_for_other_params_or_optimizers_is_refused(tmp_path):
    path = tmp_path / "fit.safetensors"
    sciml.fit(loss, initial(), ADAM, steps=3, progress=False, checkpoint=path)
    with pytest.raises(ValueError, match="do not match the `params`"):
        sciml.fit(loss, initial(jnp.float32), ADAM, steps=3, progress=False, checkpoint=path, resume=True)
    with pytest.raises(ValueError, match=r"written for 1 phase\(s\), but `fit` got 2 phase\(s\)"):
        sciml.fit(loss, initial(), PHASES, progress=False, checkpoint=path, resume=True)
    with pytest.raises(ValueError, match="not the one that wrote the checkpoint"):
        sciml.fit(loss, initial(), LBFGS, steps=3, progress=False, checkpoint=path, resume=True)
    sciml.save(path, {"w": jnp.ones(2)})
    with pytest.raises(ValueError, match="not a `fit` checkpoint"):
        sciml.fit(loss, initial(), ADAM, steps=3, progress=False, checkpoint=path, resume=True)


@pytest.mark.parametrize("other, differs", [
    (optax.adamw(0.05), "add_decayed_weights"),                     # same state shapes as Adam
    (optax.adam(0.01), "step_size` is -0.05 in the checkpoint but -0.01 now"),
    (optax.sgd(0.05), "scale_by_adam"),
], ids=["adamw", "adam-other-rate", "sgd"])
def test_a_different_optimizer_is_refused_naming_what_differs(tmp_path, other, differs):
    path = tmp_path / "fit.safetensors"
    sciml.fit(loss, initial(), ADAM, steps=3, progress=False, checkpoint=path)
    with pytest.raises(ValueError, match="not the one that wrote the checkpoint") as error:
        sciml.fit(loss, initial(), other, steps=3, progress=False, checkpoint=path, resume=True)
    assert differs in str(error.value) and path.name in str(error.value)


def test_an_identically_rebuilt_optimizer_resumes_to_the_same_bits(tmp_path):
    reference = sciml.fit(loss, initial(), ADAM, steps=20, progress=False)
    path = tmp_path / "fit.safetensors"
    sciml.fit(loss, initial(), ADAM, steps=20, progress=False, checkpoint=path, callbacks=[_interrupt_at(7)])
    resumed = sciml.fit(loss, initial(), optax.adam(0.05), steps=20, progress=False, checkpoint=path, resume=True)
    assert resumed.steps == 20
    assert np.asarray(resumed.params["w"]).tobytes() == np.asarray(reference.params["w"]).tobytes()
    np.testing.assert_array_equal(resumed.losses, reference.losses)


def test_resuming_with_other_step_counts_is_refused_with_the_true_counts(tmp_path):
    finished, stopped = tmp_path / "finished.safetensors", tmp_path / "stopped.safetensors"
    sciml.fit(loss, initial(), ADAM, steps=25, progress=False, checkpoint=finished)
    with pytest.raises(ValueError, match=r"written for 25 steps in phase 1 \('phase 1'\), which it has finished "
                                         r"\(25 steps taken in all\), but `fit` got 10 steps"):
        sciml.fit(loss, initial(), ADAM, steps=10, progress=False, checkpoint=finished, resume=True)
    with pytest.raises(ValueError, match="got 30 steps"):   # more steps: also not the run that was saved
        sciml.fit(loss, initial(), ADAM, steps=30, progress=False, checkpoint=finished, resume=True)
    sciml.fit(loss, initial(), ADAM, steps=25, progress=False, checkpoint=stopped, callbacks=[_interrupt_at(16)])
    with pytest.raises(ValueError, match=r"of which it has completed 17 \(17 steps taken in all\), but `fit` got 10"):
        sciml.fit(loss, initial(), ADAM, steps=10, progress=False, checkpoint=stopped, resume=True)
    again = sciml.fit(loss, initial(), ADAM, steps=25, progress=False, checkpoint=finished, resume=True)
    assert again.steps == 25 and again.message == "completed 25 steps."


def _edited(path, tmp_path, edit):
    """A copy of the checkpoint at ``path`` whose metadata (a dict) or tensors ``edit`` changed in place,
    written by `sciml.save` so that every checksum is valid."""
    tensors, _ = sciml.load(path)
    meta = sciml.io.read_metadata(path)
    edit(meta, tensors)
    out = tmp_path / "edited.safetensors"
    sciml.save(out, tensors, metadata=meta)
    return out


def _set(field, value):
    def edit(meta, tensors):
        meta[field] = value
    return edit


def _set_phase_entry(key, value):
    def edit(meta, tensors):
        meta["phases"][0][key] = value
    return edit


def _delete(field):
    def edit(meta, tensors):
        del meta[field]
    return edit


def _set_tensor(name, value):
    def edit(meta, tensors):
        tensors[name] = value
    return edit


# (edit, the words of the message); the checkpoint is the end of `fit(ADAM, steps=25)` saved at step 10
# (phase 0, phase_step 10, 10 losses) with EarlyStopping, so best_loss and since_best are set
@pytest.mark.parametrize("edit, words", [
    (_set("phase", -1), "`phase=-1` in its metadata; expected an int in [0, 1]"),
    (_set("phase", "x"), "`phase='x'` in its metadata; expected an int in [0, 1]"),
    (_set("phase", 2), "`phase=2`"),
    (_set("phase", True), "`phase=True`"),
    (_set("phase_step", -1), "`phase_step=-1` in its metadata; expected an int in [0, 25]"),
    (_set("phase_step", 26), "`phase_step=26`"),
    (_set("phase_step", 2.5), "`phase_step=2.5`"),
    (_set("phases", []), "`phases=[]`"),
    (_set_phase_entry("steps", 0), "`phases[0].steps=0` in its metadata; expected a positive int"),
    (_set_phase_entry("name", 3), "`phases[0].name=3`"),
    (_set_phase_entry("optimizer", "adam"), "`phases[0].optimizer='adam'`"),
    (_set("best_loss", "low"), "`best_loss='low'`"),
    (_set("since_best", -1), "`since_best=-1`"),
    (_set("since_best", 11), "`since_best=11` in its metadata; expected an int in [0, 10]"),
    (_set("optax", 2), "`optax=2`"),
    (_delete("phase_step"), "missing: ['phase_step']"),
    (_set("learning_rate", 0.1), "unknown: ['learning_rate']"),
    (_set("format", "sciml.fit/7"), "`format='sciml.fit/7'`, not 'sciml.fit/2'"),
    (_set_tensor("losses", np.array([1.0, np.nan] * 5)), "losses[1]=nan as `losses`; expected finite values"),
    (_set_tensor("losses", np.ones(10, np.float32)), "a float32[10] as `losses`"),
    (_set_tensor("losses", np.ones(40)), "holds 40 losses, but its metadata says `phase=0`, `phase_step=10`"),
    (_set_tensor("opt_state", {"mu": np.ones(3)}), "a dict as `opt_state`"),
], ids=["phase=-1", "phase=x", "phase=2", "phase=True", "phase_step=-1", "phase_step=26", "phase_step=2.5",
        "phases=[]", "steps=0", "name=3", "optimizer=str", "best_loss=str", "since_best=-1", "since_best=11",
        "optax=2", "missing", "unknown", "format", "losses-nan", "losses-float32", "losses-too-many",
        "opt_state-dict"])
def test_hand_edited_metadata_with_valid_checksums_is_refused_field_by_field(tmp_path, edit, words):
    path = tmp_path / "fit.safetensors"
    sciml.fit(loss, initial(), ADAM, steps=25, progress=False, checkpoint=path, checkpoint_every=10,
              early_stopping=sciml.EarlyStopping(patience=100), callbacks=[_interrupt_at(9)])
    edited = _edited(path, tmp_path, edit)
    with pytest.raises(ValueError) as error:
        sciml.fit(loss, initial(), ADAM, steps=25, progress=False, checkpoint=edited, resume=True)
    assert words in str(error.value) and edited.name in str(error.value)


def test_a_checkpoint_of_the_first_format_is_refused_with_the_way_to_its_params(tmp_path):
    path = tmp_path / "fit.safetensors"
    sciml.fit(loss, initial(), ADAM, steps=3, progress=False, checkpoint=path)

    def as_written_by_format_1(meta, tensors):   # before the optimizer was recorded
        meta.update(format="sciml.fit/1", phases=[[p["name"], p["steps"]] for p in meta["phases"]])
        del meta["optax"]

    old = _edited(path, tmp_path, as_written_by_format_1)
    with pytest.raises(ValueError, match="older sciml that did not record the optimizer") as error:
        sciml.fit(loss, initial(), ADAM, steps=3, progress=False, checkpoint=old, resume=True)
    assert f'sciml.load({str(old)!r})[0]["params"]' in str(error.value)
    tensors, _ = sciml.load(old)
    np.testing.assert_array_equal(tensors["params"]["w"], sciml.load(path)[0]["params"]["w"])


def test_bad_arguments_say_what_to_pass():
    with pytest.raises(ValueError, match="`steps` must be a positive int"):
        sciml.fit(loss, initial(), ADAM, steps=0)
    with pytest.raises(ValueError, match="empty"):
        sciml.fit(loss, initial(), [])
    with pytest.raises(TypeError, match="optax optimizer"):
        sciml.fit(loss, initial(), [("adam", 3)])
    with pytest.raises(FileNotFoundError, match="directory does not exist"):
        sciml.fit(loss, initial(), ADAM, steps=3, checkpoint="/no/such/directory/fit.safetensors")


def test_the_progress_bar_shows_the_loss(capsys):
    sciml.fit(loss, initial(), [sciml.Phase(ADAM, 3, "warm-up")], progress=True)
    err = capsys.readouterr().err
    assert "warm-up" in err and "loss=" in err and "step/s" in err
