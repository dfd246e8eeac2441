"""Plugins by name, one rule for all of them: model families, drift detectors, data layouts.

A plugin registers itself with ``@REGISTRY.register("name")`` when its module is imported. A
name not registered yet makes the registry look, once, for plugins it has not imported:

- every module of its own package (``vqc/drift/*.py``...), so a new detector is one file;
- the entry points of its group (``vqc.models``, ``vqc.drift``, ``vqc.layouts``), so another
  installed package adds plugins without touching vqc: in its ``pyproject.toml``,
  ``[project.entry-points."vqc.drift"] my_detector = "my_package.detector"``.

Registering a second, different object under a taken name is a :class:`ConfigError` naming
both (re-registering the same class, as a module reload does, is not). An unknown name is a
:class:`ConfigError` naming the setting and every known name.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from vqc.errors import ConfigError

T = TypeVar("T")


def _qualified(obj: object) -> str:
    """``module.name`` of a class or function, or of the builder a registry entry wraps."""
    target = getattr(obj, "builder", obj)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"


class Registry(Generic[T]):
    """Plugins of one kind (``kind``: "drift detector type"), chosen by ``setting``
    ("drift.type"), found in ``package`` and the entry points of ``group``."""

    def __init__(self, kind: str, setting: str, package: str | None = None,
                 group: str | None = None) -> None:
        self.kind, self.setting, self.package, self.group = kind, setting, package, group
        self._items: dict[str, T] = {}
        self._discovered = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``obj`` is the plugin ``name``."""

        def add(obj: T) -> T:
            self.add(name, obj)
            return obj

        return add

    def add(self, name: str, obj: T) -> None:
        key = str(name).lower()
        known = self._items.get(key)
        if known is not None and known is not obj and _qualified(known) != _qualified(obj):
            raise ConfigError(f"{self.kind} {key!r} is registered twice ({_qualified(known)}, "
                              f"{_qualified(obj)})")
        self._items[key] = obj

    def remove(self, name: str) -> None:
        """Forget ``name`` (tests that register a plugin of their own)."""
        self._items.pop(str(name).lower(), None)

    def get(self, name: object, setting: str | None = None) -> T:
        """The plugin ``name``; a :class:`ConfigError` listing the known ones if none, naming
        ``setting`` (the config key that chose it; default: the registry's)."""
        key = str(name).strip().lower()
        if key not in self._items:
            self.discover()
        if key not in self._items:
            raise ConfigError(f"{setting or self.setting}={name!r}: unknown {self.kind}; known: "
                              f"{', '.join(self.names())}")
        return self._items[key]

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return str(name).strip().lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def discover(self) -> None:
        """Import, once, the package's modules and the entry points' (see the module doc)."""
        if self._discovered:
            return
        self._discovered = True
        if self.package:
            package = importlib.import_module(self.package)
            for info in pkgutil.iter_modules(getattr(package, "__path__", [])):
                importlib.import_module(f"{self.package}.{info.name}")
        if self.group:
            for point in entry_points(group=self.group):
                try:
                    point.load()
                except Exception as err:
                    raise ConfigError(f"{self.kind} plugin {point.name!r} ({point.value}) "
                                      f"from entry point group {self.group!r} does not load: "
                                      f"{err}") from err


__all__ = ["Registry"]
