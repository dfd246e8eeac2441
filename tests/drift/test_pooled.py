"""The pooled-feature detector: Ledoit-Wolf covariance (against sklearn and by hand), streaming
fit, Mahalanobis score, calibration to the false-drift budget."""

from __future__ import annotations

import pytest
import torch

from tests.drift.conftest import anomalous_images, normal_images
from vqc.drift import PooledGaussian, StreamingMoments, build_ensemble, forward_outputs, ledoit_wolf
from vqc.drift.pooled import channel_statistics
from vqc.errors import ConfigError


def _features(n: int, p: int, seed: int) -> torch.Tensor:
    """Correlated features far from the origin (the fit must centre them)."""
    g = torch.Generator().manual_seed(seed)
    mixing = torch.randn(p, p, generator=g, dtype=torch.float64)
    return 5.0 + torch.randn(n, p, generator=g, dtype=torch.float64) @ mixing


@pytest.mark.parametrize(("n", "p"), [(40, 6), (8, 20)])  # more images than features, fewer
def test_ledoit_wolf_equals_sklearn(n: int, p: int) -> None:
    covariance_module = pytest.importorskip("sklearn.covariance")
    x = _features(n, p, seed=n)
    expected, expected_shrinkage = covariance_module.ledoit_wolf(x.numpy())
    ours, shrinkage = ledoit_wolf(x)
    assert shrinkage == pytest.approx(expected_shrinkage, rel=1e-9)
    torch.testing.assert_close(ours, torch.from_numpy(expected), rtol=1e-9, atol=1e-12)
    assert 0.0 < shrinkage < 1.0


def test_ledoit_wolf_by_hand() -> None:
    # the four points +-e1, +-e2: S = I / 2 already a multiple of I, so nothing is shrunk
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], dtype=torch.float64)
    covariance, shrinkage = ledoit_wolf(x + 3.0)
    assert shrinkage == 0.0
    torch.testing.assert_close(covariance, torch.eye(2, dtype=torch.float64) / 2)
    # (0,0), (2,0), (0,2), (4,4): mean (1.5, 1.5), S = [[2.75, 1.75], [1.75, 2.75]],
    # mu = 2.75, delta = ||S - mu I||^2 / 2 = 3.0625, ||S||^2 = 21.25,
    # sum ||x - m||^4 = 4.5^2 + 2.5^2 + 2.5^2 + 12.5^2 = 189,
    # beta = (189 / 4 - 21.25) / (2 * 4) = 3.25 > delta: clamped, shrinkage 1, S -> mu I
    y = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [4.0, 4.0]], dtype=torch.float64)
    covariance, shrinkage = ledoit_wolf(y)
    assert shrinkage == pytest.approx(1.0)
    torch.testing.assert_close(covariance, 2.75 * torch.eye(2, dtype=torch.float64))
    # (0,0), (2,0), (0,2), (2,2), (7,1): mean (2.2, 1), S = diag(6.56, 0.8), mu = 3.68,
    # delta = (2.88^2 + 2.88^2) / 2 = 8.2944, ||S||^2 = 43.6736,
    # sum ||x - m||^4 = 2 * 5.84^2 + 2 * 1.04^2 + 23.04^2 = 601.216,
    # beta = (601.216 / 5 - 43.6736) / (2 * 5) = 7.65696 < delta: shrinkage beta / delta
    z = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0], [7.0, 1.0]],
                     dtype=torch.float64)
    covariance, shrinkage = ledoit_wolf(z)
    assert shrinkage == pytest.approx(7.65696 / 8.2944)
    expected = (1 - shrinkage) * torch.diag(torch.tensor([6.56, 0.8], dtype=torch.float64))
    torch.testing.assert_close(covariance, expected + shrinkage * 3.68 * torch.eye(
        2, dtype=torch.float64))


def test_streaming_moments_equal_one_pass() -> None:
    x = _features(37, 9, seed=1)
    moments = StreamingMoments()
    for start, stop in ((0, 1), (1, 12), (12, 30), (30, 37)):
        moments.update(x[start:stop])
    covariance, shrinkage = moments.ledoit_wolf()
    expected, expected_shrinkage = ledoit_wolf(x)
    assert shrinkage == pytest.approx(expected_shrinkage, rel=1e-9)
    torch.testing.assert_close(covariance, expected, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(moments.mean(), x.mean(0))


@pytest.mark.timeout(60)
def test_pooled_detector_scores_the_mahalanobis_distance(cnn) -> None:
    g = torch.Generator().manual_seed(0)
    train = normal_images(48, g)
    outputs = forward_outputs(cnn, train)
    detector = PooledGaussian(eps=1e-6)
    detector.fit([(outputs.rows(torch.arange(48) < 20), torch.zeros(20)),
                  (outputs.rows(torch.arange(48) >= 20), torch.zeros(28))])
    assert int(detector.count) == 48 and 0.0 < float(detector.shrinkage) < 1.0
    pooled = outputs.pooled.double()
    covariance, _ = ledoit_wolf(pooled)
    covariance += 1e-6 * torch.eye(len(covariance), dtype=torch.float64)
    probe = forward_outputs(cnn, anomalous_images(5, g))
    delta = probe.pooled.double() - pooled.mean(0)
    expected = (delta * torch.linalg.solve(covariance, delta.t()).t()).sum(1).sqrt()
    torch.testing.assert_close(detector.score(probe).double(), expected, rtol=1e-3, atol=1e-4)
    assert detector.score_columns(probe).shape == (5, 1)


@pytest.mark.timeout(60)
def test_pooled_detector_fit_on_good_and_calibration_budget(cnn) -> None:
    g = torch.Generator().manual_seed(1)
    images = torch.cat([normal_images(30, g), anomalous_images(30, g)])
    codes = torch.tensor([0] * 30 + [3] * 30)
    outputs = forward_outputs(cnn, images)
    good = PooledGaussian(fit_on="good").fit([(outputs, codes)])
    assert int(good.count) == 30
    reference = PooledGaussian().fit([(outputs.rows(codes == 0), codes[:30])])
    torch.testing.assert_close(good.mean, reference.mean)
    val = forward_outputs(cnn, normal_images(80, g))
    scores = good.score(val)
    threshold = good.calibrate_scores(scores, target_rate=0.1)
    assert float((scores > threshold.threshold).double().mean()) <= 0.1
    assert float(good.scale) == pytest.approx(float(torch.quantile(scores.double(), 0.9)))
    with pytest.raises(ConfigError, match="fit_on"):
        PooledGaussian(fit_on="per_lib")
    with pytest.raises(ConfigError, match="ForwardOutputs"):
        good.score(images)


def test_channel_statistics_by_hand() -> None:
    maps = torch.tensor([[[[1.0, 3.0], [1.0, 3.0]], [[2.0, 2.0], [2.0, 6.0]]]])  # (1, 2, 2, 2)
    # channel 0: mean 2, spread 1; channel 1: mean 3, spread sqrt((3 * 1 + 9) / 4)
    torch.testing.assert_close(channel_statistics(maps),
                               torch.tensor([[2.0, 3.0, 1.0, 3.0 ** 0.5]]))


def test_a_pooled_detector_on_a_layer_scores_its_channel_statistics(cnn) -> None:
    g = torch.Generator().manual_seed(3)
    detector = PooledGaussian(layer="block2", eps=1e-6)
    assert detector.layers == ("block2",)
    train = forward_outputs(cnn, normal_images(48, g), detector.layers)
    detector.fit([(train, torch.zeros(48))])
    features = channel_statistics(train.maps["block2"]).double()
    assert features.shape == (48, 2 * train.maps["block2"].shape[1])
    covariance, _ = ledoit_wolf(features)
    covariance += 1e-6 * torch.eye(len(covariance), dtype=torch.float64)
    probe = forward_outputs(cnn, anomalous_images(5, g), detector.layers)
    delta = channel_statistics(probe.maps["block2"]).double() - features.mean(0)
    expected = (delta * torch.linalg.solve(covariance, delta.t()).t()).sum(1).sqrt()
    torch.testing.assert_close(detector.score(probe).double(), expected, rtol=1e-3, atol=1e-4)
    # the embedding is not what it reads: another detector of the same images scores otherwise
    embedding = PooledGaussian(eps=1e-6).fit([(train, torch.zeros(48))])
    assert not torch.allclose(embedding.score(probe), detector.score(probe))
    with pytest.raises(ConfigError, match=r"reads layer 'block2', which the forward pass did "
                                          r"not give \(it gave \[\]\)"):
        detector.score(forward_outputs(cnn, anomalous_images(2, g)))
    with pytest.raises(ConfigError, match=r"drift\.layer='': a layer name or null"):
        PooledGaussian(layer="")
    with pytest.raises(ConfigError, match=r"drift\.layer=3: must be a string \(or null\)"):
        PooledGaussian(layer=3)


def test_an_ensemble_reads_the_layer_of_its_pooled_detector() -> None:
    drift = build_ensemble({"stats": ("pooled", {"layer": "block1"}),
                            "gate": ("pooled", {"fit_on": "good"})},
                           target_rate=0.1, roles={"stats": "drift", "gate": "defect"})
    assert drift.layers == ("block1",)
