"""The detector family: one interface, a registry, the drift config group, and several
detectors combined into one decision."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from tests.drift.conftest import anomalous_images, normal_images
from vqc.drift import (
    DriftDetector,
    DriftEnsemble,
    PadimDetector,
    PooledGaussian,
    build_detector,
    build_ensemble,
    detector_types,
    drift_settings,
    forward_outputs,
    register,
)
from vqc.drift.registry import DETECTORS
from vqc.errors import ConfigError

LAYERS = ("block1", "block2")


def _batches(model, images: torch.Tensor, codes=None, libs=None, size: int = 25):
    codes = torch.zeros(len(images), dtype=torch.long) if codes is None else codes
    out = []
    for start in range(0, len(images), size):
        rows = slice(start, start + size)
        outputs = forward_outputs(model, images[rows], LAYERS)
        out.append((outputs, codes[rows], None if libs is None else libs[rows]))
    return out


@pytest.fixture(scope="module")
def fitted(cnn):
    """PaDiM and pooled, fitted on 60 normal images and calibrated on 80 others."""
    g = torch.Generator().manual_seed(0)
    ensemble = DriftEnsemble({"padim": PadimDetector(layers=LAYERS, n_features=10),
                              "pooled": PooledGaussian()})
    ensemble.fit(_batches(cnn, normal_images(60, g)))
    val = _batches(cnn, normal_images(80, g))
    ensemble.calibrate(val, target_rate=0.1)
    return ensemble, val, g


def test_registry_builds_by_name_and_refuses_unknown_names() -> None:
    assert {"padim", "pooled"} <= set(detector_types())
    detector = build_detector("pooled", {"fit_on": "good", "shrinkage": 0.5})
    assert isinstance(detector, PooledGaussian) and detector.config.shrinkage == 0.5
    with pytest.raises(ConfigError, match=r"'knn': unknown drift detector type; known: .*padim"):
        build_detector("knn")
    with pytest.raises(ConfigError, match=r"drift.detectors.pooled: unknown key\(s\) \['k'\]"):
        build_detector("pooled", {"k": 5}, where="drift.detectors.pooled")


def test_a_new_detector_is_one_class(cnn) -> None:
    @dataclass(frozen=True)
    class MaxLogitConfig:
        fit_on: str = "all"
        good_code: int = 0

    @register("max_logit_test")
    class MaxLogit(DriftDetector):
        """Drift = low top logit, from the logits of the same forward pass."""

        config_type = MaxLogitConfig

        def __init__(self, config=None, threshold=None):
            super().__init__(config or MaxLogitConfig(), threshold)
            self.register_buffer("offset", torch.empty(0))

        def reset_accumulators(self):
            self._tops = []

        def accumulate(self, outputs, libs):
            self._tops.append(outputs.logits.amax(dim=1))

        def finish_fit(self):
            self.offset = torch.cat(self._tops).mean().reshape(1)

        @property
        def fitted(self):
            return self.offset.numel() == 1

        def score_columns(self, outputs):
            return (self.offset - outputs.logits.amax(dim=1))[:, None]

    try:
        settings = drift_settings({"enabled": True, "detectors": {
            "maps": {"type": "padim", "layers": list(LAYERS), "n_features": 6},
            "top": {"type": "max_logit_test"}}}, good_code=0)
        ensemble = build_ensemble(settings.detectors, cnn)
        g = torch.Generator().manual_seed(3)
        ensemble.fit(_batches(cnn, normal_images(30, g)))
        assert ensemble.names == ["maps", "top"] and ensemble.layers == LAYERS
        raw = ensemble.raw_scores(_batches(cnn, normal_images(4, g))[0][0])
        assert raw.shape == (4, 2) and torch.isfinite(raw).all()
    finally:
        DETECTORS.remove("max_logit_test")


def test_drift_config_group_shapes(cnn) -> None:
    flat = drift_settings({"enabled": True, "type": "padim", "layers": None, "n_features": 8,
                           "target_rate": 0.01, "per_lib_thresholds": True}, good_code=2)
    assert flat.detectors == {"padim": ("padim", {"layers": None, "n_features": 8,
                                                  "good_code": 2})}
    assert flat.target_rate == 0.01 and flat.per_lib_thresholds
    padim = build_ensemble(flat.detectors, cnn).detectors["padim"]
    assert padim.layers == cnn.backbone.default_feature_layers  # layers: null
    assert drift_settings({"n_features": 8}).detectors["padim"][0] == "padim"  # no type: PaDiM
    with pytest.raises(ConfigError, match=r"drift: unknown key\(s\) \['colour'\]"):
        build_ensemble(drift_settings({"type": "padim", "colour": 1}).detectors, cnn)
    shared = drift_settings({"detectors": {"padim": {}, "pooled": {"eps": 0.1}}, "n_features": 3,
                             "eps": 0.2})  # beside detectors: defaults for those that have it
    assert shared.detectors["padim"][1] == {"n_features": 3, "eps": 0.2}
    assert shared.detectors["pooled"][1] == {"eps": 0.1}
    with pytest.raises(ConfigError, match=r"\['sigma'\] beside detectors are options of none"):
        drift_settings({"detectors": {"pooled": {}}, "sigma": 3})
    with pytest.raises(ConfigError, match="target_rate"):
        drift_settings({"target_rate": 2.0})


def test_hydra_overrides_reach_each_detector() -> None:
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from vqc.config import compose

    def settings(*overrides: str):
        GlobalHydra.instance().clear()
        cfg = compose("train", list(overrides))
        return drift_settings(OmegaConf.to_container(cfg.drift, resolve=True), 0)

    both = settings("drift=padim_pooled", "drift.detectors.padim.n_features=7",
                    "drift.detectors.pooled.fit_on=good", "drift.target_rate=0.01")
    assert list(both.detectors) == ["padim", "pooled"] and both.target_rate == 0.01
    assert both.detectors["padim"][1]["n_features"] == 7
    assert both.detectors["pooled"] == ("pooled", {"fit_on": "good", "shrinkage": None,
                                                   "eps": 1e-6, "good_code": 0})
    old = settings("drift=padim", "drift.layers=[block1,block2]", "drift.n_features=9",
                   "drift.fit_on=good")
    assert old.detectors["padim"][0] == "padim"
    assert old.detectors["padim"][1]["layers"] == ["block1", "block2"]
    assert old.detectors["padim"][1]["fit_on"] == "good"
    assert settings("drift=pooled").detectors["pooled"][0] == "pooled"
    demo = settings("experiment=magnetic_tile_scratch", "drift=padim_pooled")  # drift.layers
    assert demo.detectors["padim"][1]["layers"] == ["block2", "block3", "block4"]
    GlobalHydra.instance().clear()
    assert not compose("train", ["drift=none"]).drift.enabled


def test_one_detector_is_the_old_behaviour(cnn) -> None:
    g = torch.Generator().manual_seed(4)
    train = _batches(cnn, normal_images(40, g))
    alone = PadimDetector(layers=LAYERS, n_features=10).fit(train)
    twin = PadimDetector(layers=LAYERS, n_features=10).fit(train)
    val = _batches(cnn, torch.cat([normal_images(30, g), anomalous_images(10, g)]),
                   codes=torch.tensor([0] * 30 + [6] * 10))
    ensemble = DriftEnsemble([twin])
    expected = alone.calibrate(val, drift_code=6)
    assert ensemble.calibrate(val, drift_code=6) == expected
    probe = forward_outputs(cnn, anomalous_images(5, g), LAYERS)
    torch.testing.assert_close(ensemble.score(probe), alone.score(probe))  # not divided
    decision = ensemble.combination().decide(ensemble.raw_scores(probe), None)
    assert torch.equal(decision[3], alone.is_drift(probe))
    assert decision[1].tolist() == [0] * 5


def test_two_detectors_combine_by_the_max_of_normalised_scores(cnn, fitted) -> None:
    ensemble, val, g = fitted
    padim, pooled = ensemble.detectors["padim"], ensemble.detectors["pooled"]
    scores = {name: torch.cat([d.score(o) for o, _, _ in val])
              for name, d in ensemble.detectors.items()}
    for name, detector in ensemble.detectors.items():  # each: its own budget and scale
        normal = scores[name].double().sort().values
        position = 0.9 * (len(normal) - 1)  # the 90% quantile, linear between two scores
        below = math.floor(position)
        expected = normal[below] + (position - below) * (normal[below + 1] - normal[below])
        assert float(detector.scale) == pytest.approx(float(expected), rel=1e-6)
        assert float((scores[name] > detector.threshold.threshold).double().mean()) <= 0.1
    probe = forward_outputs(cnn, torch.cat([normal_images(3, g), anomalous_images(3, g)]),
                            LAYERS)
    raw = ensemble.raw_scores(probe)
    normalised = torch.stack([padim.score(probe) / padim.scale,
                              pooled.score(probe) / pooled.scale], dim=1)
    combined, which = ensemble.combination().combine(raw)
    torch.testing.assert_close(combined, normalised.amax(dim=1))
    assert torch.equal(which, normalised.argmax(dim=1))
    # one threshold on the combined score, within the budget on validation
    val_combined = torch.cat([ensemble.score(o) for o, _, _ in val])
    assert float((val_combined > ensemble.threshold.threshold).double().mean()) <= 0.1
    assert ensemble.threshold.target_rate == 0.1


def test_ensemble_save_and_restore(cnn, fitted, tmp_path) -> None:
    ensemble, _, g = fitted
    restored = DriftEnsemble.restore(ensemble.describe(), ensemble.threshold.to_dict(),
                                     ensemble.tensors())
    probe = forward_outputs(cnn, anomalous_images(4, g), LAYERS)
    assert torch.equal(restored.raw_scores(probe), ensemble.raw_scores(probe))
    assert torch.equal(restored.combination().scales, ensemble.combination().scales)
    assert restored.threshold == ensemble.threshold
    pooled = ensemble.detectors["pooled"]
    pooled.save(tmp_path / "pooled.safetensors")
    loaded = PooledGaussian.load(tmp_path / "pooled.safetensors")
    assert torch.equal(loaded.score(probe), pooled.score(probe))
    assert loaded.threshold == pooled.threshold and float(loaded.scale) == float(pooled.scale)
    assert set(pooled.state_dict()) == {"scale", "mean", "inv_covariance", "shrinkage", "count"}


def test_overlay_maps_come_from_the_detector_that_makes_them(cnn, fitted) -> None:
    ensemble, _, g = fitted
    images = anomalous_images(3, g)
    maps = forward_outputs(cnn, images, LAYERS).maps
    torch.testing.assert_close(ensemble.anomaly_map(maps, None, (32, 32)),
                               ensemble.detectors["padim"].anomaly_map(maps))
    pooled_only = DriftEnsemble([ensemble.detectors["pooled"]])
    assert pooled_only.layers == () and pooled_only.config.layers == ()
    blank = pooled_only.anomaly_map({}, ["Die01"] * 3, (32, 32))
    assert blank.shape == (3, 32, 32) and not blank.any()


def test_a_layer_beside_detectors_is_refused_not_shared() -> None:
    """A pooled detector's ``layer`` is its own: null reads the embedding, a choice too."""
    with pytest.raises(ConfigError, match=r"drift\.layer='stage2' beside detectors: .* set "
                                          r"drift\.detectors\.<name>\.layer, one of "
                                          r"\['gate', 'stats'\]"):
        drift_settings({"layer": "stage2", "detectors": {
            "stats": {"type": "pooled"}, "gate": {"type": "pooled", "fit_on": "good",
                                                  "role": "defect"}}})
    settings = drift_settings({"layer": None, "detectors": {"stats": {"type": "pooled"}}})
    assert settings.detectors["stats"][1]["layer"] is None


def test_the_image_quality_detector_refuses_a_layer() -> None:
    from vqc.drift.image_quality import ImageQuality

    assert ImageQuality().layers == ()
    with pytest.raises(ConfigError, match=r"reads the image, not a layer \(layer='block1'\)"):
        ImageQuality(layer="block1")
