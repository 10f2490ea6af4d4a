"""`sciml.fit`: a jitted training loop with a progress bar, optimizer phases, NaN guard and checkpoints.

``fit(loss_fn, params, optimizer, steps)`` minimises ``loss_fn(params)`` with an optax optimizer. The
optimizer may be a sequence of :class:`Phase` (e.g. Adam, then L-BFGS via ``optax.lbfgs``). Each step is
one compiled call (cached per loss function and optimizer, so fitting again does not recompile).

Nothing fails silently: a NaN or infinite loss or gradient stops training with a message and returns
the last parameters whose loss and gradient were finite. With ``checkpoint=path`` the parameters,
optimizer state, loss history and stopping state are written with :func:`sciml.save` (atomically)
every ``checkpoint_every`` steps; ``resume=True`` continues from that file to exactly the parameters
an uninterrupted run would reach (the same bits on the same machine). A checkpoint records each phase's
steps and a fingerprint of its optimizer, and resuming refuses any other (see ``sciml._checkpoint``).
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

from sciml._checkpoint import Run, read_checkpoint, strong, write_checkpoint
from sciml.distributed import on_every_process, write_on_process_0

__all__ = ["fit", "Phase", "EarlyStopping", "FitResult", "StepInfo"]


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
        checkpoint_every: int = 100, resume: bool = False, data: Any = None) -> FitResult:
    """Minimise ``loss_fn(params)`` (or ``loss_fn(params, data)``).

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
        data: a pytree of arrays handed to ``loss_fn(params, data)`` as an argument of the compiled step
            rather than closed over. In a multi-process program (`sciml.distributed`) pass the batch made
            by `sciml.distributed.global_batch` here: the step is then data-parallel (arrays split over
            processes cannot be closed over), the params are replicated on every device, and process 0
            alone writes the checkpoints.

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
    params = strong(params)
    run = Run(phases=phases, params=params, state=strong(phases[0].optimizer.init(params)))
    if checkpoint is not None and resume and os.path.exists(checkpoint):
        run = read_checkpoint(os.fspath(checkpoint), phases, params)
    run = on_every_process(run)   # multi-process: the same params and state on every device (data-parallel)
    return _train(loss_fn, run, phases, progress, tuple(callbacks), early_stopping,
                  None if checkpoint is None else os.fspath(checkpoint), checkpoint_every, data)



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



def _uses_linesearch(state) -> bool:
    try:
        return optax.tree.get(state, "value") is not None and optax.tree.get(state, "grad") is not None
    except (KeyError, ValueError):
        return False


@functools.lru_cache(maxsize=64)
def _compiled_step(loss_fn, optimizer, linesearch: bool, with_data: bool):
    def step(params, state, data):
        objective = (lambda p: loss_fn(p, data)) if with_data else loss_fn  # noqa: E731
        value_and_grad = (optax.value_and_grad_from_state(objective) if linesearch
                          else jax.value_and_grad(objective))
        value, grads = value_and_grad(params, state=state) if linesearch else value_and_grad(params)
        finite = jnp.isfinite(value) & jnp.all(jnp.asarray(
            [jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)] or [True]))
        extra = dict(value=value, grad=grads, value_fn=objective) if linesearch else {}
        updates, new_state = optimizer.update(grads, state, params, **extra)
        new_params = optax.apply_updates(params, updates)
        new_state = jax.tree_util.tree_map(lambda new, old: jnp.asarray(new, old.dtype), new_state, state)
        return new_params, new_state, value, finite

    return jax.jit(step)


def _train(loss_fn, run: Run, phases, progress, callbacks, early, path, every, data) -> FitResult:
    last_good, ended = None, []
    try:
        while run.phase < len(phases):
            phase = phases[run.phase]
            step = _compiled_step(loss_fn, phase.optimizer, _uses_linesearch(run.state), data is not None)
            with _progress_bar(progress, phase, run) as bar:
                bar.set_postfix(status="compiling")   # the first step compiles (unless cached)
                while run.phase_step < phase.steps:
                    new_params, new_state, value, finite = step(run.params, run.state, data)
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
                        write_on_process_0(write_checkpoint, path, run, phases)
            _next_phase(run, phases, early)
    except KeyboardInterrupt:
        where = f"; resume with `fit(..., checkpoint={path!r}, resume=True)`" if path else ""
        return _finish(run, "interrupted", f"interrupted at step {len(run.losses)}{where}.", path, early)
    early_ends = f"; {'; '.join(ended)}" if ended else ""
    return _finish(run, "completed", f"completed {len(run.losses)} steps{early_ends}.", path, early)


def _early_stop(early: EarlyStopping | None, run: Run, loss: float, params) -> str | None:
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


def _next_phase(run: Run, phases, early):
    """Move to the next phase, starting it from the best params and a fresh optimizer state."""
    run.phase, run.phase_step, run.since_best = run.phase + 1, 0, 0
    if early is not None and early.restore_best and run.best_params is not None:
        run.params = run.best_params
    if run.phase < len(phases):
        run.state = strong(phases[run.phase].optimizer.init(run.params))


def _finish(run: Run, reason, message, path, early) -> FitResult:
    if path is not None:
        write_on_process_0(write_checkpoint, path, run, run.phases)
    params = run.params
    if early is not None and early.restore_best and run.best_params is not None:
        params = run.best_params
    return FitResult(params=params, opt_state=run.state, losses=np.asarray(run.losses, np.float64),
                     steps=len(run.losses), reason=reason, message=message)


def _nonfinite_message(loss, run: Run) -> str:
    step = len(run.losses)
    what = "the loss" if not math.isfinite(loss) else "the gradient"
    kept = (f"returned the parameters of step {step - 1}, the last whose loss ({run.losses[-1]:.4e}) and "
            f"gradient were finite" if run.losses else "returned the initial parameters unchanged")
    return (f"{what} became non-finite (loss={loss}) at step {step}; training stopped and {kept}. Lower the "
            f"learning rate, check `loss_fn` at these parameters, or look for a failed solve (the losses of "
            f"`sciml.losses` turn `max_steps` or a blow-up into NaN).")


class _progress_bar:
    """A tqdm bar for one phase (or a no-op when ``progress`` is False)."""

    def __init__(self, progress, phase: Phase, run: Run):
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
