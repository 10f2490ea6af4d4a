"""The safetensors layout that `sciml.save` writes and `sciml.load` reads (described in ``sciml.io``).

Here: which safetensors dtype stores each dtype, the JSON description of the params tree
(:func:`describe` writes it, ``_check_tree`` validates it), the strict reading of a header
(:func:`read_header`) and the checksum of the ``sciml.*`` metadata. A header is checked against the
file's size before it is parsed, and every field against the layout before a tensor is trusted; each
problem is a ``ValueError`` from :func:`bad` that names the file.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

FORMAT_VERSION = "1"
_MAX_HEADER_BYTES = 100_000_000  # the limit safetensors itself enforces

# Every storable dtype, by numpy name -> (safetensors dtype of the stored tensor, stored as (re, im)
# pairs?). jaxlib runs only on little-endian hosts, so an array's memory is already the file's byte order.
STORAGE: dict[str, tuple[str, bool]] = {
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
DTYPES = {name: np.dtype(name) for name in STORAGE}
WIDE = ("float64", "complex128", "int64", "uint64")  # truncated by JAX when x64 is off
_PYTHON_SCALARS = {bool: "bool", int: "int64", float: "float64", complex: "complex128"}  # -> dtype
PYTHON_TYPES = {kind.__name__: kind for kind in _PYTHON_SCALARS}
_SIGNATURES = (
    (b"\x93NUMPY", "a NumPy .npy file"),
    (b"PK\x03\x04", "a zip archive (a NumPy .npz file or a PyTorch .pt checkpoint)"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file"),
    (b"\x80", "a Python pickle (sciml never unpickles: unpickling can run arbitrary code)"),
)


def describe(node: Any, name: str, where: str, arrays: dict[str, np.ndarray]) -> Any:
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
            items[key] = describe(child, child_name(name, key), f"{where}[{key!r}]", arrays)
        return {"dict": items}
    if type(node) in (list, tuple):
        children = [describe(child, f"{name}/{i}", f"{where}[{i}]", arrays) for i, child in enumerate(node)]
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
    if array.dtype.name not in STORAGE:
        raise TypeError(f"`{where}` has dtype {array.dtype}, which `sciml.save` cannot store; "
                        f"supported: {', '.join(STORAGE)}.")
    if not array.dtype.isnative:  # a byte-swapped NumPy array: store it in native order
        array = array.astype(array.dtype.newbyteorder("="))
    array = np.asarray(array, order="C")  # (np.ascontiguousarray would turn 0-d into 1-d)
    arrays[name] = array
    return {"dtype": array.dtype.name, "shape": list(array.shape), "sha256": _sha256(array), **leaf}


def read_header(file, size: int, path: str) -> dict:
    """Read and validate the header; return the parsed ``tree``, ``model`` and ``metadata``."""
    if size == 0:
        raise bad(path, "it is empty (0 bytes)")
    prefix = file.read(8)
    length = int.from_bytes(prefix, "little")
    if size < 8 or not 2 <= length <= min(_MAX_HEADER_BYTES, size - 8):
        kind = next((kind for magic, kind in _SIGNATURES if prefix.startswith(magic)), None)
        if kind is None and prefix.lstrip()[:1] in (b"{", b"["):
            kind = "a JSON or text file"
        if kind is not None:
            raise bad(path, f"it looks like {kind}, not a safetensors file written by `sciml.save`")
        if size < 8:
            raise bad(path, f"it is only {size} bytes long: truncated, or not a safetensors file")
        raise bad(path, f"it is not a safetensors file or it is truncated: its first 8 bytes give a "
                        f"header of {length} bytes, but the file has {size} bytes in all")
    header = _parse_json(file.read(length), path, "its header")
    if type(header) is not dict:
        raise bad(path, "its header is not a JSON object; the file is corrupted")
    meta = header.pop("__metadata__", {})
    end = 0
    for name, entry in header.items():
        if (type(entry) is not dict or set(entry) != {"dtype", "shape", "data_offsets"}
                or not _is_ints(entry["shape"]) or not _is_ints(entry["data_offsets"])
                or len(entry["data_offsets"]) != 2):
            raise bad(path, f"its header entry {name!r} is not a tensor description; the file is corrupted")
        end = max(end, entry["data_offsets"][1])
    if type(meta) is not dict or not any(type(k) is str and k.startswith("sciml.") for k in meta):
        raise bad(path, "it is a safetensors file but was not written by `sciml.save` (its metadata "
                        "has no `sciml.*` entries); read it with `safetensors.numpy.load_file`")
    if size - 8 - length < end:
        raise bad(path, f"it is truncated: its header describes {end} bytes of tensor data but only "
                        f"{size - 8 - length} follow it")
    ours = {k: v for k, v in meta.items() if k.startswith("sciml.")}
    if ours.get("sciml.format", FORMAT_VERSION) != FORMAT_VERSION:
        raise bad(path, f"its format is {ours.get('sciml.format')!r}, but this sciml reads format "
                        f"{FORMAT_VERSION!r}: upgrade sciml, or the file is corrupted")
    expected = {"sciml.format", "sciml.tree", "sciml.model", "sciml.metadata", "sciml.sha256"}
    if set(ours) != expected or not all(type(v) is str for v in ours.values()):
        raise bad(path, f"its metadata has the entries {sorted(ours)}, expected {sorted(expected)}; "
                        f"the file is corrupted")
    if ours["sciml.sha256"] != header_digest(ours):
        raise bad(path, "its header does not match its checksum; the file is corrupted")
    tree = _parse_json(ours["sciml.tree"].encode("utf-8"), path, "its tree description")
    leaves: dict[str, dict] = {}
    _check_tree(tree, "params", leaves, path)
    if set(leaves) != set(header):
        extra, missing = sorted(set(header) - set(leaves)), sorted(set(leaves) - set(header))
        raise bad(path, f"its tensors do not match its tree description (not described: {extra[:5]}, "
                        f"missing: {missing[:5]})")
    for name, leaf in leaves.items():
        code, pairs = STORAGE[leaf["dtype"]]
        if header[name]["dtype"] != code or header[name]["shape"] != leaf["shape"] + [2] * pairs:
            raise bad(path, f"tensor {name!r} is stored as {header[name]['dtype']} "
                            f"{header[name]['shape']}, but its description says {leaf['dtype']} "
                            f"{leaf['shape']}; the file is corrupted")
    metadata = _parse_json(ours["sciml.metadata"].encode("utf-8"), path, "its metadata")
    if type(metadata) is not dict:
        raise bad(path, "its `sciml.metadata` is not a JSON object; the file is corrupted")
    model = _parse_json(ours["sciml.model"].encode("utf-8"), path, "its model description")
    return {"tree": tree, "model": model, "metadata": metadata}


_LEAF_KEYS = {"dtype", "shape", "sha256"}


def _check_tree(node: Any, name: str, leaves: dict[str, dict], path: str) -> None:
    """Validate a tree description strictly, collecting its leaves by tensor name."""
    if node is None:
        return
    if type(node) is dict and len(node) == 1 and "dict" in node and type(node["dict"]) is dict:
        for key, child in node["dict"].items():
            _check_tree(child, child_name(name, key), leaves, path)
        return
    if type(node) is dict and len(node) == 1 and next(iter(node)) in ("list", "tuple"):
        children = next(iter(node.values()))
        if type(children) is list:
            for i, child in enumerate(children):
                _check_tree(child, f"{name}/{i}", leaves, path)
            return
    if (type(node) is dict and _LEAF_KEYS <= set(node) <= _LEAF_KEYS | {"python", "prng_impl"}
            and node["dtype"] in STORAGE and _is_ints(node["shape"])
            and type(node["sha256"]) is str and len(node["sha256"]) == 64
            and type(node.get("prng_impl", "")) is str and _is_python_scalar_ok(node)):
        leaves[name] = node
        return
    raise bad(path, f"its tree description is malformed at {name!r}; the file is corrupted")


def child_name(name: str, key: str) -> str:
    """The tensor name of ``key`` under ``name``; JSON-pointer escaping keeps names unique."""
    return f"{name}/{key.replace('~', '~0').replace('/', '~1')}"


def bytes_view(array: np.ndarray) -> np.ndarray:
    return array.reshape(-1).view(np.uint8)


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(bytes_view(array)).hexdigest()


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def header_digest(meta: dict[str, str]) -> str:
    covered = sorted((k, v) for k, v in meta.items() if k != "sciml.sha256")
    return hashlib.sha256(dumps(covered).encode("utf-8")).hexdigest()


def _is_python_scalar_ok(leaf: dict) -> bool:
    if "python" not in leaf:
        return True
    kind = PYTHON_TYPES.get(leaf["python"]) if type(leaf["python"]) is str else None
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
        raise bad(path, f"{what} is not valid JSON ({err}); the file is corrupted") from None


def bad(path: str, problem: str) -> ValueError:
    return ValueError(f"`sciml.load` cannot read {path!r}: {problem}.")
