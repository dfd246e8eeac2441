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

Modules: ``counts`` (classes and how many of each), ``layout`` (dies, windows, strip geometry),
``paint`` (drawing primitives), ``scene`` (the die surface), ``wires`` (good bonds), ``defects``
(the class cues), ``drift`` (Drift kinds and foreign matter), ``camera`` (lighting and noise),
``render`` (one die image), ``plan`` (parameters and the image plan), ``manifest`` (the record of
a set), ``writer`` (files on disk) and ``cli`` (the command line).
"""

from vqc.data.synthetic.camera import Lighting
from vqc.data.synthetic.cli import main
from vqc.data.synthetic.counts import (
    BOUCLE_PLATE,
    DEFAULT_CLASS_FLOOR,
    DEFAULT_DRIFT_FRACTION,
    DIE_PREFERENCE,
    DRIFT,
    GOOD,
    LIFT_OFF_BLANC,
    LIFT_OFF_NOIR,
    MISSING,
    REAL_TRAIN_COUNTS,
    SHORT_CIRCUIT,
    TRAINED_CLASSES,
    class_counts,
    split_counts,
)
from vqc.data.synthetic.drift import DRIFT_KINDS
from vqc.data.synthetic.layout import DIE_SIZES, LIBS, STRIP_WIDTH, WINDOWS, DieStyle, Frame
from vqc.data.synthetic.manifest import (
    GENERATOR_VERSION,
    MANIFEST_NAME,
    SyntheticSummary,
    read_manifest,
)
from vqc.data.synthetic.plan import image_rng
from vqc.data.synthetic.render import Rendered, render_image
from vqc.data.synthetic.wires import Wire
from vqc.data.synthetic.writer import ensure_generated, generate

__all__ = [
    "BOUCLE_PLATE",
    "DEFAULT_CLASS_FLOOR",
    "DEFAULT_DRIFT_FRACTION",
    "DIE_PREFERENCE",
    "DIE_SIZES",
    "DRIFT",
    "DRIFT_KINDS",
    "GENERATOR_VERSION",
    "GOOD",
    "LIBS",
    "LIFT_OFF_BLANC",
    "LIFT_OFF_NOIR",
    "MANIFEST_NAME",
    "MISSING",
    "REAL_TRAIN_COUNTS",
    "SHORT_CIRCUIT",
    "STRIP_WIDTH",
    "TRAINED_CLASSES",
    "WINDOWS",
    "DieStyle",
    "Frame",
    "Lighting",
    "Rendered",
    "SyntheticSummary",
    "Wire",
    "class_counts",
    "ensure_generated",
    "generate",
    "image_rng",
    "main",
    "read_manifest",
    "render_image",
    "split_counts",
]
