"""The ``sciml`` command.

- ``sciml demo ude``: train the Lotka-Volterra UDE on built-in noisy data, recover the missing terms as
  equations, and write the figures (``--out``).
- ``sciml demo node``: train the spiral neural ODE and save it.
- ``sciml solve MODEL --y0 FILE``: run a saved :class:`sciml.NeuralODE` (``sciml.save(path, params,
  model=node)``) from the initial states in a ``.npy`` or ``.csv`` file and write the trajectories to
  ``.npy`` or ``.csv``: the entry point for simulation pipelines.

Errors in the input (a missing or malformed file, a wrong shape, a bad tolerance, an output path that
cannot be written, a demo without matplotlib) end the command with exit status 2 and one line that names
the argument and the fix, before any solving or training; a failed solve ends it with status 1. Every
output file is written whole or not at all (:func:`sciml._atomic.atomic_write`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings

import numpy as np


def main(argv=None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except _InputError as err:
        print(f"sciml {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sciml {args.command}: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sciml", description="Scientific machine learning with differential equations on JAX.",
        epilog="Run `sciml COMMAND --help` for the options of a command.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="train a built-in demo model and write its figures",
                          description="Train a built-in demo and write its figures (PNG) into --out.")
    demo.add_argument("name", choices=("ude", "node"),
                      help="ude: Lotka-Volterra UDE with symbolic recovery; node: spiral neural ODE")
    demo.add_argument("--out", default=None,
                      help="output directory, created if missing (default: sciml-demo-NAME)")
    demo.add_argument("--quick", action="store_true", help="a few training steps only (a smoke test)")
    demo.add_argument("--seed", type=int, default=None, help="random seed (default: the demo's own)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(run=_demo)

    solve = sub.add_parser(
        "solve", help="run a saved NeuralODE on initial states from a file",
        description="Run a NeuralODE saved with `sciml.save(path, params, model=node)` from every initial "
                    "state in --y0 and write the trajectories to --out.",
        epilog="Output: .npy holds an array (batch, times, state); .csv holds the columns trajectory, t, "
               "y0, y1, ... with a header line. The states keep the model's dtype (its parameters' dtype, "
               "or float64 for a float64 .npy --y0); .csv prints every digit of it. An existing --out is "
               "replaced whole, never left half-written.")
    solve.add_argument("model", help="a .safetensors file written by sciml.save with model=NeuralODE(...)")
    solve.add_argument("--y0", required=True,
                       help="initial states: .npy or .csv, one state per row (shape (n,) or (batch, n))")
    solve.add_argument("--t", default=None,
                       help="output times: 'T0:T1:N' (N evenly spaced), a list 't0,t1,...', or a .npy/.csv "
                            "file; default: the model's own t_span and saveat")
    solve.add_argument("--out", default="trajectories.npy",
                       help="output file, .npy or .csv; its directory must exist (default: %(default)s in the "
                            "current directory)")
    solve.add_argument("--rtol", type=float, default=None,
                       help="relative tolerance, finite and > 0 (default: the model's)")
    solve.add_argument("--atol", type=float, default=None,
                       help="absolute tolerance, finite and >= 0 (default: the model's)")
    solve.set_defaults(run=_solve)
    return parser


class _InputError(Exception):
    """A problem with the command's input, reported as ``sciml COMMAND: error: ...``."""


def _demo(args) -> int:
    from sciml.demos._plot import require_matplotlib

    try:
        require_matplotlib()                # before training: a missing extra costs no time
    except ImportError as err:
        raise _InputError(str(err)) from None
    out = args.out or f"sciml-demo-{args.name}"
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as err:
        raise _InputError(f"--out {out!r} cannot be used as the output directory: {err.strerror}.") from None
    if args.name == "ude":
        from sciml.demos import lotka_volterra as demo
    else:
        from sciml.demos import spiral as demo
    kwargs = {} if args.seed is None else {"seed": args.seed}
    demo.run(out=out, quick=args.quick, progress=not args.no_progress, **kwargs)
    return 0


def _solve(args) -> int:
    import jax
    import jax.numpy as jnp

    from sciml._atomic import check_destination
    from sciml._validate import tolerance_problem
    from sciml.io import load
    from sciml.models import NeuralODE

    if os.path.splitext(args.out)[1] not in (".npy", ".csv"):
        raise _InputError(f"--out {args.out!r} must end in .npy or .csv.")
    with _out_refused(args.out):
        check_destination(args.out, what="--out")
    for name in ("rtol", "atol"):
        value = getattr(args, name)
        problem = None if value is None else tolerance_problem(name, value)
        if problem:
            raise _InputError(f"--{name} {problem}. Use e.g. --{name} 1e-6.")
    try:
        params, node = load(args.model)
    except (FileNotFoundError, ValueError) as err:
        raise _InputError(str(err)) from None
    if not isinstance(node, NeuralODE):
        what = "no model" if node is None else f"a {type(node).__name__}"
        raise _InputError(f"{args.model!r} holds {what}; `sciml solve` runs a NeuralODE saved with "
                          f"`sciml.save(path, params, model=sciml.NeuralODE(...))`.")
    y0 = _read_array(args.y0, "--y0")
    if y0.size == 0:
        raise _InputError(f"--y0 {args.y0!r} holds no states (the file is empty or has only blank lines); give "
                          f"one state per row, e.g. `1.0,0.5`.")
    if y0.ndim not in (1, 2):
        raise _InputError(f"--y0 {args.y0!r} must hold one state (n,) or one state per row (batch, n); got shape "
                          f"{y0.shape}.")
    own = y0.dtype if args.y0.lower().endswith(".npy") and np.issubdtype(y0.dtype, np.floating) else None
    y0 = np.atleast_2d(y0).astype(_state_dtype(params, own))
    if not np.all(np.isfinite(y0)):
        row = int(np.flatnonzero(~np.all(np.isfinite(y0), axis=1))[0])
        raise _InputError(f"--y0 {args.y0!r}: row {row} is not finite ({y0[row].tolist()}).")
    ts = _times(args.t, node)
    options = {k: v for k, v in (("rtol", args.rtol), ("atol", args.atol)) if v is not None}
    t_span = (float(ts[0]), float(ts[-1])) if ts is not None else node.t_span
    if ts is not None and ts[0] == ts[-1]:
        raise _InputError(f"--t needs at least two distinct times; got {ts.tolist()}.")

    def one(x):
        sol = node.solve(params, x, t_span=t_span, saveat=ts, throw=False, **options)
        return sol.ys, sol.status, sol.t_final

    try:
        jax.eval_shape(lambda x: node.vector_field(0.0, node.initial_state(x), params), jnp.asarray(y0[0]))
    except (ValueError, TypeError) as err:
        raise _InputError(f"--y0 {args.y0!r} has states of {y0.shape[1]} components, which the model does not "
                          f"accept: {err}") from None
    ys, status, t_final = (np.asarray(a) for a in jax.jit(jax.vmap(one))(jnp.asarray(y0)))
    failed = np.flatnonzero(status != 0)
    if failed.size:
        from sciml.solvers._status import describe

        first = int(failed[0])
        reason = describe(int(status[first]), float(t_final[first]), 0.0, node.max_steps).rstrip(".")
        print(f"sciml solve: error: {failed.size} of {_count(len(y0), 'trajectory')} failed; row {first}: "
              f"{reason}. Nothing was written.", file=sys.stderr)
        return 1
    times = np.asarray([node.t_span[1]]) if ts is None and node.saveat is None else (
        np.asarray(node.saveat) if ts is None else ts)
    with _out_refused(args.out):
        _write(args.out, times, ys)
    print(f"wrote {args.out}: {_count(len(y0), 'trajectory')} x {_count(len(times), 'time')} x "
          f"{_count(ys.shape[-1], 'state')} ({ys.dtype})")
    return 0


def _count(n: int, noun: str) -> str:
    """``n`` and ``noun`` in the right number: "1 trajectory", "3 trajectories", "2 times"."""
    if n == 1:
        return f"{n} {noun}"
    return f"{n} {noun[:-1]}ies" if noun.endswith("y") and noun[-2] not in "aeiou" else f"{n} {noun}s"


@contextlib.contextmanager
def _out_refused(path: str):
    """An --out that cannot be written (a directory, a read-only file, a missing directory: the messages of
    the one writer, :func:`sciml._atomic.atomic_write`; or a full disk) is reported as one line naming it."""
    try:
        yield
    except (OSError, ValueError) as err:
        message = str(err)
        raise _InputError(message if message.startswith("--out") else f"--out {path!r} could not be written: "
                                                                      f"{message}") from None


def _state_dtype(params, y0_dtype) -> np.dtype:
    """The dtype the model computes in: its parameters' floating dtype, widened by ``y0_dtype``, the dtype
    of a floating --y0 .npy (precision is never lowered); None for a .csv (text) or integer --y0, which has
    no precision of its own."""
    import jax
    import jax.numpy as jnp

    dtypes = [np.dtype(jnp.result_type(leaf)) for leaf in jax.tree_util.tree_leaves(params)]
    model = np.result_type(*[d for d in dtypes if np.issubdtype(d, np.inexact)] or [np.float64])
    return model if y0_dtype is None else np.result_type(model, y0_dtype)


def _read_array(path: str, flag: str) -> np.ndarray:
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".npy", ".csv"):
        raise _InputError(f"{flag} {path!r} must be a .npy or .csv file.")
    if not os.path.isfile(path):
        raise _InputError(f"{flag} {path!r}: no such file.")
    try:
        if ext == ".npy":
            data = np.load(path, allow_pickle=False)
        else:
            with warnings.catch_warnings():     # an empty file: the caller says so in its own words
                warnings.filterwarnings("ignore", "loadtxt: input contained no data")
                data = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
    except (ValueError, OSError, EOFError) as err:
        raise _InputError(f"{flag} {path!r} could not be read as {ext[1:]}: {err}") from None
    if not np.issubdtype(data.dtype, np.number) or np.iscomplexobj(data):
        raise _InputError(f"{flag} {path!r} must hold real numbers; got dtype {data.dtype}.")
    return data


def _times(spec: str | None, node) -> np.ndarray | None:
    if spec is None:
        return None
    if spec.lower().endswith((".npy", ".csv")):
        ts = _read_array(spec, "--t").ravel()
    else:
        try:
            if ":" in spec:
                t0, t1, n = spec.split(":")
                ts = np.linspace(float(t0), float(t1), int(n))
            else:
                ts = np.asarray([float(t) for t in spec.split(",")])
        except ValueError:
            raise _InputError(f"--t {spec!r} must be 'T0:T1:N', a list 't0,t1,...' or a .npy/.csv file.") from None
    ts = ts.astype(np.float64)
    if ts.size < 2 or not np.all(np.isfinite(ts)):
        raise _InputError(f"--t needs at least two finite times; got {ts.tolist()}.")
    steps = np.diff(ts)
    if not (np.all(steps > 0) or np.all(steps < 0)):
        raise _InputError("--t must be strictly increasing (or strictly decreasing, to integrate backwards).")
    return ts


def _write(path: str, times: np.ndarray, ys: np.ndarray) -> None:
    """Write ``ys`` (batch, times, n) to ``path`` (.npy, or .csv with every digit of the dtype), whole or
    not at all: a killed write leaves the old file as it was."""
    from sciml._atomic import atomic_write

    if path.endswith(".npy"):
        atomic_write(path, lambda file: np.save(file, ys), what="--out")
        return
    batch, m, n = ys.shape
    rows = np.column_stack([np.repeat(np.arange(batch), m), np.tile(times, batch), ys.reshape(batch * m, n)])
    header = ",".join(["trajectory", "t"] + [f"y{j}" for j in range(n)])
    fmt = ["%d", _digits(times.dtype)] + [_digits(ys.dtype)] * n
    atomic_write(path, lambda file: np.savetxt(file, rows, delimiter=",", header=header, comments="", fmt=fmt),
                 what="--out")


def _digits(dtype) -> str:
    """The shortest %g format that reads back every value of the floating ``dtype`` exactly: %.9g for
    float32, %.17g for float64."""
    return f"%.{int(np.ceil((np.finfo(dtype).nmant + 1) * np.log10(2))) + 1}g"


if __name__ == "__main__":
    sys.exit(main())
