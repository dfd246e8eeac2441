"""The die surface around the bonds: shading, circuit cells, seal ring, pads, MOS, leads."""

from __future__ import annotations

import numpy as np
from PIL import Image

from vqc.data.synthetic.layout import (
    LIBS,
    MOS_HALF_WIDTH,
    MOS_PERIOD,
    MOS_X,
    PITCH,
    WIRE_X,
    DieStyle,
    Frame,
)


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


def background(width: int, height: int, frame: Frame, style: DieStyle, lib: str,
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

    pad_x = np.abs(_periodic_offset(xs, WIRE_X[0], PITCH)) < style.pad_half_width
    pad_y = (ys > 0.055 * hs) & (ys < 0.175 * hs)
    canvas[np.ix_(pad_y, pad_x)] = style.pad

    mos_x = np.abs(_periodic_offset(xs, MOS_X, MOS_PERIOD)) < MOS_HALF_WIDTH
    mos_y = (ys > 0.36 * hs) & (ys < 0.64 * hs)
    fingers = 6.0 * np.sign(np.sin(xs * (2 * np.pi / 5.0)))  # transistor fingers
    canvas[np.ix_(mos_y, mos_x)] = (style.mos + fingers[mos_x])[None, :]

    lead_x = np.abs(_periodic_offset(xs, WIRE_X[0], PITCH)) < 15
    lead_y = (ys > 0.81 * hs) & (ys < 0.975 * hs)
    brushed = 4.0 * rng.standard_normal(int(lead_x.sum())).astype(np.float32)
    canvas[np.ix_(lead_y, lead_x)] = (style.lead + brushed)[None, :]
    return canvas
