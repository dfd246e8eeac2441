"""The detector computes what anomalib's PadimModel computes, with a streaming fit.

Same backbone weights and channel indices give the same embedding; the streaming Gaussian
gives anomalib's ``MultiVariateGaussian`` mean and inverse covariance; the scores and maps
equal ``PadimModel``'s eval forward (bilinear upsampling and sigma-4 blur included).
"""

from __future__ import annotations

import pytest
import torch

from vqc.drift import (
    GLOBAL,
    ClassifierFeatures,
    PadimDetector,
    PadimFeatures,
    limit_threads,
    mahalanobis,
    select_channels,
)
from vqc.models import build_model

anomalib_padim = pytest.importorskip("anomalib.models.image.padim.torch_model")

LAYERS = ("layer1", "layer2", "layer3")
N_FEATURES = 100
SEED = 5


@pytest.fixture(scope="module")
def padim() -> torch.nn.Module:
    """anomalib's PaDiM on a random-init resnet18 (448 channels), our seeded channel subset."""
    torch.manual_seed(0)
    model = anomalib_padim.PadimModel(backbone="resnet18", layers=list(LAYERS),
                                      pre_trained=False, n_features=N_FEATURES).eval()
    model.idx = select_channels(448, N_FEATURES, SEED)
    return model


@pytest.fixture(scope="module")
def twin(padim: torch.nn.Module):
    """The vqc resnet18 (timm, RGB) carrying the PaDiM extractor's weights."""
    model = build_model("resnet18", num_classes=1, in_channels=3, source="timm").eval()
    state = padim.feature_extractor.feature_extractor.state_dict()
    result = model.backbone.net.load_state_dict(state, strict=False)
    assert not result.unexpected_keys  # layer4 is missing: PaDiM stops at layer3
    assert result.missing_keys and all(k.startswith("layer4.") for k in result.missing_keys)
    return model


def _images(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def test_embedding_equals_padim_model(padim, twin) -> None:
    x = _images(3, 0)
    with torch.no_grad():
        expected = padim.generate_embedding(padim.feature_extractor(x))
    ours = PadimDetector(ClassifierFeatures(twin, LAYERS), n_features=N_FEATURES, seed=SEED)
    assert torch.equal(ours.embed(x), expected)
    via_padim = PadimDetector(PadimFeatures(padim), n_features=N_FEATURES, seed=SEED)
    assert torch.equal(via_padim.embed(x), expected)
    gray = x[:, :1]
    torch.testing.assert_close(via_padim.embed(gray), ours.embed(gray.expand(-1, 3, -1, -1)))


@pytest.mark.timeout(60)
def test_fit_and_scores_equal_padim_model(padim, twin) -> None:
    train = _images(24, 1)
    detector = PadimDetector(ClassifierFeatures(twin, LAYERS), n_features=N_FEATURES, seed=SEED,
                             eps=0.01 + 1e-5, sigma=4.0, upsample=True)  # anomalib adds 1e-5
    detector.fit([(train[:10], torch.zeros(10)), (train[10:], torch.zeros(14))])
    stats = detector.gaussians[GLOBAL]

    with torch.no_grad():
        stacked = padim.generate_embedding(padim.feature_extractor(train))
    gaussian = anomalib_padim.MultiVariateGaussian()
    with limit_threads(1):  # its batched torch.linalg.inv hangs with several threads
        mean, inv_covariance = gaussian.fit(stacked)
    torch.testing.assert_close(stats.mean, mean, rtol=1e-5, atol=1e-5)
    probe = _images(4, 2)
    with torch.no_grad():
        embedding = padim.generate_embedding(padim.feature_extractor(probe))
    distance = anomalib_padim.AnomalyMapGenerator.compute_distance
    torch.testing.assert_close(mahalanobis(embedding, stats.mean, stats.inv_covariance),
                               distance(embedding, [mean, inv_covariance]).squeeze(1),
                               rtol=1e-3, atol=1e-3)

    padim.gaussian.mean, padim.gaussian.inv_covariance = stats.mean, stats.inv_covariance
    with torch.no_grad():
        output = padim(probe)
    torch.testing.assert_close(detector.anomaly_map(probe), output.anomaly_map.squeeze(1),
                               rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(detector.score(probe), output.pred_score.reshape(-1),
                               rtol=1e-4, atol=1e-4)
