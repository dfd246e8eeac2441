"""bench.official: the official baseline's decisions, drift rule, channel subset, and the
plain-torch PaDiM matching anomalib's ``PadimModel`` (small inputs: the networks are full size).
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.official import (
    DRIFT_CLASS,
    OfficialPipeline,
    build_official,
    gaussian_kernel2d,
    official_channels,
)
from vqc.drift import select_channels

#: Small sizes keep the full-size networks fast: 20 px PaDiM input -> 5x5 positions.
CLASSIFIER_SIZE = 32
DRIFT_SIZE = 20
FIT_IMAGES = 3


def _fit_images(seed: int = 0) -> torch.Tensor:
    """The images build_official fits on."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(FIT_IMAGES, 1, DRIFT_SIZE, DRIFT_SIZE, generator=generator)


@pytest.fixture(scope="module")
def pipeline() -> OfficialPipeline:
    return build_official(fit_images=FIT_IMAGES, classifier_size=CLASSIFIER_SIZE,
                          drift_size=DRIFT_SIZE)


@pytest.fixture
def strips() -> torch.Tensor:
    return torch.rand(4, 1, 32, 16, generator=torch.Generator().manual_seed(1))


def test_decisions_shape_dtype_range(pipeline: OfficialPipeline, strips: torch.Tensor) -> None:
    assert not pipeline.training
    decisions = pipeline(strips)
    assert decisions.shape == (4,) and decisions.dtype == torch.int64
    assert bool(((decisions >= 0) & (decisions <= DRIFT_CLASS)).all())
    assert pipeline.classifier_forward(strips).shape == (4, 6)
    rgb = pipeline(strips.expand(-1, 3, -1, -1))  # gray repeated == gray
    assert torch.equal(rgb, decisions)


def test_drift_scores_min_max_normalised(pipeline: OfficialPipeline,
                                         strips: torch.Tensor) -> None:
    fit = pipeline.drift_scores(_fit_images())
    assert fit.min().item() == pytest.approx(0.0, abs=1e-5)
    assert fit.max().item() == pytest.approx(1.0, abs=1e-5)
    scores = pipeline.drift_scores(strips)
    assert scores.shape == (4,) and bool(((scores >= 0) & (scores <= 1)).all())


def test_drift_gate_at_one_half(pipeline: OfficialPipeline, strips: torch.Tensor,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    logits = torch.tensor([[5.0, 0, 0, 0, 0, 0], [0, 5.0, 0, 0, 0, 0],
                           [0, 0, 0, 0, 0, 5.0], [0, 0, 5.0, 0, 0, 0]])
    monkeypatch.setattr(pipeline, "classifier_forward", lambda images: logits)
    monkeypatch.setattr(pipeline, "drift_scores",
                        lambda images: torch.tensor([0.2, 0.5, 0.51, 0.9]))
    assert pipeline(strips).tolist() == [0, 1, DRIFT_CLASS, DRIFT_CLASS]


def test_unfitted_pipeline_refuses(pipeline: OfficialPipeline, strips: torch.Tensor,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "fitted", False)
    with pytest.raises(RuntimeError, match="fit_drift"):
        pipeline.drift_scores(strips)


def test_channels_550_of_1792_seed_1024(pipeline: OfficialPipeline) -> None:
    idx = official_channels()
    assert idx.tolist() == random.Random(1024).sample(range(1792), 550)
    assert idx.unique().numel() == 550 and int(idx.min()) >= 0 and int(idx.max()) < 1792
    assert torch.equal(idx.sort().values, select_channels(1792, 550, 1024, "python"))
    torch_idx = official_channels(sampler="torch")
    generator = torch.Generator().manual_seed(1024)
    assert torch.equal(torch_idx, torch.randperm(1792, generator=generator)[:550])
    assert torch.equal(pipeline.padim.idx, idx)
    assert sum(pipeline.padim.feature_net.feature_info.channels()) == 1792


def test_blur_kernel_is_anomalibs() -> None:
    blur = pytest.importorskip("anomalib.models.components.filters.blur")
    theirs = blur.GaussianBlur2d(sigma=(4, 4), channels=1, kernel_size=(33, 33)).kernel
    assert theirs.shape == gaussian_kernel2d(4.0).shape == (1, 1, 33, 33)
    torch.testing.assert_close(gaussian_kernel2d(4.0), theirs)


@pytest.fixture(scope="module")
def anomalib_pipeline(pipeline: OfficialPipeline) -> OfficialPipeline:
    pytest.importorskip("anomalib.models.image.padim.torch_model")
    other = OfficialPipeline(use_anomalib=True, classifier_size=CLASSIFIER_SIZE,
                             drift_size=DRIFT_SIZE).eval()
    other.copy_from(pipeline)
    return other


def test_torch_path_equals_anomalib(pipeline: OfficialPipeline,
                                    anomalib_pipeline: OfficialPipeline,
                                    strips: torch.Tensor) -> None:
    assert torch.equal(anomalib_pipeline.padim.idx, official_channels())
    with torch.no_grad():
        ours = pipeline.padim(pipeline._drift_input(strips))
        theirs = anomalib_pipeline.padim(anomalib_pipeline._drift_input(strips))
    assert ours.shape == theirs.shape == (4, 1, DRIFT_SIZE, DRIFT_SIZE)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(pipeline._raw_scores(strips),
                               anomalib_pipeline._raw_scores(strips))
    torch.testing.assert_close(pipeline.drift_scores(_fit_images()),
                               anomalib_pipeline.drift_scores(_fit_images()))
    assert torch.equal(pipeline(strips), anomalib_pipeline(strips))


def test_anomalib_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "anomalib.models.image.padim.torch_model", None)
    with pytest.raises(ImportError, match="use_anomalib=False"):
        OfficialPipeline(use_anomalib=True, classifier_size=CLASSIFIER_SIZE,
                         drift_size=DRIFT_SIZE)


@pytest.mark.slow
def test_anomalib_fit_matches_streaming_fit(pipeline: OfficialPipeline,
                                            anomalib_pipeline: OfficialPipeline) -> None:
    """anomalib's own Gaussian fit (one thread) gives the streaming fit's scores."""
    images = _fit_images()
    anomalib_pipeline.fit_drift(images)
    torch.testing.assert_close(anomalib_pipeline.padim.mean, pipeline.padim.mean,
                               rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        x = torch.rand(4, 1, 32, 16, generator=torch.Generator().manual_seed(2))
        torch.testing.assert_close(anomalib_pipeline._raw_scores(x), pipeline._raw_scores(x),
                                   rtol=1e-3, atol=1e-3)
    anomalib_pipeline.copy_from(pipeline)


@pytest.mark.slow
def test_import_does_not_load_anomalib() -> None:
    code = ("import sys, bench.official; "
            "sys.exit(any(m.split('.')[0] == 'anomalib' for m in sys.modules))")
    root = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False).returncode == 0
