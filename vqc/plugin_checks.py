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
from dataclasses import is_dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vqc.config_values import rule_problems
from vqc.drift.config import DECISION_KEYS, ENTRY_KEYS, detector_entries
from vqc.errors import ConfigError
from vqc.options import field_names, rules_of, unknown_keys

#: An absolute reference to another key, as a top-level knob is given: ``${depth}``.
_REFERENCE = re.compile(r"^\$\{([A-Za-z_][\w.]*)\}$")


def _set_as(cfg: DictConfig, key: str) -> str:
    """The key the user sets for ``key``: ``depth`` when ``model.depth`` is ``${depth}`` (a
    reference to a key of the same name, as a top-level knob is written), else ``key``."""
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key, default=None) if parent_key else cfg
    node = parent._get_node(leaf) if isinstance(parent, DictConfig) and leaf in parent else None
    match = _REFERENCE.match(str(node._value())) if node is not None else None
    if match and match.group(1).rpartition(".")[2] == leaf:
        return match.group(1)
    return key


def _option_problems(cfg: DictConfig, options: type, prefix: str) -> Iterator[str]:
    for rule in rules_of(options, prefix).values():
        shown = _set_as(cfg, rule.key)
        for problem in rule_problems(rule, cfg):
            yield shown + problem.removeprefix(rule.key) if problem.startswith(
                f"{rule.key}=") else problem


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
    unknown = unknown_keys(family.options_type, set(_keys(model)) - {"name"})
    if unknown:
        yield (f"model.{unknown[0]}: not a setting of {family.name} models; they take "
               f"{', '.join(family.options)}")
    yield from _option_problems(cfg, family.options_type, "model")


def _detector_options(prefix: str, kind: str) -> type:
    from vqc.drift.registry import DETECTORS

    return DETECTORS.get(kind, setting=f"{prefix}.type").config_type


def _drift_options(cfg: DictConfig) -> Iterator[str]:
    drift = cfg.get("drift")
    if not isinstance(drift, DictConfig) or not drift.get("enabled", True):
        return
    kinds = {prefix: (kind, _detector_options(prefix, kind))
             for prefix, (kind, _) in detector_entries(drift).items()}
    for prefix, (kind, options) in kinds.items():
        yield from _option_problems(cfg, options, prefix)
        entry = drift if prefix == "drift" else OmegaConf.select(cfg, prefix)
        beside = {*DECISION_KEYS} if prefix == "drift" else set()
        unknown = unknown_keys(options, set(_keys(entry)) - {*ENTRY_KEYS, *beside})
        if unknown:
            yield (f"{prefix}.{unknown[0]}: not an option of the {kind} drift detector; it "
                   f"takes {', '.join(field_names(options))}")
    if "drift" in kinds:
        return
    for key in sorted(set(_keys(drift)) - {*DECISION_KEYS, "detectors"}):
        owners = [options for _, options in kinds.values() if key in field_names(options)]
        if not owners:  # a default for every detector that has the option
            yield (f"drift.{key}: beside detectors, an option of none of them "
                   f"({', '.join(sorted({kind for kind, _ in kinds.values()}))})")
        for options in owners:
            rule = rules_of(options, "drift").get(key)
            yield from rule_problems(rule, cfg) if rule is not None else ()


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
            yield from dict.fromkeys(options(cfg))  # a shared key: once, not per detector
        except ConfigError as err:  # an unknown plugin name: the registry lists the known
            yield str(err).splitlines()[0]


__all__ = ["plugin_option_problems"]
