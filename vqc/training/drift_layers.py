"""Drift feature layers checked against the model before any training.

A pooled detector's ``layer: auto`` becomes the deepest layer ``unfreeze`` leaves frozen.
A PaDiM detector reads named feature maps of the classifier (``drift.layers``; null: the model
family's own default, ``layer1..3`` of a ResNet, every block of a CNN, ``stage1, stage2,
stage4`` of an EfficientNet) and keeps ``n_features`` of their channels. Layers the model does
not have, or more channels than they give, would only fail once training is over; here they are
found while the run starts: unknown layers are a one-line ``ConfigError``, too many channels are
capped to what the layers give, with a warning.

``check_drift_layers(cfg)`` takes the composed config (it builds the model without weights when
none is given); ``cap_n_features(cfg, check)`` writes the caps into it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from vqc.drift.config import drift_settings
from vqc.drift.registry import detector_class
from vqc.errors import ConfigError

#: A pooled detector's ``layer: auto``: the deepest feature layer ``unfreeze`` leaves frozen.
AUTO_LAYER = "auto"


@dataclass
class LayerCheck:
    """``caps``: config key -> the ``n_features`` the layers allow; ``settings``: config key
    -> the layer ``auto`` chose; ``warnings``: why."""

    caps: dict[str, int] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    why: dict[str, str] = field(default_factory=dict)
    trained: list[str] = field(default_factory=list)  # keys of layers that training changes
    warnings: list[str] = field(default_factory=list)


def _auto_layer(model: Any, frozen: Sequence[str]) -> str:
    """The deepest frozen feature layer: ImageNet's features, which score training images as
    they score new ones; with none frozen, the first layer (the check then warns)."""
    return frozen[-1] if frozen else model.feature_layers[0]


def _plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg


def _key(drift: Mapping[str, Any], name: str, option: str) -> str:
    """The config key an option of detector ``name`` was set by."""
    own = ((drift.get("detectors") or {}).get(name) or {}) if "detectors" in drift else None
    if own is not None and own.get(option) is not None:
        return f"drift.detectors.{name}.{option}"
    return f"drift.{option}"


def _model_from(cfg: Any) -> Any:
    from vqc.models import build_model

    model = dict(_plain(cfg["model"]))
    pretrained, weights = model.pop("pretrained", False), model.pop("weights", None)
    loads = bool(pretrained) or weights is not None
    mode = _plain(cfg["data"]).get("preprocess", {}).get("mode", "L")
    built = build_model(**model, num_classes=2, in_channels=1 if mode == "L" else 3,
                        pretrained=False, weights=None)
    if loads and model.get("unfreeze") is None:  # what unfreeze: null means once loaded
        built.unfreeze(built.fine_tune_unfreeze)
    return built


def _blank_maps(model: Any, layers: Sequence[str], size: tuple[int, int]) -> dict[str, Any]:
    """The maps of ``layers`` for one blank image, the model in eval mode meanwhile."""
    was_training = model.training
    model.eval()
    try:
        parameter = next(model.parameters())
        blank = torch.zeros(1, model.in_channels, *size, device=parameter.device,
                            dtype=parameter.dtype)
        return model.feature_maps(blank, layers)
    finally:
        model.train(was_training)


def _frozen_layers(model: Any, size: tuple[int, int]) -> list[str]:
    """The feature layers no trainable weight computes (``unfreeze`` leaves them as loaded)."""
    with torch.enable_grad():
        maps = _blank_maps(model, model.feature_layers, size)
    return [name for name in model.feature_layers if not maps[name].requires_grad]


@torch.no_grad()
def _channels(model: Any, layers: tuple[str, ...], size: tuple[int, int]) -> list[int]:
    """Channels of each layer's map, from one forward pass of a blank image."""
    maps = _blank_maps(model, layers, size)
    return [int(maps[name].shape[1]) for name in layers]


def check_drift_layers(cfg: DictConfig | Mapping[str, Any], model: Any = None) -> LayerCheck:
    """Check each PaDiM detector's layers, and the layer of each pooled detector that reads
    one, against ``model`` (built from ``cfg.model`` when ``None``); raises ``ConfigError``
    naming the key, the value and the model's layers."""
    drift = _plain(cfg.get("drift")) if cfg.get("drift") else None
    check = LayerCheck()
    if not drift or not drift.get("enabled", False):
        return check
    settings = drift_settings(drift)
    size = _plain(cfg["data"])["preprocess"]["size"]
    size = (64, 64) if size == "auto" else tuple(int(v) for v in size)  # any size names layers
    for name, (kind, options) in settings.detectors.items():
        known = {f.name: f for f in fields(detector_class(kind).config_type)}
        if "layer" in known and options.get("layer") is not None:
            model = _model_from(cfg) if model is None else model
            key, layer = _key(drift, name, "layer"), options["layer"]
            if layer == AUTO_LAYER:
                frozen = _frozen_layers(model, size)  # type: ignore[arg-type]
                layer = check.settings[key] = _auto_layer(model, frozen)
                check.why[key] = (f"the deepest layer unfreeze={model.unfrozen} leaves frozen"
                                  if frozen else "no layer is left frozen: the first")
            if layer not in model.feature_layers:
                raise ConfigError(
                    f"{key}={layer!r}: not a layer of {model.name}, which has "
                    f"{list(model.feature_layers)} (null: the pooled embedding)")
            frozen = _frozen_layers(model, size)  # type: ignore[arg-type]
            if layer not in frozen:
                check.trained.append(key)
                check.warnings.append(
                    f"{key}={layer!r} is computed by blocks that unfreeze={model.unfrozen} "
                    "trains: the network learns its training images there, and drift calls "
                    "new images of its rarest classes first; layers left frozen: "
                    f"{frozen or 'none'}")
        if "layers" not in known:
            continue
        model = _model_from(cfg) if model is None else model
        given = options.get("layers")
        default = tuple(model.backbone.default_feature_layers)
        layers = default if given is None else tuple(given)
        unknown = [layer for layer in layers if layer not in model.feature_layers]
        if unknown:
            raise ConfigError(
                f"{_key(drift, name, 'layers')}={list(layers)}: {unknown} are not layers of "
                f"{model.name}, which has {list(model.feature_layers)} (null: its default "
                f"{list(default)})")
        if "n_features" not in known:
            continue
        wanted = options.get("n_features")
        wanted = int(known["n_features"].default if wanted is None else wanted)
        total = sum(_channels(model, layers, size))  # type: ignore[arg-type]
        if wanted > total:
            key = _key(drift, name, "n_features")
            if "detectors" in drift:
                key = f"drift.detectors.{name}.n_features"
            check.caps[key] = total
            check.warnings.append(
                f"drift n_features={wanted} is more than the {total} channels of {model.name}'s "
                f"layers {list(layers)}: {total} kept (set {key} to choose)")
    return check


def cap_n_features(cfg: DictConfig, check: LayerCheck) -> None:
    """Write ``check``'s capped ``n_features`` and chosen layers into ``cfg`` (what the
    inspector is fitted with, and what the run's loggers record)."""
    with open_dict(cfg):
        for key, value in {**check.caps, **check.settings}.items():
            OmegaConf.update(cfg, key, value, force_add=True)
