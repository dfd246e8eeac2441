"""The dies and windows of the challenge, and where a strip's bonds, pads and blocks lie."""

from __future__ import annotations

from dataclasses import dataclass

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

# Layout of the strip, in strip coordinates: x in [0, 160), y in [0, strip height).
WIRE_X = (50.0, 110.0)  # the two bonds of interest; neighbours repeat every PITCH
PITCH = 60.0
MOS_X, MOS_PERIOD, MOS_HALF_WIDTH = 140.0, 120.0, 16.0  # MOS blocks beside the wires
TOP_FOOT, BOTTOM_FOOT = 0.11, 0.89  # bond feet, as fractions of the strip height


@dataclass(frozen=True)
class DieStyle:
    """Grey levels of one die type's surfaces (before lighting)."""

    background: float
    pad: float
    lead: float
    mos: float
    pad_half_width: float


DIE_STYLES: dict[str, DieStyle] = {
    "Die01": DieStyle(background=58, pad=168, lead=150, mos=96, pad_half_width=17),
    "Die02": DieStyle(background=70, pad=160, lead=140, mos=106, pad_half_width=19),
    "Die03": DieStyle(background=52, pad=178, lead=158, mos=90, pad_half_width=16),
    "Die04": DieStyle(background=64, pad=164, lead=146, mos=100, pad_half_width=18),
}


@dataclass(frozen=True)
class Frame:
    """Where the strip's origin lies on the rotated canvas (crop box corner plus jitter)."""

    ox: int
    oy: int
    height: int
