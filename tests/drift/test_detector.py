"""The detector separates constructed anomalies, filters and groups its fit, saves and loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from sklearn.metrics import roc_auc_score

from tests.drift.conftest import anomalous_images, batches, normal_images
from vqc.drift import (
    GLOBAL,
    ClassifierFeatures,
    DriftConfig,
    DriftThreshold,
    PadimDetector,
    gaussian_blur,
)
from vqc.errors import ConfigError, DataError

LAYERS_CNN = ("block1", "block2", "block3")


def _auroc(detector: PadimDetector, generator: torch.Generator) -> float:
    normal = detector.score(normal_images(40, generator))
    anomalous = detector.score(anomalous_images(40, generator))
    labels = [0] * 40 + [1] * 40
    return float(roc_auc_score(labels, torch.cat([normal, anomalous]).numpy()))


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("model", "layers", "n_features"),
                         [("resnet18", ("layer1", "layer2", "layer3"), 100),
                          ("cnn", LAYERS_CNN, 40)])
def test_separates_constructed_anomalies(model: str, layers: tuple[str, ...], n_features: int,
                                         request: pytest.FixtureRequest) -> None:
    classifier = request.getfixturevalue(model)  # random init: no pretrained weights
    g = torch.Generator().manual_seed(1)
    detector = PadimDetector(ClassifierFeatures(classifier, layers), n_features=n_features)
    detector.fit(batches(normal_images(96, g), [40, 33, 23]))
    assert _auroc(detector, g) > 0.9


@pytest.mark.timeout(60)
def test_smoothed_upsampled_score_is_the_max_of_the_map(cnn) -> None:
    g = torch.Generator().manual_seed(2)
    source = ClassifierFeatures(cnn, LAYERS_CNN)
    detector = PadimDetector(source, n_features=20, sigma=4.0, upsample=True)
    detector.fit(batches(normal_images(48, g), [48]))
    images = anomalous_images(6, g)
    maps = detector.anomaly_map(images)
    assert maps.shape == (6, 32, 32)
    raw = detector.distance_map(images)  # block1 is 16x16
    assert raw.shape == (6, 16, 16)
    torch.testing.assert_close(detector.score(images), maps.amax(dim=(-2, -1)))
    expected = gaussian_blur(torch.nn.functional.interpolate(
        raw.unsqueeze(1), size=(32, 32), mode="bilinear", align_corners=False).squeeze(1), 4.0)
    torch.testing.assert_close(maps, expected)
    assert _auroc(detector, g) > 0.9
    with pytest.raises(ConfigError, match="image_size"):
        detector.score(source(images))
    torch.testing.assert_close(detector.score(source(images), image_size=(32, 32)),
                               detector.score(images))


@pytest.mark.timeout(60)
def test_fit_on_good_ignores_other_classes(cnn) -> None:
    g = torch.Generator().manual_seed(3)
    good, defects = normal_images(30, g), anomalous_images(20, g)
    images = torch.cat([good[:10], defects[:10], good[10:], defects[10:]])
    codes = torch.tensor([0] * 10 + [4] * 10 + [0] * 20 + [4] * 10)
    source = ClassifierFeatures(cnn, LAYERS_CNN)
    only_good = PadimDetector(source, n_features=20, fit_on="good").fit(
        batches(images, [7, 20, 1, 22], codes))
    reference = PadimDetector(source, n_features=20).fit(batches(good, [30]))
    assert only_good.gaussians[GLOBAL].count == 30
    probe = anomalous_images(4, g)
    torch.testing.assert_close(only_good.score(probe), reference.score(probe), rtol=1e-4, atol=1e-4)
    with pytest.raises(DataError, match="GOOD"):
        PadimDetector(source, n_features=20, fit_on="good").fit(
            batches(defects, [20], torch.full((20,), 4)))


@pytest.mark.timeout(60)
def test_per_lib_gaussians(cnn) -> None:
    g = torch.Generator().manual_seed(4)
    dark, bright = normal_images(30, g) * 0.5, (normal_images(30, g) + 0.4).clamp(0, 1)
    images = torch.cat([dark, bright])
    libs = ["Die01"] * 30 + ["Die02"] * 30
    order = torch.randperm(60, generator=g)
    images, libs = images[order], [libs[i] for i in order]
    source = ClassifierFeatures(cnn, LAYERS_CNN)
    per_lib = PadimDetector(source, n_features=20, fit_on="per_lib").fit(
        batches(images, [25, 35], libs=libs))
    assert set(per_lib.gaussians) == {GLOBAL, "Die01", "Die02"}
    assert per_lib.gaussians["Die01"].count == per_lib.gaussians["Die02"].count == 30
    pooled = PadimDetector(source, n_features=20).fit(batches(images, [60]))
    torch.testing.assert_close(per_lib.gaussians[GLOBAL].mean, pooled.gaussians[GLOBAL].mean)
    torch.testing.assert_close(per_lib.gaussians[GLOBAL].inv_covariance,
                               pooled.gaussians[GLOBAL].inv_covariance, rtol=1e-4, atol=1e-4)
    # a bright image is normal for Die02 and far from Die01's Gaussian
    probe = (normal_images(4, g) + 0.4).clamp(0, 1)
    as_die02 = per_lib.score(probe, ["Die02"] * 4)
    as_die01 = per_lib.score(probe, ["Die01"] * 4)
    assert bool((as_die01 > 2 * as_die02).all())
    # unknown libs and no libs use the global Gaussian
    torch.testing.assert_close(per_lib.score(probe, ["Die09"] * 4), per_lib.score(probe))
    mixed = per_lib.score(probe, ["Die01", "Die02", "Die01", "Die02"])
    torch.testing.assert_close(mixed[1::2], as_die02[1::2])
    with pytest.raises(ConfigError, match="libs"):
        PadimDetector(source, n_features=20, fit_on="per_lib").fit(batches(images, [60]))


@pytest.mark.timeout(60)
def test_save_load_round_trip(cnn, tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(5)
    images, libs = normal_images(40, g), ["A", "B"] * 20
    source = ClassifierFeatures(cnn, LAYERS_CNN)
    detector = PadimDetector(source, n_features=20, fit_on="per_lib", sigma=1.0, seed=11)
    detector.fit(batches(images, [40], libs=libs))
    detector.threshold = DriftThreshold(3.0, {"A": 2.5})
    path = tmp_path / "drift.safetensors"
    detector.save(path)
    loaded = PadimDetector.load(path, source)
    assert loaded.config == detector.config and loaded.threshold == detector.threshold
    assert torch.equal(loaded.embedding.idx, detector.embedding.idx)
    probe, probe_libs = anomalous_images(6, g), ["A", "B", "C"] * 2
    assert torch.equal(loaded.score(probe, probe_libs), detector.score(probe, probe_libs))
    assert torch.equal(loaded.is_drift(probe, probe_libs), detector.is_drift(probe, probe_libs))
    assert all(isinstance(v, torch.Tensor) for v in detector.state_dict().values())


def test_calibrate_from_batches(cnn) -> None:
    g = torch.Generator().manual_seed(6)
    source = ClassifierFeatures(cnn, LAYERS_CNN)
    detector = PadimDetector(source, n_features=20).fit(batches(normal_images(40, g), [40]))
    val = torch.cat([normal_images(30, g), anomalous_images(10, g)])
    codes = torch.tensor([0] * 30 + [6] * 10)
    threshold = detector.calibrate(batches(val, [16, 24], codes), drift_code=6)
    assert threshold.method == "f1" and detector.threshold is threshold
    assert float(detector.is_drift(val[30:]).double().mean()) >= 0.8
    with pytest.warns(UserWarning, match="cannot bound"):
        detector.calibrate(batches(val[:30], [30]))


def test_configuration_errors(cnn) -> None:
    source = ClassifierFeatures(cnn, LAYERS_CNN)
    with pytest.raises(ConfigError, match="fit_on"):
        DriftConfig(fit_on="some")
    with pytest.raises(ConfigError, match="differ"):
        PadimDetector(source, config=DriftConfig(layers=("block1",)))
    with pytest.raises(ConfigError, match="not fitted"):
        PadimDetector(source, n_features=20).score(torch.rand(1, 1, 32, 32))
    with pytest.raises(ConfigError, match="feature source"):
        PadimDetector(None, n_features=20).embed(torch.rand(1, 1, 32, 32))
