"""``layer: auto``: the deepest feature layer that ``unfreeze`` leaves frozen."""

import pytest
from hydra.core.global_hydra import GlobalHydra

from vqc.config import compose
from vqc.training.drift_layers import cap_n_features, check_drift_layers


def _check(*overrides: str):
    GlobalHydra.instance().clear()
    cfg = compose("train", ["model.pretrained=false", "data.preprocess.size=[64,64]",
                            *overrides])
    check = check_drift_layers(cfg)
    cap_n_features(cfg, check)
    return cfg, check


@pytest.mark.parametrize(("model", "unfreeze", "layer"), [
    ("efficientnet_lite1", 14, "stage2"),   # stages 0-2 and stage 3's first block frozen
    ("efficientnet_lite0", 14, "stage1"),   # the stem and the first 3 blocks frozen
    ("efficientnet_lite1", 4, "stage4"),    # the head conv, stage 6 and two of stage 5 train
])
def test_auto_picks_the_deepest_frozen_layer(model, unfreeze, layer):
    cfg, check = _check(f"model={model}", f"unfreeze={unfreeze}")
    assert cfg.drift.detectors.pooled.layer == layer  # written into the run's config
    assert check.settings == {"drift.detectors.pooled.layer": layer}
    assert "frozen" in check.why["drift.detectors.pooled.layer"]
    assert not check.warnings


def test_with_nothing_frozen_auto_takes_the_first_layer_and_warns():
    cfg, check = _check("model=efficientnet_lite0", "unfreeze=-1")
    assert cfg.drift.detectors.pooled.layer == "stage0"
    assert check.why["drift.detectors.pooled.layer"] == "no layer is left frozen: the first"
    assert any("layers left frozen: none" in w for w in check.warnings)


def test_a_named_layer_is_kept():
    cfg, check = _check("model=efficientnet_lite1", "unfreeze=14",
                        "drift.detectors.pooled.layer=stage1")
    assert cfg.drift.detectors.pooled.layer == "stage1" and not check.settings


def test_cross_fitting_is_turned_off_on_a_trained_layer():
    """A model with every block trained (a from-scratch CNN under the default drift): its
    training images are no longer exchangeable with new ones, so no cross-fit."""
    from vqc.training.preflight import check_drift
    from vqc.training.recipe import Choice

    GlobalHydra.instance().clear()
    cfg = compose("train", ["model=cnn", "depth=3", "data.preprocess.size=[32,32]"])
    choices: list[Choice] = []
    warnings = check_drift(cfg, _model(cfg), choices)
    assert cfg.drift.cross_fit == 0
    assert any(w.startswith("drift.cross_fit=0: drift.detectors.pooled.layer") for w in warnings)
    assert ("drift.cross_fit", 0) in [(c.key, c.value) for c in choices]


def _model(cfg):
    from vqc.training.drift_layers import _model_from

    return _model_from(cfg)
