"""Translate a jaxpr into straight-line C: the vector field of one trajectory, for the kernel backends.

Every array in the jaxpr is small and of static shape, so it is unrolled into scalars: a value is a
NumPy object array of C expressions (variable names or literals), one per element. Elementwise
primitives emit one ``const T v = ...;`` statement per element. Primitives that only move elements
around (slicing, reshapes, broadcasts, concatenation, gathers and ``.at[].set`` with known
indices, ...) emit no code at all: they are applied by JAX itself to arrays of element *ids*, which
says where each output element comes from. Values computed only from constants are folded by
evaluating the primitive in JAX, so index arithmetic, ``iota`` and identity matrices become
literals. Calls (``jit``, ``custom_jvp``, ``custom_vjp``, ``checkpoint``) are inlined, ``cond``
evaluates its branches and selects.

The result is IEEE-exact C (no algebraic rewrites), in the dtypes of the jaxpr: a float32 function
becomes float32 C with ``expf``, ``sinf``, ... A primitive without a rule raises
:class:`UnsupportedPrimitiveError` naming it and the way out (``backend="jax"``). The rules that spell
each primitive live in `sciml.kernel._primitives`; this module walks the jaxpr and names the values.
"""

from __future__ import annotations

import re

import numpy as np
from jax.extend import core as jcore

from sciml.kernel._ctypes import c_type, literal
from sciml.kernel._primitives import (CUMULATIVE, REDUCTIONS, STRUCTURAL, element, numpy_structural,
                                     supported_primitives)


class UnsupportedPrimitiveError(NotImplementedError):
    """The vector field uses a JAX operation that the C/CUDA kernels cannot express."""


class _Value:
    """An array of C expressions, one per element, with its concrete value when known at trace time."""

    def __init__(self, exprs: np.ndarray, dtype, value: np.ndarray | None = None):
        exprs = np.asarray(exprs, dtype=object) if isinstance(exprs, np.ndarray) else np.array(exprs, dtype=object)
        self.exprs, self.dtype, self.value = exprs, np.dtype(dtype), value

    @classmethod
    def constant(cls, value, dtype):
        value = np.asarray(value, dtype=dtype)
        exprs = np.empty(value.shape, dtype=object)
        for idx in np.ndindex(value.shape):
            exprs[idx] = literal(value[idx], dtype)
        return cls(exprs, dtype, value)


class Translator:
    """Turns jaxprs into C statements; one instance numbers its temporaries uniquely across calls."""

    def __init__(self, prefix: str = "v"):
        self.prefix = prefix
        self.lines: list[str] = []
        self._count = 0

    def translate(self, closed_jaxpr, inputs) -> list[np.ndarray]:
        """Emit the statements computing ``closed_jaxpr`` on ``inputs`` (one array of C expressions per
        input, shaped like it) into ``self.lines``; return the output element expressions."""
        jaxpr = closed_jaxpr.jaxpr
        args = []
        for var, exprs in zip(jaxpr.invars, inputs):
            exprs = np.asarray(exprs, dtype=object).reshape(var.aval.shape)
            args.append(_Value(exprs, var.aval.dtype))
        start = len(self.lines)
        outs = self._run(jaxpr, closed_jaxpr.consts, args)
        self.lines[start:] = self._live(self.lines[start:], outs)
        return [out.exprs for out in outs]

    def _live(self, lines: list[str], outs: list[_Value]) -> list[str]:
        """The statements the outputs depend on (a jaxpr may compute values it does not return, e.g.
        the primal inside ``jax.jacfwd``), so the C has no dead temporaries."""
        name = re.compile(rf"\b{self.prefix}\d+\b")
        used = {n for out in outs for e in out.exprs.ravel() for n in name.findall(e)}
        kept = []
        for line in reversed(lines):
            target, expr = line.split(" = ", 1)
            if target.rsplit(" ", 1)[1] in used:
                used.update(name.findall(expr))
                kept.append(line)
        return kept[::-1]

    # ------------------------------------------------------------------------------------------
    def _run(self, jaxpr, consts, args: list[_Value]) -> list[_Value]:
        env: dict = {}
        for var, const in zip(jaxpr.constvars, consts):
            env[var] = _Value.constant(np.asarray(const), var.aval.dtype)
        for var, arg in zip(jaxpr.invars, args):
            env[var] = arg

        def read(atom):
            if isinstance(atom, jcore.Literal):
                return _Value.constant(np.asarray(atom.val), atom.aval.dtype)
            return env[atom]

        for eqn in jaxpr.eqns:
            outs = self._equation(eqn, [read(v) for v in eqn.invars])
            for var, out in zip(eqn.outvars, outs):
                if not isinstance(var, jcore.DropVar):
                    env[var] = out
        return [read(v) for v in jaxpr.outvars]

    def _equation(self, eqn, ins: list[_Value]) -> list[_Value]:
        name = eqn.primitive.name
        if name in ("cond",):
            return self._cond(eqn, ins)
        sub = _subjaxpr(eqn)
        if sub is not None:
            return self._run(sub[0], sub[1], ins)
        if name not in supported_primitives():
            raise UnsupportedPrimitiveError(_unsupported_message(eqn))
        if all(v.value is not None for v in ins):
            return self._fold(eqn, ins)
        if name in STRUCTURAL:
            return self._structural(eqn, ins)
        out_dtypes = [v.aval.dtype for v in eqn.outvars]
        if name in REDUCTIONS:
            return [self._reduce(ins[0], eqn.params["axes"], REDUCTIONS[name], out_dtypes[0])]
        if name in CUMULATIVE:
            return [self._cumulative(ins[0], eqn.params, REDUCTIONS[CUMULATIVE[name]], out_dtypes[0])]
        if name in ("argmax", "argmin"):
            return [self._argext(ins[0], eqn.params["axes"][0], name == "argmax", out_dtypes[0])]
        if name == "dot_general":
            return [self._dot(ins[0], ins[1], eqn.params["dimension_numbers"], out_dtypes[0])]
        return [self._elementwise(eqn, ins, out_dtypes[0])]

    def _fold(self, eqn, ins):
        outs = eqn.primitive.bind(*[v.value for v in ins], **eqn.params)
        outs = outs if eqn.primitive.multiple_results else [outs]
        return [_Value.constant(np.asarray(o), var.aval.dtype) for o, var in zip(outs, eqn.outvars)]

    def _emit(self, dtype, expr: str) -> str:
        name = f"{self.prefix}{self._count}"
        self._count += 1
        self.lines.append(f"const {c_type(dtype)} {name} = {expr};")
        return name

    def _elementwise(self, eqn, ins, out_dtype) -> _Value:
        name, params = eqn.primitive.name, eqn.params
        shape = eqn.outvars[0].aval.shape
        operands = [np.broadcast_to(v.exprs, shape) for v in ins]
        out = np.empty(shape, dtype=object)
        for idx in np.ndindex(shape):
            args = [op[idx] for op in operands]
            out[idx] = self._emit(out_dtype, self._element(name, params, ins, args, out_dtype))
        return _Value(out, out_dtype)

    def _element(self, name, params, ins, args, out_dtype) -> str:
        if name == "integer_pow":
            return self._integer_pow(args[0], params["y"], out_dtype)
        return element(name, params, ins[0].dtype, args, out_dtype)

    def _integer_pow(self, x: str, y: int, dtype) -> str:
        # Binary powering in the order of JAX's own lowering (lax._integer_pow), so results match.
        if y == 0:
            return literal(1, dtype)
        reciprocal, y = y < 0, abs(y)
        acc, base = None, x
        while y > 0:
            if y & 1:
                acc = base if acc is None else self._emit(dtype, f"({acc} * {base})")
            y >>= 1
            if y > 0:
                base = self._emit(dtype, f"({base} * {base})")
        return f"({literal(1, dtype)} / {acc})" if reciprocal else f"({acc})"

    def _structural(self, eqn, ins) -> list[_Value]:
        data = STRUCTURAL[eqn.primitive.name]
        data = range(len(ins)) if data is None else data
        pool, operands, offset = [], [], 0
        for k, v in enumerate(ins):
            if k in data:
                operands.append(np.arange(offset, offset + v.exprs.size, dtype=np.int32).reshape(v.exprs.shape))
                pool.extend(v.exprs.ravel())
                offset += v.exprs.size
            elif v.value is None:
                raise UnsupportedPrimitiveError(
                    f"`{eqn.primitive.name}` with an index computed from the state or args: the kernel "
                    f"backends need indices known when `f` is traced. Index with Python ints or "
                    f"constants, or use `backend=\"jax\"`.")
            else:
                operands.append(v.value)
        outs = numpy_structural(eqn.primitive.name, operands, eqn.params)
        if outs is None:
            outs = eqn.primitive.bind(*operands, **eqn.params)
            outs = outs if eqn.primitive.multiple_results else [outs]
        pool = np.array(pool + [None], dtype=object)
        results = []
        for ids, var in zip(outs, eqn.outvars):
            ids = np.asarray(ids)
            if ids.size and (ids.min() < 0 or ids.max() >= offset):
                raise UnsupportedPrimitiveError(
                    f"`{eqn.primitive.name}` reads out of bounds; the kernel backends only translate "
                    f"in-bounds indexing. Use `backend=\"jax\"`.")
            results.append(_Value(pool[ids], var.aval.dtype))
        return results

    def _reduce(self, x: _Value, axes, op, out_dtype) -> _Value:
        axes = tuple(int(a) for a in axes)
        keep = [d for d in range(x.exprs.ndim) if d not in axes]
        moved = np.transpose(x.exprs, keep + list(axes))
        out_shape = moved.shape[:len(keep)]
        rows = moved.reshape(out_shape + (-1,))
        out = np.empty(out_shape, dtype=object)
        for idx in np.ndindex(out_shape):
            terms = list(rows[idx])
            acc = terms[0]
            for term in terms[1:]:
                acc = op(out_dtype, acc, term)
            out[idx] = self._emit(out_dtype, acc)
        return _Value(out, out_dtype)

    def _cumulative(self, x: _Value, params, op, out_dtype) -> _Value:
        axis, reverse = int(params["axis"]), bool(params["reverse"])
        moved = np.moveaxis(x.exprs, axis, -1)
        out = np.empty(moved.shape, dtype=object)
        order = range(moved.shape[-1] - 1, -1, -1) if reverse else range(moved.shape[-1])
        for idx in np.ndindex(moved.shape[:-1]):
            acc = None
            for k in order:
                acc = moved[idx + (k,)] if acc is None else self._emit(out_dtype, op(out_dtype, acc, moved[idx + (k,)]))
                out[idx + (k,)] = acc
        return _Value(np.moveaxis(out, -1, axis), out_dtype)

    def _argext(self, x: _Value, axis, is_max, out_dtype) -> _Value:
        moved = np.moveaxis(x.exprs, axis, -1)
        out = np.empty(moved.shape[:-1], dtype=object)
        better = ">" if is_max else "<"
        for idx in np.ndindex(out.shape):
            best, where = moved[idx + (0,)], literal(0, out_dtype)
            for k in range(1, moved.shape[-1]):
                cand = moved[idx + (k,)]
                # NaN wins (as in XLA); the first of equal values wins.
                take = f"(({cand}) {better} ({best}) || (({cand}) != ({cand}) && ({best}) == ({best})))"
                where = self._emit(out_dtype, f"({take} ? {literal(k, out_dtype)} : {where})")
                best = self._emit(x.dtype, f"({take} ? ({cand}) : ({best}))")
            out[idx] = where
        return _Value(out, out_dtype)

    def _dot(self, lhs: _Value, rhs: _Value, dimension_numbers, out_dtype) -> _Value:
        (lc, rc), (lb, rb) = dimension_numbers
        lf = [d for d in range(lhs.exprs.ndim) if d not in lc and d not in lb]
        rf = [d for d in range(rhs.exprs.ndim) if d not in rc and d not in rb]
        a = np.transpose(lhs.exprs, list(lb) + lf + list(lc))
        b = np.transpose(rhs.exprs, list(rb) + list(rc) + rf)
        batch = a.shape[:len(lb)]
        m_shape, n_shape = a.shape[len(lb):len(lb) + len(lf)], b.shape[len(rb) + len(rc):]
        k = int(np.prod(a.shape[len(lb) + len(lf):], dtype=np.int64))
        a = a.reshape(batch + (int(np.prod(m_shape, dtype=np.int64)), k))
        b = b.reshape(batch + (k, int(np.prod(n_shape, dtype=np.int64))))
        cast_a = "" if lhs.dtype == out_dtype else f"({c_type(out_dtype)})"
        cast_b = "" if rhs.dtype == out_dtype else f"({c_type(out_dtype)})"
        out = np.empty(batch + (a.shape[-2], b.shape[-1]), dtype=object)
        for idx in np.ndindex(out.shape):
            bi, i, j = idx[:-2], idx[-2], idx[-1]
            terms = [f"{cast_a}({a[bi + (i, q)]}) * {cast_b}({b[bi + (q, j)]})" for q in range(k)]
            out[idx] = self._emit(out_dtype, " + ".join(terms) if terms else literal(0, out_dtype))
        return _Value(out.reshape(batch + m_shape + n_shape), out_dtype)

    def _cond(self, eqn, ins) -> list[_Value]:
        index, ops = ins[0], ins[1:]
        branches = eqn.params["branches"]
        if index.value is not None:
            chosen = branches[int(np.clip(index.value, 0, len(branches) - 1))]
            return self._run(chosen.jaxpr, chosen.consts, ops)
        results = [self._run(br.jaxpr, br.consts, ops) for br in branches]
        outs = []
        for k, var in enumerate(eqn.outvars):
            dtype = var.aval.dtype
            out = np.empty(var.aval.shape, dtype=object)
            for idx in np.ndindex(out.shape):
                expr = results[-1][k].exprs[idx]
                for b in range(len(branches) - 2, -1, -1):
                    expr = f"(({index.exprs[()]}) == {b} ? ({results[b][k].exprs[idx]}) : {expr})"
                out[idx] = self._emit(dtype, expr)
            outs.append(_Value(out, dtype))
        return outs


def _subjaxpr(eqn):
    """``(jaxpr, consts)`` of a call-like primitive (jit, custom_jvp/vjp, checkpoint), else None."""
    if eqn.primitive.name in ("while", "scan", "cond"):
        return None
    for key in ("jaxpr", "call_jaxpr"):
        sub = eqn.params.get(key)
        if isinstance(sub, jcore.ClosedJaxpr):
            return sub.jaxpr, sub.consts
        if isinstance(sub, jcore.Jaxpr):
            return sub, []
    return None


def _unsupported_message(eqn) -> str:
    name = eqn.primitive.name
    where = ""
    try:
        from jax._src import source_info_util
        where = f" (at {source_info_util.summarize(eqn.source_info)})"
    except Exception:  # the location is a courtesy; the message stands without it
        pass
    loops = " Loops (`lax.scan`, `fori_loop`, `while_loop`) cannot be unrolled into a kernel." \
        if name in ("while", "scan") else ""
    return (f"`f` uses the JAX primitive `{name}`{where}, which the kernel backends (`backend=\"c\"`, "
            f"`backend=\"cupy\"`) cannot translate to C.{loops} Use `backend=\"jax\"` for this vector "
            f"field, or write it with the supported operations listed in docs/ensembles.md.")


def c_function(name: str, closed_jaxpr, qualifier: str = "static") -> str:
    """A complete C function computing ``closed_jaxpr``: one pointer argument per input, then one per
    output, elements in row-major order. Used by the translator's tests and for inspection."""
    jaxpr = closed_jaxpr.jaxpr
    params, inputs = [], []
    for k, var in enumerate(jaxpr.invars):
        params.append(f"const {c_type(var.aval.dtype)}* in{k}")
        inputs.append(np.array([f"in{k}[{j}]" for j in range(int(np.prod(var.aval.shape, dtype=np.int64)))],
                               dtype=object))
    for k, var in enumerate(jaxpr.outvars):
        params.append(f"{c_type(var.aval.dtype)}* out{k}")
    tr = Translator()
    outs = tr.translate(closed_jaxpr, inputs)
    body = list(tr.lines)
    for k, out in enumerate(outs):
        body += [f"out{k}[{j}] = {e};" for j, e in enumerate(out.ravel())]
    return f"{qualifier} void {name}({', '.join(params) or 'void'}) {{\n    " + "\n    ".join(body) + "\n}\n"

