"""`sciml.fit`: a jitted training loop with a progress bar, optimizer phases, NaN guard and checkpoints.

``fit(loss_fn, params, optimizer, steps)`` minimises ``loss_fn(params)`` with an optax optimizer. The
optimizer may be a sequence of :class:`Phase` (e.g. Adam, then L-BFGS via ``optax.lbfgs``). Each step is
one compiled call (cached per loss function and optimizer, so fitting again does not recompile).

Nothing fails silently: a NaN or infinite loss or gradient stops training with a message and returns
the last parameters whose loss and gradient were finite. With ``checkpoint=path`` the parameters,
optimizer state, loss history and stopping state are written with :func:`sciml.save` (atomically)
every ``checkpoint_every`` steps; ``resume=True`` continues from that file to exactly the parameters
an uninterrupted run would reach (the same bits on the same machine). A checkpoint records each phase's
steps and a fingerprint of its optimizer (see ``sciml._fingerprint``), and resuming refuses any other.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sciml._fingerprint import differences, optimizer_fingerprint
from sciml.io import load, read_metadata, save

__all__ = ["fit", "Phase", "EarlyStopping", "FitResult", "StepInfo"]

_FORMAT = "sciml.fit/2"


@dataclasses.dataclass(frozen=True)
class Phase:
    """``steps`` steps of one optax optimizer; ``fit`` runs its phases in order."""

    optimizer: optax.GradientTransformation
    steps: int
    name: str | None = None

    def label(self, index: int) -> str:
        return self.name or f"phase {index + 1}"


@dataclasses.dataclass(frozen=True)
class EarlyStopping:
    """End a phase when the loss stops improving, or all training once it reaches ``target``.

    Attributes:
        patience: steps without an improvement of more than ``min_delta`` before the phase ends (the
            next phase, if any, starts from the best parameters).
        min_delta: the improvement (absolute) that counts.
        target: stop training as soon as the loss is at or below this value.
        restore_best: return (and continue from) the parameters with the lowest loss seen.
    """

    patience: int = 200
    min_delta: float = 0.0
    target: float | None = None
    restore_best: bool = True


@dataclasses.dataclass(frozen=True)
class StepInfo:
    """What a callback sees after each step: ``loss`` is the loss of ``params`` (before the update)."""

    step: int
    phase: int
    loss: float
    params: Any
    opt_state: Any


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        params: the trained parameters (the best seen, with ``EarlyStopping(restore_best=True)``).
        opt_state: the state of the last phase's optimizer.
        losses: the loss at every step, a float64 numpy array (the loss of the params before the step).
        steps: steps taken in all phases.
        reason: why training ended: ``"completed"`` (all phases ran, some perhaps ended early by
            ``early_stopping``), ``"target"``, ``"callback"``, ``"nonfinite"`` or ``"interrupted"``.
        message: the same in words.
    """

    params: Any
    opt_state: Any
    losses: np.ndarray
    steps: int
    reason: str
    message: str


def fit(loss_fn: Callable[[Any], jax.Array], params: Any, optimizer=None, steps: int = 1000, *,
        progress: bool = True, callbacks: Sequence[Callable[[StepInfo], Any]] = (),
        early_stopping: EarlyStopping | None = None, checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 100, resume: bool = False) -> FitResult:
    """Minimise ``loss_fn(params)``.

    Args:
        loss_fn: a scalar function of the params, traceable by JAX (e.g. from ``sciml.losses``).
        params: initial parameters, any pytree of arrays; their dtypes are kept throughout.
        optimizer: an optax optimizer (default ``optax.adam(1e-3)``) run for ``steps`` steps, or a
            sequence of :class:`Phase` (or ``(optimizer, steps)`` pairs) run in order. Optimizers with
            a line search (``optax.lbfgs()``) get the value and gradient they need.
        steps: steps of a single optimizer (ignored when ``optimizer`` is a sequence of phases).
        progress: show a tqdm progress bar with the loss and steps/s.
        callbacks: functions called with a :class:`StepInfo` after every step; returning ``True``
            stops training.
        early_stopping: an :class:`EarlyStopping`.
        checkpoint: a file to save the training state to with :func:`sciml.save` (atomic writes).
        checkpoint_every: steps between checkpoints (one is also written when training ends).
        resume: continue from ``checkpoint`` if the file exists (start fresh if it does not). The file
            must have been written by the same run: the same params (shapes, dtypes), the same number of
            phases with the same ``steps`` each, and the same optimizers (compared by the fingerprint of
            their functions and hyper-parameters that the checkpoint records; phase names are not compared).

    Returns:
        A :class:`FitResult` with ``params``, ``opt_state`` and the loss history ``losses``.

    Raises:
        ValueError: for a corrupted checkpoint; one written for other params, phases, steps or
            optimizers; one whose metadata is not what ``fit`` writes (each field is checked); or one
            written by sciml before the optimizer was recorded (format ``sciml.fit/1``).
        FileNotFoundError: when the directory of ``checkpoint`` does not exist.

    Example:
        >>> import jax.numpy as jnp, optax, sciml
        >>> loss = lambda p: jnp.sum((p["w"] - 3.0) ** 2)
        >>> result = sciml.fit(loss, {"w": jnp.zeros(2)}, optax.adam(0.1), steps=300, progress=False)
        >>> result.params["w"].round(3).tolist(), result.losses.shape
        ([3.0, 3.0], (300,))
        >>> phases = [sciml.Phase(optax.adam(0.1), 20), sciml.Phase(optax.lbfgs(), 10)]
        >>> result = sciml.fit(loss, {"w": jnp.zeros(2)}, phases, progress=False)
        >>> float(result.losses[-1]) < 1e-12
        True
    """
    phases = _phases(optimizer, steps)
    if checkpoint_every < 1:
        raise ValueError(f"`checkpoint_every` must be >= 1; got {checkpoint_every}.")
    if checkpoint is not None and not os.path.isdir(os.path.dirname(os.path.abspath(checkpoint))):
        raise FileNotFoundError(f"`checkpoint={os.fspath(checkpoint)!r}`: its directory does not exist; create it "
                                f"first (checked now rather than at the first checkpoint).")
    params = _strong(params)
    run = _Run(phases=phases, params=params, state=_strong(phases[0].optimizer.init(params)))
    if checkpoint is not None and resume and os.path.exists(checkpoint):
        run = _restore(os.fspath(checkpoint), phases, params)
    return _train(loss_fn, run, phases, progress, tuple(callbacks), early_stopping,
                  None if checkpoint is None else os.fspath(checkpoint), checkpoint_every)


@dataclasses.dataclass
class _Run:
    """The whole training state (what a checkpoint holds)."""

    phases: Sequence[Phase]
    params: Any
    state: Any
    phase: int = 0
    phase_step: int = 0
    losses: list = dataclasses.field(default_factory=list)
    best_loss: float = math.inf
    best_params: Any = None
    since_best: int = 0


def _phases(optimizer, steps) -> list[Phase]:
    if optimizer is None:
        optimizer = optax.adam(1e-3)
    if isinstance(optimizer, optax.GradientTransformation):
        return [Phase(optimizer, _positive(steps, "steps"))]
    phases = []
    for item in optimizer:
        phase = item if isinstance(item, Phase) else Phase(*item)
        if not isinstance(phase.optimizer, optax.GradientTransformation):
            raise TypeError(f"each phase needs an optax optimizer; got {phase.optimizer!r}.")
        _positive(phase.steps, "Phase.steps")
        phases.append(phase)
    if not phases:
        raise ValueError("`optimizer` is an empty sequence; give at least one `Phase(optimizer, steps)`.")
    return phases


def _positive(n, name):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"`{name}` must be a positive int; got {n!r}.")
    return int(n)


def _strong(tree):
    """The same values with strong (non-weak) dtypes, so that every step has one compiled signature."""
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x, x.dtype if hasattr(x, "dtype") else jnp.result_type(x)),
                                  tree)


def _uses_linesearch(state) -> bool:
    try:
        return optax.tree.get(state, "value") is not None and optax.tree.get(state, "grad") is not None
    except (KeyError, ValueError):
        return False


@functools.lru_cache(maxsize=64)
def _compiled_step(loss_fn, optimizer, linesearch: bool):
    value_and_grad = optax.value_and_grad_from_state(loss_fn) if linesearch else jax.value_and_grad(loss_fn)

    def step(params, state):
        value, grads = value_and_grad(params, state=state) if linesearch else value_and_grad(params)
        finite = jnp.isfinite(value) & jnp.all(jnp.asarray(
            [jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)] or [True]))
        extra = dict(value=value, grad=grads, value_fn=loss_fn) if linesearch else {}
        updates, new_state = optimizer.update(grads, state, params, **extra)
        new_params = optax.apply_updates(params, updates)
        new_state = jax.tree_util.tree_map(lambda new, old: jnp.asarray(new, old.dtype), new_state, state)
        return new_params, new_state, value, finite

    return jax.jit(step)


def _train(loss_fn, run: _Run, phases, progress, callbacks, early, path, every) -> FitResult:
    last_good, ended = None, []
    try:
        while run.phase < len(phases):
            phase = phases[run.phase]
            step = _compiled_step(loss_fn, phase.optimizer, _uses_linesearch(run.state))
            with _progress_bar(progress, phase, run) as bar:
                bar.set_postfix(status="compiling")   # the first step compiles (unless cached)
                while run.phase_step < phase.steps:
                    new_params, new_state, value, finite = step(run.params, run.state)
                    loss = float(value)
                    if not bool(finite):
                        reason, message = "nonfinite", _nonfinite_message(loss, run)
                        if last_good is not None:  # step back to the last params with a finite loss
                            run.params, run.state, run.phase, run.phase_step = last_good
                            run.losses.pop()
                        return _finish(run, reason, message, path, early)
                    info = StepInfo(len(run.losses), run.phase, loss, run.params, run.state)
                    run.losses.append(loss)
                    last_good = (run.params, run.state, run.phase, run.phase_step)
                    run.params, run.state, run.phase_step = new_params, new_state, run.phase_step + 1
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4e}", refresh=False)
                    verdict = _early_stop(early, run, loss, info.params)
                    if any(bool(cb(info)) for cb in callbacks):
                        reason, message = "callback", f"a callback stopped training at step {info.step}."
                        return _finish(run, reason, message, path, early)
                    if verdict == "target":
                        reason = "target"
                        message = f"the loss reached the target {early.target:g} at step {info.step}."
                        return _finish(run, reason, message, path, early)
                    if verdict == "patience":  # the phase is over (a checkpoint written now says so)
                        ended.append(f"{phase.label(run.phase)} ended at step {info.step} (no improvement for "
                                     f"{early.patience} steps)")
                        run.phase_step = phase.steps
                    if path is not None and len(run.losses) % every == 0:
                        _save(path, run, phases)
            _next_phase(run, phases, early)
    except KeyboardInterrupt:
        where = f"; resume with `fit(..., checkpoint={path!r}, resume=True)`" if path else ""
        return _finish(run, "interrupted", f"interrupted at step {len(run.losses)}{where}.", path, early)
    early_ends = f"; {'; '.join(ended)}" if ended else ""
    return _finish(run, "completed", f"completed {len(run.losses)} steps{early_ends}.", path, early)


def _early_stop(early: EarlyStopping | None, run: _Run, loss: float, params) -> str | None:
    if early is None:
        return None
    if loss < run.best_loss - early.min_delta:
        run.best_loss, run.since_best = loss, 0
        if early.restore_best:
            run.best_params = params
    else:
        run.since_best += 1
    if early.target is not None and loss <= early.target:
        return "target"
    return "patience" if run.since_best >= early.patience else None


def _next_phase(run: _Run, phases, early):
    """Move to the next phase, starting it from the best params and a fresh optimizer state."""
    run.phase, run.phase_step, run.since_best = run.phase + 1, 0, 0
    if early is not None and early.restore_best and run.best_params is not None:
        run.params = run.best_params
    if run.phase < len(phases):
        run.state = _strong(phases[run.phase].optimizer.init(run.params))


def _finish(run: _Run, reason, message, path, early) -> FitResult:
    if path is not None:
        _save(path, run, run.phases)
    params = run.params
    if early is not None and early.restore_best and run.best_params is not None:
        params = run.best_params
    return FitResult(params=params, opt_state=run.state, losses=np.asarray(run.losses, np.float64),
                     steps=len(run.losses), reason=reason, message=message)


def _nonfinite_message(loss, run: _Run) -> str:
    step = len(run.losses)
    what = "the loss" if not math.isfinite(loss) else "the gradient"
    kept = (f"returned the parameters of step {step - 1}, the last whose loss ({run.losses[-1]:.4e}) and "
            f"gradient were finite" if run.losses else "returned the initial parameters unchanged")
    return (f"{what} became non-finite (loss={loss}) at step {step}; training stopped and {kept}. Lower the "
            f"learning rate, check `loss_fn` at these parameters, or look for a failed solve (the losses of "
            f"`sciml.losses` turn `max_steps` or a blow-up into NaN).")


class _progress_bar:
    """A tqdm bar for one phase (or a no-op when ``progress`` is False)."""

    def __init__(self, progress, phase: Phase, run: _Run):
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=phase.steps, initial=run.phase_step, desc=phase.label(run.phase),
                            unit="step", dynamic_ncols=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()

    def update(self, n):
        if self.bar is not None:
            self.bar.update(n)

    def set_postfix(self, refresh=True, **kw):
        if self.bar is not None:
            self.bar.set_postfix(refresh=refresh, **kw)


# -- checkpoints -----------------------------------------------------------------------------------
# A checkpoint is a `sciml.save` file: tensors `params`, `opt_state` (the list of the optimizer state's
# leaves), `losses` (float64) and, once EarlyStopping(restore_best=True) has seen a loss, `best_params`;
# its metadata is the dict `_save` writes, validated field by field by `_check_metadata`.
_OLD_FORMATS = ("sciml.fit/1",)  # written before the optimizer was recorded: refused
_FIELDS = ("format", "optax", "phase", "phase_step", "phases", "best_loss", "since_best")
_TENSORS = ("params", "opt_state", "losses", "best_params")


def _save(path: str, run: _Run, phases) -> None:
    tensors = {"params": run.params, "opt_state": jax.tree_util.tree_leaves(run.state),
               "losses": np.asarray(run.losses, np.float64)}
    if run.best_params is not None:
        tensors["best_params"] = run.best_params
    meta = {"format": _FORMAT, "optax": optax.__version__, "phase": run.phase, "phase_step": run.phase_step,
            "phases": [{"name": p.label(i), "steps": p.steps, "optimizer": optimizer_fingerprint(p.optimizer)}
                       for i, p in enumerate(phases)],
            "best_loss": run.best_loss if math.isfinite(run.best_loss) else None, "since_best": run.since_best}
    save(path, tensors, metadata=meta)


def _restore(path: str, phases, params) -> _Run:
    meta = read_metadata(path)  # raises ValueError for a corrupted or foreign file
    _check_metadata(meta, path)
    tensors, _ = load(path)
    losses = _check_tensors(tensors, meta, path)
    _check_phases(meta, phases, len(losses), path)
    phase, best = meta["phase"], tensors.get("best_params")
    run = _Run(phases=phases, params=_like(tensors["params"], params, path), state=None, phase=phase,
               phase_step=meta["phase_step"], losses=losses,
               best_loss=math.inf if meta["best_loss"] is None else float(meta["best_loss"]),
               best_params=None if best is None else _like(best, params, path), since_best=meta["since_best"])
    owner = min(phase, len(phases) - 1)  # a finished run holds the state of its last phase
    template = _strong(phases[owner].optimizer.init(run.params))
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
    if fmt != _FORMAT:
        raise ValueError(f"{path!r} is a sciml file but not a `fit` checkpoint (its metadata has "
                         f"`format={fmt!r}`, not {_FORMAT!r}); pass another `checkpoint=` path or `resume=False`.")
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
