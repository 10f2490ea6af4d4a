"""What an optax optimizer is, written down so that a checkpoint can tell one optimizer from another.

An optax optimizer is a ``GradientTransformation``: a NamedTuple of two closures, ``init`` and
``update``, whose hyper-parameters live in closure cells (``optax.adam(1e-2)`` is
``chain(scale_by_adam(b1=0.9, ...), scale(-0.01))``). :func:`optimizer_fingerprint` walks that graph
and returns one ``{path: description}`` entry per node:

- a function: its ``module.qualname``, then its closure cells (by variable name), its default argument
  values and keyword defaults;
- a number, string, bool or ``None``: its ``repr``; a NumPy/JAX array: dtype, shape and the values (up
  to 8 of them, else a sha256 of the bytes);
- tuples, lists, dicts, NamedTuples (nested transformations, ``chain``'s list of them),
  ``functools.partial``, bound methods and dataclass instances: their parts, each under its own path;
- an object reached a second time: ``<same as PATH>`` (``<recursive PATH>`` inside itself);
- a class, a dtype or scalar type (``jnp.float32``), an enum member: its name;
- anything else (an instance of another class): its type only, so two such objects of the same type
  are not told apart.

``optax.adam(1e-2)`` and ``optax.adam(1e-3)`` differ at ``...update_fns[1].tx.update.step_size``,
adam and adamw in the transformations of the chain; ``optax.inject_hyperparams`` keeps its
hyper-parameters in the ``numeric_hps`` cell of ``init``, so those are compared too. Two optimizers
built by the same calls have the same fingerprint in every process (no ids or addresses enter it); a
new optax release may rename its internals and so change the fingerprint of the same call.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import types
from typing import Any

import numpy as np

__all__ = ["optimizer_fingerprint", "differences"]

_ROOT = "optimizer"


@functools.lru_cache(maxsize=64)
def _cached(optimizer) -> tuple[tuple[str, str], ...]:
    out: dict[str, str] = {}
    _describe(optimizer, _ROOT, out, {}, frozenset())
    return tuple(out.items())


def optimizer_fingerprint(optimizer) -> dict[str, str]:
    """``{path: description}`` for every part of ``optimizer`` (a JSON-able dict of strings)."""
    try:
        return dict(_cached(optimizer))
    except TypeError:  # an unhashable custom transformation: describe it without the cache
        out: dict[str, str] = {}
        _describe(optimizer, _ROOT, out, {}, frozenset())
        return out


def differences(saved: dict[str, str], given: dict[str, str], limit: int = 3) -> str:
    """The first ``limit`` entries where two fingerprints differ, in words ("" when they are equal)."""
    keys = list(saved) + [key for key in given if key not in saved]
    differ = [key for key in keys if saved.get(key) != given.get(key)]
    shown = [f"`{key}` is {saved.get(key, 'absent')} in the checkpoint but {given.get(key, 'absent')} now"
             for key in differ[:limit]]
    more = f" (and {len(differ) - limit} more differences)" if len(differ) > limit else ""
    return "; ".join(shown) + more


def _name(obj) -> str:
    return f"{getattr(obj, '__module__', None) or '?'}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


def _describe(obj: Any, path: str, out: dict[str, str], seen: dict[int, str], ancestors: frozenset) -> None:
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
        out[path] = repr(obj)
        return
    if isinstance(obj, np.ndarray) or isinstance(obj, np.generic) or type(obj).__module__.startswith("jax"):
        out[path] = _array(obj)
        if out[path]:
            return
    if isinstance(obj, (tuple, list, dict)) and not obj:
        out[path] = f"empty {type(obj).__name__}"
        return
    key = id(obj)
    if key in ancestors:
        out[path] = f"<recursive {seen[key]}>"
        return
    if key in seen:
        out[path] = f"<same as {seen[key]}>"
        return
    seen[key] = path
    ancestors = ancestors | {key}

    def part(name: str, value: Any, sep: str = ".") -> None:
        _describe(value, f"{path}{sep}{name}", out, seen, ancestors)

    if isinstance(obj, types.FunctionType):
        out[path] = _name(obj)
        for name, cell in zip(obj.__code__.co_freevars, obj.__closure__ or ()):
            try:
                value = cell.cell_contents
            except ValueError:  # a cell not yet filled
                out[f"{path}.{name}"] = "<empty>"
                continue
            part(name, value)
        for i, value in enumerate(obj.__defaults__ or ()):
            part(f"__defaults__[{i}]", value)
        for name, value in (obj.__kwdefaults__ or {}).items():
            part(f"__kwdefaults__[{name!r}]", value)
    elif isinstance(obj, functools.partial):
        out[path] = "functools.partial"
        part("func", obj.func)
        for i, value in enumerate(obj.args):
            part(f"args[{i}]", value)
        for name, value in obj.keywords.items():
            part(f"keywords[{name!r}]", value)
    elif isinstance(obj, types.MethodType):
        out[path] = _name(obj)
        part("__self__", obj.__self__)
    elif isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a NamedTuple: a GradientTransformation
        out[path] = _name(type(obj))
        for name in obj._fields:
            part(name, getattr(obj, name))
    elif isinstance(obj, (tuple, list)):
        out[path] = f"{type(obj).__name__} of {len(obj)}"
        for i, value in enumerate(obj):
            part(f"[{i}]", value, sep="")
    elif isinstance(obj, dict):
        out[path] = f"dict of {len(obj)}"
        for name, value in obj.items():
            part(f"[{name!r}]", value, sep="")
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out[path] = _name(type(obj))
        for field in dataclasses.fields(obj):
            part(field.name, getattr(obj, field.name))
    elif isinstance(obj, type):
        out[path] = f"class {_name(obj)}"
    elif isinstance(obj, np.dtype):
        out[path] = f"dtype {obj}"
    elif isinstance(getattr(obj, "dtype", None), np.dtype):  # a scalar type such as `jnp.float32`
        out[path] = f"{_name(type(obj))} of dtype {obj.dtype}"
    elif isinstance(obj, enum.Enum):
        out[path] = repr(obj)
    else:
        out[path] = f"an instance of {_name(type(obj))}"


def _array(obj: Any) -> str:
    """dtype, shape and values (or their sha256) of an array; "" for a JAX object that is not one."""
    try:
        array = np.asarray(obj)
    except Exception:  # a tracer, or a JAX object that is not an array
        return ""
    if array.dtype == object:
        return ""
    if array.size <= 8:
        return f"{array.dtype}{list(array.shape)} {array.tolist()!r}"
    digest = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
    return f"{array.dtype}{list(array.shape)} sha256:{digest}"
