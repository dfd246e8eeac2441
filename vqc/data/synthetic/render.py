"""One die image: paint the scene on the rotated canvas, light it, and turn it back."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from vqc.classes import CHALLENGE_CLASS_NAMES
from vqc.data.preprocess import CHALLENGE_ROTATE_CROP
from vqc.data.synthetic.camera import WINDOW_LIGHTING, add_noise, apply_lighting
from vqc.data.synthetic.counts import DRIFT, GOOD, MISSING, TRAINED_CLASSES
from vqc.data.synthetic.defects import draw_pair
from vqc.data.synthetic.drift import DRIFT_KINDS, foreign_object, scratch
from vqc.data.synthetic.layout import DIE_SIZES, DIE_STYLES, WINDOWS, Frame
from vqc.data.synthetic.scene import background
from vqc.data.synthetic.wires import draw_neighbours
from vqc.errors import ConfigError


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


@functools.lru_cache(maxsize=len(DIE_SIZES))
def _canvas_size(lib: str) -> tuple[int, int]:
    return CHALLENGE_ROTATE_CROP[lib].rotated_size(*DIE_SIZES[lib])


@functools.lru_cache(maxsize=len(DIE_SIZES))
def _visible(lib: str) -> np.ndarray:
    """Canvas pixels that end up in the die image: the official rotation of a blank die."""
    blank = Image.new("L", DIE_SIZES[lib], 255)
    return np.asarray(blank.rotate(CHALLENGE_ROTATE_CROP[lib].angle, expand=True)) > 0


def _paint_scene(label: str, lib: str, frame: Frame, drift_kind: str | None,
                 layout_rng: np.random.Generator, defect_rng: np.random.Generator) -> np.ndarray:
    """The die, its bonds and any foreign matter on the rotated canvas, before lighting."""
    style = DIE_STYLES[lib]
    canvas = background(*_canvas_size(lib), frame, style, lib, layout_rng)
    wires = draw_neighbours(canvas, frame, style, _visible(lib), layout_rng)
    scene = label
    if label == DRIFT:
        scene = GOOD if defect_rng.random() < 0.4 else MISSING
    draw_pair(canvas, frame, wires, scene, style, defect_rng)
    if drift_kind == "foreign_object":
        foreign_object(canvas, frame, defect_rng)
    elif drift_kind == "scratch":
        scratch(canvas, frame, defect_rng)
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
    if window not in WINDOW_LIGHTING:
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
    light = WINDOW_LIGHTING[window]
    apply_lighting(canvas, light, light_rng, drift_kind)
    scene8 = canvas.astype(np.uint8)
    scene_image = Image.fromarray(scene8, mode="L")
    if drift_kind == "blur":  # out of focus
        scene_image = scene_image.filter(ImageFilter.GaussianBlur(defect_rng.uniform(3.0, 6.0)))
        scene8 = np.asarray(scene_image)
    strip = scene8[upper:lower, left:right].copy()
    image = _to_die_frame(scene_image, rotate_crop.angle, width, height)
    # Optics and sensor, in the camera's frame: a slight blur, then noise.
    image = image.filter(ImageFilter.BoxBlur(0.6))
    final = Image.fromarray(add_noise(np.asarray(image), light.noise, noise_rng), mode="L")
    return Rendered(final, strip, label, lib, window, drift_kind)


def _to_die_frame(scene: Image.Image, angle: float, width: int, height: int) -> Image.Image:
    """Turn the canvas back by ``-angle`` and cut the die image from its centre.

    The inverse of PIL's ``rotate(angle, expand=True)``: both turn about the centre.
    """
    fill = int(np.median(np.asarray(scene)[::16, ::16]))
    turned = scene.rotate(-angle, resample=Image.Resampling.NEAREST, fillcolor=fill)
    x0 = (scene.width - width) // 2
    y0 = (scene.height - height) // 2
    return turned.crop((x0, y0, x0 + width, y0 + height))
