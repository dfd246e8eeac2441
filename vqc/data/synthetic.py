"""A synthetic stand-in for the challenge data: die photos of wire bonds, in the challenge layout.

``python -m vqc.data.synthetic --out DIR`` writes ``DIR/input_train/*.png``, ``DIR/Y_train.csv``,
``DIR/input_test/*.png`` and ``DIR/Y_test.csv`` exactly as the challenge ships them (8-bit
grayscale PNGs, CSVs with an unnamed index, ``filename``, ``window``, ``lib`` and ``Label`` as a
class name). The images are drawn, not photographed: they only imitate the real defects.

Each die image is drawn in the frame of the official preprocessing: the scene is painted on a
canvas the size of ``img.rotate(angle, expand=True)`` with the two bonds of interest inside the
official crop box, then turned back by ``-angle``. The official ``rotate(angle,
expand=True).crop(box)`` of a generated file therefore gives back the strip that was drawn, up to
sensor noise and nearest-neighbour resampling.

Every image has its own random generator seeded from (seed, split, index), so a set is the same
for a given seed whatever the number of worker processes.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import multiprocessing
import os
import re
import sys
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from vqc.data.classes import CHALLENGE_CLASS_NAMES, CHALLENGE_GOOD, CHALLENGE_OPEN_SET
from vqc.data.preprocess import CHALLENGE_ROTATE_CROP
from vqc.errors import ConfigError

#: Bump when the drawing changes, so ``ensure_generated`` replaces sets made by older code.
GENERATOR_VERSION = 1
MANIFEST_NAME = "synthetic.json"

#: Die image size (width, height) per lib; the official crop boxes fit these once rotated.
DIE_SIZES: dict[str, tuple[int, int]] = {
    "Die01": (540, 630),
    "Die02": (720, 840),
    "Die03": (720, 840),
    "Die04": (540, 630),
}
LIBS: tuple[str, ...] = tuple(DIE_SIZES)
WINDOWS: tuple[int, ...] = (2003, 2005)
STRIP_WIDTH = 160

GOOD = CHALLENGE_GOOD
DRIFT = CHALLENGE_OPEN_SET
BOUCLE_PLATE, LIFT_OFF_BLANC, LIFT_OFF_NOIR, MISSING, SHORT_CIRCUIT = CHALLENGE_CLASS_NAMES[1:6]
TRAINED_CLASSES: tuple[str, ...] = tuple(n for n in CHALLENGE_CLASS_NAMES if n != DRIFT)

#: Images per class in the real training set; the default class mix follows it.
REAL_TRAIN_COUNTS: dict[str, int] = {
    GOOD: 1235,
    BOUCLE_PLATE: 71,
    LIFT_OFF_BLANC: 270,
    LIFT_OFF_NOIR: 104,
    MISSING: 6472,
    SHORT_CIRCUIT: 126,
}

#: Relative weight of Die01..Die04 per class: rare defects lean towards particular dies.
DIE_PREFERENCE: dict[str, tuple[float, ...]] = {
    GOOD: (1.0, 1.0, 1.0, 1.0),
    BOUCLE_PLATE: (1.0, 2.5, 1.0, 0.6),
    LIFT_OFF_BLANC: (0.7, 1.0, 1.0, 2.0),
    LIFT_OFF_NOIR: (1.0, 0.6, 2.5, 1.0),
    MISSING: (1.0, 1.0, 1.0, 1.0),
    SHORT_CIRCUIT: (2.2, 1.0, 0.6, 1.0),
}

#: Kinds of Drift image (test only): foreign matter, damage, and imaging faults.
DRIFT_KINDS: tuple[str, ...] = ("foreign_object", "scratch", "blur", "overexposed",
                                "underexposed")

DEFAULT_CLASS_FLOOR = 25
DEFAULT_DRIFT_FRACTION = 0.07

_SPLIT_CODES = {"train": 0, "test": 1}
_FILENAME = re.compile(r"^syn_(train|test)_\d+\.png$")

# Layout of the strip, in strip coordinates: x in [0, 160), y in [0, strip height).
_WIRE_X = (50.0, 110.0)  # the two bonds of interest; neighbours repeat every _PITCH
_PITCH = 60.0
_MOS_X, _MOS_PERIOD, _MOS_HALF_WIDTH = 140.0, 120.0, 16.0  # MOS blocks beside the wires
_TOP_FOOT, _BOTTOM_FOOT = 0.11, 0.89  # bond feet, as fractions of the strip height


@dataclass(frozen=True)
class DieStyle:
    """Grey levels of one die type's surfaces (before lighting)."""

    background: float
    pad: float
    lead: float
    mos: float
    pad_half_width: float


_DIE_STYLES: dict[str, DieStyle] = {
    "Die01": DieStyle(background=58, pad=168, lead=150, mos=96, pad_half_width=17),
    "Die02": DieStyle(background=70, pad=160, lead=140, mos=106, pad_half_width=19),
    "Die03": DieStyle(background=52, pad=178, lead=158, mos=90, pad_half_width=16),
    "Die04": DieStyle(background=64, pad=164, lead=146, mos=100, pad_half_width=18),
}


@dataclass(frozen=True)
class Lighting:
    """Illumination of one inspection window: gain, offset, a linear gradient, sensor noise."""

    gain: float
    offset: float
    gradient: float
    gradient_deg: float
    noise: float


_WINDOW_LIGHTING: dict[int, Lighting] = {
    2003: Lighting(gain=1.0, offset=0.0, gradient=0.10, gradient_deg=35.0, noise=2.0),
    2005: Lighting(gain=0.86, offset=16.0, gradient=0.22, gradient_deg=215.0, noise=3.0),
}


@dataclass(frozen=True)
class Frame:
    """Where the strip's origin lies on the rotated canvas (crop box corner plus jitter)."""

    ox: int
    oy: int
    height: int


@dataclass(frozen=True)
class Wire:
    """One bond wire seen from above, from its top foot (t=0) to its bottom foot (t=1)."""

    x_top: float
    x_bottom: float
    y_top: float
    y_bottom: float
    width: float = 6.5
    level: float = 118.0
    highlight: float = 100.0  # brightness of the arch's specular line; 0 for a flat loop
    crest: float = 0.35  # where along the wire the arch is highest
    bow: float = 0.0  # sideways sag at mid-length, px
    start: float = 0.0  # drawn part of the wire, as t
    end: float = 1.0
    dangle_top: float = 0.0  # sideways offset of a detached end, px
    dangle_bottom: float = 0.0
    flat: bool = False


@dataclass(frozen=True)
class Rendered:
    """A die image and the strip the official rotate+crop should give back from it.

    ``strip`` is the drawn content of the crop box, shape (box height, 160); the image adds
    the camera's slight blur and noise, and the official rotation resamples it (nearest).
    """

    image: Image.Image
    strip: np.ndarray
    label: str
    lib: str
    window: int
    drift_kind: str | None = None


@dataclass(frozen=True)
class SyntheticSummary:
    """Where a synthetic set lies and what it holds."""

    out_dir: Path
    train_csv: Path
    test_csv: Path
    train_dir: Path
    test_dir: Path
    train_counts: dict[str, int]
    test_counts: dict[str, int]
    drift_kinds: dict[str, int]
    params: dict[str, Any]
    generated: bool  # False when ensure_generated found the set complete and kept it
    seconds: float = 0.0

    @property
    def n_train(self) -> int:
        return sum(self.train_counts.values())

    @property
    def n_test(self) -> int:
        return sum(self.test_counts.values())


@dataclass(frozen=True)
class _Job:
    """One image to draw and save (picklable, for worker processes)."""

    path: str
    seed: int
    split: str
    index: int
    label: str
    lib: str
    window: int
    drift_kind: str | None = None


# --------------------------------------------------------------------------------------------
# Class counts
# --------------------------------------------------------------------------------------------


def class_counts(total: int, floor: int = 0,
                 weights: Mapping[str, float] | None = None) -> dict[str, int]:
    """Split ``total`` images over the classes in proportion to ``weights``, at least ``floor``.

    Classes whose share falls under the floor get the floor; the rest share what remains in
    proportion (largest remainders), so the counts add up to ``total`` exactly.
    """
    weights = dict(weights or REAL_TRAIN_COUNTS)
    if total < floor * len(weights):
        raise ConfigError(f"{total} images cannot give {len(weights)} classes {floor} each")
    floored: set[str] = set()
    while True:
        free = [c for c in weights if c not in floored]
        remaining = total - floor * len(floored)
        weight_sum = sum(weights[c] for c in free)
        quotas = {c: remaining * weights[c] / weight_sum for c in free} if weight_sum else {}
        low = {c for c, q in quotas.items() if q < floor}
        if not low:
            break
        floored |= low
    counts = {c: floor for c in floored}
    counts.update({c: math.floor(q) for c, q in quotas.items()})
    short = total - sum(counts.values())
    by_remainder = sorted(quotas, key=lambda c: (-(quotas[c] - math.floor(quotas[c])),
                                                 list(weights).index(c)))
    for name in by_remainder[:short]:
        counts[name] += 1
    return {c: counts[c] for c in weights}


def split_counts(n_train: int, n_test: int, class_floor: int,
                 drift_fraction: float) -> tuple[dict[str, int], dict[str, int]]:
    """Train and test class counts: the real mix, floors, and Drift in test only."""
    train = class_counts(n_train, class_floor)
    n_drift = 0
    if n_test > 0 and drift_fraction > 0:
        n_drift = min(n_test, max(1, round(n_test * drift_fraction)))
    rest = n_test - n_drift
    scaled_floor = math.ceil(class_floor * n_test / n_train) if n_train else 0
    test_floor = min(scaled_floor, rest // len(TRAINED_CLASSES))
    test = class_counts(rest, test_floor)
    test[DRIFT] = n_drift
    return train, test


# --------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one image: depends on (seed, split, index) only."""
    return np.random.default_rng([seed, _SPLIT_CODES[split], 1, index])


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _low_frequency(rng: np.random.Generator, width: int, height: int, cell: int) -> np.ndarray:
    """Smooth random variation (about unit scale), by upsampling coarse noise.

    Upsampled as 8-bit (ample for a few grey levels of shading; a float image costs 4x more).
    """
    coarse = rng.standard_normal((height // cell + 2, width // cell + 2))
    coarse8 = np.clip(np.rint(128 + 32 * coarse), 0, 255).astype(np.uint8)
    image = Image.fromarray(coarse8, mode="L").resize((width, height), Image.Resampling.BILINEAR)
    smooth = np.asarray(image, dtype=np.float32)
    smooth -= 128.0
    smooth *= 1.0 / 32.0
    return smooth


def _cells(rng: np.random.Generator, width: int, height: int, size: tuple[int, int]) -> np.ndarray:
    """Blocky pattern of circuit cells, one random level per cell, aligned to the bottom row."""
    cell_h, cell_w = size
    levels = rng.integers(-14, 15, size=(height // cell_h + 1, width // cell_w + 1))
    blocks = np.repeat(np.repeat(levels, cell_h, axis=0), cell_w, axis=1)
    return blocks[blocks.shape[0] - height:, :width].astype(np.float32)


def _periodic_offset(x: np.ndarray, centre: float, period: float) -> np.ndarray:
    """Signed distance from ``x`` to the nearest of ``centre + k * period``."""
    return (x - centre + period / 2) % period - period / 2


def _background(width: int, height: int, frame: Frame, style: DieStyle, lib: str,
                rng: np.random.Generator) -> np.ndarray:
    """Die surface, seal ring, bond pads, MOS blocks, lead fingers and package, as float32."""
    hs = float(frame.height)
    ys = np.arange(height, dtype=np.float32) - frame.oy
    xs = np.arange(width, dtype=np.float32) - frame.ox
    bg = style.background
    # One level per row: die interior, seal ring, pad row, open gap, lead row, package.
    row_level = np.select(
        [ys < 0.030 * hs, ys < 0.038 * hs, ys < 0.046 * hs, ys < 0.19 * hs, ys < 0.80 * hs,
         ys < 0.98 * hs],
        [bg + 20, bg - 18, bg + 35, bg + 10, bg - 6, bg - 10],
        default=bg - 16,
    ).astype(np.float32)
    canvas = _low_frequency(rng, width, height, 48)
    canvas *= 5.0
    canvas += row_level[:, None]

    # The die's circuit layout is the same on every image of a die type.
    layout_rng = np.random.default_rng([LIBS.index(lib), 7])
    n_interior = int(np.count_nonzero(ys < 0.030 * hs))  # the top rows
    canvas[:n_interior] += _cells(layout_rng, width, n_interior, (22, 34))

    pad_x = np.abs(_periodic_offset(xs, _WIRE_X[0], _PITCH)) < style.pad_half_width
    pad_y = (ys > 0.055 * hs) & (ys < 0.175 * hs)
    canvas[np.ix_(pad_y, pad_x)] = style.pad

    mos_x = np.abs(_periodic_offset(xs, _MOS_X, _MOS_PERIOD)) < _MOS_HALF_WIDTH
    mos_y = (ys > 0.36 * hs) & (ys < 0.64 * hs)
    fingers = 6.0 * np.sign(np.sin(xs * (2 * np.pi / 5.0)))  # transistor fingers
    canvas[np.ix_(mos_y, mos_x)] = (style.mos + fingers[mos_x])[None, :]

    lead_x = np.abs(_periodic_offset(xs, _WIRE_X[0], _PITCH)) < 15
    lead_y = (ys > 0.81 * hs) & (ys < 0.975 * hs)
    brushed = 4.0 * rng.standard_normal(int(lead_x.sum())).astype(np.float32)
    canvas[np.ix_(lead_y, lead_x)] = (style.lead + brushed)[None, :]
    return canvas


def _blend(canvas: np.ndarray, y0: int, x0: int, alpha: np.ndarray, value: np.ndarray | float
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


def _blob(canvas: np.ndarray, cx: float, cy: float, rx: float, ry: float, level: float,
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
    _blend(canvas, y0, x0, alpha, value)


def _stroke(canvas: np.ndarray, points: Sequence[tuple[float, float]], width: float,
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
        _blend(canvas, y0, x0, alpha, level)
        return
    ya, xa = max(y0, 0), max(x0, 0)
    yb, xb = min(y1, canvas.shape[0]), min(x1, canvas.shape[1])
    if yb > ya and xb > xa:
        canvas[ya:yb, xa:xb] += amount * alpha[ya - y0:yb - y0, xa - x0:xb - x0]


def _bezier(p0: tuple[float, float], p1: tuple[float, float], p2: tuple[float, float],
            n: int = 24) -> list[tuple[float, float]]:
    t = np.linspace(0.0, 1.0, n)[:, None]
    pts = (1 - t) ** 2 * np.array(p0) + 2 * (1 - t) * t * np.array(p1) + t ** 2 * np.array(p2)
    return [(float(x), float(y)) for x, y in pts]


def _wire_centre(wire: Wire, t: np.ndarray) -> np.ndarray:
    """Sideways position of the wire's axis along ``t`` (strip x)."""
    x = wire.x_top + (wire.x_bottom - wire.x_top) * t + wire.bow * np.sin(np.pi * t)
    if wire.dangle_top:
        x = x + wire.dangle_top * np.clip(1 - (t - wire.start) / 0.2, 0, 1) ** 2
    if wire.dangle_bottom:
        x = x + wire.dangle_bottom * np.clip(1 - (wire.end - t) / 0.2, 0, 1) ** 2
    return x


def _draw_wire(canvas: np.ndarray, frame: Frame, wire: Wire) -> None:
    """Shade a wire as a cylinder; an arched one carries a specular line, brightest at its crest."""
    length = wire.y_bottom - wire.y_top
    rows = np.arange(math.ceil(wire.y_top + wire.start * length),
                     math.floor(wire.y_top + wire.end * length) + 1)
    if rows.size == 0:
        return
    t = ((rows - wire.y_top) / length).astype(np.float32)
    centre = _wire_centre(wire, t)
    radius = wire.width / 2
    shadow = 4.0 if wire.flat else 0.0
    x0 = math.floor(centre.min() - radius - shadow - 2)
    x1 = math.ceil(centre.max() + radius + shadow + 2)
    cols = np.arange(x0, x1 + 1, dtype=np.float32)
    d = cols[None, :] - centre[:, None]
    y0, xc0 = int(rows[0]) + frame.oy, x0 + frame.ox
    if wire.flat:  # lying close to the surface, it casts a soft shadow
        shade = np.clip(1 - np.abs(d - radius - 1.5) / 3.0, 0, 1) * 0.35
        _blend(canvas, y0, xc0, shade.astype(np.float32), wire.level * 0.3)
    across = np.clip(np.abs(d) / radius, 0, 1)
    alpha = np.clip(radius + 0.5 - np.abs(d), 0, 1)
    body = wire.level * (0.72 + 0.28 * np.sqrt(1 - across ** 2))
    if not wire.flat:
        descent = 1 - 0.3 * _smoothstep(0.7, 1.0, t)  # sloping down to the bottom bond: dimmer
        arch = 0.15 + 0.85 * np.exp(-(((t - wire.crest) / 0.22) ** 2))
        arch = arch * _smoothstep(0.0, 0.07, t)  # the neck above the ball rises steeply
        body = body * descent[:, None]
        line = np.exp(-(((d - 0.2 * radius) / (0.35 * radius)) ** 2))
        body = body + wire.highlight * arch[:, None] * line
    _blend(canvas, y0, xc0, alpha.astype(np.float32), body.astype(np.float32))


def _base_wire(rng: np.random.Generator, x: float, hs: float, level_shift: float) -> Wire:
    """A good wire at strip column ``x`` with per-image variation."""
    y_top = _TOP_FOOT * hs + rng.uniform(-4, 4)
    y_bottom = _BOTTOM_FOOT * hs + rng.uniform(-4, 4)
    return Wire(
        x_top=x + rng.uniform(-2.5, 2.5),
        x_bottom=x + rng.uniform(-2.5, 2.5),
        y_top=y_top,
        y_bottom=y_bottom,
        width=rng.uniform(5.5, 7.5),
        level=118.0 + level_shift + rng.normal(0, 4),
        highlight=100.0 * rng.uniform(0.75, 1.2),
        crest=rng.uniform(0.25, 0.45),
        bow=rng.normal(0, 1.2),
    )


def _flat(wire: Wire, rng: np.random.Generator) -> Wire:
    return replace(wire, flat=True, highlight=0.0, width=wire.width * rng.uniform(1.3, 1.5),
                   level=rng.uniform(98, 118), bow=rng.choice([-1, 1]) * rng.uniform(2, 6))


def _draw_feet(canvas: np.ndarray, frame: Frame, wire: Wire, style: DieStyle, top: bool = True,
               bottom: bool = True) -> None:
    """Ball bond on the pad (top) and wedge bond on the lead (bottom)."""
    if top:
        cx, cy = wire.x_top + frame.ox, wire.y_top + frame.oy
        _blob(canvas, cx, cy, 11.0, 10.0, style.pad - 60)
        _blob(canvas, cx, cy, 8.5, 7.5, style.pad + 20, dome=18)
    if bottom:
        cx, cy = wire.x_bottom + frame.ox, wire.y_bottom + frame.oy
        _blob(canvas, cx, cy, 7.0, 12.0, style.lead + 28, dome=12)


def _lift_off(canvas: np.ndarray, frame: Frame, wire: Wire, style: DieStyle,
              rng: np.random.Generator, white: bool) -> None:
    """A detached wire whose foot is covered by a white (or dark) blob."""
    at_top = rng.random() < 0.65
    length = wire.y_bottom - wire.y_top
    gap = rng.uniform(14, 30) / length
    dangle = rng.choice([-1, 1]) * rng.uniform(3, 8)
    if at_top:
        wire = replace(wire, start=gap, dangle_top=dangle)
        cx, cy = wire.x_top, wire.y_top
    else:
        wire = replace(wire, end=1 - gap, dangle_bottom=dangle)
        cx, cy = wire.x_bottom, wire.y_bottom
    _draw_wire(canvas, frame, wire)
    _draw_feet(canvas, frame, wire, style, top=not at_top, bottom=at_top)
    level = rng.uniform(232, 250) if white else rng.uniform(16, 32)
    _blob(canvas, cx + frame.ox + rng.uniform(-2, 2), cy + frame.oy + rng.uniform(-2, 2),
          rng.uniform(10, 15), rng.uniform(8, 12), level, rng=rng, irregular=0.25,
          dome=6 if white else -4)


def _missing(canvas: np.ndarray, frame: Frame, wire: Wire, style: DieStyle,
             rng: np.random.Generator) -> None:
    """No wire; sometimes a stub over the ball or the wedge's remains."""
    remains = rng.random()
    if remains < 0.5:
        stub = rng.uniform(8, 30) / (wire.y_bottom - wire.y_top)
        stub_wire = replace(wire, end=stub, dangle_bottom=rng.uniform(-3, 3))
        _draw_wire(canvas, frame, stub_wire)
        _draw_feet(canvas, frame, wire, style, top=True, bottom=False)
    elif remains < 0.7:
        _draw_feet(canvas, frame, wire, style, top=False, bottom=True)


def _short_circuit(canvas: np.ndarray, frame: Frame, wire: Wire, side: int,
                   rng: np.random.Generator) -> None:
    """A thin, faint strand from the wire to the MOS block beside it (``side`` -1 or +1)."""
    hs = frame.height
    t0 = rng.uniform(0.25, 0.5)
    y_start = wire.y_top + t0 * (wire.y_bottom - wire.y_top)
    x_start = float(_wire_centre(wire, np.array([t0]))[0]) + side * wire.width / 2
    block_edge = (_MOS_X - _MOS_PERIOD if side < 0 else _MOS_X) - side * _MOS_HALF_WIDTH
    x_end = block_edge + side * rng.uniform(0, 6)
    y_end = rng.uniform(0.40, 0.60) * hs
    bend = (x_start + side * rng.uniform(2, 10), (y_start + y_end) / 2 + rng.uniform(-20, 20))
    points = _bezier((x_start, y_start), bend, (x_end, y_end))
    shifted = [(x + frame.ox, y + frame.oy) for x, y in points]
    _stroke(canvas, shifted, width=rng.uniform(1.0, 1.8), amount=rng.uniform(20, 34), blur=0.6)


@functools.lru_cache(maxsize=len(DIE_SIZES))
def _canvas_size(lib: str) -> tuple[int, int]:
    return CHALLENGE_ROTATE_CROP[lib].rotated_size(*DIE_SIZES[lib])


@functools.lru_cache(maxsize=len(DIE_SIZES))
def _visible(lib: str) -> np.ndarray:
    """Canvas pixels that end up in the die image: the official rotation of a blank die."""
    blank = Image.new("L", DIE_SIZES[lib], 255)
    return np.asarray(blank.rotate(CHALLENGE_ROTATE_CROP[lib].angle, expand=True)) > 0


def _wire_visible(visible: np.ndarray, frame: Frame, wire: Wire) -> bool:
    """Whether any part of the wire or its feet lands in the die image (others are skipped)."""
    ys = np.linspace(wire.y_top - 14, wire.y_bottom + 14, 24) + frame.oy
    xs = wire.x_top + (wire.x_bottom - wire.x_top) * np.linspace(0, 1, 24) + frame.ox
    rows = np.clip(ys.astype(int), 0, visible.shape[0] - 1)
    hits = [visible[rows, np.clip((xs + dx).astype(int), 0, visible.shape[1] - 1)]
            for dx in (-14, 0, 14)]
    return bool(np.any(hits))


def _draw_neighbours(canvas: np.ndarray, frame: Frame, style: DieStyle, visible: np.ndarray,
                     rng: np.random.Generator) -> list[Wire]:
    """Good bonds across the whole canvas; returns the strip's two, still to be drawn."""
    hs = float(frame.height)
    width = canvas.shape[1]
    k_first = math.floor((-frame.ox - _WIRE_X[0]) / _PITCH) - 1
    k_last = math.ceil((width - frame.ox - _WIRE_X[0]) / _PITCH) + 1
    level_shift = rng.normal(0, 8)
    for k in range(k_first, k_last + 1):
        if k in (0, 1):
            continue
        wire = _base_wire(rng, _WIRE_X[0] + k * _PITCH, hs, level_shift)
        if _wire_visible(visible, frame, wire):
            _draw_wire(canvas, frame, wire)
            _draw_feet(canvas, frame, wire, style)
    return [_base_wire(rng, x, hs, level_shift) for x in _WIRE_X]


def _draw_pair(canvas: np.ndarray, frame: Frame, wires: list[Wire], label: str,
               style: DieStyle, rng: np.random.Generator) -> None:
    """The strip's two bonds, one (or both) of them showing the defect ``label``."""
    defective = {int(rng.integers(2))}
    if label in (MISSING, BOUCLE_PLATE) and rng.random() < 0.15:
        defective = {0, 1}
    for i, wire in enumerate(wires):
        if i not in defective or label in (GOOD, SHORT_CIRCUIT):
            _draw_wire(canvas, frame, wire)
            _draw_feet(canvas, frame, wire, style)
        elif label == MISSING:
            _missing(canvas, frame, wire, style, rng)
        elif label in (LIFT_OFF_BLANC, LIFT_OFF_NOIR):
            _lift_off(canvas, frame, wire, style, rng, white=label == LIFT_OFF_BLANC)
        elif label == BOUCLE_PLATE:
            flat = _flat(wire, rng)
            _draw_wire(canvas, frame, flat)
            _draw_feet(canvas, frame, flat, style)
    if label == SHORT_CIRCUIT:
        i = next(iter(defective))
        _short_circuit(canvas, frame, wires[i], side=-1 if i == 0 else 1, rng=rng)


def _foreign_object(canvas: np.ndarray, frame: Frame, rng: np.random.Generator) -> None:
    """A particle or a fibre lying on the strip."""
    hs = frame.height
    cx = frame.ox + rng.uniform(25, STRIP_WIDTH - 25)
    cy = frame.oy + rng.uniform(0.15, 0.85) * hs
    if rng.random() < 0.5:
        size = rng.uniform(12, 35)
        _blob(canvas, cx, cy, size, size * rng.uniform(0.5, 1.0), rng.uniform(15, 45), rng=rng,
              irregular=0.45, dome=rng.uniform(0, 30))
        return
    angle = rng.uniform(0, np.pi)
    half = rng.uniform(60, 160)
    p0 = (cx - half * np.cos(angle), cy - half * np.sin(angle))
    p2 = (cx + half * np.cos(angle), cy + half * np.sin(angle))
    p1 = (cx + rng.uniform(-40, 40), cy + rng.uniform(-40, 40))
    level = rng.choice([rng.uniform(10, 40), rng.uniform(200, 240)])
    _stroke(canvas, _bezier(p0, p1, p2, 40), width=rng.uniform(2.5, 5), level=level, blur=1.0)


def _scratch(canvas: np.ndarray, frame: Frame, rng: np.random.Generator) -> None:
    """A scratch or crack across the strip, with a branch or two."""
    hs = frame.height
    y_a = frame.oy + rng.uniform(0.1, 0.9) * hs
    y_b = y_a + rng.uniform(-0.3, 0.3) * hs
    xs = np.linspace(frame.ox - 30, frame.ox + STRIP_WIDTH + 30, 14)
    ys = np.linspace(y_a, y_b, xs.size) + np.cumsum(rng.normal(0, 3, xs.size))
    bright = rng.random() < 0.5
    level = rng.uniform(210, 245) if bright else rng.uniform(10, 30)
    points = list(zip(xs.tolist(), ys.tolist(), strict=True))
    _stroke(canvas, points, width=rng.uniform(1.5, 3.5), level=level, blur=0.6)
    for _ in range(int(rng.integers(1, 3))):
        i = int(rng.integers(2, xs.size - 2))
        tip = (xs[i] + rng.uniform(-25, 25), ys[i] + rng.choice([-1, 1]) * rng.uniform(20, 60))
        _stroke(canvas, [(xs[i], ys[i]), tip], width=1.5, level=level, blur=0.6)


def _light(canvas: np.ndarray, light: Lighting, rng: np.random.Generator,
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


def _paint_scene(label: str, lib: str, frame: Frame, drift_kind: str | None,
                 layout_rng: np.random.Generator, defect_rng: np.random.Generator) -> np.ndarray:
    """The die, its bonds and any foreign matter on the rotated canvas, before lighting."""
    style = _DIE_STYLES[lib]
    canvas = _background(*_canvas_size(lib), frame, style, lib, layout_rng)
    wires = _draw_neighbours(canvas, frame, style, _visible(lib), layout_rng)
    scene = label
    if label == DRIFT:
        scene = GOOD if defect_rng.random() < 0.4 else MISSING
    _draw_pair(canvas, frame, wires, scene, style, defect_rng)
    if drift_kind == "foreign_object":
        _foreign_object(canvas, frame, defect_rng)
    elif drift_kind == "scratch":
        _scratch(canvas, frame, defect_rng)
    return canvas


def render_image(label: str, lib: str, window: int, rng: np.random.Generator,
                 drift_kind: str | None = None) -> Rendered:
    """Draw one die image of class ``label`` (a name), die ``lib`` and inspection ``window``.

    For ``label == "Drift"``, ``drift_kind`` (one of ``DRIFT_KINDS``, random when None) spoils
    a good or missing-wire picture. Generators in the same state give images that differ only
    by what ``label`` (and ``drift_kind``) draw.
    """
    if lib not in DIE_SIZES:
        raise ConfigError(f"unknown lib {lib!r}; expected one of {list(DIE_SIZES)}")
    if window not in _WINDOW_LIGHTING:
        raise ConfigError(f"unknown window {window!r}; expected one of {list(WINDOWS)}")
    if label not in TRAINED_CLASSES and label != DRIFT:
        raise ConfigError(f"unknown label {label!r}; expected one of {list(CHALLENGE_CLASS_NAMES)}")
    # Separate streams, so that images of two classes drawn from the same ``rng`` differ only
    # by the defect: same die, placement, neighbours, lighting and noise.
    layout_rng, defect_rng, light_rng, noise_rng = rng.spawn(4)
    if label == DRIFT and drift_kind is None:
        drift_kind = str(defect_rng.choice(DRIFT_KINDS))
    if drift_kind is not None and (label != DRIFT or drift_kind not in DRIFT_KINDS):
        raise ConfigError(f"drift_kind={drift_kind!r} needs label {DRIFT!r} and one of "
                          f"{DRIFT_KINDS}")
    rotate_crop = CHALLENGE_ROTATE_CROP[lib]
    width, height = DIE_SIZES[lib]
    left, upper, right, lower = rotate_crop.box
    jitter = layout_rng.integers(-4, 5, size=2)
    frame = Frame(ox=left + int(jitter[0]), oy=upper + int(jitter[1]), height=lower - upper)

    canvas = _paint_scene(label, lib, frame, drift_kind, layout_rng, defect_rng)
    light = _WINDOW_LIGHTING[window]
    _light(canvas, light, light_rng, drift_kind)
    scene8 = canvas.astype(np.uint8)
    scene_image = Image.fromarray(scene8, mode="L")
    if drift_kind == "blur":  # out of focus
        scene_image = scene_image.filter(ImageFilter.GaussianBlur(defect_rng.uniform(3.0, 6.0)))
        scene8 = np.asarray(scene_image)
    strip = scene8[upper:lower, left:right].copy()
    image = _to_die_frame(scene_image, rotate_crop.angle, width, height)
    # Optics and sensor, in the camera's frame: a slight blur, then noise.
    image = image.filter(ImageFilter.BoxBlur(0.6))
    final = Image.fromarray(_add_noise(np.asarray(image), light.noise, noise_rng), mode="L")
    return Rendered(final, strip, label, lib, window, drift_kind)


#: Standard normal quantiles of 256 equal-probability bins: Gaussian noise from random bytes.
_NORMAL_BINS = np.array([NormalDist().inv_cdf((i + 0.5) / 256) for i in range(256)])


def _add_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``image`` plus Gaussian sensor noise of ``sigma`` grey levels, as uint8.

    Looking random bytes up in a quantile table is several times faster than drawing normals.
    """
    table = np.rint(_NORMAL_BINS * sigma).astype(np.int16)
    noise = table[rng.integers(0, 256, size=image.shape, dtype=np.uint8)]
    noise += image
    return np.clip(noise, 0, 255).astype(np.uint8)


def _to_die_frame(scene: Image.Image, angle: float, width: int, height: int) -> Image.Image:
    """Turn the canvas back by ``-angle`` and cut the die image from its centre.

    The inverse of PIL's ``rotate(angle, expand=True)``: both turn about the centre.
    """
    fill = int(np.median(np.asarray(scene)[::16, ::16]))
    turned = scene.rotate(-angle, resample=Image.Resampling.NEAREST, fillcolor=fill)
    x0 = (scene.width - width) // 2
    y0 = (scene.height - height) // 2
    return turned.crop((x0, y0, x0 + width, y0 + height))


# --------------------------------------------------------------------------------------------
# Writing a set
# --------------------------------------------------------------------------------------------


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ConfigError(f"synthetic: {name}={value!r} must be an integer")
    if value < minimum:
        raise ConfigError(f"synthetic: {name}={value} must be >= {minimum}")
    return int(value)


def _params(n_train: int, n_test: int, seed: int, class_floor: int,
            drift_fraction: float) -> dict[str, Any]:
    """Validated parameters that decide the content of a set (what the manifest records)."""
    n_train = _check_int("n_train", n_train, 1)
    n_test = _check_int("n_test", n_test, 0)
    seed = _check_int("seed", seed, 0)
    class_floor = _check_int("class_floor", class_floor, 0)
    if not isinstance(drift_fraction, int | float) or not 0 <= drift_fraction < 1:
        raise ConfigError(f"synthetic: drift_fraction={drift_fraction!r} must be in [0, 1)")
    needed = class_floor * len(TRAINED_CLASSES)
    if n_train < needed:
        raise ConfigError(
            f"synthetic: n_train={n_train} is too small for class_floor={class_floor}: "
            f"{len(TRAINED_CLASSES)} classes need at least {needed} images; "
            "raise n_train or lower class_floor"
        )
    return {"n_train": n_train, "n_test": n_test, "seed": seed, "class_floor": class_floor,
            "drift_fraction": float(drift_fraction)}


def _default_workers(workers: int | None) -> int:
    if workers is None:
        return max(1, min(2, os.cpu_count() or 1))
    return _check_int("workers", workers, 1)


def _plan(out_dir: Path, params: Mapping[str, Any]) -> dict[str, list[_Job]]:
    """Every image of both splits: file, class, die, window (and drift kind), in order."""
    train, test = split_counts(params["n_train"], params["n_test"], params["class_floor"],
                               params["drift_fraction"])
    seed = params["seed"]
    digits = max(5, len(str(max(params["n_train"], params["n_test"]))))
    plan: dict[str, list[_Job]] = {}
    for split, counts in (("train", train), ("test", test)):
        rng = np.random.default_rng([seed, _SPLIT_CODES[split], 0])
        labels = [name for name, n in counts.items() for _ in range(n)]
        labels = [labels[i] for i in rng.permutation(len(labels))]
        folder = out_dir / f"input_{split}"
        jobs = []
        for index, label in enumerate(labels):
            preference = np.asarray(DIE_PREFERENCE.get(label, (1.0,) * len(LIBS)))
            lib = LIBS[int(rng.choice(len(LIBS), p=preference / preference.sum()))]
            window = WINDOWS[int(rng.integers(len(WINDOWS)))]
            kind = str(rng.choice(DRIFT_KINDS)) if label == DRIFT else None
            name = f"syn_{split}_{index:0{digits}d}.png"
            jobs.append(_Job(str(folder / name), seed, split, index, label, lib, window, kind))
        plan[split] = jobs
    return plan


def _write_image(job: _Job) -> str:
    rendered = render_image(job.label, job.lib, job.window,
                            image_rng(job.seed, job.split, job.index), job.drift_kind)
    rendered.image.save(job.path, format="PNG", compress_level=1, compress_type=zlib.Z_RLE)
    return job.path


def _write_images(jobs: list[_Job], workers: int) -> None:
    if workers == 1 or len(jobs) < 2:
        for job in jobs:
            _write_image(job)
        return
    # spawn: safe inside processes that already run threads (torch, Lightning).
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(workers, len(jobs))) as pool:
        for _ in pool.imap_unordered(_write_image, jobs, chunksize=8):
            pass


def _write_csv(jobs: list[_Job], path: Path) -> None:
    # pandas (through csvio) is imported here, not at the top: worker processes never need it.
    import pandas as pd

    from vqc.data.csvio import write_csv_atomic

    frame = pd.DataFrame(
        {
            "filename": [Path(j.path).name for j in jobs],
            "window": [j.window for j in jobs],
            "lib": [j.lib for j in jobs],
            "Label": [j.label for j in jobs],
        },
        columns=["filename", "window", "lib", "Label"],
    )
    write_csv_atomic(frame, path, index=True)


def _lists_only_synthetic_files(csv_path: Path) -> bool:
    """Whether a label file names only images this generator writes (so may be replaced)."""
    try:
        with csv_path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    if not rows or rows[0][:2] != ["", "filename"]:
        return False
    return all(len(row) > 1 and _FILENAME.match(row[1]) for row in rows[1:])


def _prepare_dir(out_dir: Path) -> None:
    """Make ``out_dir`` and its image folders; refuse folders that hold someone else's data."""
    foreign = [n for n in ("Y_train.csv", "Y_test.csv")
               if (out_dir / n).exists() and not _lists_only_synthetic_files(out_dir / n)]
    if foreign:
        raise ConfigError(
            f"{out_dir}: {foreign} list images this generator did not write; refusing to "
            "overwrite that data set (choose another output folder)"
        )
    try:
        for sub in ("input_train", "input_test"):
            (out_dir / sub).mkdir(parents=True, exist_ok=True)
        (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    except OSError as err:
        raise ConfigError(f"{out_dir}: cannot write the synthetic data set there ({err})") from err


def _remove_stale(folder: Path, keep: set[str]) -> None:
    """Delete images of an earlier set that the new one does not list (only our own names)."""
    for path in folder.iterdir():
        if _FILENAME.match(path.name) and path.name not in keep:
            path.unlink()


def _counts(jobs: list[_Job], names: Sequence[str]) -> dict[str, int]:
    return {n: sum(j.label == n for j in jobs) for n in names}


def _summary(out_dir: Path, manifest: Mapping[str, Any], generated: bool,
             seconds: float = 0.0) -> SyntheticSummary:
    return SyntheticSummary(
        out_dir=out_dir,
        train_csv=out_dir / "Y_train.csv",
        test_csv=out_dir / "Y_test.csv",
        train_dir=out_dir / "input_train",
        test_dir=out_dir / "input_test",
        train_counts=dict(manifest["train_counts"]),
        test_counts=dict(manifest["test_counts"]),
        drift_kinds=dict(manifest["drift_kinds"]),
        params=dict(manifest["params"]),
        generated=generated,
        seconds=seconds,
    )


def generate(out_dir: str | os.PathLike[str], n_train: int = 1500, n_test: int = 300,
             seed: int = 0, class_floor: int = DEFAULT_CLASS_FLOOR,
             workers: int | None = None,
             drift_fraction: float = DEFAULT_DRIFT_FRACTION) -> SyntheticSummary:
    """Write a synthetic set in the challenge layout to ``out_dir`` (replacing an earlier one).

    ``class_floor`` is the least number of training images per class (the test set gets the
    floor scaled by ``n_test / n_train``); ``drift_fraction`` of the test set is Drift.
    ``workers`` processes draw the images (default: up to 2); the result does not depend on it.
    """
    start = time.perf_counter()
    params = _params(n_train, n_test, seed, class_floor, drift_fraction)
    n_workers = _default_workers(workers)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder; cannot write the synthetic set")
    plan = _plan(out, params)
    _prepare_dir(out)
    try:
        _write_images(plan["train"] + plan["test"], n_workers)
        for split, jobs in plan.items():
            _remove_stale(out / f"input_{split}", {Path(j.path).name for j in jobs})
            _write_csv(jobs, out / f"Y_{split}.csv")
    except OSError as err:
        raise ConfigError(f"{out}: cannot write the synthetic data set there ({err})") from err
    manifest = {
        "generator": "vqc.data.synthetic",
        "version": GENERATOR_VERSION,
        "params": params,
        "train_counts": _counts(plan["train"], TRAINED_CLASSES),
        "test_counts": _counts(plan["test"], CHALLENGE_CLASS_NAMES),
        "drift_kinds": {k: sum(j.drift_kind == k for j in plan["test"]) for k in DRIFT_KINDS},
    }
    from vqc.data.csvio import write_atomic

    write_atomic(out / MANIFEST_NAME, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return _summary(out, manifest, generated=True, seconds=time.perf_counter() - start)


def read_manifest(out_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest of a complete set in ``out_dir``, or None (missing or unreadable)."""
    path = Path(out_dir) / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _is_complete(out: Path, manifest: Mapping[str, Any]) -> bool:
    """All CSVs and images the manifest promises are there."""
    for split in ("train", "test"):
        folder = out / f"input_{split}"
        if not (out / f"Y_{split}.csv").is_file() or not folder.is_dir():
            return False
        present = sum(1 for p in folder.iterdir() if _FILENAME.match(p.name))
        if present != sum(manifest[f"{split}_counts"].values()):
            return False
    return True


def ensure_generated(out_dir: str | os.PathLike[str], **kwargs: Any) -> SyntheticSummary:
    """``generate(out_dir, **kwargs)`` unless a complete set with the same parameters is there."""
    unknown = sorted(set(kwargs) - {"n_train", "n_test", "seed", "class_floor", "workers",
                                    "drift_fraction"})
    if unknown:
        raise ConfigError(f"synthetic: unknown parameter(s) {unknown}")
    wanted = _params(kwargs.get("n_train", 1500), kwargs.get("n_test", 300),
                     kwargs.get("seed", 0), kwargs.get("class_floor", DEFAULT_CLASS_FLOOR),
                     kwargs.get("drift_fraction", DEFAULT_DRIFT_FRACTION))
    out = Path(out_dir)
    manifest = read_manifest(out)
    try:
        same = (manifest is not None and manifest.get("version") == GENERATOR_VERSION
                and manifest.get("params") == wanted and _is_complete(out, manifest))
    except (KeyError, TypeError, AttributeError):
        same = False
    if same:
        return _summary(out, manifest, generated=False)  # type: ignore[arg-type]
    return generate(out, **kwargs)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vqc-synthetic",
        description="Write a synthetic wire-bond data set in the challenge layout "
                    "(input_train/, Y_train.csv, input_test/, Y_test.csv).",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--n-train", type=int, default=1500, help="training images (1500)")
    parser.add_argument("--n-test", type=int, default=300, help="test images, Drift included (300)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--class-floor", type=int, default=DEFAULT_CLASS_FLOOR,
                        help=f"least training images per class ({DEFAULT_CLASS_FLOOR})")
    parser.add_argument("--drift-fraction", type=float, default=DEFAULT_DRIFT_FRACTION,
                        help=f"share of Drift images in test ({DEFAULT_DRIFT_FRACTION})")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes drawing images (default: up to 2)")
    parser.add_argument("--if-needed", action="store_true",
                        help="keep an existing complete set made with the same parameters")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    kwargs = {"n_train": args.n_train, "n_test": args.n_test, "seed": args.seed,
              "class_floor": args.class_floor, "drift_fraction": args.drift_fraction,
              "workers": args.workers}
    try:
        summary = ensure_generated(args.out, **kwargs) if args.if_needed else generate(
            args.out, **kwargs)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    verb = f"wrote in {summary.seconds:.1f} s" if summary.generated else "kept (already complete)"
    print(f"{summary.out_dir}: {verb}: {summary.n_train} train, {summary.n_test} test images")
    width = max(len(n) for n in CHALLENGE_CLASS_NAMES)
    for name in CHALLENGE_CLASS_NAMES:
        print(f"  {name:<{width}}  train {summary.train_counts.get(name, 0):>6}  "
              f"test {summary.test_counts.get(name, 0):>5}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
