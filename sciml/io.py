"""Save and load parameters and models: one safetensors file, never pickle.

``sciml.save(path, params, model=None, metadata=None)`` writes one safetensors file;
``params, model = sciml.load(path)`` reads it back. The file is an ordinary safetensors file: any
safetensors reader sees one tensor per leaf, named by its path (``params/layers/0/w``). Its
string-to-string ``__metadata__`` holds

- ``sciml.format``: ``"1"``, the version of this layout;
- ``sciml.tree``: JSON description of the params pytree: containers (``{"dict": {...}}``,
  ``{"list": [...]}``, ``{"tuple": [...]}``, ``null``) and, for every leaf, its ``dtype``, ``shape``
  and the ``sha256`` of its bytes (plus ``"python"`` for a Python scalar and ``"prng_impl"`` for a
  typed JAX PRNG key);
- ``sciml.model``: JSON of ``model.to_config()``, or ``null``;
- ``sciml.metadata``: JSON of the user's ``metadata`` dict (``{}`` when none was given);
- ``sciml.sha256``: sha256 of the other ``sciml.*`` entries, so that a corrupted header is detected.

Every dtype round-trips bit for bit. Dtypes that safetensors knows are stored as themselves; complex
leaves are stored as float pairs (a ``complex64`` array of shape ``(n,)`` is an ``F32`` tensor of shape
``(n, 2)``, real then imaginary part); the one-byte JAX dtypes that older safetensors readers lack
(``int4``, ``float8_e4m3fnuz``, ...) are stored as ``U8`` bytes.

Safety: loading never unpickles and never imports anything named in the file. The header length is
checked against the file size, the header and the tree description are validated strictly, and every
tensor's bytes are checked against their checksum, so a truncated, corrupted or foreign file raises a
``ValueError`` that names the file and the problem instead of returning wrong numbers.

Writing is atomic (:func:`sciml._atomic.atomic_write`): the file is written to a temporary file in the
same directory, flushed to disk and moved over ``path``, so an existing file is never left half-written;
a replaced file keeps its permissions, a symlink's target is written, and a read-only file, a directory
or a device at ``path`` is refused.

The layout is written here rather than with ``safetensors.numpy.save``, whose numpy back-end has no
bfloat16 and whose low-level writer changed signature across the supported safetensors versions; every
file is read back through ``safetensors.deserialize``, the reference parser, as a second check.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import stat
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import safetensors

from sciml._atomic import atomic_write
from sciml._config import PrecisionError, x64_enabled
from sciml._safetensors_format import (DTYPES, FORMAT_VERSION, PYTHON_TYPES, STORAGE, WIDE, bad, bytes_view,
                                       child_name, describe, dumps, read_header)
from sciml._safetensors_format import header_digest as _header_digest  # tests forge headers with this name
from sciml.layers import Layer, from_config

__all__ = ["save", "load", "read_metadata"]


# -- saving ------------------------------------------------------------------------------------------
def save(path: str | os.PathLike, params: Any, model: Layer | None = None,
         metadata: dict | None = None) -> None:
    """Save ``params`` (and optionally ``model`` and ``metadata``) to one safetensors file at ``path``.

    Args:
        path: the file to write; ``.safetensors`` is the conventional extension. An existing file is
            replaced atomically.
        params: a pytree of nested ``dict`` (string keys), ``list``, ``tuple`` and ``None`` whose leaves
            are arrays (JAX or NumPy, any bool/int/float/complex dtype, 0-d included), typed JAX PRNG
            keys, or Python scalars.
        model: a :class:`sciml.layers.Layer`, stored as ``model.to_config()``.
        metadata: a JSON-able dict (string keys; lists, tuples, strings, finite numbers, booleans,
            ``None``) stored alongside; read it back with :func:`read_metadata`. Tuples come back as lists.

    Raises:
        TypeError: when ``params`` holds something other than the containers and leaves above, when
            ``model`` is not a Layer, or when ``metadata`` or the model description is not JSON-able.
        ValueError: when ``path`` is a directory, a device or a FIFO, or ``metadata`` holds a NaN or
            infinity.
        PermissionError: when ``path`` is a read-only file (it is never overwritten).
        FileNotFoundError: when the directory of ``path`` does not exist.

    Example:
        >>> import tempfile, os, jax.numpy as jnp, sciml
        >>> path = os.path.join(tempfile.mkdtemp(), "params.safetensors")
        >>> sciml.save(path, {"w": jnp.ones((2, 2)), "b": jnp.zeros(2, jnp.complex64)})
        >>> params, model = sciml.load(path)
        >>> params["b"].dtype, model is None
        (dtype('complex64'), True)
    """
    path = os.fsdecode(path)
    arrays: dict[str, np.ndarray] = {}
    tree = describe(params, "params", "params", arrays)
    if model is not None and not isinstance(model, Layer):
        raise TypeError(f"`model` must be a `sciml.layers.Layer`; got {type(model).__name__}. "
                        f"Put other descriptions in `metadata=`.")
    config = None if model is None else model.to_config()
    _check_json(config, "model.to_config()")
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"`metadata` must be a dict; got {type(metadata).__name__}.")
    _check_json(metadata, "metadata")
    meta = {"sciml.format": FORMAT_VERSION, "sciml.tree": dumps(tree),
            "sciml.model": dumps(config), "sciml.metadata": dumps(metadata or {})}
    meta["sciml.sha256"] = _header_digest(meta)
    header: dict[str, Any] = {"__metadata__": meta}
    offset = 0
    for name, array in arrays.items():
        code, pairs = STORAGE[array.dtype.name]
        header[name] = {"dtype": code, "shape": list(array.shape) + [2] * pairs,
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    encoded = dumps(header).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # safetensors pads the header to 8 bytes
    atomic_write(path, lambda file: _write_payload(file, len(encoded).to_bytes(8, "little") + encoded,
                                                   list(arrays.values())), what="`sciml.save`")


def _check_json(value: Any, where: str) -> None:
    """Raise unless ``value`` is plain JSON (string keys, finite floats) that round-trips exactly."""
    if value is None or type(value) in (str, bool, int):
        return
    if type(value) is float:
        if not math.isfinite(value):
            raise ValueError(f"`{where}` is {value}, which JSON cannot store; store it as a string.")
        return
    if type(value) in (list, tuple):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
        return
    if type(value) is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(f"`{where}` has the key {key!r} of type {type(key).__name__}; JSON "
                                f"keys must be strings. Convert it with `str`.")
            _check_json(item, f"{where}[{key!r}]")
        return
    raise TypeError(f"`{where}` has type {type(value).__name__}, which is not JSON-able; use "
                    f"dict/list/str/int/float/bool/None (convert arrays with `.tolist()`, NumPy "
                    f"scalars with `.item()`).")


def _write_payload(file, header: bytes, arrays: list[np.ndarray]) -> None:
    file.write(header)
    for array in arrays:
        file.write(bytes_view(array))


# -- loading -----------------------------------------------------------------------------------------
def load(path: str | os.PathLike, *, like: Any = None) -> tuple[Any, Layer | None]:
    """Load ``(params, model)`` from a file written by :func:`save`.

    Array leaves come back as ``jax.Array`` with their saved dtype and bits, Python scalars as Python
    scalars, typed PRNG keys as keys; ``model`` is rebuilt with :func:`sciml.layers.from_config`
    (``None`` if none was saved).

    Args:
        path: the file to read.
        like: an optional template pytree (arrays or ``jax.ShapeDtypeStruct``, e.g. from
            ``jax.eval_shape(model.init, key)[0]``); the loaded params must have its structure, shapes
            and dtypes.

    Raises:
        FileNotFoundError: when there is no file at ``path``.
        ValueError: when the file is not one written by :func:`save` (truncated, corrupted, another
            format), when its model cannot be rebuilt, or when the params do not match ``like``.
        PrecisionError: when a leaf is 64-bit but JAX's x64 mode is off (``SCIML_X64=0``).

    Example:
        >>> import tempfile, os, jax.numpy as jnp, sciml
        >>> path = os.path.join(tempfile.mkdtemp(), "params.safetensors")
        >>> sciml.save(path, {"w": jnp.arange(3.0)}, metadata={"epoch": 7})
        >>> params, _ = sciml.load(path, like={"w": jnp.zeros(3)})
        >>> params["w"].tolist(), sciml.io.read_metadata(path)
        ([0.0, 1.0, 2.0], {'epoch': 7})
    """
    path = os.fsdecode(path)
    with _open(path) as (file, size):
        header = read_header(file, size, path)
        file.seek(0)
        data = file.read()
    if len(data) != size:
        raise bad(path, "it changed while it was being read")
    try:
        tensors = dict(safetensors.deserialize(data))
    except Exception as err:  # the reference parser's own checks, after ours
        raise bad(path, f"safetensors cannot parse it ({err})") from None
    del data
    params = _rebuild(header["tree"], "params", tensors, path)
    model = None
    if header["model"] is not None:
        try:
            model = from_config(header["model"])
        except Exception as err:  # a hand-made file can hand any field values to a layer class
            raise bad(path, f"its model cannot be rebuilt: {err}") from None
    if like is not None:
        _check_like(params, like, path)
    return params, model


def read_metadata(path: str | os.PathLike) -> dict:
    """The ``metadata`` dict saved with :func:`save` (``{}`` if none), reading only the header.

    Raises the same errors as :func:`load` for a file that is not one written by :func:`save`.

    Example:
        >>> import tempfile, os, jax.numpy as jnp, sciml
        >>> path = os.path.join(tempfile.mkdtemp(), "params.safetensors")
        >>> sciml.save(path, {"w": jnp.ones(2)}, metadata={"loss": 0.25, "tags": ["ode"]})
        >>> sciml.io.read_metadata(path)
        {'loss': 0.25, 'tags': ['ode']}
    """
    path = os.fsdecode(path)
    with _open(path) as (file, size):
        return read_header(file, size, path)["metadata"]


@contextlib.contextmanager
def _open(path: str) -> Iterator[tuple[Any, int]]:
    """Open ``path`` for reading as ``(file, size)``; only regular files are accepted."""
    try:  # O_NONBLOCK: opening a FIFO must not wait for a writer; it changes nothing for a regular file
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"`sciml.load`: there is no file at {path!r}.") from None
    except OSError:
        if os.path.isdir(path):
            raise bad(path, "it is a directory, not a file written by `sciml.save`") from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        if stat.S_ISDIR(info.st_mode):
            raise bad(path, "it is a directory, not a file written by `sciml.save`")
        raise bad(path, "it is not a regular file")
    with os.fdopen(fd, "rb") as file:
        yield file, info.st_size


def _rebuild(node: Any, name: str, tensors: dict[str, dict], path: str) -> Any:
    """The params pytree described by ``node`` (already validated), from the deserialized tensors."""
    if node is None:
        return None
    if "dict" in node:
        return {key: _rebuild(child, child_name(name, key), tensors, path)
                for key, child in node["dict"].items()}
    if "list" in node or "tuple" in node:
        kind = "list" if "list" in node else "tuple"
        children = [_rebuild(child, f"{name}/{i}", tensors, path) for i, child in enumerate(node[kind])]
        return children if kind == "list" else tuple(children)
    data = tensors[name]["data"]
    if hashlib.sha256(data).hexdigest() != node["sha256"]:
        raise bad(path, f"the data of tensor {name!r} does not match its checksum; the file is corrupted")
    array = np.frombuffer(data, dtype=DTYPES[node["dtype"]]).reshape(node["shape"])
    if "python" in node:
        return PYTHON_TYPES[node["python"]](array.item())
    if node["dtype"] in WIDE and not x64_enabled():
        raise PrecisionError(f"{path!r}: tensor {name!r} is {node['dtype']}, but JAX's x64 mode is off "
                             f"(SCIML_X64=0), so loading it would truncate it. Unset SCIML_X64 (sciml "
                             f"enables x64 by default) to load this file.")
    if "prng_impl" in node:
        try:
            return jax.random.wrap_key_data(jnp.asarray(array), impl=node["prng_impl"])
        except (ValueError, TypeError) as err:
            raise bad(path, f"tensor {name!r} is not a valid {node['prng_impl']!r} PRNG key: "
                            f"{err}") from None
    return jnp.asarray(array)


def _check_like(params: Any, like: Any, path: str) -> None:
    """Raise a ValueError naming the first difference between ``params`` and the template ``like``."""
    got, got_def = jax.tree_util.tree_flatten_with_path(params)
    want, want_def = jax.tree_util.tree_flatten_with_path(like)
    if got_def != want_def:
        got_paths = {jax.tree_util.keystr(p) for p, _ in got}
        want_paths = {jax.tree_util.keystr(p) for p, _ in want}
        raise bad(path, f"its params do not have the structure of `like`: only in the file: "
                        f"{sorted(got_paths - want_paths)[:5]}, only in `like`: "
                        f"{sorted(want_paths - got_paths)[:5]} (file: {got_def}, like: {want_def})")
    for (key_path, leaf), (_, template) in zip(got, want):
        found, expected = _shape_dtype(leaf), _shape_dtype(template)
        if found != expected:
            raise bad(path, f"params{jax.tree_util.keystr(key_path)} has shape {found[0]} and dtype "
                            f"{found[1]}, but `like` has shape {expected[0]} and dtype {expected[1]}")


def _shape_dtype(x: Any) -> tuple[tuple[int, ...], Any]:
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return tuple(x.shape), x.dtype
    return np.shape(x), np.asarray(x).dtype
