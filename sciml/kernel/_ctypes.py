"""C spellings of JAX dtypes, literals and math functions, shared by the translator and the solver
templates. Everything here is valid both as C99 (gcc, clang) and as CUDA C++ compiled by NVRTC, which
has no standard headers: the few constants that need one come from the prelude of each target."""

from __future__ import annotations

import numpy as np

#: a target is the dialect a kernel source is written for ("c-single": C for one trajectory per call,
#: without the SIMD block that only pays off for many)
TARGETS = ("c", "c-single", "cuda")

_C_TYPES = {
    np.dtype(np.float32): "float", np.dtype(np.float64): "double",
    np.dtype(np.int8): "signed char", np.dtype(np.int16): "short", np.dtype(np.int32): "int",
    np.dtype(np.int64): "long long", np.dtype(np.uint8): "unsigned char",
    np.dtype(np.uint16): "unsigned short", np.dtype(np.uint32): "unsigned int",
    np.dtype(np.uint64): "unsigned long long", np.dtype(np.bool_): "int",
}

#: Infinity and NaN for each target (NVRTC has no math.h, so no INFINITY/NAN macros there).
PRELUDES = {
    "c": "#include <math.h>\n#define SCIML_INF ((double)INFINITY)\n#define SCIML_NAN ((double)NAN)\n",
    "cuda": ("#define SCIML_INF __longlong_as_double(0x7ff0000000000000LL)\n"
             "#define SCIML_NAN __longlong_as_double(0x7ff8000000000000LL)\n"),
}
PRELUDES["c-single"] = PRELUDES["c"]


class UnsupportedDtypeError(TypeError):
    """A value of a dtype the kernel backends cannot represent (complex, float16, ...)."""


def c_type(dtype) -> str:
    """The C type that holds one element of ``dtype``; booleans are ``int`` 0/1."""
    dtype = np.dtype(dtype)
    try:
        return _C_TYPES[dtype]
    except KeyError:
        raise UnsupportedDtypeError(
            f"the kernel backends cannot compute in dtype {dtype.name}; they support float32, float64, "
            f"integers and booleans. Use `backend=\"jax\"` for this problem.") from None


def is_float(dtype) -> bool:
    return np.issubdtype(np.dtype(dtype), np.floating)


def math_fn(name: str, dtype) -> str:
    """The C math function ``name`` for ``dtype`` (``expf`` for float32, ``exp`` for float64)."""
    return name + "f" if np.dtype(dtype) == np.float32 else name


def literal(value, dtype) -> str:
    """``value`` as a C literal of ``dtype``, exactly (floats round-trip through their repr)."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return "1" if bool(value) else "0"
    if np.issubdtype(dtype, np.integer):
        v = int(value)
        suffix = "LL" if dtype.itemsize == 8 else ""
        suffix = ("U" + suffix) if np.issubdtype(dtype, np.unsignedinteger) else suffix
        return f"{v}{suffix}" if v >= 0 else f"({v}{suffix})"
    v = dtype.type(value)
    ctype = c_type(dtype)
    if np.isnan(v):
        return f"(({ctype})SCIML_NAN)"
    if np.isinf(v):
        return f"(({ctype})SCIML_INF)" if v > 0 else f"(-({ctype})SCIML_INF)"
    # The shortest decimal that reads back as the same value of this dtype.
    text = repr(float(v)) if dtype == np.float64 else str(v)
    if not any(ch in text for ch in ".e"):
        text += ".0"
    text = text.replace("e+", "e")
    text = text + ("f" if dtype == np.float32 else "")
    return f"({text})" if text.startswith("-") else text
