"""Illumination per inspection window and sensor noise."""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np


@dataclass(frozen=True)
class Lighting:
    """Illumination of one inspection window: gain, offset, a linear gradient, sensor noise."""

    gain: float
    offset: float
    gradient: float
    gradient_deg: float
    noise: float


WINDOW_LIGHTING: dict[int, Lighting] = {
    2003: Lighting(gain=1.0, offset=0.0, gradient=0.10, gradient_deg=35.0, noise=2.0),
    2005: Lighting(gain=0.86, offset=16.0, gradient=0.22, gradient_deg=215.0, noise=3.0),
}


def apply_lighting(canvas: np.ndarray, light: Lighting, rng: np.random.Generator,
                   drift_kind: str | None) -> None:
    """Apply the window's gain, offset and gradient in place, clipped to 0..255.

    Exposure faults (Drift) multiply the gain; the gradient direction varies a little.
    """
    height, width = canvas.shape
    angle = np.deg2rad(light.gradient_deg + rng.normal(0, 12))
    gain = light.gain * rng.normal(1.0, 0.04)
    offset = light.offset + rng.normal(0, 3)
    if drift_kind == "overexposed":
        gain, offset = gain * rng.uniform(1.9, 2.6), offset + rng.uniform(20, 50)
    elif drift_kind == "underexposed":
        gain, offset = gain * rng.uniform(0.22, 0.38), offset * 0.2
    slope = gain * light.gradient / np.sqrt(2)
    across = np.linspace(-slope, slope, width, dtype=np.float32) * np.cos(angle)
    down = np.linspace(-slope, slope, height, dtype=np.float32) * np.sin(angle)
    canvas *= across[None, :] + (down[:, None] + np.float32(gain))
    canvas += np.float32(offset + 0.5)  # + 0.5 then truncation by astype: rounding
    np.clip(canvas, 0, 255, out=canvas)


#: Standard normal quantiles of 256 equal-probability bins: Gaussian noise from random bytes.
_NORMAL_BINS = np.array([NormalDist().inv_cdf((i + 0.5) / 256) for i in range(256)])


def add_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``image`` plus Gaussian sensor noise of ``sigma`` grey levels, as uint8.

    Looking random bytes up in a quantile table is several times faster than drawing normals.
    """
    table = np.rint(_NORMAL_BINS * sigma).astype(np.int16)
    noise = table[rng.integers(0, 256, size=image.shape, dtype=np.uint8)]
    noise += image
    return np.clip(noise, 0, 255).astype(np.uint8)
