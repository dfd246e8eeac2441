"""Pixel defect masks: preprocessed exactly as their images are, so they stay aligned.

A data set may give each image a mask (a CSV's ``mask`` column; white = defect). Masks are
decoded once and cached like images, rotated and cropped by the same die entry, then resized to
the same size by nearest neighbour and stored as 0/1. Training can then tell the network where
a defect is, not only that there is one (``module.mask_weight``).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from vqc.data.preprocess import Preprocessor, fit, load_image
from vqc.errors import DataError

#: Mask pixels above this gray level are defect (a mask no brighter than it, saved as 0/1 or
#: 0/N: every non-zero pixel).
THRESHOLD = 127
#: Mask value of pixels whose state is unknown: an image of a defect class without a mask, or
#: whose mask marks no pixel (the defect was not drawn, or is too small to survive the resize).
MASK_UNKNOWN = 255


@dataclass(frozen=True)
class MaskPreprocessor:
    """Turns a mask file into a ``uint8`` array ``(1, height, width)`` of 0 and 1, with the
    geometry ``images`` gives its image (same rotation, crop, size and resize mode).

    Shrinking keeps every defect pixel: an output pixel is defect when any mask pixel under it
    is (a box filter, then anything above 0), so a crack one pixel wide does not vanish.
    """

    images: Preprocessor

    def fingerprint(self) -> str:
        payload = f"mask-v2:{THRESHOLD}:{self.images.fingerprint()}"
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def __call__(self, path: str | os.PathLike[str], lib: str | None = None) -> np.ndarray:
        gray = np.asarray(load_image(path, "L", self.images.max_pixels))
        cut = THRESHOLD if gray.max(initial=0) > THRESHOLD else 0
        mask = Image.fromarray(np.where(gray > cut, 255, 0).astype(np.uint8), mode="L")
        if self.images.rotate_crop:
            self.images.check_lib(lib, str(path))
            mask = self.images.rotate_crop[lib].apply(mask, name=str(path), lib=str(lib))  # type: ignore[index]
        mask = fit(mask, self.images.size, self.images.resize,
                   resample=Image.Resampling.BOX, fill=0)
        return (np.asarray(mask, dtype=np.uint8) > 0).astype(np.uint8)[None]


def check_mask_sizes(frame: pd.DataFrame) -> None:
    """Refuse, naming the row, a mask that is not a readable image or whose size is not its
    image's: it would be stretched onto the image and mark the wrong pixels."""
    for image, mask, where in zip(frame["path"], frame["mask"], frame["where"], strict=True):
        if not isinstance(mask, str):
            continue
        mask_size, image_size = _size(mask, where, "mask"), _size(image, where, "image")
        if mask_size != image_size:
            raise DataError(f"{where}: mask {Path(mask).name} is {mask_size[0]}x{mask_size[1]} "
                            f"but image {Path(image).name} is {image_size[0]}x{image_size[1]}; "
                            "a mask must have its image's size")


def _size(path: str, where: str, what: str) -> tuple[int, int]:
    try:
        with Image.open(path) as opened:
            return opened.size
    except (OSError, ValueError) as err:
        raise DataError(f"{where}: {what} {path} is not a readable image ({err})") from err


def marks_nothing(array: np.ndarray) -> bool:
    """Whether a preprocessed mask marks no pixel."""
    return not bool(array.any())


def has_masks(frame: pd.DataFrame | None) -> bool:
    """Whether any row of ``frame`` names a mask."""
    return frame is not None and "mask" in frame.columns and bool(frame["mask"].notna().any())
