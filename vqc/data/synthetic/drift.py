"""Drift kinds and the foreign matter and damage that spoil a Drift image."""

from __future__ import annotations

import numpy as np

from vqc.data.synthetic.layout import STRIP_WIDTH, Frame
from vqc.data.synthetic.paint import bezier, blob, stroke

#: Kinds of Drift image (test only): foreign matter, damage, and imaging faults.
DRIFT_KINDS: tuple[str, ...] = ("foreign_object", "scratch", "blur", "overexposed",
                                "underexposed")


def foreign_object(canvas: np.ndarray, frame: Frame, rng: np.random.Generator) -> None:
    """A particle or a fibre lying on the strip."""
    hs = frame.height
    cx = frame.ox + rng.uniform(25, STRIP_WIDTH - 25)
    cy = frame.oy + rng.uniform(0.15, 0.85) * hs
    if rng.random() < 0.5:
        size = rng.uniform(12, 35)
        blob(canvas, cx, cy, size, size * rng.uniform(0.5, 1.0), rng.uniform(15, 45), rng=rng,
             irregular=0.45, dome=rng.uniform(0, 30))
        return
    angle = rng.uniform(0, np.pi)
    half = rng.uniform(60, 160)
    p0 = (cx - half * np.cos(angle), cy - half * np.sin(angle))
    p2 = (cx + half * np.cos(angle), cy + half * np.sin(angle))
    p1 = (cx + rng.uniform(-40, 40), cy + rng.uniform(-40, 40))
    level = rng.choice([rng.uniform(10, 40), rng.uniform(200, 240)])
    stroke(canvas, bezier(p0, p1, p2, 40), width=rng.uniform(2.5, 5), level=level, blur=1.0)


def scratch(canvas: np.ndarray, frame: Frame, rng: np.random.Generator) -> None:
    """A scratch or crack across the strip, with a branch or two."""
    hs = frame.height
    y_a = frame.oy + rng.uniform(0.1, 0.9) * hs
    y_b = y_a + rng.uniform(-0.3, 0.3) * hs
    xs = np.linspace(frame.ox - 30, frame.ox + STRIP_WIDTH + 30, 14)
    ys = np.linspace(y_a, y_b, xs.size) + np.cumsum(rng.normal(0, 3, xs.size))
    bright = rng.random() < 0.5
    level = rng.uniform(210, 245) if bright else rng.uniform(10, 30)
    points = list(zip(xs.tolist(), ys.tolist(), strict=True))
    stroke(canvas, points, width=rng.uniform(1.5, 3.5), level=level, blur=0.6)
    for _ in range(int(rng.integers(1, 3))):
        i = int(rng.integers(2, xs.size - 2))
        tip = (xs[i] + rng.uniform(-25, 25), ys[i] + rng.choice([-1, 1]) * rng.uniform(20, 60))
        stroke(canvas, [(xs[i], ys[i]), tip], width=1.5, level=level, blur=0.6)
