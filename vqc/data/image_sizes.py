"""The input size a data set's images suggest: ``data.preprocess.size: auto``.

A network sees a fixed height x width. ``choose_size`` keeps the images' median aspect and
spends a pixel budget of ``side x side`` (the network's own input side, e.g. 240 for
EfficientNet-Lite1), rounded to a multiple of 16. Images smaller than the budget are not
shrunk further: a pretrained network sees them at its own scale.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from statistics import median

from PIL import Image

from vqc.errors import DataError

#: Sides are multiples of this (EfficientNet and ResNet halve the map five times; timm pads).
MULTIPLE = 16
#: Aspects beyond this are clipped: a 10:1 strip becomes 4:1, not 16 pixels high.
MAX_ASPECT = 4.0
#: Images whose header is read to find the median size (evenly spread over the table).
SAMPLE = 256


def read_sizes(paths: Sequence[str], limit: int = SAMPLE) -> list[tuple[int, int]]:
    """``(height, width)`` of up to ``limit`` of ``paths``, evenly spread (headers only).

    Unreadable files are passed over: the loader deals with them as ``data.on_bad_image``
    says. Only a sample with no readable image at all is refused, naming the first."""
    if not paths:
        raise DataError("data.preprocess.size=auto: no training images to size")
    step = max(1, math.ceil(len(paths) / limit))
    sizes, failed = [], []
    for path in list(paths)[::step]:
        try:
            with Image.open(path) as image:
                width, height = image.size
        except (OSError, Image.DecompressionBombError) as err:
            failed.append(f"{path}: not a readable image ({err})")
            continue
        sizes.append((height, width))
    if not sizes:
        raise DataError(f"data.preprocess.size=auto: no readable image to size; {failed[0]}")
    return sizes


def _round(value: float) -> int:
    return max(MULTIPLE, round(value / MULTIPLE) * MULTIPLE)


def choose_size(sizes: Iterable[tuple[int, int]], side: int) -> tuple[int, int]:
    """``(height, width)`` of the median aspect within ``side * side`` pixels, in multiples of
    ``MULTIPLE``; no larger than the median image, but never under ``MULTIPLE``."""
    sizes = list(sizes)
    if not sizes:
        raise DataError("data.preprocess.size=auto: no image sizes to choose from")
    if side < MULTIPLE:
        raise DataError(f"data.preprocess.auto_side={side}: must be at least {MULTIPLE}")
    aspect = median(h / w for h, w in sizes)  # height over width
    aspect = min(max(aspect, 1 / MAX_ASPECT), MAX_ASPECT)
    pixels = min(side * side, median(h * w for h, w in sizes))
    height = math.sqrt(pixels * aspect)
    return _round(height), _round(height / aspect)


def crop_sizes(rotate_crop: dict[str, object]) -> list[tuple[int, int]]:
    """``(height, width)`` of each per-lib crop box ``[left, top, right, bottom]``: what the
    network sees of a set preprocessed by rotation and crop."""
    sizes = []
    for lib, entry in rotate_crop.items():
        box = entry.get("box") if isinstance(entry, dict) else getattr(entry, "box", None)
        if box is None or len(box) != 4:
            raise DataError(f"data.preprocess.rotate_crop.{lib}: no box [left, top, right, "
                            "bottom] to size")
        left, top, right, bottom = (int(v) for v in box)
        sizes.append((bottom - top, right - left))
    return sizes


def images_of(paths: Iterable[str]) -> list[str]:
    """The paths that exist (a table may name images not yet generated)."""
    return [p for p in paths if Path(p).is_file()]
