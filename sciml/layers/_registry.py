"""Named functions: how a layer holds a function (an activation, an initialiser) as a hyper-parameter.

A layer stores a function-valued hyper-parameter by *name* whenever it can, so that the layer stays
describable as JSON (`Layer.to_config`) and compares equal to its rebuilt copy. A
:class:`FunctionRegistry` maps names to functions and back; a dataclass field made with
:func:`function_field` says which registry its value belongs to, and `Layer.__post_init__` turns a
registered callable into its name and checks that a given name exists.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable


class FunctionRegistry:
    """Names for the functions of one kind (``kind`` is used in messages, ``register`` is the public
    function users call to add an entry).

    Args:
        kind: what the functions are, e.g. ``"activation"``.
        register: the public name of the function that adds an entry, e.g. ``"register_activation"``.
    """

    def __init__(self, kind: str, register: str):
        self.kind = kind
        self.register_name = register
        self._by_name: dict[str, Callable] = {}
        self._by_function: dict[Any, str] = {}
        self._builtin: frozenset[str] = frozenset()

    def freeze_builtins(self) -> None:
        """Mark the names registered so far as sciml's own: they can never be re-registered."""
        self._builtin = frozenset(self._by_name)

    def add(self, name: str, fn: Callable) -> None:
        """Register ``fn`` under ``name`` (the first name a function gets is the one it is stored as)."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"a {self.kind} name must be a non-empty string; got {name!r}.")
        if not callable(fn):
            raise TypeError(f"`{self.register_name}({name!r}, fn)` needs a callable `fn`; got {fn!r}.")
        existing = self._by_name.get(name)
        redefined = name not in self._builtin and _qualified_name(existing) == _qualified_name(fn)
        if existing is not None and existing is not fn and not redefined:
            raise ValueError(
                f"the {self.kind} name {name!r} is already registered for {existing!r}. "
                f"Choose another name: a saved model must mean the same function when it is loaded."
            )
        self._by_name[name] = fn  # the same function defined again (a re-run cell) replaces it
        self._by_function.setdefault(fn, name)

    def names(self) -> tuple[str, ...]:
        """All registered names, sorted."""
        return tuple(sorted(self._by_name))

    def canonical(self, value: Any, where: str) -> Any:
        """The value a layer stores: a registered callable becomes its name; a name must exist.

        Unregistered callables are kept as they are (the layer works, but cannot be described as
        JSON). ``None`` is kept (it means "no function" where a field allows it).
        """
        if value is None:
            return None
        if isinstance(value, str):
            if value not in self._by_name:
                raise ValueError(
                    f"`{where}` is {value!r}, which is not a known {self.kind}. Known names: "
                    f"{', '.join(self.names())}. Pass a callable, or register one with "
                    f"`sciml.layers.{self.register_name}({value!r}, fn)`."
                )
            return value
        if callable(value):
            try:
                return self._by_function.get(value, value)
            except TypeError:  # an unhashable callable: it can only be kept as it is
                return value
        raise TypeError(f"`{where}` must be a {self.kind} name (str) or a callable; got {value!r}.")

    def resolve(self, value: str | Callable) -> Callable:
        """The function a stored value (a name or a callable) stands for."""
        return self._by_name[value] if isinstance(value, str) else value


def _qualified_name(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', None)}.{getattr(fn, '__qualname__', repr(fn))}"


def function_field(registry: FunctionRegistry, default: Any) -> Any:
    """A dataclass field holding a function of ``registry``'s kind, by name where possible."""
    return dataclasses.field(default=default, metadata={"registry": registry})


def canonicalise_functions(layer: Any) -> None:
    """Replace registered callables in ``layer``'s function fields by their names (in place)."""
    for f in dataclasses.fields(layer):
        registry = f.metadata.get("registry")
        if registry is not None:
            value = registry.canonical(getattr(layer, f.name), f"{type(layer).__name__}.{f.name}")
            object.__setattr__(layer, f.name, value)

