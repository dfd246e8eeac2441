"""A user's own folder of images, with no drift class, through ``train.py`` and ``vqc-predict``:
trained, inspected, saved and predicting on the first try."""

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

from tests.training.conftest import fast_overrides
from tests.training.test_train import _cfg
from vqc.cli import predict as predict_cli
from vqc.config import compose
from vqc.errors import ConfigError
from vqc.training.task import train


def _image(rng: np.random.Generator, code: int, size: int = 16) -> Image.Image:
    array = rng.normal(60 + 60 * code, 10, (size, size)).clip(0, 255)
    if code == 1:
        array[:, size // 2] = 255
    return Image.fromarray(array.astype(np.uint8), mode="L")


def write_folders(root: Path, classes=("good", "scratch"), per_class: int = 10,
                  splits=("train", "test"), seed: int = 0) -> Path:
    """``root/<split>/<class>/*.png``: a user's own split folders, no drift class."""
    rng = np.random.default_rng(seed)
    for split in splits:
        for code, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class if split == "train" else 3):
                _image(rng, code).save(folder / f"{i}.png")
    return root


def _folders(root: Path, tmp: Path, *extra: str) -> list[str]:
    overrides = fast_overrides(root, tmp, "figures.enabled=false", "trainer.max_epochs=1",
                               *extra)
    return ["data=folders" if o == "data=csv" else o for o in overrides]


def test_folders_without_drift_class_give_an_inspector_that_flags_drift(tmp_path):
    root = write_folders(tmp_path / "parts")
    run = tmp_path / "run"
    summary = train(_cfg(_folders(root, tmp_path, "model=basic_cnn", "data.val_fraction=0.3"),
                         run))
    assert summary["test"]["class_names"] == ["good", "scratch", "drift"]
    assert Path(summary["inspector"]).is_file()
    inspection = summary["inspection"]
    assert inspection["drift_auroc"] is None and inspection["drift_recall"] is None
    assert 0.0 <= inspection["false_drift_rate"] <= 1.0
    report = (run / "inspection_report.md").read_text()
    assert "No drift figure (drift AUROC, drift caught) can be scored" in report
    assert "no images labelled 'drift'" in report
    # a validation split this small cannot bound a 0.5% false-drift rate: said, not hidden
    budget = [w for w in summary["warnings"] if "cannot bound a false-drift rate" in w]
    assert budget and budget[0] in report
    assert json.loads((run / "summary.json").read_text())["inspector"] == summary["inspector"]
    # new images: known ones and ones unlike anything trained on
    new = tmp_path / "new"
    new.mkdir()
    rng = np.random.default_rng(5)
    for i in range(3):
        _image(rng, 0).save(new / f"part_{i}.png")
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8).astype(np.uint8)
                        * 0 + 255, mode="L").save(new / f"white_{i}.png")
    out = tmp_path / "pred" / "predictions.csv"
    assert predict_cli.main(["--inspector", summary["inspector"], "--images", str(new),
                             "--out", str(out)]) == 0
    details = pd.read_csv(tmp_path / "pred" / "predictions_details.csv")
    decided = dict(zip(details["filename"], details["decision"], strict=True))
    assert {decided[f"white_{i}.png"] for i in range(3)} == {"drift"}
    assert set(decided.values()) <= {"good", "scratch", "drift"}
    # the submission's Label is the class's place in summary.json's classes
    assert summary["classes"] == ["good", "scratch", "drift"]
    labels = dict(zip(*pd.read_csv(out)[["filename", "Label"]].T.to_numpy(), strict=True))
    assert all(summary["classes"][int(labels[f])] == d for f, d in decided.items())


def test_basic_cnn_caps_n_features_before_training(tmp_path, monkeypatch):
    root = write_folders(tmp_path / "parts")
    trained = []
    import lightning

    fit = lightning.Trainer.fit
    monkeypatch.setattr(lightning.Trainer, "fit",
                        lambda self, *a, **k: (trained.append(cfg.drift.n_features),
                                               fit(self, *a, **k))[1])
    cfg = _cfg([*_folders(root, tmp_path, "model=basic_cnn", "inspector=true"),
                "drift.n_features=100"], tmp_path / "run")
    summary = train(cfg)
    assert trained == [24]  # capped before training (basic_cnn of width 8: 8 + 16 channels)
    assert any("n_features=100 is more than the 24 channels" in w for w in summary["warnings"])
    assert Path(summary["inspector"]).is_file()


@pytest.mark.parametrize(("overrides", "key"), [
    (["model=cnn", "depth=2", "drift.layers=[block2,block3,block4]"], "drift.layers"),
    (["model=cnn", "depth=2", "drift=padim_pooled",
      "drift.detectors.padim.layers=[layer1]"], "drift.detectors.padim.layers"),
])
def test_drift_layers_the_model_lacks_stop_the_run_before_training(tmp_path, monkeypatch,
                                                                    overrides, key):
    import lightning

    monkeypatch.setattr(lightning.Trainer, "fit", lambda *a, **k: pytest.fail("trained"))
    root = write_folders(tmp_path / "parts")
    composed = [o for o in _folders(root, tmp_path, *overrides)
                if not (o == "drift.n_features=8" and "drift=padim_pooled" in overrides)]
    with pytest.raises(ConfigError) as err:
        train(_cfg(composed, tmp_path / "run"))
    message = str(err.value)
    assert message.startswith(f"{key}=") and "\n" not in message
    assert "which has ['block1', 'block2']" in message


def test_scratch_experiment_swapped_to_resnet18_keeps_drift_working(tmp_path):
    """experiment=magnetic_tile_scratch names CNN blocks; with model=resnet18 its drift layers
    are refused before training, and drift.layers=null follows the model family."""
    from vqc.training.drift_layers import check_drift_layers

    GlobalHydra.instance().clear()
    cfg = compose("train", ["experiment=magnetic_tile_scratch", "model=resnet18",
                            "data.preprocess.size=[32,32]"])
    with pytest.raises(ConfigError, match=r"drift.layers=\['block2', 'block3', 'block4'\]: "
                                          r".* not layers of resnet18.*, which has \['layer1'"):
        check_drift_layers(cfg)
    GlobalHydra.instance().clear()
    cfg = compose("train", ["experiment=magnetic_tile_scratch", "model=resnet18",
                            "drift.layers=null", "data.preprocess.size=[32,32]"])
    assert check_drift_layers(cfg).warnings == []


def test_good_and_Good_are_one_class_with_a_warning(tmp_path, caplog):
    root = write_folders(tmp_path / "parts", classes=("good", "scratch"))
    rng = np.random.default_rng(1)
    (root / "train" / "Good ").mkdir()
    for i in range(4):
        _image(rng, 0).save(root / "train" / "Good " / f"g{i}.png")
    caplog.set_level(logging.WARNING)
    summary = train(_cfg(_folders(root, tmp_path, "inspector=false"), tmp_path / "run"))
    assert summary["test"]["class_names"] == ["good", "scratch"]
    assert summary["classes"] == ["good", "scratch"]  # no inspector: no drift answer
    merged = [w for w in summary["warnings"] if "class labels merged" in w]
    assert merged and "'Good ' -> 'good' (4 image(s))" in merged[0]


def test_a_cost_matrix_without_the_drift_answer_is_refused_before_training(tmp_path,
                                                                           monkeypatch):
    import lightning

    monkeypatch.setattr(lightning.Trainer, "fit", lambda *a, **k: pytest.fail("trained"))
    root = write_folders(tmp_path / "parts")
    with pytest.raises(ConfigError, match=r"module.cost_matrix is 2x2, for \['good', 'scratch'\]; "
                                          r"with drift on and no 'drift' images .* give a 3x3"):
        train(_cfg(_folders(root, tmp_path, "module.cost_matrix=[[0,1],[1,0]]"),
                   tmp_path / "run"))


def test_eval_of_an_own_data_checkpoint_fits_the_inspector_too(tmp_path, monkeypatch):
    from tests.training.test_eval import run_script
    from vqc.cli import eval as eval_cli

    root = write_folders(tmp_path / "parts")
    overrides = _folders(root, tmp_path, "model=basic_cnn", "data.val_fraction=0.3")
    summary = train(_cfg(overrides, tmp_path / "run"))
    best = summary["best_checkpoint"]
    out = tmp_path / "eval"
    # the best checkpoint holds the weights only: evaluated, never resumed from
    assert run_script(eval_cli.main, [*overrides, f"ckpt_path={best}", f"hydra.run.dir={out}"],
                      monkeypatch) == 0
    evaluated = json.loads((out / "summary.json").read_text())
    assert evaluated["test"]["class_names"] == ["good", "scratch", "drift"]
    assert evaluated["inspection"] == summary["inspection"]
    assert Path(evaluated["inspector"]).is_file()


def test_the_layer_of_a_pooled_drift_detector_is_checked_against_the_model():
    """drift=stats_gate reads EfficientNet's stage2; another backbone is told its layers before
    any data is read, and takes one of them."""
    from vqc.training.drift_layers import check_drift_layers

    GlobalHydra.instance().clear()
    cfg = compose("train", ["drift=stats_gate", "model=resnet18", "data.preprocess.size=[32,32]",
                            "drift.detectors.pooled.layer=stage2"])
    with pytest.raises(ConfigError, match=r"drift\.detectors\.pooled\.layer='stage2': not a "
                                          r"layer of resnet18 \(timm\), which has \['layer1'"):
        check_drift_layers(cfg)
    GlobalHydra.instance().clear()
    cfg = compose("train", ["drift=stats_gate", "model=resnet18", "data.preprocess.size=[32,32]",
                            "drift.detectors.pooled.layer=layer1", "unfreeze=6"])
    assert check_drift_layers(cfg).warnings == []  # 6 of 8 blocks trained: layer1 frozen


def test_a_drift_layer_that_unfreeze_trains_is_warned_of_with_the_frozen_ones():
    """experiment=magnetic_tile freezes Lite1's stages 0-2, so stage2 is as loaded; with Lite0
    the same unfreeze=14 trains stage2, and the check says which layers stay frozen."""
    from vqc.training.drift_layers import check_drift_layers

    GlobalHydra.instance().clear()
    cfg = compose("train", ["experiment=magnetic_tile", "data.preprocess.size=[32,32]"])
    assert check_drift_layers(cfg).warnings == []
    GlobalHydra.instance().clear()
    cfg = compose("train", ["experiment=magnetic_tile", "model=efficientnet_lite0",
                            "data.preprocess.size=[32,32]", "drift.detectors.pooled.layer=stage2"])
    (warning,) = check_drift_layers(cfg).warnings
    assert warning.startswith("drift.detectors.pooled.layer='stage2' is computed by blocks "
                              "that unfreeze=14 trains")
    assert warning.endswith("layers left frozen: ['stage0', 'stage1']")
