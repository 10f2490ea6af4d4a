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
import json
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
from sciml.layers import Layer, from_config

__all__ = ["save", "load", "read_metadata"]

FORMAT_VERSION = "1"
_MAX_HEADER_BYTES = 100_000_000  # the limit safetensors itself enforces

# Every storable dtype, by numpy name -> (safetensors dtype of the stored tensor, stored as (re, im)
# pairs?). jaxlib runs only on little-endian hosts, so an array's memory is already the file's byte order.
_STORAGE: dict[str, tuple[str, bool]] = {
    "bool": ("BOOL", False), "uint8": ("U8", False), "int8": ("I8", False),
    "uint16": ("U16", False), "int16": ("I16", False), "uint32": ("U32", False),
    "int32": ("I32", False), "uint64": ("U64", False), "int64": ("I64", False),
    "float16": ("F16", False), "bfloat16": ("BF16", False), "float32": ("F32", False),
    "float64": ("F64", False), "float8_e4m3fn": ("F8_E4M3", False), "float8_e5m2": ("F8_E5M2", False),
    "complex64": ("F32", True), "complex128": ("F64", True),
    **{name: ("U8", False) for name in (
        "int2", "uint2", "int4", "uint4", "float4_e2m1fn", "float8_e3m4", "float8_e4m3",
        "float8_e4m3b11fnuz", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu",
    ) if hasattr(jnp, name)},
}
_DTYPES = {name: np.dtype(name) for name in _STORAGE}
_WIDE = ("float64", "complex128", "int64", "uint64")  # truncated by JAX when x64 is off
_PYTHON_SCALARS = {bool: "bool", int: "int64", float: "float64", complex: "complex128"}  # -> dtype
_PYTHON_TYPES = {kind.__name__: kind for kind in _PYTHON_SCALARS}
_SIGNATURES = (
    (b"\x93NUMPY", "a NumPy .npy file"),
    (b"PK\x03\x04", "a zip archive (a NumPy .npz file or a PyTorch .pt checkpoint)"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file"),
    (b"\x80", "a Python pickle (sciml never unpickles: unpickling can run arbitrary code)"),
)


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
    tree = _describe(params, "params", "params", arrays)
    if model is not None and not isinstance(model, Layer):
        raise TypeError(f"`model` must be a `sciml.layers.Layer`; got {type(model).__name__}. "
                        f"Put other descriptions in `metadata=`.")
    config = None if model is None else model.to_config()
    _check_json(config, "model.to_config()")
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"`metadata` must be a dict; got {type(metadata).__name__}.")
    _check_json(metadata, "metadata")
    meta = {"sciml.format": FORMAT_VERSION, "sciml.tree": _dumps(tree),
            "sciml.model": _dumps(config), "sciml.metadata": _dumps(metadata or {})}
    meta["sciml.sha256"] = _header_digest(meta)
    header: dict[str, Any] = {"__metadata__": meta}
    offset = 0
    for name, array in arrays.items():
        code, pairs = _STORAGE[array.dtype.name]
        header[name] = {"dtype": code, "shape": list(array.shape) + [2] * pairs,
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    encoded = _dumps(header).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # safetensors pads the header to 8 bytes
    atomic_write(path, lambda file: _write_payload(file, len(encoded).to_bytes(8, "little") + encoded,
                                                   list(arrays.values())), what="`sciml.save`")


def _describe(node: Any, name: str, where: str, arrays: dict[str, np.ndarray]) -> Any:
    """The JSON description of ``node``; its leaves go into ``arrays`` under their tensor names."""
    if node is None:
        return None
    if type(node) is dict:
        items = {}
        for key, child in node.items():
            if type(key) is not str:
                raise TypeError(f"`{where}` has the key {key!r} of type {type(key).__name__}; "
                                f"`sciml.save` stores string keys only. Convert the keys with `str`.")
            try:
                key.encode("utf-8")
            except UnicodeEncodeError:
                raise TypeError(f"`{where}` has the key {key!r}, which is not valid Unicode.") from None
            items[key] = _describe(child, _child_name(name, key), f"{where}[{key!r}]", arrays)
        return {"dict": items}
    if type(node) in (list, tuple):
        children = [_describe(child, f"{name}/{i}", f"{where}[{i}]", arrays) for i, child in enumerate(node)]
        return {type(node).__name__: children}
    leaf: dict[str, Any] = {}
    if type(node) in _PYTHON_SCALARS:
        leaf["python"] = type(node).__name__
        try:
            array = np.asarray(node, dtype=_PYTHON_SCALARS[type(node)])
        except OverflowError:
            raise TypeError(f"`{where}` is the int {node}, which does not fit in int64; store it "
                            f"in `metadata=` or as an array.") from None
    elif isinstance(node, (jax.Array, np.ndarray, np.generic)):
        if jax.dtypes.issubdtype(node.dtype, jax.dtypes.prng_key):
            leaf["prng_impl"] = str(jax.random.key_impl(node))
            node = jax.random.key_data(node)
        array = np.asarray(node)
    elif isinstance(node, tuple):
        raise TypeError(f"`{where}` is a {type(node).__name__} (a NamedTuple), which would come back "
                        f"as a plain tuple; convert it with `._asdict()` before `sciml.save`.")
    else:
        raise TypeError(f"`{where}` is of type {type(node).__name__}; `sciml.save` stores arrays, "
                        f"Python scalars and PRNG keys in nested dict/list/tuple/None containers.")
    if array.dtype.name not in _STORAGE:
        raise TypeError(f"`{where}` has dtype {array.dtype}, which `sciml.save` cannot store; "
                        f"supported: {', '.join(_STORAGE)}.")
    if not array.dtype.isnative:  # a byte-swapped NumPy array: store it in native order
        array = array.astype(array.dtype.newbyteorder("="))
    array = np.asarray(array, order="C")  # (np.ascontiguousarray would turn 0-d into 1-d)
    arrays[name] = array
    return {"dtype": array.dtype.name, "shape": list(array.shape), "sha256": _sha256(array), **leaf}


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
        file.write(_bytes_view(array))


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
        header = _read_header(file, size, path)
        file.seek(0)
        data = file.read()
    if len(data) != size:
        raise _bad(path, "it changed while it was being read")
    try:
        tensors = dict(safetensors.deserialize(data))
    except Exception as err:  # the reference parser's own checks, after ours
        raise _bad(path, f"safetensors cannot parse it ({err})") from None
    del data
    params = _rebuild(header["tree"], "params", tensors, path)
    model = None
    if header["model"] is not None:
        try:
            model = from_config(header["model"])
        except Exception as err:  # a hand-made file can hand any field values to a layer class
            raise _bad(path, f"its model cannot be rebuilt: {err}") from None
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
        return _read_header(file, size, path)["metadata"]


@contextlib.contextmanager
def _open(path: str) -> Iterator[tuple[Any, int]]:
    """Open ``path`` for reading as ``(file, size)``; only regular files are accepted."""
    try:  # O_NONBLOCK: opening a FIFO must not wait for a writer; it changes nothing for a regular file
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"`sciml.load`: there is no file at {path!r}.") from None
    except OSError:
        if os.path.isdir(path):
            raise _bad(path, "it is a directory, not a file written by `sciml.save`") from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        if stat.S_ISDIR(info.st_mode):
            raise _bad(path, "it is a directory, not a file written by `sciml.save`")
        raise _bad(path, "it is not a regular file")
    with os.fdopen(fd, "rb") as file:
        yield file, info.st_size


def _read_header(file, size: int, path: str) -> dict:
    """Read and validate the header; return the parsed ``tree``, ``model`` and ``metadata``."""
    if size == 0:
        raise _bad(path, "it is empty (0 bytes)")
    prefix = file.read(8)
    length = int.from_bytes(prefix, "little")
    if size < 8 or not 2 <= length <= min(_MAX_HEADER_BYTES, size - 8):
        kind = next((kind for magic, kind in _SIGNATURES if prefix.startswith(magic)), None)
        if kind is None and prefix.lstrip()[:1] in (b"{", b"["):
            kind = "a JSON or text file"
        if kind is not None:
            raise _bad(path, f"it looks like {kind}, not a safetensors file written by `sciml.save`")
        if size < 8:
            raise _bad(path, f"it is only {size} bytes long: truncated, or not a safetensors file")
        raise _bad(path, f"it is not a safetensors file or it is truncated: its first 8 bytes give a "
                         f"header of {length} bytes, but the file has {size} bytes in all")
    header = _parse_json(file.read(length), path, "its header")
    if type(header) is not dict:
        raise _bad(path, "its header is not a JSON object; the file is corrupted")
    meta = header.pop("__metadata__", {})
    end = 0
    for name, entry in header.items():
        if (type(entry) is not dict or set(entry) != {"dtype", "shape", "data_offsets"}
                or not _is_ints(entry["shape"]) or not _is_ints(entry["data_offsets"])
                or len(entry["data_offsets"]) != 2):
            raise _bad(path, f"its header entry {name!r} is not a tensor description; the file is corrupted")
        end = max(end, entry["data_offsets"][1])
    if type(meta) is not dict or not any(type(k) is str and k.startswith("sciml.") for k in meta):
        raise _bad(path, "it is a safetensors file but was not written by `sciml.save` (its metadata "
                         "has no `sciml.*` entries); read it with `safetensors.numpy.load_file`")
    if size - 8 - length < end:
        raise _bad(path, f"it is truncated: its header describes {end} bytes of tensor data but only "
                         f"{size - 8 - length} follow it")
    ours = {k: v for k, v in meta.items() if k.startswith("sciml.")}
    if ours.get("sciml.format", FORMAT_VERSION) != FORMAT_VERSION:
        raise _bad(path, f"its format is {ours.get('sciml.format')!r}, but this sciml reads format "
                         f"{FORMAT_VERSION!r}: upgrade sciml, or the file is corrupted")
    expected = {"sciml.format", "sciml.tree", "sciml.model", "sciml.metadata", "sciml.sha256"}
    if set(ours) != expected or not all(type(v) is str for v in ours.values()):
        raise _bad(path, f"its metadata has the entries {sorted(ours)}, expected {sorted(expected)}; "
                         f"the file is corrupted")
    if ours["sciml.sha256"] != _header_digest(ours):
        raise _bad(path, "its header does not match its checksum; the file is corrupted")
    tree = _parse_json(ours["sciml.tree"].encode("utf-8"), path, "its tree description")
    leaves: dict[str, dict] = {}
    _check_tree(tree, "params", leaves, path)
    if set(leaves) != set(header):
        extra, missing = sorted(set(header) - set(leaves)), sorted(set(leaves) - set(header))
        raise _bad(path, f"its tensors do not match its tree description (not described: {extra[:5]}, "
                         f"missing: {missing[:5]})")
    for name, leaf in leaves.items():
        code, pairs = _STORAGE[leaf["dtype"]]
        if header[name]["dtype"] != code or header[name]["shape"] != leaf["shape"] + [2] * pairs:
            raise _bad(path, f"tensor {name!r} is stored as {header[name]['dtype']} "
                             f"{header[name]['shape']}, but its description says {leaf['dtype']} "
                             f"{leaf['shape']}; the file is corrupted")
    metadata = _parse_json(ours["sciml.metadata"].encode("utf-8"), path, "its metadata")
    if type(metadata) is not dict:
        raise _bad(path, "its `sciml.metadata` is not a JSON object; the file is corrupted")
    model = _parse_json(ours["sciml.model"].encode("utf-8"), path, "its model description")
    return {"tree": tree, "model": model, "metadata": metadata}


_LEAF_KEYS = {"dtype", "shape", "sha256"}


def _check_tree(node: Any, name: str, leaves: dict[str, dict], path: str) -> None:
    """Validate a tree description strictly, collecting its leaves by tensor name."""
    if node is None:
        return
    if type(node) is dict and len(node) == 1 and "dict" in node and type(node["dict"]) is dict:
        for key, child in node["dict"].items():
            _check_tree(child, _child_name(name, key), leaves, path)
        return
    if type(node) is dict and len(node) == 1 and next(iter(node)) in ("list", "tuple"):
        children = next(iter(node.values()))
        if type(children) is list:
            for i, child in enumerate(children):
                _check_tree(child, f"{name}/{i}", leaves, path)
            return
    if (type(node) is dict and _LEAF_KEYS <= set(node) <= _LEAF_KEYS | {"python", "prng_impl"}
            and node["dtype"] in _STORAGE and _is_ints(node["shape"])
            and type(node["sha256"]) is str and len(node["sha256"]) == 64
            and type(node.get("prng_impl", "")) is str and _is_python_scalar_ok(node)):
        leaves[name] = node
        return
    raise _bad(path, f"its tree description is malformed at {name!r}; the file is corrupted")


def _rebuild(node: Any, name: str, tensors: dict[str, dict], path: str) -> Any:
    """The params pytree described by ``node`` (already validated), from the deserialized tensors."""
    if node is None:
        return None
    if "dict" in node:
        return {key: _rebuild(child, _child_name(name, key), tensors, path)
                for key, child in node["dict"].items()}
    if "list" in node or "tuple" in node:
        kind = "list" if "list" in node else "tuple"
        children = [_rebuild(child, f"{name}/{i}", tensors, path) for i, child in enumerate(node[kind])]
        return children if kind == "list" else tuple(children)
    data = tensors[name]["data"]
    if hashlib.sha256(data).hexdigest() != node["sha256"]:
        raise _bad(path, f"the data of tensor {name!r} does not match its checksum; the file is corrupted")
    array = np.frombuffer(data, dtype=_DTYPES[node["dtype"]]).reshape(node["shape"])
    if "python" in node:
        return _PYTHON_TYPES[node["python"]](array.item())
    if node["dtype"] in _WIDE and not x64_enabled():
        raise PrecisionError(f"{path!r}: tensor {name!r} is {node['dtype']}, but JAX's x64 mode is off "
                             f"(SCIML_X64=0), so loading it would truncate it. Unset SCIML_X64 (sciml "
                             f"enables x64 by default) to load this file.")
    if "prng_impl" in node:
        try:
            return jax.random.wrap_key_data(jnp.asarray(array), impl=node["prng_impl"])
        except (ValueError, TypeError) as err:
            raise _bad(path, f"tensor {name!r} is not a valid {node['prng_impl']!r} PRNG key: "
                             f"{err}") from None
    return jnp.asarray(array)


def _check_like(params: Any, like: Any, path: str) -> None:
    """Raise a ValueError naming the first difference between ``params`` and the template ``like``."""
    got, got_def = jax.tree_util.tree_flatten_with_path(params)
    want, want_def = jax.tree_util.tree_flatten_with_path(like)
    if got_def != want_def:
        got_paths = {jax.tree_util.keystr(p) for p, _ in got}
        want_paths = {jax.tree_util.keystr(p) for p, _ in want}
        raise _bad(path, f"its params do not have the structure of `like`: only in the file: "
                         f"{sorted(got_paths - want_paths)[:5]}, only in `like`: "
                         f"{sorted(want_paths - got_paths)[:5]} (file: {got_def}, like: {want_def})")
    for (key_path, leaf), (_, template) in zip(got, want):
        found, expected = _shape_dtype(leaf), _shape_dtype(template)
        if found != expected:
            raise _bad(path, f"params{jax.tree_util.keystr(key_path)} has shape {found[0]} and dtype "
                             f"{found[1]}, but `like` has shape {expected[0]} and dtype {expected[1]}")


# -- helpers -----------------------------------------------------------------------------------------
def _shape_dtype(x: Any) -> tuple[tuple[int, ...], Any]:
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return tuple(x.shape), x.dtype
    return np.shape(x), np.asarray(x).dtype


def _child_name(name: str, key: str) -> str:
    """The tensor name of ``key`` under ``name``; JSON-pointer escaping keeps names unique."""
    return f"{name}/{key.replace('~', '~0').replace('/', '~1')}"


def _bytes_view(array: np.ndarray) -> np.ndarray:
    return array.reshape(-1).view(np.uint8)


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(_bytes_view(array)).hexdigest()


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _header_digest(meta: dict[str, str]) -> str:
    covered = sorted((k, v) for k, v in meta.items() if k != "sciml.sha256")
    return hashlib.sha256(_dumps(covered).encode("utf-8")).hexdigest()


def _is_python_scalar_ok(leaf: dict) -> bool:
    if "python" not in leaf:
        return True
    kind = _PYTHON_TYPES.get(leaf["python"]) if type(leaf["python"]) is str else None
    return kind is not None and leaf["shape"] == [] and leaf["dtype"] == _PYTHON_SCALARS[kind]


def _is_ints(value: Any) -> bool:
    return type(value) is list and all(type(v) is int and v >= 0 for v in value)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate keys {sorted({k for k in keys if keys.count(k) > 1})[:5]}")
    return dict(pairs)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _parse_json(raw: bytes, path: str, what: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys,
                          parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise _bad(path, f"{what} is not valid JSON ({err}); the file is corrupted") from None


def _bad(path: str, problem: str) -> ValueError:
    return ValueError(f"`sciml.load` cannot read {path!r}: {problem}.")
