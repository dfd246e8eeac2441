"""From backbone feature maps to the PaDiM embedding, and where the maps come from.

:class:`PadimEmbedding` gives the embedding anomalib's ``PadimModel.generate_embedding``
gives (same values, same channel order for the same indices), computed in a cheaper order:
anomalib upsamples every channel of the deeper layers to the first layer's size,
concatenates, then keeps ``n_features`` channels; here the kept channels are selected in
each layer first and only those are upsampled, by an ``expand`` that equals
``F.interpolate(mode="nearest")`` bit for bit when the sizes are integer multiples.

Feature sources (images -> ``{layer: map}``):

- :class:`ClassifierFeatures`: ``Classifier.feature_maps`` of a vqc model; either a separate
  network (e.g. ``build_model("wide_resnet50_2", ...)``) or the trained classifier itself (the
  shared backbone).
- :class:`PadimFeatures`: the feature extractor of an anomalib ``PadimModel``.

:func:`forward_with_maps` runs a classifier once and returns its logits and the maps.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from vqc.errors import ConfigError

if TYPE_CHECKING:
    from vqc.models import Classifier

Sampler = Literal["torch", "python"]
SAMPLERS: tuple[str, ...] = ("torch", "python")


def select_channels(
    total: int, n_features: int, seed: int, sampler: Sampler = "torch"
) -> torch.Tensor:
    """Sorted indices of ``n_features`` channels out of ``total``, drawn at random from ``seed``.

    ``sampler="torch"``: ``torch.randperm(total, generator=torch.Generator().manual_seed(seed))``
    (anomalib 2.x draws ``torch.randperm`` from the global generator instead). ``"python"``:
    ``random.Random(seed).sample(range(total), n_features)``, the subset of the original PaDiM
    code and of the challenge's baseline (seed 1024, 550 of 1792). The subset is sorted: the
    Mahalanobis distance does not depend on the channel order, and sorted indices let
    :class:`PadimEmbedding` select per layer and concatenate with no extra gather.
    """
    if not 0 < n_features <= total:
        raise ConfigError(
            f"drift.n_features must be in 1..{total} for these layers, got {n_features}"
        )
    if sampler == "torch":
        generator = torch.Generator().manual_seed(int(seed))
        chosen = torch.randperm(total, generator=generator)[:n_features]
    elif sampler == "python":
        chosen = torch.tensor(random.Random(int(seed)).sample(range(total), n_features))
    else:
        raise ConfigError(f"drift.sampler={sampler!r} is not one of {list(SAMPLERS)}")
    return chosen.sort().values.to(torch.int64)


def upsample_nearest(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Nearest-neighbour resize of ``(B, C, h, w)`` to ``size``.

    For integer factors each value is repeated by ``expand`` (the same values as
    ``F.interpolate(mode="nearest")``, several times faster on CPU); otherwise interpolate.
    """
    height, width = int(size[0]), int(size[1])
    batch, channels, h, w = x.shape
    if (h, w) == (height, width):
        return x
    if height % h or width % w:
        return F.interpolate(x, size=(height, width), mode="nearest")
    rh, rw = height // h, width // w
    return (
        x.reshape(batch, channels, h, 1, w, 1)
        .expand(batch, channels, h, rh, w, rw)
        .reshape(batch, channels, height, width)
    )


class PadimEmbedding:
    """``{layer: (B, C_l, H_l, W_l)}`` -> ``(B, n_features, H_0, W_0)``.

    The channel indices refer to the concatenation of ``layers`` in order (as in anomalib);
    they are drawn on first use, once the channel counts are known, and kept in :attr:`idx`.
    """

    def __init__(
        self,
        layers: Sequence[str] = ("layer1", "layer2", "layer3"),
        n_features: int = 100,
        seed: int = 1024,
        sampler: Sampler = "torch",
        idx: torch.Tensor | None = None,
    ) -> None:
        if not layers:
            raise ConfigError("drift.layers is empty")
        if sampler not in SAMPLERS:
            raise ConfigError(f"drift.sampler={sampler!r} is not one of {list(SAMPLERS)}")
        self.layers = tuple(layers)
        self.n_features = int(n_features)
        self.seed = int(seed)
        self.sampler: Sampler = sampler
        self.idx: torch.Tensor | None = None
        self._split: list[tuple[str, torch.Tensor]] = []
        self._channels: list[int] = []
        if idx is not None:
            self.idx = idx.to(torch.int64).cpu()

    def _prepare(self, maps: dict[str, torch.Tensor]) -> None:
        missing = [name for name in self.layers if name not in maps]
        if missing:
            raise ConfigError(f"feature maps lack layers {missing}; got {list(maps)}")
        channels = [int(maps[name].shape[1]) for name in self.layers]
        total = sum(channels)
        if self.idx is None:
            self.idx = select_channels(total, self.n_features, self.seed, self.sampler)
        elif int(self.idx.max()) >= total or len(self.idx) != self.n_features:
            raise ConfigError(
                f"stored channel indices ({len(self.idx)} of up to {int(self.idx.max()) + 1}) do "
                f"not fit layers {list(self.layers)} with {channels} channels"
            )
        if self._channels and channels != self._channels:
            raise ConfigError(
                f"layers {list(self.layers)} gave {channels} channels, earlier {self._channels}"
            )
        if not self._split:
            if not bool((self.idx[1:] > self.idx[:-1]).all()):
                raise ConfigError("channel indices must be sorted and distinct")
            self._channels = channels
            start = 0
            for name, count in zip(self.layers, channels, strict=True):
                local = self.idx[(self.idx >= start) & (self.idx < start + count)] - start
                self._split.append((name, local))
                start += count

    def __call__(self, maps: dict[str, torch.Tensor]) -> torch.Tensor:
        self._prepare(maps)
        size = maps[self.layers[0]].shape[-2:]
        parts = []
        for k, (name, local) in enumerate(self._split):
            if len(local) == 0:
                continue
            if local.device != maps[name].device:  # moved once, not at every call
                local = local.to(maps[name].device)
                self._split[k] = (name, local)
            selected = torch.index_select(maps[name], 1, local)
            parts.append(upsample_nearest(selected, size))
        return torch.cat(parts, dim=1)


class FeatureSource(Protocol):
    """Images ``(B, C, H, W)`` -> feature maps by layer name (no gradients)."""

    layers: tuple[str, ...]

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]: ...


class ClassifierFeatures:
    """Maps from a vqc ``Classifier``'s backbone: a separate network or the classifier itself.

    ``layers`` defaults to the backbone's (``layer1..3`` of a ResNet, every block of a CNN).
    The network is used as it is (the caller sets ``eval()``: BatchNorm in training mode would
    change the maps with the batch).
    """

    def __init__(self, model: Classifier, layers: Sequence[str] | None = None) -> None:
        self.model = model
        self.layers = tuple(model.backbone.default_feature_layers if layers is None else layers)
        unknown = [name for name in self.layers if name not in model.feature_layers]
        if unknown:
            raise ConfigError(
                f"drift.layers {list(unknown)} are not layers of {model.name}; "
                f"choose from {list(model.feature_layers)}"
            )

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model.feature_maps(images, self.layers)


class PadimFeatures:
    """The feature extractor of an anomalib ``PadimModel`` (timm, ``features_only``).

    Gray images are repeated to the three channels the timm network expects. ``model.idx`` is
    not used: the detector's :class:`PadimEmbedding` holds the channel subset (copy it into
    ``model.idx`` to make ``model.generate_embedding`` give the same embedding).
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.layers = tuple(model.layers)
        self.extractor = model.feature_extractor
        first = next(m for m in self.extractor.modules() if isinstance(m, nn.Conv2d))
        self.in_channels = int(first.in_channels)

    @classmethod
    def create(
        cls,
        backbone: str = "resnet18",
        layers: Sequence[str] = ("layer1", "layer2", "layer3"),
        pre_trained: bool = True,
        n_features: int | None = None,
    ) -> PadimFeatures:
        """Build ``PadimModel(backbone, layers, pre_trained, n_features)`` (imports anomalib)."""
        from anomalib.models.image.padim.torch_model import PadimModel

        model = PadimModel(
            backbone=backbone, layers=list(layers), pre_trained=pre_trained, n_features=n_features
        )
        return cls(model.eval())

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.shape[1] == 1 and self.in_channels == 3:
            images = images.expand(-1, 3, -1, -1)
        return {str(k): v for k, v in self.extractor(images).items()}


def forward_with_maps(
    model: Classifier, images: torch.Tensor, layers: Sequence[str] | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits and feature maps of ``layers`` (default: the backbone's) from one forward pass.

    Every vqc backbone pools its last feature layer by a global average (ResNets: ``layer4``,
    CNNs: the last block), so the logits are ``head(mean of that map)``, the value
    ``model(images)`` gives. Gradients flow as in ``model(images)``; the drift detector
    detaches what it reads.
    """
    layers = tuple(model.backbone.default_feature_layers if layers is None else layers)
    last = model.feature_layers[-1]
    wanted = list(dict.fromkeys([*layers, last]))
    maps = model.feature_maps(images, wanted)
    logits = model.head(maps[last].mean(dim=(-2, -1)))
    return logits, {name: maps[name] for name in layers}
