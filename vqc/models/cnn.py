"""Small CNNs trained from scratch: a basic two-block CNN and a CNN of configurable depth.

Both are feature extractors (:class:`~vqc.models.base.Backbone`); :class:`~vqc.models.Classifier`
adds the dropout and the linear head. They accept any input size, square or not (the crops are
tall strips, e.g. 224x64): a block halves a side only while that side is at least
:data:`MIN_POOL_SIDE`, so no side shrinks below half of it, and global average pooling makes
the embedding size independent of the input size.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vqc.errors import ConfigError
from vqc.models.base import Backbone
from vqc.models.classifier import Classifier
from vqc.models.options import MAX_DEPTH, MIN_DEPTH, BasicCnnOptions, CnnOptions
from vqc.models.registry import none_if_blank, register_family
from vqc.models.weights import load_weights

#: A side is max-pooled by 2 only while it has at least this many pixels.
MIN_POOL_SIDE = 4


class ConvBlock(nn.Sequential):
    """3x3 convolution, optional BatchNorm, ReLU. Pooling is done by the network (size-aware)."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = True) -> None:
        layers: list[tuple[str, nn.Module]] = [
            ("conv", nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=not batch_norm))
        ]
        if batch_norm:
            layers.append(("bn", nn.BatchNorm2d(out_channels)))
        layers.append(("act", nn.ReLU(inplace=True)))
        super().__init__(OrderedDict(layers))


def _pool(x: torch.Tensor) -> torch.Tensor:
    """2x2 max pooling that leaves a side alone once it is smaller than ``MIN_POOL_SIDE``."""
    kh = 2 if x.shape[-2] >= MIN_POOL_SIDE else 1
    kw = 2 if x.shape[-1] >= MIN_POOL_SIDE else 1
    if kh == 1 and kw == 1:
        return x
    return F.max_pool2d(x, kernel_size=(kh, kw), stride=(kh, kw))


class ConvNet(Backbone):
    """``depth`` blocks of conv-BN-ReLU-maxpool, then global average pooling.

    Block ``i`` (0-based) has ``min(width * 2**i, max(max_width, width))`` channels: with the
    defaults 32, 64, 128, 256, 512, 512, ... The embedding has as many features as the last block.
    """

    def __init__(
        self,
        in_channels: int = 1,
        depth: int = 5,
        width: int = 32,
        max_width: int = 512,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int):
            raise ConfigError(f"model.depth must be an integer, got {depth!r}")
        if not MIN_DEPTH <= depth <= MAX_DEPTH:
            raise ConfigError(
                f"model.depth={depth} is out of range: use {MIN_DEPTH} to {MAX_DEPTH} conv blocks"
            )
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ConfigError(f"model.width must be a positive integer, got {width!r}")
        if in_channels < 1:
            raise ConfigError(f"in_channels must be positive, got {in_channels}")
        cap = max(max_width, width)
        widths = [min(width * 2**i, cap) for i in range(depth)]
        chans = [in_channels, *widths]
        self.layers = nn.ModuleList(
            ConvBlock(chans[i], chans[i + 1], batch_norm=batch_norm) for i in range(depth)
        )
        self.in_channels = in_channels
        self.depth = depth
        self.widths = tuple(widths)
        self.num_features = widths[-1]
        self.feature_layers = tuple(f"block{i + 1}" for i in range(depth))
        self.default_feature_layers = self.feature_layers
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def blocks(self) -> list[tuple[str, nn.Module]]:
        return [(f"layers.{i}", block) for i, block in enumerate(self.layers)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.layers:
            x = _pool(block(x))
        return x.mean(dim=(-2, -1))

    def feature_maps(
        self, x: torch.Tensor, layers: Sequence[str] | None = None
    ) -> dict[str, torch.Tensor]:
        wanted = self._check_layers(layers)
        last = max(self.feature_layers.index(name) for name in wanted)
        maps: dict[str, torch.Tensor] = {}
        for i, block in enumerate(self.layers[: last + 1]):
            x = _pool(block(x))
            name = self.feature_layers[i]
            if name in wanted:
                maps[name] = x
        return maps


class BasicCNN(ConvNet):
    """The basic CNN: two conv-ReLU-maxpool blocks (32 and 64 channels, no BatchNorm), then
    global average pooling. A floor to compare deeper models against."""

    def __init__(self, in_channels: int = 1, width: int = 32) -> None:
        super().__init__(in_channels=in_channels, depth=2, width=width, batch_norm=False)



def _from_scratch(backbone: ConvNet, name: str, num_classes: int, dropout: float,
                  unfreeze: int | None, pretrained: bool, weights: str | None) -> Classifier:
    weights = none_if_blank(weights)
    if pretrained and weights is None:
        raise ConfigError(
            f"model.pretrained=true: no pretrained weights exist for {name!r}; set "
            "model.pretrained=false or pass a trained model with model.weights=PATH"
        )
    model = Classifier(backbone, num_classes=num_classes, dropout=dropout, name=name)
    if weights is not None:
        model.load_report = load_weights(model, weights)
    model.unfreeze(unfreeze)
    return model


@register_family("cnn", ("cnn",), options=CnnOptions)
def build_cnn(name: str, num_classes: int, in_channels: int = 1, depth: int = 5,
              width: int = 32, dropout: float = 0.0, unfreeze: int | None = -1,
              pretrained: bool = False, weights: str | None = None) -> Classifier:
    """``depth`` conv blocks of base ``width``, trained from scratch; ``weights`` loads a model
    trained before (no ImageNet weights exist for it)."""
    backbone = ConvNet(in_channels=in_channels, depth=depth, width=width)
    return _from_scratch(backbone, "cnn", num_classes, dropout, unfreeze, pretrained, weights)


@register_family("basic_cnn", ("basic_cnn",), options=BasicCnnOptions)
def build_basic_cnn(name: str, num_classes: int, in_channels: int = 1, width: int = 32,
                    dropout: float = 0.0, unfreeze: int | None = -1, pretrained: bool = False,
                    weights: str | None = None) -> Classifier:
    """The two-block basic CNN, trained from scratch."""
    backbone = BasicCNN(in_channels=in_channels, width=width)
    return _from_scratch(backbone, "basic_cnn", num_classes, dropout, unfreeze, pretrained,
                         weights)
