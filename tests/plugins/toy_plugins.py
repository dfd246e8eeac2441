"""Plugins as another package would write them: a backbone, a drift detector and a data
layout, each one class with its options dataclass. Nothing under ``vqc/`` names them: vqc
finds them through the entry points ``tests/plugins/test_toy_plugins.py`` declares."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqc.data.layouts import Tables, register_layout
from vqc.data.table import finish_table
from vqc.drift.base import DriftDetector, ForwardOutputs
from vqc.drift.registry import register
from vqc.errors import ConfigError, DataError
from vqc.models.base import Backbone
from vqc.models.classifier import Classifier
from vqc.models.options import ModelOptions
from vqc.models.registry import register_family
from vqc.options import check_values, option


# -- a backbone: two convolutions ----------------------------------------------------------
@dataclass(frozen=True)
class TwoConvOptions(ModelOptions):
    channels: int = option(4, low=1, high=64, doc="channels of the first convolution")


class TwoConv(Backbone):
    """Two 3x3 convolutions, the second with stride 2; the embedding is the second's mean."""

    feature_layers = ("conv1", "conv2")
    default_feature_layers = ("conv1", "conv2")

    def __init__(self, in_channels: int = 1, channels: int = 4) -> None:
        super().__init__()
        self.in_channels, self.num_features = in_channels, 2 * channels
        self.conv1 = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1)

    def blocks(self) -> list[tuple[str, nn.Module]]:
        return [("conv1", self.conv1), ("conv2", self.conv2)]

    def feature_maps(self, x: Tensor, layers: Sequence[str] | None = None) -> dict[str, Tensor]:
        wanted = self._check_layers(layers)
        first = F.relu(self.conv1(x))
        maps = {"conv1": first}
        if "conv2" in wanted:
            maps["conv2"] = F.relu(self.conv2(first))
        return {name: maps[name] for name in wanted}

    def forward(self, x: Tensor) -> Tensor:
        return self.feature_maps(x, ["conv2"])["conv2"].mean(dim=(-2, -1))

    @staticmethod
    def classifier(name: str, num_classes: int, in_channels: int = 1, channels: int = 4,
                   pretrained: bool = False, weights: str | None = None,
                   unfreeze: int | None = -1, dropout: float = 0.0) -> Classifier:
        if pretrained or weights:
            raise ConfigError("model.pretrained: the two-conv net has no pretrained weights")
        model = Classifier(TwoConv(in_channels, channels), num_classes=num_classes,
                           dropout=dropout, name=name)
        model.unfreeze(unfreeze)
        return model


register_family("two_conv", ["two_conv"], options=TwoConvOptions)(TwoConv.classifier)


# -- a drift detector: distance of the embedding to the training mean ----------------------
@dataclass(frozen=True)
class MeanDistanceOptions:
    fit_on: Literal["all", "good"] = "all"
    good_code: int = option(0, low=0)
    power: float = option(2.0, low=0, open_low=True, doc="p of the L^p distance")

    def __post_init__(self) -> None:
        check_values(self, "drift")


@register("mean_distance")
class MeanDistance(DriftDetector):
    """The L^p distance of the pooled embedding to the training images' mean, in units of
    their spread."""

    config_type = MeanDistanceOptions

    def __init__(self, config: MeanDistanceOptions | None = None, threshold: Any = None,
                 **options: Any) -> None:
        super().__init__(config or MeanDistanceOptions(**options), threshold)
        self.register_buffer("mean", torch.empty(0))
        self.register_buffer("spread", torch.empty(0))
        self._rows: list[Tensor] = []

    @classmethod
    def reads_trained_features(cls, options: Any) -> bool:
        return True

    def reset_accumulators(self) -> None:
        self._rows = []

    def accumulate(self, outputs: ForwardOutputs, libs: list[str] | None) -> None:
        self._rows.append(outputs.pooled.detach().float())

    def finish_fit(self) -> None:
        rows = torch.cat(self._rows)
        self.mean, self.spread = rows.mean(dim=0), rows.std(dim=0) + 1e-6
        self._rows = []

    @property
    def fitted(self) -> bool:
        return self.mean.numel() > 0

    def score_columns(self, outputs: ForwardOutputs) -> Tensor:
        z = (outputs.pooled.float() - self.mean) / self.spread
        return z.abs().pow(self.config.power).sum(dim=1).pow(1 / self.config.power)[:, None]


# -- a data layout: a JSON listing ---------------------------------------------------------
@register_layout("json_list")
@dataclass
class JsonList:
    """``{"train": [[image, label], ...], "test": [...]}`` in ``listing``, paths relative to
    ``root``."""

    root: str | None = None
    listing: str = option("images.json", doc="the JSON file, relative to root")
    test_labelled: bool = True

    @property
    def name(self) -> str:
        return str(Path(self.root or ".") / self.listing)

    def _table(self, rows: list[list[str]], split: str) -> pd.DataFrame:
        base = Path(self.root or ".")
        frame = pd.DataFrame({
            "path": [str((base / image).resolve()) for image, _ in rows],
            "filename": [image for image, _ in rows],
            "label": [label for _, label in rows], "split": split,
            "where": [f"{self.name} {split}[{i}]" for i in range(len(rows))]})
        return finish_table(frame)

    def tables(self) -> Tables:
        try:
            listing = json.loads(Path(self.name).read_text())
        except (OSError, ValueError) as err:
            raise DataError(f"{self.name}: not a readable JSON listing ({err})") from err
        test = listing.get("test")
        return self._table(listing["train"], "train"), self._table(test, "test") if test else None
