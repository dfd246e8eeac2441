"""Drawing primitives on a float canvas: soft blending, blobs, strokes and curves."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def blend(canvas: np.ndarray, y0: int, x0: int, alpha: np.ndarray, value: np.ndarray | float
          ) -> None:
    """Alpha-blend ``value`` into ``canvas`` at (y0, x0), clipped to the canvas."""
    h, w = alpha.shape
    ya, xa = max(y0, 0), max(x0, 0)
    yb, xb = min(y0 + h, canvas.shape[0]), min(x0 + w, canvas.shape[1])
    if yb <= ya or xb <= xa:
        return
    sub = (slice(ya - y0, yb - y0), slice(xa - x0, xb - x0))
    a = alpha[sub]
    v = value[sub] if isinstance(value, np.ndarray) else value
    region = canvas[ya:yb, xa:xb]
    region *= 1.0 - a
    region += a * v


def blob(canvas: np.ndarray, cx: float, cy: float, rx: float, ry: float, level: float,
         rng: np.random.Generator | None = None, irregular: float = 0.0, dome: float = 0.0
         ) -> None:
    """A soft-edged ellipse at canvas (cx, cy); ``irregular`` > 0 wobbles its outline."""
    reach = math.ceil(max(rx, ry) * (1 + irregular) + 2)
    x0, y0 = int(cx) - reach, int(cy) - reach
    span = np.arange(2 * reach + 1, dtype=np.float32)
    dx, dy = (span + (x0 - cx))[None, :], (span + (y0 - cy))[:, None]
    rho = np.sqrt((dx / rx) ** 2 + (dy / ry) ** 2)
    if irregular and rng is not None:
        theta = np.arctan2(dy, dx)
        wobble = sum(rng.uniform(-1, 1) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
                     for k in (2, 3, 5))
        rho = rho / (1.0 + irregular * wobble / 2.0)
    alpha = np.clip((1.0 - rho) * min(rx, ry) + 0.5, 0.0, 1.0)
    value = level + dome * (1.0 - np.clip(rho, 0.0, 1.0) ** 2)
    blend(canvas, y0, x0, alpha, value)


def stroke(canvas: np.ndarray, points: Sequence[tuple[float, float]], width: float,
           level: float | None = None, amount: float = 0.0, blur: float = 0.7) -> None:
    """A polyline in canvas coordinates, blended to ``level`` or added as ``amount``."""
    pts = np.asarray(points, dtype=np.float64)
    pad = int(width + 4 * blur + 3)
    x0, y0 = int(pts[:, 0].min()) - pad, int(pts[:, 1].min()) - pad
    x1, y1 = int(pts[:, 0].max()) + pad, int(pts[:, 1].max()) + pad
    layer = Image.new("L", (x1 - x0, y1 - y0), 0)
    ImageDraw.Draw(layer).line([(x - x0, y - y0) for x, y in pts], fill=255,
                               width=max(1, round(width)), joint="curve")
    if blur:
        layer = layer.filter(ImageFilter.GaussianBlur(blur))
    alpha = np.asarray(layer, dtype=np.float32) / 255.0
    if level is not None:
        blend(canvas, y0, x0, alpha, level)
        return
    ya, xa = max(y0, 0), max(x0, 0)
    yb, xb = min(y1, canvas.shape[0]), min(x1, canvas.shape[1])
    if yb > ya and xb > xa:
        canvas[ya:yb, xa:xb] += amount * alpha[ya - y0:yb - y0, xa - x0:xb - x0]


def bezier(p0: tuple[float, float], p1: tuple[float, float], p2: tuple[float, float],
           n: int = 24) -> list[tuple[float, float]]:
    t = np.linspace(0.0, 1.0, n)[:, None]
    pts = (1 - t) ** 2 * np.array(p0) + 2 * (1 - t) * t * np.array(p1) + t ** 2 * np.array(p2)
    return [(float(x), float(y)) for x, y in pts]
