"""Decode, rotate, crop and resize one image.

The per-die rotation and crop follow PIL's ``img.rotate(angle, expand=True).crop(box)`` exactly
(PIL itself does the work), so a strip here is pixel for pixel the strip of the official code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from vqc.errors import ConfigError, DataError

log = logging.getLogger(__name__)

ColorMode = Literal["L", "RGB"]
ResizeMode = Literal["stretch", "letterbox"]
RESIZE_MODES: tuple[str, ...] = ("stretch", "letterbox")
Box = tuple[int, int, int, int]

#: Default limit on decoded pixels; larger files are refused as possible decompression bombs.
DEFAULT_MAX_PIXELS = 50_000_000


@dataclass(frozen=True)
class RotateCrop:
    """PIL ``rotate(angle, expand=True)`` (counter-clockwise degrees) then ``crop(box)``."""

    angle: float
    box: Box

    def __post_init__(self) -> None:
        box = tuple(int(v) for v in self.box)
        if len(box) != 4:
            raise ConfigError(
                f"crop box {self.box!r} must have 4 values (left, upper, right, lower)"
            )
        left, upper, right, lower = box
        if right <= left or lower <= upper:
            raise ConfigError(f"crop box {box} is empty: need right > left and lower > upper")
        object.__setattr__(self, "box", box)
        object.__setattr__(self, "angle", float(self.angle))

    def rotated_size(self, width: int, height: int) -> tuple[int, int]:
        """Size PIL gives to ``rotate(angle, expand=True)`` of a ``width`` x ``height`` image."""
        probe = Image.new("1", (width, height))
        return probe.rotate(self.angle, expand=True).size

    def apply(self, image: Image.Image, name: str = "image", lib: str = "") -> Image.Image:
        width, height = self.rotated_size(*image.size)
        left, upper, right, lower = self.box
        if right > width or lower > height or left < 0 or upper < 0:
            raise DataError(
                f"{name}: image of {image.size[0]}x{image.size[1]} px is too small for the crop "
                f"box {self.box} of lib {lib!r} (rotated by {self.angle:g} deg it is "
                f"{width}x{height})"
            )
        return image.rotate(self.angle, expand=True).crop(self.box)


#: The official per-die table (challenge notebook).
CHALLENGE_ROTATE_CROP: dict[str, RotateCrop] = {
    "Die01": RotateCrop(55, (340, 120, 500, 680)),
    "Die02": RotateCrop(-44, (480, 210, 640, 930)),
    "Die03": RotateCrop(134, (460, 200, 620, 920)),
    "Die04": RotateCrop(35, (310, 130, 470, 690)),
}


def parse_rotate_crop_table(table: Mapping[str, object] | None) -> dict[str, RotateCrop]:
    """Turn ``{lib: {angle: a, box: [l, u, r, b]}}`` from config into ``RotateCrop`` entries."""
    if not table:
        return {}
    parsed: dict[str, RotateCrop] = {}
    for lib, spec in table.items():
        if isinstance(spec, RotateCrop):
            parsed[str(lib)] = spec
            continue
        if not isinstance(spec, Mapping) or "angle" not in spec or "box" not in spec:
            raise ConfigError(f"preprocess.rotate_crop.{lib}: expected keys 'angle' and 'box'")
        parsed[str(lib)] = RotateCrop(float(spec["angle"]), tuple(spec["box"]))  # type: ignore[arg-type]
    return parsed


def load_image(path: str | os.PathLike[str], mode: ColorMode = "L",
               max_pixels: int = DEFAULT_MAX_PIXELS, bit_depth: int | None = None
               ) -> Image.Image:
    """Decode ``path`` into an 8-bit image of ``mode`` ("L" or "RGB").

    Palette, RGBA, 1-bit and 16-bit images are converted rather than rejected; 16-bit values
    are scaled to 8 bits over the range of ``bit_depth`` bits (default 16: 0..65535; 12 for a
    12-bit camera's files), float ones by each image's own maximum (logged once). A 16-bit
    file whose values fit in 12 bits is warned about once: scaled over 16 bits it comes out
    nearly black. Animated and multi-page images (GIF, WebP, TIFF) are refused: which frame
    is the part is not for vqc to guess. Unreadable files raise ``DataError``. The
    pixel limit is vqc's own (``max_pixels``, checked from the header before decoding):
    Pillow's is turned off, so its warning and error text never appear beside vqc's.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: image file is empty (0 bytes)")
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise DataError(
                    f"{path}: {width}x{height} = {width * height:,} pixels exceeds the limit of "
                    f"{max_pixels:,} (possible decompression bomb; raise preprocess.max_pixels)"
                )
            frames = int(getattr(image, "n_frames", 1) or 1)
            if frames > 1 and image.format != "MPO":  # MPO: a camera JPEG and its previews
                raise DataError(f"{path}: animated or multi-page image ({frames} frames); vqc "
                                "reads single images: save the frame you mean as its own file")
            image.load()
            if image.mode in RESCALING and image.mode not in _RESCALE_WARNED:
                _RESCALE_WARNED.add(image.mode)
                log.warning("%s: %s; other such files are rescaled the same way", path,
                            RESCALING[image.mode])
            return _to_mode(image, mode, bit_depth, path)
    except Image.DecompressionBombError as err:
        raise DataError(f"{path}: refused as a possible decompression bomb ({err})") from err
    except UnidentifiedImageError as err:
        raise DataError(f"{path}: not a readable image file") from err
    except (OSError, SyntaxError, ValueError) as err:
        hint = "" if "truncated" in str(err) else "; the file may be truncated or corrupt"
        raise DataError(f"{path}: cannot decode image ({err}){hint}") from err


#: Images smaller than this a side are refused by :class:`Preprocessor` rather than stretched:
#: no photo of a part is that small.
MIN_SIDE = 4
#: vqc checks ``max_pixels`` itself, from the header, before decoding: Pillow's own limit
#: (its DecompressionBombWarning and error text) is turned off.
Image.MAX_IMAGE_PIXELS = None

#: How 32-bit images (PIL modes F and I) become 8-bit ones.
RESCALING = {
    "F": "32-bit float image divided by its own maximum (at least 1) into 0..255, negative "
         "values clipped to 0: brightness is relative to each image",
    "I": "32-bit integer image scaled from 0..65535 into 0..255 (kept as is when its values fit "
         "in 0..255)",
}
#: Kinds of image whose rescaling was logged (once per kind and process).
_RESCALE_WARNED: set[str] = set()


def _to_mode(image: Image.Image, mode: ColorMode, bit_depth: int | None = None,
             path: Path | None = None) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = float(2 ** (bit_depth or 16) - 1) if image.mode != "F" else max(
            float(array.max()), 1.0)
        if image.mode == "I" and array.max() <= 255:
            top = 255.0
        peak = float(array.max())
        if (image.mode != "F" and bit_depth is None and 255 < peak < 4096
                and "12-bit" not in _RESCALE_WARNED):
            _RESCALE_WARNED.add("12-bit")
            log.warning("%s: a 16-bit image whose values stop at %d (12-bit data?): scaled "
                        "from 0..65535 it comes out nearly black (at most %d of 255); set "
                        "data.preprocess.bit_depth=12 if the camera gives 12 bits", path,
                        peak, round(peak * 255 / 65535))
        array = np.minimum(array, top)
        array = np.clip(np.rint(array * (255.0 / top)), 0, 255).astype(np.uint8)
        image = Image.fromarray(array, mode="L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA"):
        # Composite on black: transparent areas become background, not arbitrary colour.
        background = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    if image.mode != mode:
        image = image.convert(mode)
    return image


@dataclass(frozen=True)
class Preprocessor:
    """Everything that turns a file into the cached array: decode, rotate+crop by lib, resize.

    ``size`` is (height, width). ``rotate_crop`` may be empty: then images are only resized.
    ``resize``: ``stretch`` to ``size`` (every image the same shape, as the challenge's strips),
    or ``letterbox``: scaled to fit inside ``size`` with its aspect ratio kept and centred on a
    background of the image's own mean colour (for sets whose images vary in shape, where
    stretching would change the shape of a defect from image to image).
    """

    size: tuple[int, int]
    mode: ColorMode = "L"
    rotate_crop: Mapping[str, RotateCrop] = field(default_factory=dict)
    max_pixels: int = DEFAULT_MAX_PIXELS
    resize: ResizeMode = "stretch"
    bit_depth: int | None = None  # of 16-bit files' data (12: a 12-bit camera); None: 16

    def __post_init__(self) -> None:
        if isinstance(self.size, int):
            size: tuple[int, ...] = (self.size, self.size)
        else:
            size = tuple(int(v) for v in self.size)
        if len(size) != 2 or min(size) <= 0:
            raise ConfigError(f"preprocess.size={self.size!r}: expected [height, width] > 0")
        if self.mode not in ("L", "RGB"):
            raise ConfigError(f"preprocess.mode={self.mode!r}: expected 'L' or 'RGB'")
        if self.bit_depth is not None and not 8 < int(self.bit_depth) <= 16:
            raise ConfigError(f"preprocess.bit_depth={self.bit_depth!r}: expected 9 to 16 "
                              "(bits of a 16-bit file's data), or null")
        if self.resize not in RESIZE_MODES:
            raise ConfigError(f"preprocess.resize={self.resize!r}: expected one of "
                              f"{list(RESIZE_MODES)}")
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "rotate_crop", dict(parse_rotate_crop_table(self.rotate_crop)))

    @property
    def channels(self) -> int:
        return 1 if self.mode == "L" else 3

    def fingerprint(self) -> str:
        """A short hash of every setting that changes the output; part of each cache key."""
        payload = {
            "version": 1,
            "size": list(self.size),
            "mode": self.mode,
            "max_pixels": self.max_pixels,
            "rotate_crop": {k: [v.angle, list(v.box)] for k, v in sorted(self.rotate_crop.items())},
        }
        if self.resize != "stretch":  # stretched entries keep the keys they always had
            payload["resize"] = self.resize
        if self.bit_depth is not None:
            payload["bit_depth"] = self.bit_depth
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def check_lib(self, lib: str | None, where: str) -> None:
        if self.rotate_crop and lib not in self.rotate_crop:
            raise DataError(
                f"{where}: unknown lib {lib!r}; the rotate/crop table knows "
                f"{sorted(self.rotate_crop)}"
            )

    def __call__(self, path: str | os.PathLike[str], lib: str | None = None) -> np.ndarray:
        """The preprocessed image as a ``uint8`` array of shape (channels, height, width)."""
        image = load_image(path, self.mode, self.max_pixels, self.bit_depth)
        if min(image.size) < MIN_SIDE:
            raise DataError(f"{path}: image of {image.size[0]}x{image.size[1]} px is too small "
                            f"to inspect (at least {MIN_SIDE} px a side)")
        if self.rotate_crop:
            self.check_lib(lib, str(path))
            image = self.rotate_crop[lib].apply(image, name=str(path), lib=str(lib))  # type: ignore[index]
        image = fit(image, self.size, self.resize)
        array = np.asarray(image, dtype=np.uint8)
        return array[None] if array.ndim == 2 else np.ascontiguousarray(array.transpose(2, 0, 1))


def fit(image: Image.Image, size: tuple[int, int], resize: ResizeMode = "stretch",
        resample: Image.Resampling = Image.Resampling.BILINEAR,
        fill: int | None = None) -> Image.Image:
    """``image`` brought to ``size`` (height, width) by stretching or letterboxing.

    ``resample``: the interpolation (nearest for masks); ``fill``: the letterbox's background
    (default: the image's own mean colour)."""
    height, width = size
    if image.size == (width, height):
        return image
    if resize == "stretch":
        return image.resize((width, height), resample)
    scale = min(width / image.size[0], height / image.size[1])
    inner = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
    scaled = image.resize(inner, resample)
    if fill is None:
        means = np.asarray(image, dtype=np.float64).reshape(image.size[1], image.size[0], -1)
        background = tuple(round(float(v)) for v in means.mean(axis=(0, 1)))
    else:
        background = (fill,) * len(image.getbands())
    canvas = Image.new(image.mode, (width, height),
                       background[0] if len(background) == 1 else background)
    canvas.paste(scaled, ((width - inner[0]) // 2, (height - inner[1]) // 2))
    return canvas
