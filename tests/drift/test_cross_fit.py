"""Drift calibrated by cross-fitting on training and validation images together."""

import pytest
import torch

from tests.drift.conftest import anomalous_images, normal_images
from vqc.drift import PooledGaussian, build_ensemble, drift_settings, forward_outputs
from vqc.drift.threshold import calibrate_threshold, class_rate_threshold
from vqc.errors import ConfigError
from vqc.inspection.cross_fit import cross_fit_drift, fold_of

DETECTORS = {"stats": {"type": "pooled", "layer": "block1"},
             "gate": {"type": "pooled", "fit_on": "good", "role": "defect"}}


def test_folds_are_random_balanced_and_repeatable():
    fold = fold_of(10, 3, seed=1)
    assert sorted(torch.bincount(fold).tolist()) == [3, 3, 4]
    assert torch.equal(fold, fold_of(10, 3, seed=1))
    assert not torch.equal(fold, fold_of(10, 3, seed=2))


@pytest.mark.parametrize("rates", [None, {0: 0.1, 1: 0.3}])
def test_drift_is_refitted_on_every_image_and_calibrated_out_of_fold(cnn, rates):
    settings = drift_settings({"cross_fit": 3, "target_rate": 0.1, "detectors": DETECTORS},
                              good_code=0)
    g = torch.Generator().manual_seed(5)
    images = normal_images(60, g)
    codes = torch.tensor([0, 1] * 30)
    ensemble = build_ensemble(settings.detectors, cnn, 0.1, settings.roles)
    train = [(forward_outputs(cnn, images[:40], ensemble.layers), codes[:40], None)]
    val = [(forward_outputs(cnn, images[40:], ensemble.layers), codes[40:], None)]
    ensemble.fit(train)
    ensemble.calibrate(val, good_code=0)
    gate_limit = ensemble.detectors["gate"].threshold.threshold

    def batches(rows):
        return [(forward_outputs(cnn, images[rows], ["block1"]), codes[rows], None)]

    fits = []
    cross_fit_drift(ensemble, settings, cnn, 60, batches, good_code=0,
                    progress=lambda: fits.append(1), class_rates=rates)
    assert len(fits) == 4  # 3 folds and the final fit
    assert int(ensemble.detectors["stats"].count) == 60  # refitted on all 60
    assert int(ensemble.detectors["gate"].count) == 20  # the 20 GOOD of training, as before
    assert ensemble.detectors["gate"].threshold.threshold == gate_limit
    # by hand: each fold scored by a detector fitted on the two others
    fold = fold_of(60, 3)
    outputs = forward_outputs(cnn, images, ["block1"])
    out_of_fold = torch.empty(60)
    for k in range(3):
        held = fold == k
        alone = PooledGaussian(layer="block1").fit([(outputs.rows(~held), codes[~held])])
        out_of_fold[held] = alone.score(outputs.rows(held))
    expected = (calibrate_threshold(out_of_fold, 0.1) if rates is None
                else class_rate_threshold(out_of_fold, codes, rates))
    assert ensemble.threshold.threshold == pytest.approx(expected, rel=1e-5)
    far = forward_outputs(cnn, anomalous_images(4, g), ["block1"])
    assert ensemble.combination().decide(ensemble.raw_scores(far), None)[3].all()


def test_a_drift_detector_on_the_embedding_is_not_cross_fitted():
    for bad in ({"cross_fit": 5, "type": "pooled"},
                {"cross_fit": 5, "detectors": {"pooled": {"type": "pooled"}}}):
        with pytest.raises(ConfigError, match=r"drift\.cross_fit=5: drift\.detectors\.pooled "
                                              r"reads the pooled embedding"):
            drift_settings(bad)
    drift_settings({"cross_fit": 5, "detectors": DETECTORS})  # the gate's embedding: allowed
    with pytest.raises(ConfigError, match=r"drift\.cross_fit=1: 0 \(calibrate on "
                                          r"validation\) or a number of folds >= 2"):
        drift_settings({"cross_fit": 1, "type": "pooled"})
    for value in (-2, 2.5, True):
        with pytest.raises(ConfigError, match=r"drift\.cross_fit=.*: must be an integer >= 0"):
            drift_settings({"cross_fit": value, "type": "pooled"})


@pytest.mark.parametrize("by_cost", [False, True])
def test_a_run_cross_fits_its_drift_on_training_and_validation_images(tmp_path, by_cost):
    from tests.training.conftest import fast_overrides, write_tiny_csv_set
    from tests.training.test_train import _cfg
    from vqc.inspection.inspector import Inspector
    from vqc.training.task import train

    data = write_tiny_csv_set(tmp_path / "set", per_class=12)
    overrides = [o for o in fast_overrides(data, tmp_path, "depth=2", "drift=stats_gate",
                                           "unfreeze=1",  # block1 frozen: cross-fit valid
                                           "drift.detectors.pooled.layer=block1",
                                           "drift.cross_fit=2", "figures.enabled=false",
                                           f"drift.rate_by_cost={str(by_cost).lower()}")
                 if not o.startswith("drift.n_features")]  # PaDiM's, not in stats_gate
    summary = train(_cfg(overrides, tmp_path / "run"))
    drift = Inspector.load(summary["inspector"]).drift
    assert int(drift.detectors["pooled"].count) == 36  # every labelled image: train and val
    assert int(drift.detectors["good_gate"].count) < 12  # GOOD of the training split only
    rates = drift.threshold.class_rates
    if not by_cost:
        assert rates == {}
        return
    # 12 GOOD images cannot bound GOOD's rate: said before training, in the run's warnings
    assert any(w.startswith("drift.rate_by_cost: ") and "GOOD parts called drift" in w
               for w in summary["warnings"])
    # the official costs: GOOD at the budget, a defect (1,000 against 10,000) at ten times it
    good = str(Inspector.load(summary["inspector"]).classes.good_code)
    target = drift.target_rate
    assert rates[good] == pytest.approx(target)
    assert sorted(r for code, r in rates.items() if code != good) == \
        pytest.approx([10 * target] * (len(rates) - 1))


def test_cross_fitting_the_embedding_is_refused_when_the_run_starts():
    """Before any data is read (the start-up layer check parses the drift settings)."""
    from hydra.core.global_hydra import GlobalHydra

    from vqc.config import compose
    from vqc.training.drift_layers import check_drift_layers

    GlobalHydra.instance().clear()
    cfg = compose("train", ["experiment=magnetic_tile", "drift=pooled_gate",
                            "+drift.cross_fit=5", "data.preprocess.size=[32,32]"])
    with pytest.raises(ConfigError, match=r"drift\.cross_fit=5: drift\.detectors\.pooled reads "
                                          r"the pooled embedding"):
        check_drift_layers(cfg)


def test_the_store_serves_any_rows_as_a_fresh_forward_pass_would(cnn):
    from vqc.inspection.cross_fit import OutputStore

    g = torch.Generator().manual_seed(2)
    images, codes = normal_images(10, g), torch.arange(10)
    libs = [f"lib{i % 3}" for i in range(10)]
    batches = [(forward_outputs(cnn, images[s:s + 4], ["block1"]), codes[s:s + 4],
                libs[s:s + 4]) for s in (0, 4, 8)]
    store = OutputStore.collect(batches, 10, batch_size=3)
    rows = torch.tensor([9, 0, 4, 5, 7])
    served = list(store.batches(rows))
    assert [len(b[0]) for b in served] == [3, 2]  # batch_size at a time
    direct = forward_outputs(cnn, images[rows], ["block1"])
    joined = torch.cat([b[0].maps["block1"] for b in served])
    assert torch.allclose(joined, direct.maps["block1"], atol=1e-5)
    assert torch.allclose(torch.cat([b[0].pooled for b in served]), direct.pooled, atol=1e-5)
    assert torch.equal(torch.cat([b[1] for b in served]), rows)
    assert [lib for b in served for lib in b[2]] == [libs[i] for i in rows.tolist()]


def test_outputs_over_the_memory_budget_are_not_kept(cnn):
    from vqc.inspection.cross_fit import OutputStore

    images = normal_images(4, torch.Generator().manual_seed(0))
    batches = [(forward_outputs(cnn, images, ["block1"]), torch.zeros(4), None)]
    assert OutputStore.collect(batches, 4, 2, max_bytes=100) is None
    assert OutputStore.collect(batches, 4, 2) is not None


def test_only_detectors_of_trained_features_refuse_cross_fitting() -> None:
    """The pooled embedding is learnt by training; a frozen layer and the image's own pixels
    (image_quality, itself a pooled Gaussian) are not."""
    from vqc.drift.registry import detector_class

    assert detector_class("pooled").reads_trained_features({"layer": None})
    assert not detector_class("pooled").reads_trained_features({"layer": "stage2"})
    assert not detector_class("image_quality").reads_trained_features({})
    assert not detector_class("padim").reads_trained_features({"layers": ["block1"]})
    drift_settings({"cross_fit": 5, "detectors": {"quality": {"type": "image_quality"}}})
