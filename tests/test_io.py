"""`sciml.save` / `sciml.load`: one safetensors file, bit-exact round trips, atomic writes, and a clear
ValueError (never pickle, never a crash) for every file that `sciml.save` did not write."""

from __future__ import annotations

import dataclasses
import doctest
import json
import math
import os
import pickle
import re
import stat
import struct
from pathlib import Path
from typing import NamedTuple

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors
import safetensors.numpy
from hypothesis import given, settings

import sciml
import sciml.io
from sciml import layers as L

# Every dtype sciml.save promises to store (DESIGN.md principle 2: nothing is lowered or dropped).
BYTE_DTYPES = ["bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
               "float16", "bfloat16", "float32", "float64", "complex64", "complex128",
               "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz"]
SUBBYTE_DTYPES = ["int4", "uint4", "int2", "uint2", "float4_e2m1fn"]  # one value per byte, few bits used
ALL_DTYPES = BYTE_DTYPES + SUBBYTE_DTYPES


# -- helpers -----------------------------------------------------------------------------------------
def _bits(value) -> tuple:
    """What must survive a round trip: the container types, and every leaf's type, dtype and bytes."""
    if isinstance(value, dict):
        return ("dict", tuple((k, _bits(v)) for k, v in value.items()))
    if type(value) in (list, tuple):
        return (type(value).__name__, tuple(_bits(v) for v in value))
    if value is None:
        return ("None",)
    if type(value) in (bool, int):
        return (type(value).__name__, value)
    if type(value) is float:
        return ("float", struct.pack("<d", value))
    if type(value) is complex:
        return ("complex", struct.pack("<dd", value.real, value.imag))
    array = np.asarray(value)
    return ("array", array.dtype.name, array.shape, array.tobytes())


def _round_trip(tmp_path, params, **kwargs):
    path = tmp_path / "params.safetensors"
    sciml.save(path, params, **kwargs)
    return sciml.load(path)


def _special_values(dtype: np.dtype) -> np.ndarray:
    """Values that a careless conversion would change: NaN payloads, -0.0, infinities, extremes."""
    if dtype.kind == "b":
        return np.array([True, False, True])
    if dtype.name in SUBBYTE_DTYPES:
        return np.array([0, 1, -1 if dtype.name.startswith("int") else 2]).astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.array([info.min, info.max, 0, 1], dtype)
    # every bit pattern of the low byte and the top byte: NaNs with payloads, -0.0, infs, subnormals
    raw = np.zeros((512, dtype.itemsize), np.uint8)
    raw[:256, 0] = np.arange(256)
    raw[256:, -1] = np.arange(256)
    raw[256:, 0] = 0x5A
    return raw.reshape(-1).view(dtype)


# -- round trips -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_every_dtype_round_trips_bit_exactly(tmp_path, dtype):
    values = _special_values(np.dtype(dtype))
    params = {"numpy": values, "jax": jnp.asarray(values), "scalar": values[0],
              "matrix": values[:2].reshape(2, 1)}
    loaded, model = _round_trip(tmp_path, params)
    assert model is None
    for key in params:
        assert isinstance(loaded[key], jax.Array)
        assert loaded[key].dtype == np.dtype(dtype)
    assert _bits(loaded) == _bits(params)


def _complex(real: np.ndarray, imag: np.ndarray) -> np.ndarray:
    """A complex array with exactly these real and imaginary bits (arithmetic could change NaNs)."""
    z = np.empty(real.shape, np.result_type(real, 1j))
    z.real, z.imag = real, imag
    return z


def test_float_specials_survive_in_float_and_complex_leaves(tmp_path):
    specials = {}
    payloads = {np.float64: np.uint64(0x7FF8_0000_DEAD_BEEF), np.float32: np.uint32(0xFFC0_BEEF)}
    for dtype, payload in payloads.items():
        info = np.finfo(dtype)
        specials[dtype] = np.array([payload.view(dtype), -0.0, np.inf, -np.inf, info.smallest_subnormal,
                                    info.max, info.min], dtype)
    params = {"f64": specials[np.float64], "f32": specials[np.float32],
              "c128": _complex(specials[np.float64], specials[np.float64][::-1]),
              "c64": _complex(specials[np.float32][::-1], specials[np.float32])}
    loaded, _ = _round_trip(tmp_path, params)
    assert _bits(loaded) == _bits(params)
    assert loaded["c64"].dtype == jnp.complex64 and loaded["c128"].dtype == jnp.complex128


def test_python_scalars_come_back_as_python_scalars(tmp_path):
    params = {"flag": True, "count": -(2**63), "rate": -0.0, "nan": float("nan"), "z": complex(1.5, -0.0)}
    loaded, _ = _round_trip(tmp_path, params)
    assert _bits(loaded) == _bits(params)


def test_containers_empty_containers_and_none_keep_their_types(tmp_path):
    params = {"layers": [{"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}, ()], "empty": {}, "none": None,
              "pair": (jnp.float32(1.0), [jnp.arange(2)]), "nested": {"a": {"b": []}}}
    loaded, _ = _round_trip(tmp_path, params)
    assert _bits(loaded) == _bits(params)
    for empty in ({}, [], ()):
        assert _round_trip(tmp_path, empty)[0] == empty
    assert _round_trip(tmp_path, None)[0] is None


def test_a_bare_array_and_a_0d_array_are_valid_params(tmp_path):
    for params in (jnp.arange(4.0), jnp.float64(2.5), np.int8(-3)):
        loaded, _ = _round_trip(tmp_path, params)
        assert _bits(loaded) == _bits(params)


def test_dict_keys_with_slashes_and_tildes_do_not_collide(tmp_path):
    params = {"a/b": jnp.array(1.0), "a": {"b": jnp.array(2.0)}, "a~1b": jnp.array(3.0), "": jnp.array(4.0)}
    loaded, _ = _round_trip(tmp_path, params)
    assert _bits(loaded) == _bits(params)


def test_typed_prng_keys_round_trip(tmp_path):
    params = {"key": jax.random.key(7), "keys": jax.random.split(jax.random.key(1), 3)}
    loaded, _ = _round_trip(tmp_path, params)
    assert loaded["key"].dtype == params["key"].dtype
    for name in params:
        np.testing.assert_array_equal(jax.random.key_data(loaded[name]), jax.random.key_data(params[name]))


def test_byte_swapped_numpy_arrays_are_stored_by_value(tmp_path):
    params = {"w": np.arange(4, dtype=">f8")}
    loaded, _ = _round_trip(tmp_path, params)
    np.testing.assert_array_equal(loaded["w"], np.arange(4.0))


def _leaf_arrays():
    def array_of(dtype_name):
        dtype = np.dtype(dtype_name)
        shapes = st.lists(st.integers(0, 3), max_size=3).map(tuple)
        if dtype_name in SUBBYTE_DTYPES or dtype.kind == "b":
            return shapes.flatmap(lambda s: st.lists(st.integers(0, 1), min_size=math.prod(s),
                                                     max_size=math.prod(s))
                                  .map(lambda v, s=s: np.array(v).astype(dtype).reshape(s)))
        return shapes.flatmap(lambda s: st.binary(min_size=math.prod(s) * dtype.itemsize,
                                                  max_size=math.prod(s) * dtype.itemsize)
                              .map(lambda b, s=s: np.frombuffer(b, dtype).reshape(s)))
    return st.sampled_from(ALL_DTYPES).flatmap(array_of)


_trees = st.recursive(
    _leaf_arrays() | st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=True) | st.complex_numbers(allow_nan=True),
    lambda children: (st.lists(children, max_size=3) | st.lists(children, max_size=3).map(tuple)
                      | st.dictionaries(st.text(max_size=4), children, max_size=3)),
    max_leaves=8,
)


@settings(max_examples=25, deadline=None)
@given(params=_trees)
def test_random_trees_round_trip_bit_exactly(tmp_path_factory, params):
    loaded, _ = _round_trip(tmp_path_factory.mktemp("tree"), params)
    assert _bits(loaded) == _bits(params)


def test_docstring_examples_run():
    result = doctest.testmod(sciml.io, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# -- the file is an ordinary safetensors file ----------------------------------------------------------
def test_any_safetensors_reader_sees_one_named_tensor_per_leaf(tmp_path):
    path = tmp_path / "params.safetensors"
    z = np.array([1 + 2j, -3 - 4j], np.complex64)
    sciml.save(path, {"layers": [{"w": np.ones((2, 3), np.float32), "z": z}]})
    tensors = dict(safetensors.deserialize(path.read_bytes()))
    assert set(tensors) == {"params/layers/0/w", "params/layers/0/z"}
    assert tensors["params/layers/0/w"]["dtype"] == "F32" and tensors["params/layers/0/w"]["shape"] == [2, 3]
    stored = tensors["params/layers/0/z"]  # complex as (real, imag) float pairs
    assert stored["dtype"] == "F32" and stored["shape"] == [2, 2]
    np.testing.assert_array_equal(np.frombuffer(stored["data"], np.float32).reshape(2, 2), [[1, 2], [-3, -4]])
    np.testing.assert_array_equal(safetensors.numpy.load_file(path)["params/layers/0/w"], np.ones((2, 3)))
    with safetensors.safe_open(path, framework="numpy") as f:
        assert set(f.metadata()) == {"sciml.format", "sciml.tree", "sciml.model", "sciml.metadata",
                                     "sciml.sha256"}


def test_save_accepts_str_and_pathlike_paths_of_any_extension(tmp_path):
    for path in (str(tmp_path / "a.safetensors"), tmp_path / "b.ckpt", tmp_path / "no_extension"):
        sciml.save(path, {"w": jnp.ones(2)})
        np.testing.assert_array_equal(sciml.load(path)[0]["w"], jnp.ones(2))


# -- metadata ----------------------------------------------------------------------------------------
def test_metadata_round_trips_and_tuples_become_lists(tmp_path):
    path = tmp_path / "p.safetensors"
    metadata = {"epoch": 3, "loss": 0.125, "ok": True, "note": "ünïcode", "none": None,
                "t_span": (0.0, 10.0), "nested": {"tags": ["a", "b"]}}
    sciml.save(path, {"w": jnp.ones(1)}, metadata=metadata)
    assert sciml.io.read_metadata(path) == {**metadata, "t_span": [0.0, 10.0]}
    sciml.save(path, {"w": jnp.ones(1)})
    assert sciml.io.read_metadata(path) == {}


@pytest.mark.parametrize("metadata, error, phrase", [
    ([1, 2], TypeError, "`metadata` must be a dict"),
    ({1: "a"}, TypeError, "key 1 of type int"),
    ({"w": np.ones(2)}, TypeError, "`metadata['w']` has type ndarray"),
    ({"a": [1, {2, 3}]}, TypeError, "`metadata['a'][1]` has type set"),
    ({"x": np.float32(1.0)}, TypeError, "`.item()`"),
    ({"loss": float("nan")}, ValueError, "`metadata['loss']` is nan"),
])
def test_metadata_that_is_not_plain_json_is_rejected_before_writing(tmp_path, metadata, error, phrase):
    path = tmp_path / "p.safetensors"
    with pytest.raises(error, match=re.escape(phrase)):
        sciml.save(path, {"w": jnp.ones(1)}, metadata=metadata)
    assert not path.exists() and list(tmp_path.iterdir()) == []


class _Pair(NamedTuple):
    a: jax.Array
    b: jax.Array


@pytest.mark.parametrize("params, phrase", [
    ({"w": "text"}, "`params['w']` is of type str"),
    ({"w": [object()]}, "`params['w'][0]` is of type object"),
    ({1: jnp.ones(1)}, "key 1 of type int"),
    ({"s": _Pair(jnp.ones(1), jnp.ones(1))}, "`params['s']` is a _Pair (a NamedTuple)"),
    ({"o": np.array([None], dtype=object)}, "dtype object"),
    ({"big": 2**70}, "does not fit in int64"),
    ({"w": jnp.ones(1)}.items(), "dict_items"),
])
def test_params_that_are_not_arrays_in_containers_are_rejected(tmp_path, params, phrase):
    with pytest.raises(TypeError, match=re.escape(phrase)):
        sciml.save(tmp_path / "p.safetensors", params)
    assert list(tmp_path.iterdir()) == []


# -- models ------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class IoTestAffine(L.Layer):
    """A minimal layer, defined here so that these tests do not depend on the layer library."""

    size: int
    scale: float = 1.0
    shape: tuple = (1, 2)

    def init(self, key, dtype=jnp.float32):
        return {"w": jnp.full((self.size,), self.scale, dtype)}, {}

    def apply(self, params, x, state):
        return x * params["w"], state


@dataclasses.dataclass(frozen=True)
class IoTestUnknown(IoTestAffine):
    def to_config(self):
        return {"type": "NoSuchLayerAnywhere", "fields": {}}


def test_model_round_trips_through_its_config(tmp_path):
    model = IoTestAffine(size=3, scale=0.5, shape=(4, 5))
    params, _ = model.init(jax.random.key(0), dtype=jnp.float64)
    loaded, rebuilt = _round_trip(tmp_path, params, model=model)
    assert rebuilt == model and type(rebuilt) is IoTestAffine
    np.testing.assert_array_equal(rebuilt(loaded, jnp.ones(3)), model(params, jnp.ones(3)))


def test_library_layers_round_trip(tmp_path):
    model = L.Chain(L.Dense(2, 8, act="tanh"), L.Dense(8, 2))
    params, _ = model.init(jax.random.key(0), dtype=jnp.float64)
    loaded, rebuilt = _round_trip(tmp_path, params, model=model)
    assert rebuilt == model
    x = jnp.linspace(0.0, 1.0, 2)
    np.testing.assert_array_equal(rebuilt(loaded, x), model(params, x))
    assert rebuilt(loaded, x).dtype == jnp.float64


def test_a_model_that_is_not_a_layer_is_rejected(tmp_path):
    with pytest.raises(TypeError, match="`model` must be a `sciml.layers.Layer`; got function"):
        sciml.save(tmp_path / "p.safetensors", {}, model=lambda x: x)


def test_a_model_of_an_unknown_layer_type_names_the_file_and_the_fix(tmp_path):
    path = tmp_path / "p.safetensors"
    sciml.save(path, {}, model=IoTestUnknown(size=1))
    with pytest.raises(ValueError, match=r"p\.safetensors.*its model cannot be rebuilt.*NoSuchLayerAnywhere"):
        sciml.load(path)


# -- load(path, like=...) ------------------------------------------------------------------------------
def test_like_accepts_matching_arrays_or_shape_dtype_structs(tmp_path):
    model = IoTestAffine(size=3)
    params, _ = model.init(jax.random.key(0))
    path = tmp_path / "p.safetensors"
    sciml.save(path, params)
    template, _ = jax.eval_shape(model.init, jax.random.key(0))
    assert _bits(sciml.load(path, like=template)[0]) == _bits(params)
    assert _bits(sciml.load(path, like=params)[0]) == _bits(params)


@pytest.mark.parametrize("like, phrase", [
    ({"w": jnp.zeros(4, jnp.float32)}, r"params\['w'\] has shape \(3,\) and dtype float32, but `like` "
                                       r"has shape \(4,\)"),
    ({"w": jnp.zeros(3, jnp.float64)}, "but `like` has shape .3,. and dtype float64"),
    ({"w": jnp.zeros(3), "b": jnp.zeros(3)}, r"only in `like`: \[\"\['b'\]\"\]"),
    ([jnp.zeros(3, jnp.float32)], "structure of `like`"),
])
def test_like_rejects_other_shapes_dtypes_and_structures(tmp_path, like, phrase):
    path = tmp_path / "p.safetensors"
    sciml.save(path, {"w": jnp.zeros(3, jnp.float32)})
    with pytest.raises(ValueError, match=phrase):
        sciml.load(path, like=like)


def test_64_bit_leaves_are_refused_not_truncated_when_x64_is_off(tmp_path):
    path = tmp_path / "p.safetensors"
    sciml.save(path, {"w": np.ones(2, np.float64)})
    sciml.save(tmp_path / "f32.safetensors", {"w": np.ones(2, np.float32)})
    with jax.enable_x64(False):
        with pytest.raises(sciml.PrecisionError, match=r"'params/w' is float64.*SCIML_X64"):
            sciml.load(path)
        assert sciml.load(tmp_path / "f32.safetensors")[0]["w"].dtype == jnp.float32


# -- atomic writes -----------------------------------------------------------------------------------
@pytest.fixture
def existing(tmp_path):
    """A file already at the path, and the bytes it must still have after a failed save."""
    path = tmp_path / "params.safetensors"
    sciml.save(path, {"w": jnp.arange(3.0)})
    return path, path.read_bytes()


def _half_then(error):
    def write_payload(file, header, arrays):
        file.write(header[: len(header) // 2])
        raise error
    return write_payload


@pytest.mark.parametrize("target, replacement", [
    ("sciml.io._write_payload", _half_then(OSError(28, "No space left on device"))),
    ("sciml.io._write_payload", _half_then(KeyboardInterrupt())),
    ("os.fsync", lambda fd: (_ for _ in ()).throw(OSError(5, "Input/output error"))),
    ("os.replace", lambda src, dst: (_ for _ in ()).throw(PermissionError(13, "Permission denied"))),
])
def test_a_failed_save_leaves_the_existing_file_intact_and_no_temp_file(existing, monkeypatch, target,
                                                                         replacement):
    path, before = existing
    monkeypatch.setattr(target, replacement)
    with pytest.raises((OSError, KeyboardInterrupt)):
        sciml.save(path, {"w": jnp.ones((100, 100))})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == [path.name]
    np.testing.assert_array_equal(sciml.load(path)[0]["w"], jnp.arange(3.0))


def test_invalid_params_never_touch_the_existing_file(existing):
    path, before = existing
    with pytest.raises(TypeError):
        sciml.save(path, {"w": "not an array"})
    assert path.read_bytes() == before and os.listdir(path.parent) == [path.name]


def test_save_replaces_a_file_with_ordinary_permissions(existing, tmp_path):
    path, _ = existing
    sciml.save(path, {"w": jnp.zeros(5)})
    np.testing.assert_array_equal(sciml.load(path)[0]["w"], jnp.zeros(5))
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_save_to_a_directory_or_into_a_missing_directory_says_so(tmp_path):
    with pytest.raises(ValueError, match="is a directory; give a file path"):
        sciml.save(tmp_path, {})
    with pytest.raises(FileNotFoundError, match="directory .*missing.* does not exist"):
        sciml.save(tmp_path / "missing" / "p.safetensors", {})


# -- files that sciml.save did not write ---------------------------------------------------------------
class _Touch:
    """A pickle payload that creates a file when unpickled: proof that code would have run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _npy(path):
    with open(path, "wb") as f:  # (given a name, np.save would append ".npy" to it)
        np.save(f, np.ones(3))


def _npz(path):
    with open(path, "wb") as f:
        np.savez(f, w=np.ones(3))


@pytest.mark.parametrize("make, phrase", [
    (lambda p: p.write_bytes(b""), "it is empty"),
    (lambda p: p.write_bytes(b"abc"), "only 3 bytes long"),
    (_npy, "looks like a NumPy .npy file"),
    (_npz, "looks like a zip archive"),
    (lambda p: p.write_text(json.dumps({"w": [1.0, 2.0]})), "looks like a JSON or text file"),
    (lambda p: p.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64)), "looks like an HDF5 file"),
    (lambda p: p.write_bytes(pickle.dumps({"w": np.ones(3)})), "looks like a Python pickle"),
    (lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)), "not a safetensors file"),
    (lambda p: safetensors.numpy.save_file({"w": np.ones(3)}, p), "not written by `sciml.save`"),
    (lambda p: p.write_bytes((8).to_bytes(8, "little") + b"[1,2,3] "), "header is not a JSON object"),
])
def test_a_foreign_file_gives_a_value_error_naming_the_file_and_what_it_is(tmp_path, make, phrase):
    path = tmp_path / "model.safetensors"
    make(path)
    for read in (sciml.load, sciml.io.read_metadata):
        with pytest.raises(ValueError, match=f"cannot read '{path}'.*{phrase}"):
            read(path)


def test_a_missing_file_or_a_directory_or_a_fifo_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="there is no file at .*nothing.safetensors"):
        sciml.load(tmp_path / "nothing.safetensors")
    with pytest.raises(ValueError, match="it is a directory"):
        sciml.load(tmp_path)
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo")
        with pytest.raises(ValueError, match="not a regular file"):
            sciml.load(tmp_path / "fifo")


def test_a_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps({"w": _Touch(marker)}))
    with pytest.raises(ValueError, match="pickle.*sciml never unpickles"):
        sciml.load(path)
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # the payload is live: unpickling it does run code
    assert marker.exists()


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("small") / "p.safetensors"
    sciml.save(path, {"w": np.arange(3, dtype=np.float32), "z": np.array([1j], np.complex64), "n": 2},
               model=IoTestAffine(size=3), metadata={"epoch": 1})
    return path.read_bytes()


def test_a_file_truncated_anywhere_gives_a_value_error(tmp_path, small_file):
    path = tmp_path / "p.safetensors"
    for length in range(len(small_file)):
        path.write_bytes(small_file[:length])
        with pytest.raises(ValueError, match="p.safetensors"):
            sciml.load(path)


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_any_flipped_byte_in_header_or_data_gives_a_value_error(tmp_path, small_file, mask):
    path = tmp_path / "p.safetensors"
    for i in range(len(small_file)):
        corrupted = bytearray(small_file)
        corrupted[i] ^= mask
        path.write_bytes(bytes(corrupted))
        with pytest.raises(ValueError, match="p.safetensors"):
            sciml.load(path)


def test_trailing_bytes_after_the_data_give_a_value_error(tmp_path, small_file):
    path = tmp_path / "p.safetensors"
    path.write_bytes(small_file + b"\0")
    with pytest.raises(ValueError, match="safetensors cannot parse it"):
        sciml.load(path)


# Hand-made files whose checksums are right but whose description is wrong: validated, never trusted.
def _rewrite(path: Path, edit) -> None:
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + length])
    edit(header, header["__metadata__"])
    header["__metadata__"]["sciml.sha256"] = sciml.io._header_digest(header["__metadata__"])
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + length:])


def _edit_tree(change):
    def edit(header, meta):
        tree = json.loads(meta["sciml.tree"])
        change(tree)
        meta["sciml.tree"] = json.dumps(tree)
    return edit


def _deep(n):
    def edit(header, meta):
        meta["sciml.metadata"] = "[" * n + "]" * n
    return edit


@pytest.mark.parametrize("edit, phrase", [
    (_edit_tree(lambda t: t["dict"]["w"].update(shape=[4])), "'params/w' is stored as F32 \\[3\\]"),
    (_edit_tree(lambda t: t["dict"]["w"].update(dtype="object")), "malformed at 'params/w'"),
    (_edit_tree(lambda t: t["dict"]["w"].update(shape=[True, 2])), "malformed at 'params/w'"),
    (_edit_tree(lambda t: t["dict"]["n"].update(python="float")), "malformed at 'params/n'"),
    (_edit_tree(lambda t: t["dict"]["n"].update(python="eval")), "malformed at 'params/n'"),
    (_edit_tree(lambda t: t["dict"].pop("z")), "not described: \\['params/z'\\]"),
    (_edit_tree(lambda t: t["dict"].update(extra={"dict": {}, "list": []})), "malformed at 'params/extra'"),
    (_edit_tree(lambda t: t["dict"]["w"].update(prng_impl="no_such_rng")), "not a valid 'no_such_rng'"),
    (_edit_tree(lambda t: t["dict"]["w"].update(sha256="0" * 64)), "'params/w' does not match its checksum"),
    (lambda h, m: m.update({"sciml.format": "2"}), "format is '2'.*upgrade sciml"),
    (lambda h, m: m.update({"sciml.extra": "x"}), "expected \\['sciml.format'"),
    (lambda h, m: m.update({"sciml.metadata": "[1]"}), "`sciml.metadata` is not a JSON object"),
    (lambda h, m: m.update({"sciml.metadata": '{"a": NaN}'}), "metadata is not valid JSON"),
    (lambda h, m: m.update({"sciml.metadata": '{"a": 1, "a": 2}'}), "duplicate keys"),
    (lambda h, m: m.update({"sciml.model": '{"type": "os.system", "fields": {}}'}), "unknown layer type"),
    (_deep(100_000), "not valid JSON"),
    (lambda h, m: h["params/w"].update(data_offsets=[0, 10**9]), "truncated"),
    (lambda h, m: h["params/w"].update(extra=1), "'params/w' is not a tensor description"),
])
def test_a_description_that_does_not_match_the_tensors_is_refused(tmp_path, small_file, edit, phrase):
    path = tmp_path / "p.safetensors"
    path.write_bytes(small_file)
    _rewrite(path, edit)
    with pytest.raises(ValueError, match=phrase):
        sciml.load(path)


def test_save_keeps_what_the_path_was(tmp_path):
    """`sciml.save` writes through `atomic_write`: a 0600 file stays 0600, a link's target is written,
    a read-only file is refused and kept."""
    private = tmp_path / "private.safetensors"
    sciml.save(private, {"w": np.ones(2)})
    private.chmod(0o600)
    sciml.save(private, {"w": np.zeros(2)})
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    link = tmp_path / "link.safetensors"
    link.symlink_to(private)
    sciml.save(link, {"w": np.full(2, 3.0)})
    assert link.is_symlink() and float(sciml.load(private)[0]["w"][0]) == 3.0
    private.chmod(0o400)
    with pytest.raises(PermissionError, match="read-only"):
        sciml.save(private, {"w": np.zeros(2)})
    assert float(sciml.load(private)[0]["w"][0]) == 3.0
