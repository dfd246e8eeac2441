"""The interface every feature extractor implements, so the classifier, the freezing logic and
the drift detector treat our CNNs and the ResNets alike."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from vqc.errors import ConfigError


class Backbone(nn.Module):
    """A feature extractor: image batch ``(B, C, H, W)`` -> pooled embedding ``(B, num_features)``.

    Subclasses set :attr:`num_features`, :attr:`in_channels` and :attr:`feature_layers`, and
    implement :meth:`blocks` (the units that ``unfreeze=N`` counts, in forward order) and
    :meth:`feature_maps`.
    """

    num_features: int
    in_channels: int
    #: Names accepted by :meth:`feature_maps`, in forward order.
    feature_layers: tuple[str, ...]
    #: Layers :meth:`feature_maps` returns when none are named.
    default_feature_layers: tuple[str, ...]
    #: Prefix of this module's state-dict keys that the original (timm / torchvision) model
    #: lacks: ``"net."`` for a wrapped ResNet, ``""`` for our CNNs.
    external_prefix: str = ""
    #: Key prefixes of the original model's classification layer (``fc.`` for ResNets).
    external_head_prefixes: tuple[str, ...] = ()

    def blocks(self) -> list[tuple[str, nn.Module]]:
        """The trainable units ``unfreeze=N`` counts from the end, as ``(name, module)``
        with names relative to this backbone, in forward order."""
        raise NotImplementedError

    def feature_maps(
        self, x: torch.Tensor, layers: Sequence[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """Intermediate maps ``(B, C, H, W)`` by layer name; stops after the last one asked."""
        raise NotImplementedError

    def pooled_and_map(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The pooled embedding and the last feature map, whose spatial mean it is, in one
        pass (training with pixel masks reads the map)."""
        last = self.feature_layers[-1]
        feature_map = self.feature_maps(x, [last])[last]
        return feature_map.mean(dim=(-2, -1)), feature_map

    def first_conv_name(self) -> str:
        """State-dict name (without ``.weight``) of the convolution that sees the image."""
        for name, module in self.named_modules():
            if isinstance(module, nn.Conv2d):
                return name
        raise RuntimeError(f"{type(self).__name__} has no Conv2d")

    def _check_layers(self, layers: Sequence[str] | None) -> tuple[str, ...]:
        if layers is None:
            return self.default_feature_layers
        wanted = tuple(layers)
        unknown = [name for name in wanted if name not in self.feature_layers]
        if unknown or not wanted:
            raise ConfigError(
                f"feature layers {list(wanted)} are not all available; "
                f"choose from {list(self.feature_layers)}"
            )
        return wanted
