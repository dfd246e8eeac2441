"""Model families by name: config names its builder, as timm's ``create_model`` does.

Each family module registers one builder for its names with :func:`register_family`; a builder
takes ``name``, ``num_classes``, ``in_channels`` and its own keyword options (the keys of its
``conf/model/*.yaml``) and returns a :class:`~vqc.models.Classifier`. :func:`build_model` looks
the name up and refuses options the family does not take, naming them and the ones it does.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vqc.errors import ConfigError
from vqc.options import field_names
from vqc.registry import Registry

if TYPE_CHECKING:
    from vqc.models.classifier import Classifier

Builder = Callable[..., "Classifier"]
#: ``locate(name, **options) -> str``: where a family's pretrained weights would come from,
#: without reading them (a :class:`ConfigError` when there are none).
Locator = Callable[..., str]
#: Arguments every builder takes besides its family's options.
COMMON = ("name", "num_classes", "in_channels")


@dataclass(frozen=True)
class Family:
    """A registered model family: its builder, the options it accepts and, when it declares
    them, their dataclass (types, ranges: ``vqc.options``)."""

    name: str
    builder: Builder
    options: tuple[str, ...]
    locate: Locator | None = None
    options_type: type | None = None


#: Model name -> its family (the ``vqc.models`` entry points of other installed packages add
#: families: ``vqc.registry``).
MODELS: Registry[Family] = Registry("model", "model.name", package="vqc.models",
                                    group="vqc.models")


def register_family(family: str, names: Iterable[str], locate: Locator | None = None,
                    options: type | None = None) -> Callable[[Builder], Builder]:
    """Decorator: ``builder`` builds every model in ``names`` (lower case); ``locate``, for a
    family with pretrained weights, says where they would come from; ``options``, the dataclass
    of its options (``vqc.models.options.ModelOptions`` or a subclass), whose fields the
    builder takes as keywords. Without it, the builder's keywords are its options, unchecked."""

    def decorate(builder: Builder) -> Builder:
        params = inspect.signature(builder).parameters
        accepted = (field_names(options) if options is not None
                    else tuple(p for p in params if p not in COMMON))
        missing = [key for key in accepted if key not in params]
        if missing and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            raise ConfigError(f"model family {family!r}: its builder {builder.__qualname__} "
                              f"does not take option(s) {missing} of {options.__name__}")
        entry = Family(family, builder, accepted, locate, options)
        for model_name in names:
            MODELS.add(model_name, entry)
        return builder

    return decorate


def model_names() -> tuple[str, ...]:
    """Every model name :func:`build_model` accepts (without timm weight tags)."""
    return tuple(MODELS.names())


def family_of(name: str) -> Family:
    """The family building ``name`` (a timm weight tag after a dot is allowed)."""
    key = str(name).strip().lower()
    return MODELS.get(key if key in MODELS else key.partition(".")[0] or key)


def family_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` restricted to what ``name``'s family takes (for specs saved with more keys)."""
    accepted = family_of(name).options
    return {k: v for k, v in options.items() if k in accepted}


def build_model(name: str, num_classes: int, in_channels: int = 1,
                **options: Any) -> Classifier:
    """Build the classifier ``name`` with its family's ``options`` (see ``docs/MODELS.md``).

    ``build_model(**cfg.model, num_classes=..., in_channels=...)`` works for every
    ``conf/model/*.yaml``; an option the family does not take is a :class:`ConfigError`.
    """
    family = family_of(name)
    unknown = sorted(set(options) - set(family.options))
    if unknown:
        raise ConfigError(
            f"model.{unknown[0]} is not a setting of {family.name} models ({name!r}); "
            f"unknown: {unknown}; they take {list(family.options)}"
        )
    if family.options_type is not None:  # every option checked and given, defaults filled in
        values = family.options_type(**options)
        options = {key: getattr(values, key) for key in family.options}
    return family.builder(name=name, num_classes=num_classes, in_channels=in_channels,
                          **options)


def locate_weights(name: str, options: Mapping[str, Any]) -> str | None:
    """Where model ``name`` with ``options`` (a ``conf/model/*.yaml``) would take its pretrained
    weights from; ``None`` when it asks for none. Nothing is read or downloaded."""
    family = family_of(name)
    wanted = bool(options.get("pretrained")) or none_if_blank(options.get("weights")) is not None
    if family.locate is None or not wanted:
        return None
    return family.locate(name, **{k: v for k, v in options.items()
                                  if k in ("source", "weights")})


def none_if_blank(value: Any) -> Any:
    """``None`` for ``None`` or an empty string (Hydra gives ``''`` for ``model.weights=``)."""
    return None if value is None or str(value).strip() == "" else value
