"""An image-level detector of imaging faults: focus, exposure and contrast.

A camera out of focus, a lamp that dims or a shutter that sticks changes the whole image while
every part on it may be fine; features trained to tell defects apart are made to ignore such
changes, so the detectors on the backbone's features miss them. This one reads the classifier's
input itself: per image, the energy of its Laplacian and of its gradient at full and half
resolution (sharpness), its mean and spread (exposure, contrast) and three of its quantiles
(clipping), logs where a quantity is a scale. It is the pooled detector's Ledoit-Wolf Gaussian
on these nine values instead of the pooled features: Mahalanobis distance to the training
images, calibrated on validation like every detector.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from vqc.drift.base import ForwardOutputs
from vqc.drift.pooled import PooledGaussian
from vqc.drift.registry import register
from vqc.errors import ConfigError

#: The quantiles of the gray levels kept (dark clipping, median, bright clipping).
QUANTILES: tuple[float, ...] = (0.01, 0.5, 0.99)
#: Names of the statistics, in the order of :func:`image_statistics`'s columns.
STATISTICS: tuple[str, ...] = ("log_laplacian", "log_gradient", "log_laplacian_half",
                               "log_gradient_half", "mean", "log_std",
                               *(f"q{round(q * 100):02d}" for q in QUANTILES))
_TINY = 1e-8


def _sharpness(gray: Tensor) -> tuple[Tensor, Tensor]:
    """Log mean squared Laplacian and log mean squared gradient of ``gray`` ``(B, 1, H, W)``."""
    kernel = gray.new_tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    laplacian = F.conv2d(gray, kernel[None, None])
    dx = gray[..., :, 1:] - gray[..., :, :-1]
    dy = gray[..., 1:, :] - gray[..., :-1, :]
    gradient = dx.pow(2).mean(dim=(1, 2, 3)) + dy.pow(2).mean(dim=(1, 2, 3))
    return (torch.log(laplacian.pow(2).mean(dim=(1, 2, 3)) + _TINY),
            torch.log(gradient + _TINY))


def image_statistics(images: Tensor) -> Tensor:
    """The nine statistics (:data:`STATISTICS`) of each image ``(B, C, H, W)`` -> ``(B, 9)``,
    on its gray levels (the mean over channels)."""
    if images.ndim != 4 or images.shape[-2] < 6 or images.shape[-1] < 6:
        raise ConfigError(f"image statistics need images (B, C, H, W) of at least 6x6 pixels, "
                          f"got {tuple(images.shape)}")
    gray = images.detach().float().mean(dim=1, keepdim=True)
    full = _sharpness(gray)
    half = _sharpness(F.avg_pool2d(gray, 2))
    flat = gray.flatten(1)
    spread = torch.log(flat.std(dim=1) + _TINY)
    ordered = flat.sort(dim=1).values
    last = flat.shape[1] - 1
    quantiles = [ordered[:, round(q * last)] for q in QUANTILES]
    return torch.stack([*full, *half, flat.mean(dim=1), spread, *quantiles], dim=1)


@register("image_quality")
class ImageQuality(PooledGaussian):
    """Mahalanobis distance of :func:`image_statistics` to a Ledoit-Wolf Gaussian of the
    training images (the options and buffers of :class:`~vqc.drift.pooled.PooledGaussian`,
    but ``layer``: it reads the image)."""

    def __init__(self, config: Any = None, threshold: Any = None, **options: object) -> None:
        super().__init__(config, threshold, **options)
        if self.config.layer is not None:
            raise ConfigError(f"the image_quality drift detector reads the image, not a layer "
                              f"(layer={self.config.layer!r}): leave its layer null")

    @classmethod
    def reads_trained_features(cls, options: Any) -> bool:
        return False  # the image's own pixels: nothing training learns

    @property
    def layers(self) -> tuple[str, ...]:
        return ()

    def _pooled(self, outputs: ForwardOutputs) -> Tensor:
        if outputs.images is None:
            raise ConfigError("the image_quality drift detector needs the classifier's input "
                              "(ForwardOutputs.images)")
        return image_statistics(outputs.images)
