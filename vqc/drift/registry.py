"""Drift detectors by name: ``@register("name")`` on a class, ``build_detector("name", ...)``.

A detector module in ``vqc/drift/`` registers itself when imported; a name not registered yet
makes the registry import every module of the package once, so a new detector is one file
here plus one ``conf/drift/<name>.yaml`` naming it (``type: <name>``).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from vqc.errors import ConfigError

DETECTORS: dict[str, type] = {}
_T = TypeVar("_T", bound=type)
_scanned = False


def register(name: str) -> Callable[[_T], _T]:
    """Class decorator: make the detector class available as ``type: name``."""

    def add(cls: _T) -> _T:
        known = DETECTORS.get(name)
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise ConfigError(f"drift detector type {name!r} is registered twice "
                              f"({known.__module__}.{known.__qualname__}, "
                              f"{cls.__module__}.{cls.__qualname__})")
        cls.type_name = name
        DETECTORS[name] = cls
        return cls

    return add


def _scan() -> None:
    """Import every module of ``vqc.drift`` once (each registers its detectors)."""
    global _scanned
    if _scanned:
        return
    package = importlib.import_module(__package__ or "vqc.drift")  # this module's own package

    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")
    _scanned = True


def detector_types() -> list[str]:
    _scan()
    return sorted(DETECTORS)


def detector_class(name: str) -> Any:
    if name not in DETECTORS:
        _scan()
    if name not in DETECTORS:
        raise ConfigError(f"drift detector type {name!r} is unknown; known: {detector_types()}")
    return DETECTORS[name]


def build_detector(name: str, options: Mapping[str, Any] | None = None, model: Any = None,
                   where: str = "drift") -> Any:
    """A new, unfitted detector of type ``name`` from its options (``where`` names the config
    entry in errors); ``model``: the classifier whose outputs it will read."""
    return detector_class(name).from_options(dict(options or {}), model, where)
