"""An image-level detector: Mahalanobis distance of the pooled backbone features
(``Classifier.embed``), or of the channel statistics of one feature map (``layer``), to one
Gaussian of the training images.

Why a layer: a fine-tuned network's own embedding of its training images is tighter than of
any image it has not trained on (it has learnt them), most of all for its smallest classes, so
a Gaussian of those embeddings calls new tiles of a rare class drift first. An early layer that
the fine-tuning leaves frozen has no such bias, and the mean and spread of each of its channels
describe an image's texture, which is what a foreign part or camera changes.

The covariance is the Ledoit-Wolf shrinkage estimate (``(1 - s) S + s mu I``, ``S`` the
maximum-likelihood covariance, ``mu = tr(S) / p``): with ``p`` features (512 for a resnet18,
2048 for a resnet50) and a few thousand images, ``S`` alone is badly conditioned. The fit
streams: it keeps sums of the features, of their outer products, and two more small sums the
shrinkage needs (``sum ||x||^2 x`` and ``sum ||x||^4``), in float64, around the first batch's
mean; memory is ``p * p`` values whatever the number of images.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from vqc.drift.base import DriftDetector, ForwardOutputs
from vqc.drift.gaussian import cholesky_inverse, mahalanobis, symmetric
from vqc.drift.registry import register
from vqc.drift.threshold import DriftThreshold
from vqc.errors import ConfigError, DataError
from vqc.options import check_values, option


class StreamingMoments:
    """Running sums of feature vectors ``(B, p)`` for a mean and a Ledoit-Wolf covariance.

    Around a shift ``c`` (the first batch's mean), with ``u = x - c``: ``n``, ``sum u``,
    ``sum u u^T``, ``sum ||u||^2 u`` and ``sum ||u||^4``. The centred fourth moment the
    shrinkage needs, ``sum ||x - m||^4``, follows from these by expanding ``u - d``,
    ``d = m - c``.
    """

    def __init__(self) -> None:
        self.count = 0
        self.shift: Tensor | None = None
        self.sum: Tensor | None = None
        self.outer: Tensor | None = None
        self.cubic: Tensor | None = None
        self.quartic: Tensor | None = None

    @torch.no_grad()
    def update(self, features: Tensor) -> None:
        if features.ndim != 2:
            raise ValueError(f"expected features (B, p), got {tuple(features.shape)}")
        if len(features) == 0:
            return
        x = features.detach().to(torch.float64)
        if self.shift is None:
            p = x.shape[1]
            self.shift = x.mean(dim=0)
            self.sum = x.new_zeros(p)
            self.outer = x.new_zeros(p, p)
            self.cubic = x.new_zeros(p)
            self.quartic = x.new_zeros(())
        elif x.shape[1] != self.shift.shape[0]:
            raise ValueError(f"features of {x.shape[1]} values, earlier {self.shift.shape[0]}")
        u = x - self.shift
        squared = (u * u).sum(dim=1)
        self.count += len(u)
        self.sum += u.sum(dim=0)
        self.outer.addmm_(u.t(), u)
        self.cubic += (squared[:, None] * u).sum(dim=0)
        self.quartic += (squared * squared).sum()

    def mean(self) -> Tensor:
        assert self.shift is not None and self.sum is not None
        return self.shift + self.sum / self.count

    def covariance(self) -> Tensor:
        """Maximum-likelihood covariance ``S`` (divided by ``n``), float64."""
        assert self.sum is not None and self.outer is not None
        d = self.sum / self.count
        return self.outer / self.count - torch.outer(d, d)

    def centred_quartic(self) -> Tensor:
        """``sum_i ||x_i - m||^4``."""
        assert self.sum is not None and self.outer is not None
        assert self.cubic is not None and self.quartic is not None
        n, d = self.count, self.sum / self.count
        dd = d @ d
        return (self.quartic - 4 * (self.cubic @ d) + 4 * (d @ self.outer @ d)
                + 2 * dd * torch.diagonal(self.outer).sum() - 3 * n * dd * dd)

    def ledoit_wolf(self) -> tuple[Tensor, float]:
        """Shrunk covariance ``(p, p)`` float64 and the shrinkage, as
        ``sklearn.covariance.ledoit_wolf`` computes them."""
        if self.count < 2:
            raise DataError(f"a covariance needs at least 2 images, got {self.count}")
        covariance = self.covariance()
        p = covariance.shape[0]
        mu = float(torch.diagonal(covariance).sum()) / p
        squared_norm = float((covariance * covariance).sum())
        delta = (squared_norm - p * mu * mu) / p
        beta = (float(self.centred_quartic()) / self.count - squared_norm) / (p * self.count)
        beta = min(max(beta, 0.0), delta)
        shrinkage = 0.0 if beta <= 0.0 or delta <= 0.0 else beta / delta
        return shrunk(covariance, shrinkage), shrinkage


def shrunk(covariance: Tensor, shrinkage: float) -> Tensor:
    """``(1 - s) S + s * mean(diag S) * I``."""
    mu = float(torch.diagonal(covariance).sum()) / covariance.shape[0]
    out = (1.0 - shrinkage) * covariance
    out.diagonal().add_(shrinkage * mu)
    return out


def ledoit_wolf(features: Tensor) -> tuple[Tensor, float]:
    """Ledoit-Wolf covariance and shrinkage of ``features (n, p)`` (float64), in one pass."""
    moments = StreamingMoments()
    moments.update(features)
    return moments.ledoit_wolf()


def channel_statistics(maps: Tensor) -> Tensor:
    """``(B, C, H, W)`` -> ``(B, 2C)``: each channel's mean over positions, then its standard
    deviation (population), in float32."""
    maps = maps.float()
    mean = maps.mean(dim=(2, 3))
    spread = (maps - mean[:, :, None, None]).square().mean(dim=(2, 3)).sqrt()
    return torch.cat([mean, spread], dim=1)


@dataclass(frozen=True)
class PooledConfig:
    """``fit_on``: ``all`` known-class images or ``good`` only (``good_code``).
    ``shrinkage``: ``None`` for Ledoit-Wolf's, else a fixed value in [0, 1]. ``eps``: added to
    the covariance diagonal before inversion. ``layer``: ``None`` for the pooled embedding, else
    a feature map of the classifier whose per-channel mean and standard deviation are the
    features (``2 * channels`` values)."""

    fit_on: Literal["all", "good"] = "all"
    good_code: int = option(0, low=0)
    shrinkage: float | None = option(None, low=0, high=1, doc="null: Ledoit-Wolf's")
    eps: float = option(1e-6, low=0, doc="added to the covariance's diagonal")
    layer: str | None = option(None, doc="null: the pooled embedding; else a feature map "
                                         "whose channel statistics are the features")

    def __post_init__(self) -> None:
        check_values(self, "drift")
        if self.layer is not None and not self.layer:
            raise ConfigError("drift.layer='': a layer name or null")


@register("pooled")
class PooledGaussian(DriftDetector):
    """Mahalanobis distance of the pooled features to a Ledoit-Wolf Gaussian of training
    images. Buffers: ``mean (p,)``, ``inv_covariance (p, p)``, ``shrinkage ()``, ``count ()``."""

    config_type = PooledConfig
    symmetric_buffers = ("inv_covariance",)

    @classmethod
    def reads_trained_features(cls, options: Mapping[str, Any]) -> bool:
        return options.get("layer") is None  # no layer: the pooled embedding training learns

    def __init__(self, config: PooledConfig | None = None,
                 threshold: DriftThreshold | None = None, **options: object) -> None:
        if config is None:
            config = PooledConfig(**options)  # type: ignore[arg-type]
        elif options:
            raise ConfigError(f"pass either config or options, not both: {sorted(options)}")
        super().__init__(config, threshold)
        self.config: PooledConfig
        self.register_buffer("mean", torch.empty(0))
        self.register_buffer("inv_covariance", torch.empty(0))
        self.register_buffer("shrinkage", torch.zeros((), dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))
        self._moments = StreamingMoments()

    @property
    def layers(self) -> tuple[str, ...]:
        return () if self.config.layer is None else (self.config.layer,)

    def _pooled(self, outputs: ForwardOutputs) -> Tensor:
        if self.config.layer is not None:
            if self.config.layer not in outputs.maps:
                raise ConfigError(f"the pooled drift detector reads layer "
                                  f"{self.config.layer!r}, which the forward pass did not give "
                                  f"(it gave {sorted(outputs.maps)})")
            return channel_statistics(outputs.maps[self.config.layer].detach())
        if outputs.pooled is None:
            raise ConfigError("the pooled drift detector needs the pooled features of the "
                              "forward pass (ForwardOutputs.pooled)")
        return outputs.pooled.detach()

    def reset_accumulators(self) -> None:
        self._moments = StreamingMoments()

    def accumulate(self, outputs: ForwardOutputs, libs: list[str] | None) -> None:
        self._moments.update(self._pooled(outputs))

    def finish_fit(self) -> None:
        moments = self._moments
        if self.config.shrinkage is None:
            covariance, shrinkage = moments.ledoit_wolf()
        else:
            covariance, shrinkage = shrunk(moments.covariance(), self.config.shrinkage), \
                self.config.shrinkage
        covariance.diagonal().add_(self.config.eps)
        try:
            inverse = cholesky_inverse(covariance)
        except RuntimeError as err:  # torch.linalg.LinAlgError derives from RuntimeError
            raise DataError("pooled drift detector: the covariance of the pooled features is "
                            "singular; raise drift.eps or set drift.shrinkage") from err
        self.mean = moments.mean().to(torch.float32)
        self.inv_covariance = symmetric(inverse.to(torch.float32))
        self.shrinkage = torch.tensor(shrinkage, dtype=torch.float64)
        self.count = torch.tensor(moments.count, dtype=torch.int64)

    @property
    def fitted(self) -> bool:
        return self.mean.ndim == 1 and self.mean.numel() > 0

    def score_columns(self, outputs: ForwardOutputs) -> Tensor:
        pooled = self._pooled(outputs)
        if pooled.shape[1] != self.mean.shape[0]:
            raise ConfigError(f"pooled features of {pooled.shape[1]} values; the detector was "
                              f"fitted on {self.mean.shape[0]}")
        # one position: (B, p, 1, 1) against mean (p, 1) and inverse (1, p, p)
        distance = mahalanobis(pooled[:, :, None, None], self.mean[:, None],
                               self.inv_covariance[None])
        return distance.reshape(-1, 1)
