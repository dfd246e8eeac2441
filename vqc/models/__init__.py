"""Image classifiers as plain ``nn.Module`` s: small CNNs and timm / torchvision ResNets.

:func:`build_model` is the one entry point configuration code needs; see ``docs/MODELS.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from vqc.errors import ConfigError
from vqc.models.backbones import (
    SOURCES,
    TIMM_ARCHS,
    TORCHVISION_ARCHS,
    ResNetBackbone,
    check_resnet_name,
    create_resnet,
    split_name,
)
from vqc.models.base import Backbone
from vqc.models.classifier import Classifier
from vqc.models.cnn import MAX_DEPTH, BasicCNN, ConvNet
from vqc.models.freeze import set_frozen_bn_eval, unfreeze
from vqc.models.pretrained import fetch_pretrained
from vqc.models.weights import LoadReport, load_state_dict_into, load_weights, read_state_dict

#: Models trained from scratch (no pretrained weights exist for them).
CNN_NAMES: tuple[str, ...] = ("basic_cnn", "cnn")
MODEL_NAMES: tuple[str, ...] = (*CNN_NAMES, *TIMM_ARCHS)

__all__ = [
    "CNN_NAMES",
    "MAX_DEPTH",
    "MODEL_NAMES",
    "SOURCES",
    "TIMM_ARCHS",
    "TORCHVISION_ARCHS",
    "Backbone",
    "BasicCNN",
    "Classifier",
    "ConvNet",
    "LoadReport",
    "ResNetBackbone",
    "build_model",
    "create_resnet",
    "load_state_dict_into",
    "load_weights",
    "read_state_dict",
    "set_frozen_bn_eval",
    "unfreeze",
]


def build_model(
    name: str,
    num_classes: int,
    in_channels: int = 1,
    dropout: float = 0.0,
    depth: int = 5,
    width: int = 32,
    pretrained: bool = False,
    weights: str | Path | None = None,
    unfreeze: int = -1,
    source: Literal["timm", "torchvision"] = "timm",
) -> Classifier:
    """Build a classifier from configuration values.

    Args:
        name: ``basic_cnn``, ``cnn`` (``depth`` conv blocks of base ``width``), or a ResNet:
            ``resnet18``, ``resnet50``, ``resnet101``, ``resnest50d``, ``wide_resnet50_2``
            (timm names may carry a weight tag, e.g. ``resnet50.tv_in1k``).
        num_classes: outputs of the head (the trained classes, without the open-set one).
        in_channels: 1 for gray images (a pretrained first convolution is summed over RGB),
            3 for RGB.
        dropout: dropout probability before the linear head.
        depth, width: for ``cnn`` only (``width`` also sets ``basic_cnn``'s first block).
        pretrained: load ImageNet weights: from ``weights`` if given, else from the local hub
            cache or the hub; offline with neither, fails at once with a ConfigError.
        weights: a local ``.pth``/``.pt``/``.bin``/``.ckpt``/``.safetensors`` file; loaded
            whenever given (it implies ``pretrained``).
        unfreeze: train the head plus the last N blocks; 0 = head only, -1 = everything.
        source: ``timm`` (default) or ``torchvision`` for the ResNets.
    """
    key = str(name).strip().lower()
    arch, _ = split_name(key)
    if weights is not None and str(weights).strip() == "":
        weights = None
    if key not in CNN_NAMES and arch not in TIMM_ARCHS:
        raise ConfigError(f"model.name={name!r} is unknown; choose from {list(MODEL_NAMES)}")
    hub_state: tuple[dict, str] | None = None
    if pretrained and weights is None:
        if key in CNN_NAMES:
            raise ConfigError(
                f"model.pretrained=true: no pretrained weights exist for {key!r}; set "
                "model.pretrained=false or pass a trained model with model.weights=PATH"
            )
        check_resnet_name(key, source)
        hub_state = fetch_pretrained(key, source)  # before building: fail fast when offline

    if key == "basic_cnn":
        backbone: Backbone = BasicCNN(in_channels=in_channels, width=width)
    elif key == "cnn":
        backbone = ConvNet(in_channels=in_channels, depth=depth, width=width)
    else:
        backbone = create_resnet(key, source=source, in_channels=in_channels)
    label = key if key in CNN_NAMES else f"{key} ({source})"
    model = Classifier(backbone, num_classes=num_classes, dropout=dropout, name=label)
    if weights is not None:
        model.load_report = load_weights(model, weights)
    elif hub_state is not None:
        state_dict, origin = hub_state
        model.load_report = load_state_dict_into(model, state_dict, origin=origin)
    model.unfreeze(unfreeze)
    return model
