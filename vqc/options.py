"""A plugin's options, declared once: a dataclass whose fields carry their range.

A model family, a drift detector and a data layout each declare their options as a dataclass
(the keys of their ``conf/<group>/*.yaml``). A field's type says what it holds; :func:`option`
adds what a type cannot (a range, a value allowed besides the type, a line of doc)::

    @dataclass(frozen=True)
    class MyOptions:
        depth: int = option(5, low=1, high=8, doc="conv blocks")
        rate: float = option(0.1, low=0, high=1, open_low=True, open_high=True)
        mode: Literal["fast", "exact"] = "fast"

        def __post_init__(self) -> None:
            check_values(self, "model")      # model.depth=9: must be an integer >= 1 and <= 8

:func:`rules_of` turns the same fields into the :class:`Rule` s that ``vqc.config_checks``
checks the composed config with, so the range written here is the only one. This module
imports neither torch nor Hydra: the command line reads it before either.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections import abc
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from vqc.errors import ConfigError

_MISSING = object()
#: The key of a field's metadata holding its :class:`Bounds`.
META = "vqc"


def show(value: Any) -> str:
    """A value as messages show it (``null``, ``true``, ``[1,2]``, ``['a',3]``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return str(list(value)).replace(" ", "")
    return str(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


@dataclass(frozen=True)
class Rule:
    """``key`` must be of ``kind`` (int, number, bool, str, choice, ints, strs) within
    ``low``/``high`` (``open_low``/``open_high``: the bound itself is refused); ``nullable``:
    ``null`` is allowed; ``choices`` for ``kind="choice"``; ``length`` for lists; ``also``:
    other values allowed besides the kind (e.g. ``"auto"``)."""

    key: str
    kind: str
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    nullable: bool = False
    choices: tuple[Any, ...] = ()
    length: int | None = None
    also: tuple[Any, ...] = ()

    def allowed(self) -> str:
        if self.kind == "choice":
            text = "one of " + ", ".join(show(c) for c in self.choices)
        else:
            noun = {"int": "an integer", "number": "a number", "bool": "true or false",
                    "str": "a string", "strs": "a list of strings",
                    "ints": "a list of integers"}[self.kind]
            if self.length is not None:
                noun = f"a list of {self.length} integers"
            bounds = []
            if self.low is not None:
                bounds.append(f"{'>' if self.open_low else '>='} {show(self.low)}")
            if self.high is not None:
                bounds.append(f"{'<' if self.open_high else '<='} {show(self.high)}")
            where = " each" if self.kind == "ints" else ""
            text = noun + (f"{where} {' and '.join(bounds)}" if bounds else "")
        extra = [*(show(a) for a in self.also), *(["null"] if self.nullable else [])]
        return text + (f" (or {', '.join(extra)})" if extra else "")

    def _in_range(self, number: float) -> bool:
        if self.low is not None and (number < self.low or (self.open_low and number == self.low)):
            return False
        return not (self.high is not None
                    and (number > self.high or (self.open_high and number == self.high)))

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.nullable
        if any(value == a and type(value) is type(a) for a in self.also):
            return True
        if self.kind == "choice":
            return any(value == c and type(value) is type(c) for c in self.choices)
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "str":  # a path given from Python is a path
            return isinstance(value, (str, os.PathLike))
        if self.kind == "strs":
            return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        if self.kind == "ints":
            return (isinstance(value, (list, tuple))
                    and all(_is_int(v) and self._in_range(v) for v in value)
                    and (self.length is None or len(value) == self.length))
        if self.kind == "int" and not _is_int(value):
            return False
        return _is_number(value) and self._in_range(value)

    def problem(self, value: Any, key: str | None = None) -> str | None:
        """``key=value: must be ...`` when ``value`` is refused, else ``None``."""
        if self.accepts(value):
            return None
        return f"{key or self.key}={show(value)}: must be {self.allowed()}"


@dataclass(frozen=True)
class Bounds:
    """What :func:`option` adds to a field's type (see :class:`Rule`)."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    also: tuple[Any, ...] = ()
    length: int | None = None
    doc: str = ""


def option(default: Any = _MISSING, *, low: float | None = None, high: float | None = None,
           open_low: bool = False, open_high: bool = False, also: tuple[Any, ...] = (),
           length: int | None = None, doc: str = "",
           default_factory: Any = _MISSING) -> Any:
    """A dataclass field with a range (``low``/``high``, ``open_*``: the bound excluded),
    values allowed besides its type (``also``), a list ``length`` and a line of ``doc``."""
    bounds = Bounds(low, high, open_low, open_high, tuple(also), length, doc)
    kwargs: dict[str, Any] = {"metadata": {META: bounds}}
    if default is not _MISSING:
        kwargs["default"] = default
    if default_factory is not _MISSING:
        kwargs["default_factory"] = default_factory
    return dataclasses.field(**kwargs)


def _strip_none(hint: Any) -> tuple[Any, bool, tuple[Any, ...]]:
    """``X | None | Literal["auto"]`` -> (X, nullable, literal values beside X)."""
    if typing.get_origin(hint) not in (typing.Union, types.UnionType):
        return hint, False, ()
    args = typing.get_args(hint)
    nullable = type(None) in args
    rest = [a for a in args if a is not type(None)]
    literals = [a for a in rest if typing.get_origin(a) is Literal]
    others = [a for a in rest if typing.get_origin(a) is not Literal]
    also = tuple(v for lit in literals for v in typing.get_args(lit))
    if not others:  # only literals (and None): a choice
        return Literal[also], nullable, ()  # type: ignore[valid-type]
    if set(others) == {int, float}:
        return float, nullable, also
    return (others[0] if len(others) == 1 else None), nullable, also


def _kind(hint: Any) -> tuple[str, tuple[Any, ...], int | None] | None:
    """The :class:`Rule` kind, choices and list length of a type hint; ``None``: a type the
    rules do not check (a mapping, a list of floats...)."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "choice", typing.get_args(hint), None
    if origin in (tuple, list, abc.Sequence):
        args = typing.get_args(hint)
        items = [a for a in args if a is not Ellipsis]
        fixed = len(args) if origin is tuple and Ellipsis not in args else None
        if items and all(a is str for a in items):
            return "strs", (), fixed
        if items and all(a is int for a in items):
            return "ints", (), fixed
        return None
    simple = {bool: "bool", int: "int", float: "number", str: "str"}
    return (simple[hint], (), None) if hint in simple else None


def rule_of(field: dataclasses.Field, hint: Any, key: str) -> Rule | None:
    """The rule of one dataclass field at config ``key`` (``None``: its type is not checked)."""
    base, nullable, also = _strip_none(hint)
    kind = _kind(base) if base is not None else None
    if kind is None:
        return None
    bounds: Bounds = field.metadata.get(META, Bounds())
    return Rule(key, kind[0], bounds.low, bounds.high, bounds.open_low, bounds.open_high,
                nullable, kind[1], bounds.length or kind[2], (*also, *bounds.also))


def rules_of(options: type, prefix: str) -> dict[str, Rule]:
    """``{field name: rule}`` of an options dataclass, the rules' keys under ``prefix``
    (``model`` -> ``model.depth``)."""
    try:
        hints = typing.get_type_hints(options)
    except Exception as err:  # a name imported only for type checkers
        raise ConfigError(f"the options of {options.__module__}.{options.__qualname__}: their "
                          f"type hints cannot be read ({err}); import what they name at run "
                          "time") from err
    rules = {}
    for field in dataclasses.fields(options):
        if not field.init:
            continue
        rule = rule_of(field, hints.get(field.name), f"{prefix}.{field.name}" if prefix
                       else field.name)
        if rule is not None:
            rules[field.name] = rule
    return rules


def value_problems(options: Any, prefix: str) -> Iterator[str]:
    """The fields of a dataclass instance their own rules refuse, one line each."""
    for name, rule in rules_of(type(options), prefix).items():
        problem = rule.problem(getattr(options, name))
        if problem:
            yield problem


def check_values(options: Any, prefix: str) -> None:
    """Raise one :class:`ConfigError` listing the refused fields of ``options`` (call it from
    the dataclass's ``__post_init__``)."""
    problems = list(value_problems(options, prefix))
    if problems:
        raise ConfigError("\n".join(problems))


def unknown_keys(options: type, given: Mapping[str, Any] | Iterable[str]) -> list[str]:
    """Keys of ``given`` the dataclass ``options`` has no field for, sorted."""
    known = {f.name for f in dataclasses.fields(options) if f.init}
    return sorted(set(given) - known)


def field_names(options: type) -> tuple[str, ...]:
    """The names of the fields an options dataclass takes."""
    return tuple(f.name for f in dataclasses.fields(options) if f.init)


def docs_of(options: type) -> dict[str, str]:
    """``{field: doc}`` of the fields :func:`option` documented."""
    return {f.name: f.metadata[META].doc for f in dataclasses.fields(options)
            if META in f.metadata and f.metadata[META].doc}


__all__ = ["Bounds", "Rule", "check_values", "docs_of", "field_names", "option", "rule_of",
           "rules_of", "show", "unknown_keys", "value_problems"]
