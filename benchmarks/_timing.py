"""Timing helpers shared by every benchmark: compile separately, warm up, interleave, take medians.

Each benchmark runs sciml and its peer on the same workload in one process. A repeat is the mean of
enough calls to last ~20 ms (tiny workloads need many); the reported time is the median over repeats,
with the two sides' repeats interleaved so that drift in the machine's speed affects both alike.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence

import jax


def compiled(step: Callable, *args) -> tuple[Callable, float]:
    """The jitted ``step``, warmed up for ``args``, and the seconds tracing + compiling it took.

    The time is that of ``step.lower(*args).compile()``; what is returned for timing is ``step`` itself,
    called once, because a jitted function's own dispatch (the way users call it) costs ~15 us less
    per call than calling the ``Compiled`` object, which would hide a fast solve behind that overhead.
    """
    start = time.perf_counter()
    step.lower(*args).compile()
    seconds = time.perf_counter() - start
    jax.block_until_ready(step(*args))
    return step, seconds


def first_call(fn: Callable, *args) -> float:
    """Seconds of the first call (compile included for a fresh jitted function)."""
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def time_call(fn: Callable, args: tuple, number: int) -> float:
    """Mean seconds per call over ``number`` calls, each waited for."""
    start = time.perf_counter()
    for _ in range(number):
        jax.block_until_ready(fn(*args))
    return (time.perf_counter() - start) / number


def calls_per_repeat(fn: Callable, args: tuple, target_seconds: float = 0.02) -> int:
    """Enough calls that one repeat takes about ``target_seconds``."""
    return max(1, int(target_seconds / max(time_call(fn, args, 3), 1e-7)))


def interleaved_medians(calls: Sequence[tuple[Callable, tuple]], repeats: int) -> list[float]:
    """Median seconds per call of each ``(fn, args)``, their repeats interleaved."""
    numbers = [calls_per_repeat(fn, args) for fn, args in calls]
    for (fn, args), number in zip(calls, numbers):
        time_call(fn, args, number)  # warm-up
    samples: list[list[float]] = [[] for _ in calls]
    for _ in range(repeats):
        for i, ((fn, args), number) in enumerate(zip(calls, numbers)):
            samples[i].append(time_call(fn, args, number))
    return [statistics.median(s) for s in samples]


def table(header: Sequence[str], rows: Sequence[Sequence], widths: Sequence[int]) -> str:
    """A plain-text table: first column left-aligned, the rest right-aligned."""
    def line(cells):
        return " ".join(f"{c:<{w}}" if i == 0 else f"{c:>{w}}" for i, (c, w) in enumerate(zip(cells, widths)))
    out = [line(header), "-" * (sum(widths) + len(widths) - 1)]
    out += [line([str(c) for c in r]) for r in rows]
    return "\n".join(out)


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f}us"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.0f}ms"
