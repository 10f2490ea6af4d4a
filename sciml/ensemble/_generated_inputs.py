"""Generated inputs of a streamed ensemble: ``solve_ensemble(f, None, t_span, inputs=make, n_trajectories=N,
batch_size=k, ...)`` calls ``make(indices)`` for each chunk just before solving it, so the inputs of
10^8 trajectories never exist at once (SciML's ``prob_func(prob, i, repeat)`` of an `EnsembleProblem`, a
chunk at a time).

``make`` gets the chunk's trajectory indices (an int64 array of shape ``(k,)``, the last chunk's shorter)
and returns ``(y0s, args)`` with ``k`` entries on the leading axis of ``y0s`` and of the batched leaves of
``args`` (NumPy or JAX arrays). It is jitted when it traces (one compile, plus one for a shorter last
chunk), else called on the host. The first chunk goes through `prepare` as given arrays would, so every
check and the `Problem`/`Options` are the pipeline's own; each later chunk is checked for the first
chunk's structure, shapes and dtypes (cheap: no pass over the values), padded like given arrays (copies
of the last trajectory) and handed to the same streaming runners.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import numpy as np

from sciml import _validate as V
from sciml._problem import Options, Problem, split_args
from sciml.ensemble._streaming import _take


def check_generated(inputs, n_trajectories, y0s, args, batch_size) -> None:
    """The misuses of ``inputs=``/``n_trajectories=`` (before anything is generated or traced)."""
    if inputs is None:
        if n_trajectories is not None:
            raise ValueError("`n_trajectories` counts the trajectories that `inputs=` generates; with `y0s` given it "
                             "is their leading axis. Drop `n_trajectories`, or pass `inputs=` with `y0s=None`.")
        return
    if not callable(inputs):
        raise TypeError(f"`inputs` must be a function of a chunk's trajectory indices (an int64 array) returning "
                        f"`(y0s, args)` for them, e.g. `lambda i: (y0[None].repeat(len(i), 0), rhos[i])`; got "
                        f"{type(inputs).__name__}.")
    if batch_size is None:
        raise ValueError("`inputs` generates each chunk's initial states and arguments just before solving it: "
                         "pass `batch_size=` (the trajectories solved at a time, e.g. `batch_size=100_000`).")
    given = [name for name, v in (("y0s", y0s), ("args", args)) if v is not None]
    if given:
        raise ValueError(f"`{'` and `'.join(given)}` must be None with `inputs=`, which returns each chunk's "
                         f"`(y0s, args)`; pass `None` for {' and '.join(given)} (the shared arguments too: "
                         f"return them from `inputs`, with `args_axes` marking them None), or drop `inputs`.")
    if n_trajectories is None:
        raise ValueError("`inputs=` needs the number of trajectories to generate: pass `n_trajectories=N` "
                         "(`inputs` is then called with indices 0..N-1, a chunk at a time).")
    V._check_count(n_trajectories, "n_trajectories", "10**8")
    if jax.process_count() > 1:
        raise ValueError("`inputs=` is not supported in a multi-process program yet (each process would have to "
                         "generate the rows of its devices); pass the ensemble as `y0s`/`args` arrays there.")


@dataclasses.dataclass(frozen=True)
class _Signature:
    """What every chunk of generated inputs must share with the first: structure, trailing shapes, dtypes."""

    y_treedef: Any
    y_leaves: tuple          # (dtype, shape without the leading axis) per leaf of y0s
    static: Any              # the `StaticArgs` of args: its structure and its leaves that are not arrays
    arg_leaves: tuple        # (dtype, shape without the leading axis when batched, batched) per array leaf

    @classmethod
    def of(cls, y0s, args, batched) -> "_Signature":
        y_leaves, y_treedef = jax.tree_util.tree_flatten(y0s)
        dynamic, static = split_args(args)
        return cls(y_treedef, tuple((_dtype(x), np.shape(x)[1:]) for x in y_leaves), static,
                   tuple((_dtype(x), np.shape(x)[1:] if b else np.shape(x), b) for x, b in zip(dynamic, batched)))

    def __str__(self) -> str:
        def shape(dtype, tail, batched=True):
            return f"{dtype}[{', '.join(['k'] * batched + [str(d) for d in tail])}]"
        return (f"`y0s` leaves {[shape(*leaf) for leaf in self.y_leaves]} and `args` leaves "
                f"{[shape(d, s, b) for d, s, b in self.arg_leaves]}")


def _dtype(x) -> str:
    return np.dtype(x.dtype if hasattr(x, "dtype") else np.result_type(x)).name


class GeneratedInputs:
    """The streaming runners' source of chunks (as `GivenInputs`), generating each with ``inputs``."""

    generated = True

    def __init__(self, inputs: Callable, n: int, lanes: int, args_axes):
        self.n, self.lanes, self.args_axes = n, lanes, args_axes
        self._make, self._jitted, self._host = inputs, jax.jit(inputs), None
        self.problem: Problem | None = None
        self.options: Options | None = None
        y0s, args = self._generate(0)
        batched = self._batched(y0s, args, split_args(args)[1].is_dynamic, 0)
        self._signature = _Signature.of(y0s, args, batched)
        #: the first chunk, padded: what `prepare` checks and makes the `Problem` of
        self.first = self._pad(y0s, args, batched, min(lanes, n))

    def bind(self, problem: Problem, options: Options) -> "GeneratedInputs":
        """Keep the first chunk's `Problem` and the `Options` that `prepare` made of it."""
        self.problem, self.options = problem, options
        return self

    def chunk(self, start: int, lanes: int) -> Problem:
        """The `Problem` of the chunk at ``start``: ``inputs`` called on its indices, checked and padded."""
        if lanes != self.lanes:
            raise AssertionError(f"chunks of {lanes} trajectories, generated for {self.lanes}")
        if start == 0:
            return self.problem
        y0s, args = self._generate(start)
        count = min(lanes, self.n - start)
        batched = self._batched(y0s, args, self._signature.static.is_dynamic, start)
        got = _Signature.of(y0s, args, batched)
        if got != self._signature:
            raise ValueError(f"`inputs` returned {got} for {self._name(start)}, but {self._signature} for "
                             f"the first (k: a chunk's trajectories): every chunk must have the same structure, "
                             f"dtypes and shapes (all but the leading axis). Make `inputs` return the same kinds of "
                             f"arrays for every set of indices.")
        y0s, args = self._pad(y0s, args, batched, count)
        return dataclasses.replace(self.problem, y0=y0s, args=split_args(args)[0])

    def _generate(self, start: int):
        """``inputs`` on the indices of the chunk at ``start``: jitted when it traces, else on the host."""
        indices = np.arange(start, min(start + self.lanes, self.n), dtype=np.int64)
        if self._host is None:                      # the first call decides
            try:
                out = self._jitted(indices)
                self._host = False
            except Exception:  # noqa: BLE001 -- anything JAX cannot trace runs on the host; its own error if not
                out = self._make(indices)
                self._host = True
        else:
            out = (self._make if self._host else self._jitted)(indices)
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise TypeError(f"`inputs` must return a pair `(y0s, args)` (`args=None` when `f` takes none); for "
                            f"{self._name(start)} it returned {type(out).__name__}.")
        return tuple(out)

    def _batched(self, y0s, args, is_dynamic, start: int) -> tuple[bool, ...]:
        """Which array leaves of ``args`` are per trajectory; each batched leaf and every leaf of ``y0s``
        checked to have one entry per index."""
        count = min(self.lanes, self.n - start)
        V._check_state(y0s, V.Names(y0="inputs(indices)[0]"), ensemble=True)
        shapes = [np.shape(x) for x in jax.tree_util.tree_leaves(y0s)]
        if shapes[0][0] != count:
            raise ValueError(f"`inputs` returned `y0s` of shapes {shapes} for {self._name(start)}: the leading axis "
                             f"must have one entry per index ({count}).")
        try:
            return V.batched_args(args, self.args_axes, is_dynamic, count)
        except ValueError as err:
            raise ValueError(f"`inputs` returned `args` that do not fit {self._name(start)} ({count} indices): "
                             f"{err}") from None

    def _pad(self, y0s, args, batched, count: int):
        """``(y0s, args)`` with ``lanes`` entries: the last trajectory repeated past ``count``."""
        if count == self.lanes:
            return y0s, args
        pad = functools.partial(_take, start=0, lanes=self.lanes, n=count)
        dynamic, static = split_args(args)
        return (jax.tree_util.tree_map(pad, y0s),
                static.rebuild([pad(x) if b else x for x, b in zip(dynamic, batched)]))

    def _name(self, start: int) -> str:
        last = min(start + self.lanes, self.n) - 1
        return f"chunk {start // self.lanes} (trajectories {start}..{last})"

