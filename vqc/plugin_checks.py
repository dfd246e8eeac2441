"""The options of the plugins a config names, checked by the rules their dataclasses declare.

The model family (``model.name``), the drift detectors (``drift.type``, or each
``drift.detectors.<name>.type``) and the data layout (``data.layout``) are looked up in their
registries, which imports them (torch, seconds): ``vqc.config_checks`` runs this only when
vqc's own keys passed. A value set through a top-level knob (``model.depth: ${depth}``) is
named as the user set it (``depth=9``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import is_dataclass, replace
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vqc.config_values import rule_problems
from vqc.drift.config import DECISION_KEYS
from vqc.errors import ConfigError
from vqc.options import field_names, rules_of

_REFERENCE = re.compile(r"^\$\{([\w.]+)\}$")


def _set_as(cfg: DictConfig, key: str) -> str:
    """The key the user sets for ``key``: ``depth`` when ``model.depth`` is ``${depth}``."""
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key, default=None) if parent_key else cfg
    node = parent._get_node(leaf) if isinstance(parent, DictConfig) and leaf in parent else None
    match = _REFERENCE.match(str(node._value())) if node is not None else None
    return match.group(1) if match else key


def _option_problems(cfg: DictConfig, options: type, prefix: str) -> Iterator[str]:
    for rule in rules_of(options, prefix).values():
        yield from rule_problems(replace(rule, key=_set_as(cfg, rule.key)), cfg)


def _keys(node: Any) -> list[str]:
    return [str(k) for k in node] if isinstance(node, DictConfig) else []


def _model_options(cfg: DictConfig) -> Iterator[str]:
    from vqc.models.registry import family_of

    model = cfg.get("model")
    if not isinstance(model, DictConfig) or not isinstance(model.get("name"), str):
        return
    family = family_of(model.name)
    if family.options_type is None:
        return  # a family that declares no options: its builder checks them
    unknown = sorted(set(_keys(model)) - {"name", *family.options})
    if unknown:
        yield (f"model.{unknown[0]}: not a setting of {family.name} models; they take "
               f"{', '.join(family.options)}")
    yield from _option_problems(cfg, family.options_type, "model")


def _detectors(drift: DictConfig) -> dict[str, str]:
    """``{config prefix: detector type}`` of the drift group's one or several detectors."""
    from vqc.drift.config import DEFAULT_TYPE

    entries = drift.get("detectors")
    if isinstance(entries, DictConfig):
        return {f"drift.detectors.{name}": str((entry or {}).get("type") or name)
                for name, entry in entries.items()}
    return {"drift": str(drift.get("type") or DEFAULT_TYPE)}


def _drift_options(cfg: DictConfig) -> Iterator[str]:
    from vqc.drift.registry import detector_class

    drift = cfg.get("drift")
    if not isinstance(drift, DictConfig) or not drift.get("enabled", True):
        return
    types = _detectors(drift)
    kinds = {prefix: detector_class(kind).config_type for prefix, kind in types.items()}
    for prefix, options in kinds.items():
        yield from _option_problems(cfg, options, prefix)
    if "drift" in kinds:  # one detector: its options beside the decision's keys
        unknown = sorted(set(_keys(drift)) - {*DECISION_KEYS, "type", "role",
                                              *field_names(kinds["drift"])})
        if unknown:
            yield (f"drift.{unknown[0]}: not an option of the {types['drift']} drift "
                   f"detector; it takes {', '.join(field_names(kinds['drift']))}")
        return
    shared = set(_keys(drift)) - {*DECISION_KEYS, "detectors"}
    for key in sorted(shared):  # defaults for every detector that has the option
        owner = next((o for o in kinds.values() if key in field_names(o)), None)
        if owner is not None:
            rule = rules_of(owner, "drift").get(key)
            yield from rule_problems(rule, cfg) if rule else ()


def _layout_options(cfg: DictConfig) -> Iterator[str]:
    from vqc.data.layouts import layout_builder

    data = cfg.get("data")
    if not isinstance(data, DictConfig) or not isinstance(data.get("layout"), str):
        return
    builder = layout_builder(data.layout)
    if is_dataclass(builder):
        yield from _option_problems(cfg, builder, "data")


def plugin_option_problems(cfg: DictConfig) -> Iterator[str]:
    """Every problem of the options of ``cfg``'s model, drift detectors and data layout."""
    for options in (_model_options, _drift_options, _layout_options):
        try:
            yield from options(cfg)
        except ConfigError as err:  # an unknown plugin name: the registry lists the known
            yield str(err).splitlines()[0]


__all__ = ["plugin_option_problems"]
