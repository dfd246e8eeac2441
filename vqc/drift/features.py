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

:func:`forward_outputs` runs a classifier once and returns what every drift detector reads
(logits, pooled features, maps); :func:`forward_with_maps` the logits and the maps.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from vqc.drift.base import ForwardOutputs
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


class PadimEmbedding(nn.Module):
    """``{layer: (B, C_l, H_l, W_l)}`` -> ``(B, n_features, H_0, W_0)``.

    The channel indices refer to the concatenation of ``layers`` in order (as in anomalib);
    they are drawn on first use, once the channel counts are known, and kept in the buffer
    :attr:`idx`. Each layer's share of them becomes a (non-saved) buffer ``channels_<i>`` on
    first use, so that later calls, and a traced graph, only select and upsample.
    """

    def __init__(
        self,
        layers: Sequence[str] = ("layer1", "layer2", "layer3"),
        n_features: int = 100,
        seed: int = 1024,
        sampler: Sampler = "torch",
        idx: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if not layers:
            raise ConfigError("drift.layers is empty")
        if sampler not in SAMPLERS:
            raise ConfigError(f"drift.sampler={sampler!r} is not one of {list(SAMPLERS)}")
        self.layers = tuple(layers)
        self.n_features = int(n_features)
        self.seed = int(seed)
        self.sampler: Sampler = sampler
        self.register_buffer("idx", None if idx is None else idx.to(torch.int64).cpu())
        self.idx: torch.Tensor | None
        self._split: list[tuple[str, str]] = []
        self._channels: list[int] = []

    def _load_from_state_dict(self, state_dict: dict[str, torch.Tensor], prefix: str,
                              *args: object, **kwargs: object) -> None:
        if prefix + "idx" in state_dict:  # new indices: split them again on next use
            self.idx = torch.empty_like(state_dict[prefix + "idx"], dtype=torch.int64)
            self._forget_split()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _forget_split(self) -> None:
        for _, buffer in self._split:
            delattr(self, buffer)
        self._split, self._channels = [], []

    def set_idx(self, idx: torch.Tensor) -> None:
        """Use these channel indices (sorted, distinct) from now on."""
        self._forget_split()
        self.idx = idx.to(torch.int64).cpu()

    def prepare(self, maps: dict[str, torch.Tensor]) -> None:
        """Draw the indices (first use) and split them by layer; later calls check shapes."""
        missing = [name for name in self.layers if name not in maps]
        if missing:
            raise ConfigError(f"feature maps lack layers {missing}; got {list(maps)}")
        channels = [int(maps[name].shape[1]) for name in self.layers]
        if self._channels:
            if channels != self._channels:
                raise ConfigError(f"layers {list(self.layers)} gave {channels} channels, "
                                  f"earlier {self._channels}")
            return
        total = sum(channels)
        if self.idx is None:
            self.idx = select_channels(total, self.n_features, self.seed, self.sampler)
        elif int(self.idx.max()) >= total or len(self.idx) != self.n_features:
            raise ConfigError(
                f"stored channel indices ({len(self.idx)} of up to {int(self.idx.max()) + 1}) do "
                f"not fit layers {list(self.layers)} with {channels} channels"
            )
        idx = self.idx
        if not bool((idx[1:] > idx[:-1]).all()):
            raise ConfigError("channel indices must be sorted and distinct")
        start = 0
        for i, (name, count) in enumerate(zip(self.layers, channels, strict=True)):
            local = idx[(idx >= start) & (idx < start + count)] - start
            start += count
            if len(local):
                self.register_buffer(f"channels_{i}", local.clone(), persistent=False)
                self._split.append((name, f"channels_{i}"))
        self._channels = channels

    def forward(self, maps: dict[str, torch.Tensor]) -> torch.Tensor:
        self.prepare(maps)
        size = maps[self.layers[0]].shape[-2:]
        parts = []
        for name, buffer in self._split:
            local = getattr(self, buffer)
            if local.device != maps[name].device:  # moved once, not at every call
                local = local.to(maps[name].device)
                setattr(self, buffer, local)
            parts.append(upsample_nearest(torch.index_select(maps[name], 1, local), size))
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


def forward_outputs(
    model: Classifier, images: torch.Tensor, layers: Sequence[str] = ()
) -> ForwardOutputs:
    """Logits, pooled features and the feature maps of ``layers``, from one forward pass.

    The ResNets and CNNs pool their last feature layer by a global average (ResNets:
    ``layer4``, CNNs: the last block), so the pooled features (``model.embed``) are that map's
    mean and the logits ``head(pooled)``, the values ``model(images)`` gives: one pass. A
    backbone with more after its last named map (EfficientNet's 1x1 head convolution: the map's
    channels are not ``num_features``) gets its pooled features from ``model.embed``, a second
    pass. Gradients flow as in ``model(images)``; drift detectors detach what they read.
    """
    layers = tuple(layers)
    last = model.feature_layers[-1]
    wanted = list(dict.fromkeys([*layers, last]))
    maps = model.feature_maps(images, wanted)
    if int(maps[last].shape[1]) == int(model.num_features):
        pooled = maps[last].mean(dim=(-2, -1))
    else:
        pooled = model.embed(images)
    return ForwardOutputs(maps={name: maps[name] for name in layers}, pooled=pooled,
                          logits=model.head_logits(pooled, images),
                          image_size=(int(images.shape[-2]), int(images.shape[-1])),
                          images=images)


def forward_with_maps(
    model: Classifier, images: torch.Tensor, layers: Sequence[str] | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits and feature maps of ``layers`` (default: the backbone's) from one forward pass
    (see :func:`forward_outputs`)."""
    layers = tuple(model.backbone.default_feature_layers if layers is None else layers)
    outputs = forward_outputs(model, images, layers)
    assert outputs.logits is not None
    return outputs.logits, outputs.maps
