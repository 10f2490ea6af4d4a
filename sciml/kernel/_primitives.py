"""How each JAX primitive is spelt in C: the per-primitive rules of the jaxpr translator.

`sciml.kernel._translate` walks a jaxpr and names the values; this module says, for one primitive at
a time, what C expression computes an element (:func:`element`, the tables of elementwise and
reduction operators), which primitives only move elements around (:data:`STRUCTURAL`) and which are
supported at all (:func:`supported_primitives`). The expressions are IEEE-exact: no algebraic
rewrites, and ``max``/``min``/``argmax`` propagate NaN as XLA does.
"""

from __future__ import annotations

import numpy as np

from sciml.kernel._ctypes import c_type, is_float, literal, math_fn


def _fn(name):
    return lambda dt, x: f"{math_fn(name, dt)}({x})"


def _fmax(dt, a, b):  # NaN-propagating, like XLA's max
    return f"(({a}) != ({a}) || ({a}) > ({b}) ? ({a}) : ({b}))" if is_float(dt) else f"(({a}) > ({b}) ? ({a}) : ({b}))"


def _fmin(dt, a, b):
    return f"(({a}) != ({a}) || ({a}) < ({b}) ? ({a}) : ({b}))" if is_float(dt) else f"(({a}) < ({b}) ? ({a}) : ({b}))"


def _one(dt):
    return literal(1, dt)


#: elementwise primitives: name -> C expression builder ``(out_dtype, *operand expressions)``
_ELEMENTWISE = {
    "neg": lambda dt, x: f"(-({x}))",
    "abs": lambda dt, x: f"{math_fn('fabs', dt)}({x})" if is_float(dt) else f"(({x}) < 0 ? -({x}) : ({x}))",
    "sign": lambda dt, x: f"(({x}) > 0 ? {_one(dt)} : (({x}) < 0 ? -{_one(dt)} : ({x})))",
    "floor": _fn("floor"), "ceil": _fn("ceil"),
    "round": None,  # spelled by `element` from its rounding_method
    "is_finite": lambda dt, x: f"(isfinite({x}) ? 1 : 0)",
    "exp": _fn("exp"), "exp2": _fn("exp2"), "log": _fn("log"), "log1p": _fn("log1p"), "expm1": _fn("expm1"),
    "sqrt": _fn("sqrt"), "rsqrt": lambda dt, x: f"({_one(dt)} / {math_fn('sqrt', dt)}({x}))",
    "cbrt": _fn("cbrt"), "square": lambda dt, x: f"(({x}) * ({x}))",
    "sin": _fn("sin"), "cos": _fn("cos"), "tan": _fn("tan"), "asin": _fn("asin"), "acos": _fn("acos"),
    "atan": _fn("atan"), "sinh": _fn("sinh"), "cosh": _fn("cosh"), "tanh": _fn("tanh"),
    "asinh": _fn("asinh"), "acosh": _fn("acosh"), "atanh": _fn("atanh"),
    "erf": _fn("erf"), "erfc": _fn("erfc"), "lgamma": _fn("lgamma"),
    "logistic": lambda dt, x: f"({_one(dt)} / ({_one(dt)} + {math_fn('exp', dt)}(-({x}))))",
    "not": lambda dt, x: f"(!({x}))" if np.dtype(dt) == np.bool_ else f"(~({x}))",
    "add": lambda dt, a, b: f"(({a}) + ({b}))", "add_any": lambda dt, a, b: f"(({a}) + ({b}))",
    "sub": lambda dt, a, b: f"(({a}) - ({b}))", "mul": lambda dt, a, b: f"(({a}) * ({b}))",
    "div": lambda dt, a, b: f"(({a}) / ({b}))",
    "rem": lambda dt, a, b: f"{math_fn('fmod', dt)}({a}, {b})" if is_float(dt) else f"(({a}) % ({b}))",
    "pow": lambda dt, a, b: f"{math_fn('pow', dt)}({a}, ({c_type(dt)})({b}))",
    "atan2": lambda dt, a, b: f"{math_fn('atan2', dt)}({a}, {b})",
    "nextafter": lambda dt, a, b: f"{math_fn('nextafter', dt)}({a}, {b})",
    "max": _fmax, "min": _fmin,
    "and": lambda dt, a, b: f"(({a}) & ({b}))", "or": lambda dt, a, b: f"(({a}) | ({b}))",
    "xor": lambda dt, a, b: f"(({a}) ^ ({b}))",
    "eq": lambda dt, a, b: f"(({a}) == ({b}))", "ne": lambda dt, a, b: f"(({a}) != ({b}))",
    "lt": lambda dt, a, b: f"(({a}) < ({b}))", "le": lambda dt, a, b: f"(({a}) <= ({b}))",
    "gt": lambda dt, a, b: f"(({a}) > ({b}))", "ge": lambda dt, a, b: f"(({a}) >= ({b}))",
    "clamp": lambda dt, lo, x, hi: _fmin(dt, _fmax(dt, x, lo), hi),
}

#: primitives that only rearrange elements; the value is which operands are data (the rest are indices)
STRUCTURAL = {
    "reshape": None, "broadcast_in_dim": None, "squeeze": None, "slice": None, "transpose": None,
    "rev": None, "concatenate": None, "stack": None, "split": None, "copy": None, "pad": None,
    "gather": (0,), "scatter": (0, 2), "dynamic_slice": (0,), "dynamic_update_slice": (0, 1),
}


def numpy_structural(name, operands, params):
    """The common index shuffles done in NumPy (``[result]``), or ``None`` for `bind` to do: a bound
    primitive runs as a small XLA program, compiled on its first use, ~10 ms each."""
    x = operands[0]
    if name == "slice":
        strides = params["strides"] or (1,) * x.ndim
        return [x[tuple(slice(a, b, c) for a, b, c in zip(params["start_indices"], params["limit_indices"], strides))]]
    if name == "squeeze":
        return [np.squeeze(x, axis=tuple(params["dimensions"]))]
    if name == "reshape" and params.get("dimensions") is None:
        return [np.reshape(x, params["new_sizes"])]
    if name == "concatenate":
        return [np.concatenate(operands, axis=params["dimension"])]
    if name == "transpose":
        return [np.transpose(x, params["permutation"])]
    if name == "broadcast_in_dim" and params.get("sharding") is None:
        shape, dims = tuple(params["shape"]), tuple(params["broadcast_dimensions"])
        expanded = np.reshape(x, [x.shape[dims.index(d)] if d in dims else 1 for d in range(len(shape))])
        return [np.broadcast_to(expanded, shape)]
    return None


#: reductions: name -> C expression combining two partial results ``(out_dtype, a, b)``
REDUCTIONS = {
    "reduce_sum": lambda dt, a, b: f"({a} + {b})", "reduce_prod": lambda dt, a, b: f"({a} * {b})",
    "reduce_max": _fmax, "reduce_min": _fmin,
    "reduce_and": lambda dt, a, b: f"({a} & {b})", "reduce_or": lambda dt, a, b: f"({a} | {b})",
}

#: cumulative primitives: name -> the reduction whose operator they accumulate with
CUMULATIVE = {"cumsum": "reduce_sum", "cumprod": "reduce_prod", "cummax": "reduce_max", "cummin": "reduce_min"}


def element(name: str, params, operand_dtype, args: list[str], out_dtype) -> str:
    """The C expression of one output element of the elementwise primitive ``name`` applied to the
    operand element expressions ``args`` (``operand_dtype``: the first operand's dtype). ``integer_pow``
    is not here: it emits temporaries, so the translator spells it."""
    if name == "convert_element_type":
        if out_dtype == np.bool_:
            return f"(({args[0]}) != 0)"
        return f"(({c_type(out_dtype)})({args[0]}))"
    if name == "select_n":
        pred, cases = args[0], args[1:]
        if operand_dtype == np.bool_:
            return f"(({pred}) ? ({cases[1]}) : ({cases[0]}))"
        expr = cases[-1]
        for k in range(len(cases) - 2, -1, -1):
            expr = f"(({pred}) == {k} ? ({cases[k]}) : {expr})"
        return expr
    if name == "round":
        fn = "round" if int(params["rounding_method"]) == 0 else "rint"
        return f"{math_fn(fn, out_dtype)}({args[0]})"
    if name in ("eq", "ne", "lt", "le", "gt", "ge"):  # spelt in the operands' type, not the bool result's
        return _ELEMENTWISE[name](operand_dtype, *args)
    return _ELEMENTWISE[name](out_dtype, *args)


def supported_primitives() -> frozenset[str]:
    """Names of the JAX primitives the translator handles (calls like ``jit`` are inlined besides)."""
    return frozenset(_ELEMENTWISE) | frozenset(STRUCTURAL) | frozenset(REDUCTIONS) | frozenset(CUMULATIVE) | {
        "integer_pow", "convert_element_type", "select_n", "iota", "dot_general", "argmax", "argmin", "cond"}
