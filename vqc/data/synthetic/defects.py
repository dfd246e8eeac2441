"""The class cues: flat loops, lifted wires, missing wires and short circuits on the pair."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from vqc.data.synthetic.counts import (
    BOUCLE_PLATE,
    GOOD,
    LIFT_OFF_BLANC,
    LIFT_OFF_NOIR,
    MISSING,
    SHORT_CIRCUIT,
)
from vqc.data.synthetic.layout import MOS_HALF_WIDTH, MOS_PERIOD, MOS_X, DieStyle, Frame
from vqc.data.synthetic.paint import bezier, blob, stroke
from vqc.data.synthetic.wires import Wire, draw_feet, draw_wire, wire_centre


def _flat(wire: Wire, rng: np.random.Generator) -> Wire:
    return replace(wire, flat=True, highlight=0.0, width=wire.width * rng.uniform(1.3, 1.5),
                   level=rng.uniform(98, 118), bow=rng.choice([-1, 1]) * rng.uniform(2, 6))


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
    draw_wire(canvas, frame, wire)
    draw_feet(canvas, frame, wire, style, top=not at_top, bottom=at_top)
    level = rng.uniform(232, 250) if white else rng.uniform(16, 32)
    blob(canvas, cx + frame.ox + rng.uniform(-2, 2), cy + frame.oy + rng.uniform(-2, 2),
         rng.uniform(10, 15), rng.uniform(8, 12), level, rng=rng, irregular=0.25,
         dome=6 if white else -4)


def _missing(canvas: np.ndarray, frame: Frame, wire: Wire, style: DieStyle,
             rng: np.random.Generator) -> None:
    """No wire; sometimes a stub over the ball or the wedge's remains."""
    remains = rng.random()
    if remains < 0.5:
        stub = rng.uniform(8, 30) / (wire.y_bottom - wire.y_top)
        stub_wire = replace(wire, end=stub, dangle_bottom=rng.uniform(-3, 3))
        draw_wire(canvas, frame, stub_wire)
        draw_feet(canvas, frame, wire, style, top=True, bottom=False)
    elif remains < 0.7:
        draw_feet(canvas, frame, wire, style, top=False, bottom=True)


def _short_circuit(canvas: np.ndarray, frame: Frame, wire: Wire, side: int,
                   rng: np.random.Generator) -> None:
    """A bright strand of bond material from the wire to the MOS block beside it (``side`` -1
    or +1), as a real short looks: 4-6 px wide and 55-80 grey levels above the background on
    the 160-px strip, so it is still 2 px wide at full contrast once the strip is shrunk 2.5
    times for training on a CPU (a 2-px strand vanished at that size).
    """
    hs = frame.height
    t0 = rng.uniform(0.25, 0.5)
    y_start = wire.y_top + t0 * (wire.y_bottom - wire.y_top)
    x_start = float(wire_centre(wire, np.array([t0]))[0]) + side * wire.width / 2
    block_edge = (MOS_X - MOS_PERIOD if side < 0 else MOS_X) - side * MOS_HALF_WIDTH
    x_end = block_edge + side * rng.uniform(0, 6)
    y_end = rng.uniform(0.40, 0.60) * hs
    bend = (x_start + side * rng.uniform(2, 10), (y_start + y_end) / 2 + rng.uniform(-20, 20))
    points = bezier((x_start, y_start), bend, (x_end, y_end))
    shifted = [(x + frame.ox, y + frame.oy) for x, y in points]
    stroke(canvas, shifted, width=rng.uniform(4.0, 6.0), amount=rng.uniform(55, 80), blur=0.8)


def draw_pair(canvas: np.ndarray, frame: Frame, wires: list[Wire], label: str,
              style: DieStyle, rng: np.random.Generator) -> None:
    """The strip's two bonds, one (or both) of them showing the defect ``label``."""
    defective = {int(rng.integers(2))}
    if label in (MISSING, BOUCLE_PLATE) and rng.random() < 0.15:
        defective = {0, 1}
    for i, wire in enumerate(wires):
        if i not in defective or label in (GOOD, SHORT_CIRCUIT):
            draw_wire(canvas, frame, wire)
            draw_feet(canvas, frame, wire, style)
        elif label == MISSING:
            _missing(canvas, frame, wire, style, rng)
        elif label in (LIFT_OFF_BLANC, LIFT_OFF_NOIR):
            _lift_off(canvas, frame, wire, style, rng, white=label == LIFT_OFF_BLANC)
        elif label == BOUCLE_PLATE:
            flat = _flat(wire, rng)
            draw_wire(canvas, frame, flat)
            draw_feet(canvas, frame, flat, style)
    if label == SHORT_CIRCUIT:
        i = next(iter(defective))
        _short_circuit(canvas, frame, wires[i], side=-1 if i == 0 else 1, rng=rng)
