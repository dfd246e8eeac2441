"""The image-quality detector: its statistics by hand, blur and exposure faults found, and its
place in an ensemble (fitted, calibrated, saved in the ONNX graph)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.drift.conftest import normal_images
from vqc.drift import ForwardOutputs, build_detector, forward_outputs
from vqc.drift.image_quality import STATISTICS, ImageQuality, image_statistics
from vqc.errors import ConfigError


def test_statistics_of_one_bright_pixel_by_hand() -> None:
    image = torch.zeros(1, 1, 8, 8)
    image[0, 0, 2, 2] = 1.0
    stats = dict(zip(STATISTICS, image_statistics(image)[0].tolist(), strict=True))
    # Laplacian over the 6x6 valid positions: -4 at the pixel, 1 at its 4 neighbours
    assert stats["log_laplacian"] == pytest.approx(math.log(20 / 36 + 1e-8), rel=1e-5)
    # one +1 and one -1 difference along each axis, among 8x7 differences
    assert stats["log_gradient"] == pytest.approx(math.log(2 / 56 * 2 + 1e-8), rel=1e-5)
    # at half resolution the pixel is 0.25 in a 4x4 image: Laplacian -1, 0.25, 0.25, 0
    assert stats["log_laplacian_half"] == pytest.approx(math.log(1.125 / 4 + 1e-8), rel=1e-5)
    assert stats["log_gradient_half"] == pytest.approx(math.log(0.125 / 12 * 2 + 1e-8),
                                                       rel=1e-5)
    assert stats["mean"] == pytest.approx(1 / 64)
    assert stats["log_std"] == pytest.approx(math.log(1 / 8), rel=1e-5)  # unbiased: 1/64
    assert (stats["q01"], stats["q50"], stats["q99"]) == (0.0, 0.0, 0.0)  # 1 of 64 is bright
    bright = torch.ones(1, 3, 8, 8)
    assert image_statistics(bright)[0, STATISTICS.index("q99")] == 1.0
    with pytest.raises(ConfigError, match="6x6"):
        image_statistics(torch.zeros(1, 1, 5, 8))


def _outputs(images: torch.Tensor) -> ForwardOutputs:
    return ForwardOutputs(images=images)


@pytest.mark.parametrize("fault", ["blur", "dark", "flat"])
def test_imaging_faults_score_far_above_the_calibrated_threshold(fault: str) -> None:
    g = torch.Generator().manual_seed(0)
    train, val, probe = (normal_images(n, g) for n in (120, 80, 10))
    detector = ImageQuality()
    detector.fit([(_outputs(train[:50]), torch.zeros(50)), (_outputs(train[50:]), torch.zeros(70))])
    threshold = detector.calibrate_scores(detector.score(_outputs(val)), target_rate=0.05)
    if fault == "blur":
        faulty = F.avg_pool2d(probe, 3, stride=1, padding=1, count_include_pad=False)
    elif fault == "dark":
        faulty = probe * 0.3
    else:
        faulty = 0.5 + 0.3 * (probe - 0.5)
    assert (detector.score(_outputs(faulty)) > threshold.threshold).all()
    assert float((detector.score(_outputs(probe)) > threshold.threshold).double().mean()) <= 0.3
    with pytest.raises(ConfigError, match=r"ForwardOutputs\.images"):
        detector.score(ForwardOutputs(pooled=torch.zeros(2, 9)))


def test_it_is_built_by_name_and_reads_the_classifier_input(cnn) -> None:
    detector = build_detector("image_quality", {"fit_on": "good"})
    assert isinstance(detector, ImageQuality) and detector.good_only
    images = normal_images(6, torch.Generator().manual_seed(2))
    outputs = forward_outputs(cnn, images)
    assert outputs.images is images
    assert torch.equal(outputs.rows(torch.arange(6) < 2).images, images[:2])
