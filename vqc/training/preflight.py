"""Checks and adjustments made while a run starts, before any training: what would otherwise
fail (or be silently wrong) only once training is over."""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from vqc.errors import ConfigError, DataError
from vqc.metrics import load_cost_matrix
from vqc.training.drift_layers import cap_n_features, check_drift_layers
from vqc.training.recipe import Choice
from vqc.training.recipe import drift_fitted as _drift_on

log = logging.getLogger(__name__)

#: The open-set answer's name when the config names none.
DEFAULT_OPEN_SET = "drift"


def add_open_set(cfg: DictConfig, datamodule: Any) -> None:
    """A data set without drift images (no open-set class in its labels) still gets a drift
    detector: the inspector answers the open-set class ``data.classes.open_set`` (``drift``)
    for drift. The class is added last, with no images; trained classes keep their codes."""
    classes = datamodule.classes
    if not _drift_on(cfg) or classes.open_set is not None:
        return
    name = str((cfg.data.get("classes") or {}).get("open_set") or DEFAULT_OPEN_SET)
    _refuse_matrix_without_open_set(cfg.module.get("cost_matrix"), classes, name)
    datamodule.index.classes = classes.with_open_set(name)
    log.info("no %r images in the data: drift is fitted on the training images and calibrated "
             "on validation; the inspector answers %r for drift, and no drift figure can be "
             "scored on test", name, name)


def _refuse_matrix_without_open_set(spec: Any, classes: Any, name: str) -> None:
    """A cost matrix given for the trained classes only has no costs for the drift answer."""
    if spec is None or (isinstance(spec, str) and spec in ("official", "page")):
        return  # the named matrices take the data set's shape, drift included
    if OmegaConf.is_config(spec):
        spec = OmegaConf.to_container(spec)
    try:
        load_cost_matrix(spec, len(classes))
    except (ConfigError, DataError, ValueError):
        return  # not of the trained classes' shape: its own error comes later
    raise ConfigError(
        f"module.cost_matrix is {len(classes)}x{len(classes)}, for {list(classes.names)}; with "
        f"drift on and no {name!r} images the inspector also answers {name!r}: give a "
        f"{len(classes) + 1}x{len(classes) + 1} matrix with {name!r} last, or drift=none")


def check_drift(cfg: DictConfig, model: Any, choices: list[Choice] | None = None) -> list[str]:
    """Drift layers checked against ``model`` (the network itself, not ``torch.compile``'s
    wrapper; a ``ConfigError`` if it lacks one), ``n_features`` capped to what they give and
    ``layer: auto`` chosen (added to ``choices``); returns the warnings for the summary."""
    if not _drift_on(cfg):
        return []
    check = check_drift_layers(cfg, model)
    cap_n_features(cfg, check)
    if choices is not None:
        choices += [Choice(key, layer, check.why[key]) for key, layer in check.settings.items()]
    if check.trained and cfg.drift.get("cross_fit"):
        with open_dict(cfg):
            cfg.drift.cross_fit = 0
        why = (f"{check.trained[0]} is computed by trained blocks, where a detector scores its "
               "own training images low: calibrated on validation alone")
        check.warnings.append(f"drift.cross_fit=0: {why}")
        if choices is not None:
            choices.append(Choice("drift.cross_fit", 0, why))
    return check.warnings
