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

#: Mask pixels above this gray level are defect.
THRESHOLD = 127


@dataclass(frozen=True)
class MaskPreprocessor:
    """Turns a mask file into a ``uint8`` array ``(1, height, width)`` of 0 and 1, with the
    geometry ``images`` gives its image (same rotation, crop, size and resize mode)."""

    images: Preprocessor

    def fingerprint(self) -> str:
        payload = f"mask-v1:{THRESHOLD}:{self.images.fingerprint()}"
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def __call__(self, path: str | os.PathLike[str], lib: str | None = None) -> np.ndarray:
        mask = load_image(path, "L", self.images.max_pixels)
        mask = mask.point(lambda v: 255 if v > THRESHOLD else 0)
        if self.images.rotate_crop:
            self.images.check_lib(lib, str(path))
            mask = self.images.rotate_crop[lib].apply(mask, name=str(path), lib=str(lib))  # type: ignore[index]
        mask = fit(mask, self.images.size, self.images.resize,
                   resample=Image.Resampling.NEAREST, fill=0)
        return (np.asarray(mask, dtype=np.uint8) > THRESHOLD).astype(np.uint8)[None]


def check_mask_sizes(frame: pd.DataFrame) -> None:
    """Refuse, naming both files and the row, a mask whose size is not its image's: it
    would be stretched onto the image and mark the wrong pixels."""
    for image, mask, where in zip(frame["path"], frame["mask"], frame["where"], strict=True):
        if mask is None or (isinstance(mask, float) and pd.isna(mask)):
            continue
        with Image.open(image) as a, Image.open(mask) as b:
            if a.size != b.size:
                raise DataError(f"{where}: mask {Path(mask).name} is {b.size[0]}x{b.size[1]} "
                                f"but image {Path(image).name} is {a.size[0]}x{a.size[1]}; "
                                "a mask must have its image's size")


def has_masks(frame: pd.DataFrame | None) -> bool:
    """Whether any row of ``frame`` names a mask."""
    return frame is not None and "mask" in frame.columns and bool(frame["mask"].notna().any())
