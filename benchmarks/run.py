"""Run every benchmark in this folder, one after another, and print their tables.

    python benchmarks/run.py            # all of them
    python benchmarks/run.py solve      # those whose file name contains "solve"

Each benchmark times sciml and its peer on the same workload in one process and prints the ratio;
see the docstring at the top of each file for the workload and the target it checks.
"""

from __future__ import annotations

import importlib
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    chosen = [n for n in names if not argv or any(a in n for a in argv)]
    for name in chosen:
        print(f"\n=== {name} " + "=" * max(0, 70 - len(name)))
        start = time.perf_counter()
        module = importlib.import_module(f"benchmarks.{name}")
        module.main([])
        print(f"({name} took {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
