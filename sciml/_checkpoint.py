"""`fit` checkpoints: the training state written to a `sciml.save` file, and read back only after checks.

A checkpoint is a `sciml.save` file: tensors ``params``, ``opt_state`` (the list of the optimizer
state's leaves), ``losses`` (float64) and, once ``EarlyStopping(restore_best=True)`` has seen a loss,
``best_params``; its metadata is the dict :func:`write_checkpoint` writes, validated field by field by
``_check_metadata`` before any array is trusted. Each phase is recorded with its steps and the
fingerprint of its optimizer (``sciml._fingerprint``), and resuming refuses any other.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sciml._fingerprint import differences, optimizer_fingerprint
from sciml.io import load, read_metadata, save

FORMAT = "sciml.fit/2"
_OLD_FORMATS = ("sciml.fit/1",)  # written before the optimizer was recorded: refused
_FIELDS = ("format", "optax", "phase", "phase_step", "phases", "best_loss", "since_best")
_TENSORS = ("params", "opt_state", "losses", "best_params")


@dataclasses.dataclass
class Run:
    """The whole training state (what a checkpoint holds)."""

    phases: Sequence[Any]  # the `sciml.train.Phase`s of the run (imported there, not here: no import loop)
    params: Any
    state: Any
    phase: int = 0
    phase_step: int = 0
    losses: list = dataclasses.field(default_factory=list)
    best_loss: float = math.inf
    best_params: Any = None
    since_best: int = 0


def strong(tree):
    """The same values with strong (non-weak) dtypes, so that every step has one compiled signature.

    A fresh run and a restored one both go through it, so resuming reuses the step already compiled.
    """
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x, x.dtype if hasattr(x, "dtype") else jnp.result_type(x)),
                                  tree)


def write_checkpoint(path: str, run: Run, phases) -> None:
    tensors = {"params": run.params, "opt_state": jax.tree_util.tree_leaves(run.state),
               "losses": np.asarray(run.losses, np.float64)}
    if run.best_params is not None:
        tensors["best_params"] = run.best_params
    meta = {"format": FORMAT, "optax": optax.__version__, "phase": run.phase, "phase_step": run.phase_step,
            "phases": [{"name": p.label(i), "steps": p.steps, "optimizer": optimizer_fingerprint(p.optimizer)}
                       for i, p in enumerate(phases)],
            "best_loss": run.best_loss if math.isfinite(run.best_loss) else None, "since_best": run.since_best}
    save(path, tensors, metadata=meta)


def read_checkpoint(path: str, phases, params) -> Run:
    meta = read_metadata(path)  # raises ValueError for a corrupted or foreign file
    _check_metadata(meta, path)
    tensors, _ = load(path)
    losses = _check_tensors(tensors, meta, path)
    _check_phases(meta, phases, len(losses), path)
    phase, best = meta["phase"], tensors.get("best_params")
    run = Run(phases=phases, params=_like(tensors["params"], params, path), state=None, phase=phase,
               phase_step=meta["phase_step"], losses=losses,
               best_loss=math.inf if meta["best_loss"] is None else float(meta["best_loss"]),
               best_params=None if best is None else _like(best, params, path), since_best=meta["since_best"])
    owner = min(phase, len(phases) - 1)  # a finished run holds the state of its last phase
    template = strong(phases[owner].optimizer.init(run.params))
    leaves, treedef = jax.tree_util.tree_flatten(template)
    saved = tensors["opt_state"]
    if len(saved) != len(leaves) or any((np.shape(a), np.asarray(a).dtype) != (np.shape(b), b.dtype)
                                        for a, b in zip(saved, leaves)):
        raise ValueError(f"the optimizer state in {path!r} does not fit the optimizer of phase {owner + 1} "
                         f"(number, shapes or dtypes of its arrays differ); resume with the optimizer and params "
                         f"that wrote it, or `resume=False`.")
    run.state = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(a, b.dtype) for a, b in zip(saved, leaves)])
    return run


def _bad_field(path: str, field: str, value, expected: str) -> ValueError:
    shown = repr(value) if len(repr(value)) <= 200 else f"{repr(value)[:200]}..."
    return ValueError(f"the checkpoint {path!r} has `{field}={shown}` in its metadata; expected {expected}. "
                      f"`sciml.fit` does not write this (the file was edited or written by other code): pass "
                      f"another `checkpoint=` path, or `resume=False` to start afresh.")


def _bad_tensor(path: str, name: str, got: str, expected: str) -> ValueError:
    return ValueError(f"the checkpoint {path!r} holds {got} as `{name}`; expected {expected}. `sciml.fit` does "
                      f"not write this (the file was edited or written by other code): pass another `checkpoint=` "
                      f"path, or `resume=False` to start afresh.")


def _is_int(value) -> bool:
    return type(value) is int


def _check_metadata(meta: dict, path: str) -> None:
    """Every field of a checkpoint's metadata, its type and range, on its own terms."""
    fmt = meta.get("format")
    if fmt in _OLD_FORMATS:
        raise ValueError(f"the checkpoint {path!r} has the format {fmt!r}, written by an older sciml that did "
                         f"not record the optimizer, so resuming cannot check that it continues the same "
                         f"training; it is refused. Its params are still readable: "
                         f"`sciml.load({path!r})[0][\"params\"]`; start a new `fit` from them with "
                         f"`resume=False` or another `checkpoint=` path.")
    if fmt != FORMAT:
        raise ValueError(f"{path!r} is a sciml file but not a `fit` checkpoint (its metadata has "
                         f"`format={fmt!r}`, not {FORMAT!r}); pass another `checkpoint=` path or `resume=False`.")
    unknown = [key for key in meta if key not in _FIELDS]
    missing = [key for key in _FIELDS if key not in meta]
    if unknown or missing:
        raise ValueError(f"the checkpoint {path!r} has the metadata fields {sorted(meta)}; a `fit` checkpoint "
                         f"has exactly {list(_FIELDS)} (missing: {missing}, unknown: {unknown}). Pass another "
                         f"`checkpoint=` path, or `resume=False` to start afresh.")
    if not isinstance(meta["optax"], str):
        raise _bad_field(path, "optax", meta["optax"], "the version string of optax")
    recorded = meta["phases"]
    if not isinstance(recorded, list) or not recorded:
        raise _bad_field(path, "phases", recorded, "a non-empty list of phases")
    for i, entry in enumerate(recorded):
        if not isinstance(entry, dict) or sorted(entry) != ["name", "optimizer", "steps"]:
            raise _bad_field(path, f"phases[{i}]", entry, "a dict with the keys 'name', 'steps', 'optimizer'")
        if not isinstance(entry["name"], str):
            raise _bad_field(path, f"phases[{i}].name", entry["name"], "a string")
        if not _is_int(entry["steps"]) or entry["steps"] < 1:
            raise _bad_field(path, f"phases[{i}].steps", entry["steps"], "a positive int")
        fingerprint = entry["optimizer"]
        if not isinstance(fingerprint, dict) or not all(isinstance(v, str) for v in fingerprint.values()):
            raise _bad_field(path, f"phases[{i}].optimizer", fingerprint,
                             "a dict of strings describing the optimizer")
    n, phase = len(recorded), meta["phase"]
    if not _is_int(phase) or not 0 <= phase <= n:
        raise _bad_field(path, "phase", phase, f"an int in [0, {n}] (the index of the phase in progress, or "
                                               f"{n} once all {n} phase(s) are done)")
    limit = recorded[phase]["steps"] if phase < n else 0
    if not _is_int(meta["phase_step"]) or not 0 <= meta["phase_step"] <= limit:
        raise _bad_field(path, "phase_step", meta["phase_step"],
                         f"an int in [0, {limit}] (the steps done in phase {phase + 1}, of its {limit})" if phase < n
                         else "0 (all phases are done)")
    best = meta["best_loss"]
    if best is not None and (type(best) not in (int, float) or not math.isfinite(best)):
        raise _bad_field(path, "best_loss", best, "a finite number, or null before any loss was seen")
    if not _is_int(meta["since_best"]) or meta["since_best"] < 0:
        raise _bad_field(path, "since_best", meta["since_best"], "an int >= 0")


def _check_phases(meta: dict, phases, taken: int, path: str) -> None:
    """The checkpoint continues these phases: as many, as long, with the same optimizers."""
    recorded = meta["phases"]
    written = "; ".join(f"{e['name']}: {e['steps']} steps" for e in recorded)
    fix = (f"Resume with the optimizers and steps that wrote it ({written}), or start a new run from its params "
           f"(`sciml.load({path!r})[0][\"params\"]`) with `resume=False` or another `checkpoint=` path.")
    if len(recorded) != len(phases):
        raise ValueError(f"the checkpoint {path!r} was written for {len(recorded)} phase(s), but `fit` got "
                         f"{len(phases)} phase(s). {fix}")
    for i, (entry, phase) in enumerate(zip(recorded, phases)):
        differ = differences(entry["optimizer"], optimizer_fingerprint(phase.optimizer))
        if differ:
            versions = (f" The checkpoint was written with optax {meta['optax']} and this is optax "
                        f"{optax.__version__}, whose internals may differ for the same call."
                        if meta["optax"] != optax.__version__ else "")
            raise ValueError(f"the optimizer of phase {i + 1} ({phase.label(i)!r}) is not the one that wrote the "
                             f"checkpoint {path!r}: {differ}.{versions} {fix}")
        if entry["steps"] != phase.steps:
            done = ("which it has finished" if i < meta["phase"] else
                    f"of which it has completed {meta['phase_step']}" if i == meta["phase"] else
                    "which it has not started")
            raise ValueError(f"the checkpoint {path!r} was written for {entry['steps']} steps in phase {i + 1} "
                             f"({entry['name']!r}), {done} ({taken} steps taken in all), but `fit` got "
                             f"{phase.steps} steps for that phase. {fix}")


def _check_tensors(tensors, meta: dict, path: str) -> list[float]:
    """The arrays of a checkpoint agree with its metadata; returns the loss history."""
    if not isinstance(tensors, dict) or not {"params", "opt_state", "losses"} <= set(tensors) <= set(_TENSORS):
        names = sorted(tensors) if isinstance(tensors, dict) else type(tensors).__name__
        raise ValueError(f"the checkpoint {path!r} holds {names}; a `fit` checkpoint holds 'params', "
                         f"'opt_state', 'losses' and perhaps 'best_params'. Pass another `checkpoint=` path, or "
                         f"`resume=False` to start afresh.")
    losses = tensors["losses"]
    if not hasattr(losses, "dtype") or np.ndim(losses) != 1 or losses.dtype != np.float64:
        got = f"{losses.dtype}{list(np.shape(losses))}" if hasattr(losses, "dtype") else type(losses).__name__
        raise _bad_tensor(path, "losses", f"a {got}", "a 1-d float64 array (the loss at every step)")
    losses = np.asarray(losses)
    if not np.all(np.isfinite(losses)):
        bad = int(np.flatnonzero(~np.isfinite(losses))[0])
        raise _bad_tensor(path, "losses", f"losses[{bad}]={losses[bad]}",
                          "finite values (a non-finite loss is never recorded)")
    if not isinstance(tensors["opt_state"], list):
        raise _bad_tensor(path, "opt_state", f"a {type(tensors['opt_state']).__name__}",
                          "the list of the optimizer state's arrays")
    recorded, phase, phase_step = meta["phases"], meta["phase"], meta["phase_step"]
    # at most every step of the phases before plus those of this one; at least this phase's steps unless
    # early stopping ended it (then `phase_step` is set to its `steps`)
    most = sum(entry["steps"] for entry in recorded[:phase]) + phase_step
    least = phase_step if phase < len(recorded) and phase_step < recorded[phase]["steps"] else 0
    if not least <= len(losses) <= most:
        raise ValueError(f"the checkpoint {path!r} holds {len(losses)} losses, but its metadata says "
                         f"`phase={phase}`, `phase_step={phase_step}` of the phases' steps "
                         f"{[e['steps'] for e in recorded]} (between {least} and {most} steps). Pass another "
                         f"`checkpoint=` path, or `resume=False` to start afresh.")
    if meta["since_best"] > len(losses):
        raise _bad_field(path, "since_best", meta["since_best"], f"an int in [0, {len(losses)}] (the steps taken)")
    if "best_params" in tensors and meta["best_loss"] is None:
        raise _bad_field(path, "best_loss", None, "the loss of its `best_params`")
    return [float(x) for x in losses]


def _like(saved, params, path):
    """``saved`` (as loaded) in the structure of ``params``, after checking shapes and dtypes agree."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    got = jax.tree_util.tree_leaves(saved)
    if [(np.shape(a), jnp.result_type(a)) for a in got] != [(np.shape(a), jnp.result_type(a)) for a in leaves]:
        raise ValueError(f"the params in the checkpoint {path!r} do not match the `params` given to `fit` "
                         f"(number, shapes or dtypes of the arrays differ); resume with the same model and "
                         f"dtype, or `resume=False`.")
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(a) for a in got])
