"""Drift detectors by name: ``@register("name")`` on a class, ``build_detector("name", ...)``.

A detector module in ``vqc/drift/`` registers itself when imported; a name not registered yet
makes the registry import every module of the package once (and the ``vqc.drift`` entry points
of other installed packages: ``vqc.registry``), so a new detector is one file plus one
``conf/drift/<name>.yaml`` naming it (``type: <name>``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from vqc.registry import Registry

DETECTORS: Registry[type] = Registry("drift detector type", "drift type", package="vqc.drift",
                                     group="vqc.drift")
_T = TypeVar("_T", bound=type)


def register(name: str) -> Callable[[_T], _T]:
    """Class decorator: make the detector class available as ``type: name``."""

    def add(cls: _T) -> _T:
        DETECTORS.add(name, cls)
        cls.type_name = name
        return cls

    return add


def detector_types() -> list[str]:
    return DETECTORS.names()


def detector_class(name: str) -> Any:
    return DETECTORS.get(name)


def build_detector(name: str, options: Mapping[str, Any] | None = None, model: Any = None,
                   where: str = "drift") -> Any:
    """A new, unfitted detector of type ``name`` from its options (``where`` names the config
    entry in errors); ``model``: the classifier whose outputs it will read."""
    return detector_class(name).from_options(dict(options or {}), model, where)
