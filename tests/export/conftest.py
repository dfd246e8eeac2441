"""Small inspectors (random CNN weights, drift fitted on tiny images) and their ONNX exports."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.inspection.conftest import make_inspector, normal_image, tiny_model_and_spec
from vqc.drift import DriftThreshold, build_ensemble, forward_outputs
from vqc.export import export_onnx
from vqc.inspection.inspector import Inspector, shared_drift_detector

LIBS = ("Die01", "Die02")


def bright_image(rng: np.random.Generator, size: int = 24) -> np.ndarray:
    return (normal_image(rng, size).astype(np.int16) + 60).clip(0, 255).astype(np.uint8)


def make_per_lib_inspector(seed: int = 3) -> Inspector:
    """Per-lib Gaussians (Die01 images darker than Die02's), per-lib thresholds, and the
    optional upsampling and smoothing of the distance map."""
    model, spec = tiny_model_and_spec(seed, mean=[0.4], std=[0.2], temperature=1.2)
    drift = shared_drift_detector(model, layers=("block1", "block2"), n_features=12,
                                  fit_on="per_lib", sigma=1.0, upsample=True)
    rng = np.random.default_rng(seed)
    arrays = [normal_image(rng) if i % 2 == 0 else bright_image(rng) for i in range(48)]
    libs = [LIBS[i % 2] for i in range(48)]
    images = (torch.from_numpy(np.stack(arrays))[:, None].float() / 255 - 0.4) / 0.2
    codes = torch.zeros(48, dtype=torch.long)
    drift.fit([(images[:20], codes[:20], libs[:20]), (images[20:], codes[20:], libs[20:])])
    scores = drift.score(images, libs)
    per_lib = {lib: float(scores[i::2].max()) * 1.05 for i, lib in enumerate(LIBS)}
    drift.threshold = DriftThreshold(threshold=float(scores.max()) * 1.1, per_lib=per_lib)
    return Inspector(model, spec, drift)


@pytest.fixture(scope="module")
def inspector() -> Inspector:
    return make_inspector()


@pytest.fixture(scope="module")
def exported(inspector, tmp_path_factory):
    return export_onnx(inspector, tmp_path_factory.mktemp("onnx") / "inspector.onnx")


@pytest.fixture(scope="module")
def per_lib_inspector() -> Inspector:
    return make_per_lib_inspector()


@pytest.fixture(scope="module")
def per_lib_exported(per_lib_inspector, tmp_path_factory):
    return export_onnx(per_lib_inspector, tmp_path_factory.mktemp("onnx") / "per_lib.onnx")


def make_two_detector_inspector(seed: int = 5, gate: bool = False, pool: int = 1,
                                quality: bool = False) -> Inspector:
    """Per-lib PaDiM and the pooled Gaussian, fitted and calibrated through the ensemble;
    ``gate``: with a GOOD-only pooled Gaussian as the defect gate too; ``pool``: PaDiM's;
    ``quality``: with the image-quality detector as a third drift detector."""
    model, spec = tiny_model_and_spec(seed, mean=[0.4], std=[0.2])
    entries = {"padim": ("padim", {"layers": ["block1", "block2"], "n_features": 12,
                                   "fit_on": "per_lib", "pool": pool}),
               "pooled": ("pooled", {})}
    if quality:
        entries["quality"] = ("image_quality", {})
    roles = None
    if gate:
        entries["good_gate"] = ("pooled", {"fit_on": "good"})
        roles = {"good_gate": "defect"}
    drift = build_ensemble(entries, model, target_rate=0.1, roles=roles, gate_rate=0.1)
    rng = np.random.default_rng(seed)
    arrays = [normal_image(rng) if i % 2 == 0 else bright_image(rng) for i in range(120)]
    libs = [LIBS[i % 2] for i in range(120)]
    images = (torch.from_numpy(np.stack(arrays))[:, None].float() / 255 - 0.4) / 0.2
    codes = torch.zeros(120, dtype=torch.long)

    def batches(rows: slice):
        for start in range(rows.start, rows.stop, 30):
            part = slice(start, min(start + 30, rows.stop))
            yield forward_outputs(model, images[part], drift.layers), codes[part], libs[part]

    drift.fit(batches(slice(0, 60)))
    drift.calibrate(batches(slice(60, 120)), good_code=0)
    return Inspector(model, spec, drift)


@pytest.fixture(scope="module")
def two_detector_inspector() -> Inspector:
    return make_two_detector_inspector()
