"""ResNet-family feature extractors from timm or torchvision.

The original network is kept whole as ``.net`` (so its state-dict keys stay those of a timm or
torchvision checkpoint, behind the ``net.`` prefix) with its classification layer removed; the
forward pass is ours: stem, ``layer1`` .. ``layer4``, global average pooling.

Gray-scale input: with ``in_channels=1`` the first convolution takes one channel. Pretrained
RGB weights are adapted to it by summing the first convolution's kernels over the three input
channels (what timm does for ``in_chans=1``), so a gray image ``g`` gives the response the RGB
network gives to the image ``(g, g, g)``. Replicating the gray channel three times in the data
pipeline and keeping ``in_channels=3`` is equivalent but three times the input memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from vqc.errors import ConfigError
from vqc.models.base import Backbone
from vqc.models.builder import pretrained_classifier
from vqc.models.classifier import Classifier
from vqc.models.options import ModelOptions
from vqc.models.pretrained import locate_pretrained, resolve_pretrained
from vqc.models.registry import none_if_blank, register_family
from vqc.options import option

#: Architectures by source. Every one has ``conv1 bn1 act maxpool layer1..4 fc``.
TIMM_ARCHS: tuple[str, ...] = ("resnet18", "resnet50", "resnet101", "resnest50d", "wide_resnet50_2")
TORCHVISION_ARCHS: tuple[str, ...] = ("resnet18", "resnet50", "resnet101", "wide_resnet50_2")
SOURCES: tuple[str, ...] = ("timm", "torchvision")
STAGES: tuple[str, ...] = ("layer1", "layer2", "layer3", "layer4")


def split_name(name: str) -> tuple[str, str | None]:
    """``"resnet50.tv_in1k"`` -> ``("resnet50", "tv_in1k")``: timm's architecture and weight tag."""
    arch, _, tag = name.partition(".")
    return arch, (tag or None)


def check_resnet_name(name: str, source: str) -> str:
    """Validate a name for ``source``; return its architecture."""
    if source not in SOURCES:
        raise ConfigError(f"model.source={source!r} is not one of {list(SOURCES)}")
    arch, tag = split_name(name)
    archs = TIMM_ARCHS if source == "timm" else TORCHVISION_ARCHS
    if arch not in archs:
        hint = ""
        if arch in TIMM_ARCHS:
            hint = f" ({arch} exists only in timm: use model.source=timm)"
        raise ConfigError(
            f"model {name!r} is not available from {source}; choose from {list(archs)}{hint}"
        )
    if tag is not None and source != "timm":
        raise ConfigError(f"model {name!r}: weight tags like '.{tag}' exist only with source=timm")
    return arch


class ResNetBackbone(Backbone):
    """A timm or torchvision ResNet (or ResNeSt) without its classification layer."""

    external_prefix = "net."
    external_head_prefixes = ("fc.",)

    def __init__(self, net: nn.Module, name: str, source: str, num_features: int) -> None:
        super().__init__()
        self.net = net
        self.name = name
        self.source = source
        self.num_features = num_features
        self.in_channels = int(
            net.conv1.in_channels if isinstance(net.conv1, nn.Conv2d) else net.conv1[0].in_channels
        )
        self.feature_layers = STAGES
        self.default_feature_layers = STAGES[:3]
        self._act_name = "act1" if hasattr(net, "act1") else "relu"

    def stage_sizes(self) -> dict[str, int]:
        """Residual blocks per stage, e.g. ``{"layer1": 3, "layer2": 4, ...}``."""
        return {stage: len(getattr(self.net, stage)) for stage in STAGES}

    def blocks(self) -> list[tuple[str, nn.Module]]:
        return [
            (f"net.{stage}.{i}", block)
            for stage in STAGES
            for i, block in enumerate(getattr(self.net, stage))
        ]

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        x = net.conv1(x)
        x = net.bn1(x)
        x = getattr(net, self._act_name)(x)
        return net.maxpool(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in STAGES:
            x = getattr(self.net, stage)(x)
        return x.mean(dim=(-2, -1))

    def feature_maps(
        self, x: torch.Tensor, layers: Sequence[str] | None = None
    ) -> dict[str, torch.Tensor]:
        wanted = self._check_layers(layers)
        last = max(STAGES.index(name) for name in wanted)
        x = self.stem(x)
        maps: dict[str, torch.Tensor] = {}
        for stage in STAGES[: last + 1]:
            x = getattr(self.net, stage)(x)
            if stage in wanted:
                maps[stage] = x
        return maps


def _conv_with_inputs(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """A randomly initialised copy of ``conv`` that takes ``in_channels`` channels."""
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        kernel_size=conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride,  # type: ignore[arg-type]
        padding=conv.padding,  # type: ignore[arg-type]
        bias=conv.bias is not None,
    )
    nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")  # as torchvision
    return new


def create_resnet(name: str, source: str = "timm", in_channels: int = 1) -> ResNetBackbone:
    """A randomly initialised ResNet backbone; weights are loaded by :mod:`vqc.models.weights`."""
    arch = check_resnet_name(name, source)
    if in_channels < 1:
        raise ConfigError(f"in_channels must be positive, got {in_channels}")
    if source == "timm":
        import timm

        net = timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_channels)
        num_features = int(net.num_features)
    else:
        import torchvision

        net = torchvision.models.get_model(arch, weights=None)
        if in_channels != 3:
            net.conv1 = _conv_with_inputs(net.conv1, in_channels)
        num_features = int(net.fc.in_features)
        net.fc = nn.Identity()
    return ResNetBackbone(net, name=name, source=source, num_features=num_features)


def locate_resnet_weights(name: str, source: str = "timm", weights: str | None = None) -> str:
    """Where :func:`build_resnet` would take ImageNet weights from (nothing is read)."""
    key = str(name).strip().lower()
    return locate_pretrained(key, check_resnet_name(key, source), source, none_if_blank(weights))


@dataclass(frozen=True)
class ResNetOptions(ModelOptions):
    """``conf/model/resnet*.yaml`` and ``resnest50d.yaml``."""

    source: Literal["timm", "torchvision"] = option("timm", doc="the library whose network "
                                                               "and weights are used")


@register_family("resnet", TIMM_ARCHS, locate=locate_resnet_weights, options=ResNetOptions)
def build_resnet(
    name: str,
    num_classes: int,
    in_channels: int = 1,
    source: str = "timm",
    pretrained: bool = False,
    weights: str | None = None,
    unfreeze: int | None = -1,
    dropout: float = 0.0,
) -> Classifier:
    """A timm or torchvision ResNet (or ResNeSt); with ``pretrained``, ImageNet weights from
    ``weights``, else the hub (see :func:`~vqc.models.pretrained.resolve_pretrained`); a
    ``weights`` file is loaded whenever given."""
    key = str(name).strip().lower()
    arch = check_resnet_name(key, source)
    return pretrained_classifier(
        lambda: create_resnet(key, source=source, in_channels=in_channels),
        name=f"{key} ({source})", num_classes=num_classes, dropout=dropout, unfreeze=unfreeze,
        pretrained=pretrained, weights=weights,
        resolve=lambda file: resolve_pretrained(key, arch, source, file))
