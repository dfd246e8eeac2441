"""Gaussian smoothing of anomaly maps, as anomalib's ``GaussianBlur2d`` does it, in plain torch.

Kernel size ``2 * int(4 * sigma + 0.5) + 1``, normalised, reflect padding (replicate where the
map is too small to reflect). The 2-D kernel is separable, so two 1-D convolutions do the work.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def kernel_size(sigma: float) -> int:
    return 2 * int(4.0 * sigma + 0.5) + 1


def gaussian_kernel1d(sigma: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    size = kernel_size(sigma)
    x = torch.arange(size, dtype=torch.float64) - size // 2
    kernel = torch.exp(-(x**2) / (2.0 * sigma**2))
    return (kernel / kernel.sum()).to(dtype)


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur ``(B, H, W)`` maps with a Gaussian of standard deviation ``sigma`` pixels."""
    if sigma <= 0:
        return maps
    kernel = gaussian_kernel1d(sigma, maps.dtype).to(maps.device)
    pad = len(kernel) // 2
    height, width = maps.shape[-2:]
    mode = "reflect" if pad < min(height, width) else "replicate"
    x = F.pad(maps.unsqueeze(1), (pad, pad, pad, pad), mode=mode)
    x = F.conv2d(x, kernel.view(1, 1, -1, 1))
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    return x.squeeze(1)


def resize_bilinear(maps: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``(B, h, w)`` -> ``(B, *size)``, bilinear without corner alignment (as anomalib)."""
    if tuple(maps.shape[-2:]) == tuple(int(s) for s in size):
        return maps
    resized = F.interpolate(
        maps.unsqueeze(1), size=tuple(int(s) for s in size), mode="bilinear", align_corners=False
    )
    return resized.squeeze(1)
