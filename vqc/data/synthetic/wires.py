"""Good bond wires: their shape, shading, feet, and the neighbours across the canvas."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vqc.data.synthetic.layout import BOTTOM_FOOT, PITCH, TOP_FOOT, WIRE_X, DieStyle, Frame
from vqc.data.synthetic.paint import blend, blob, smoothstep


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


def wire_centre(wire: Wire, t: np.ndarray) -> np.ndarray:
    """Sideways position of the wire's axis along ``t`` (strip x)."""
    x = wire.x_top + (wire.x_bottom - wire.x_top) * t + wire.bow * np.sin(np.pi * t)
    if wire.dangle_top:
        x = x + wire.dangle_top * np.clip(1 - (t - wire.start) / 0.2, 0, 1) ** 2
    if wire.dangle_bottom:
        x = x + wire.dangle_bottom * np.clip(1 - (wire.end - t) / 0.2, 0, 1) ** 2
    return x


def draw_wire(canvas: np.ndarray, frame: Frame, wire: Wire) -> None:
    """Shade a wire as a cylinder; an arched one carries a specular line, brightest at its crest."""
    length = wire.y_bottom - wire.y_top
    rows = np.arange(math.ceil(wire.y_top + wire.start * length),
                     math.floor(wire.y_top + wire.end * length) + 1)
    if rows.size == 0:
        return
    t = ((rows - wire.y_top) / length).astype(np.float32)
    centre = wire_centre(wire, t)
    radius = wire.width / 2
    shadow = 4.0 if wire.flat else 0.0
    x0 = math.floor(centre.min() - radius - shadow - 2)
    x1 = math.ceil(centre.max() + radius + shadow + 2)
    cols = np.arange(x0, x1 + 1, dtype=np.float32)
    d = cols[None, :] - centre[:, None]
    y0, xc0 = int(rows[0]) + frame.oy, x0 + frame.ox
    if wire.flat:  # lying close to the surface, it casts a soft shadow
        shade = np.clip(1 - np.abs(d - radius - 1.5) / 3.0, 0, 1) * 0.35
        blend(canvas, y0, xc0, shade.astype(np.float32), wire.level * 0.3)
    across = np.clip(np.abs(d) / radius, 0, 1)
    alpha = np.clip(radius + 0.5 - np.abs(d), 0, 1)
    body = wire.level * (0.72 + 0.28 * np.sqrt(1 - across ** 2))
    if not wire.flat:
        descent = 1 - 0.3 * smoothstep(0.7, 1.0, t)  # sloping down to the bottom bond: dimmer
        arch = 0.15 + 0.85 * np.exp(-(((t - wire.crest) / 0.22) ** 2))
        arch = arch * smoothstep(0.0, 0.07, t)  # the neck above the ball rises steeply
        body = body * descent[:, None]
        line = np.exp(-(((d - 0.2 * radius) / (0.35 * radius)) ** 2))
        body = body + wire.highlight * arch[:, None] * line
    blend(canvas, y0, xc0, alpha.astype(np.float32), body.astype(np.float32))


def base_wire(rng: np.random.Generator, x: float, hs: float, level_shift: float) -> Wire:
    """A good wire at strip column ``x`` with per-image variation."""
    y_top = TOP_FOOT * hs + rng.uniform(-4, 4)
    y_bottom = BOTTOM_FOOT * hs + rng.uniform(-4, 4)
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


def draw_feet(canvas: np.ndarray, frame: Frame, wire: Wire, style: DieStyle, top: bool = True,
              bottom: bool = True) -> None:
    """Ball bond on the pad (top) and wedge bond on the lead (bottom)."""
    if top:
        cx, cy = wire.x_top + frame.ox, wire.y_top + frame.oy
        blob(canvas, cx, cy, 11.0, 10.0, style.pad - 60)
        blob(canvas, cx, cy, 8.5, 7.5, style.pad + 20, dome=18)
    if bottom:
        cx, cy = wire.x_bottom + frame.ox, wire.y_bottom + frame.oy
        blob(canvas, cx, cy, 7.0, 12.0, style.lead + 28, dome=12)


def _wire_visible(visible: np.ndarray, frame: Frame, wire: Wire) -> bool:
    """Whether any part of the wire or its feet lands in the die image (others are skipped)."""
    ys = np.linspace(wire.y_top - 14, wire.y_bottom + 14, 24) + frame.oy
    xs = wire.x_top + (wire.x_bottom - wire.x_top) * np.linspace(0, 1, 24) + frame.ox
    rows = np.clip(ys.astype(int), 0, visible.shape[0] - 1)
    hits = [visible[rows, np.clip((xs + dx).astype(int), 0, visible.shape[1] - 1)]
            for dx in (-14, 0, 14)]
    return bool(np.any(hits))


def draw_neighbours(canvas: np.ndarray, frame: Frame, style: DieStyle, visible: np.ndarray,
                    rng: np.random.Generator) -> list[Wire]:
    """Good bonds across the whole canvas; returns the strip's two, still to be drawn."""
    hs = float(frame.height)
    width = canvas.shape[1]
    k_first = math.floor((-frame.ox - WIRE_X[0]) / PITCH) - 1
    k_last = math.ceil((width - frame.ox - WIRE_X[0]) / PITCH) + 1
    level_shift = rng.normal(0, 8)
    for k in range(k_first, k_last + 1):
        if k in (0, 1):
            continue
        wire = base_wire(rng, WIRE_X[0] + k * PITCH, hs, level_shift)
        if _wire_visible(visible, frame, wire):
            draw_wire(canvas, frame, wire)
            draw_feet(canvas, frame, wire, style)
    return [base_wire(rng, x, hs, level_shift) for x in WIRE_X]
