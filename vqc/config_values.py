"""Reading one value of a composed config, and checking it against its :class:`~vqc.options.Rule`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vqc.options import Rule

#: What :func:`value_of` gives for a key the config does not have.
MISSING = object()


def value_of(cfg: DictConfig, key: str) -> Any:
    """The resolved value at ``key``; ``MISSING`` when absent; ``???`` raises ``LookupError``."""
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key, default=MISSING) if parent_key else cfg
    if parent is MISSING or not isinstance(parent, DictConfig) or leaf not in parent:
        return MISSING
    if OmegaConf.is_missing(parent, leaf):
        raise LookupError(f"{key}: required, set it on the command line ({key}=...)")
    value = parent[leaf]
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def rule_problems(rule: Rule, cfg: DictConfig) -> Iterator[str]:
    """The problem of ``cfg``'s value at ``rule.key`` (none when the key is absent)."""
    try:
        value = value_of(cfg, rule.key)
    except LookupError as err:
        yield str(err)
        return
    except Exception as err:  # an interpolation that does not resolve
        yield f"{rule.key}: cannot be resolved: {str(err).splitlines()[0]}"
        return
    if value is not MISSING:
        problem = rule.problem(value)
        if problem:
            yield problem


__all__ = ["MISSING", "rule_problems", "value_of"]
