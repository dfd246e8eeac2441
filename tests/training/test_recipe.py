"""Choices that follow the data (``auto`` values), and the default recipe end to end."""

import json
from types import SimpleNamespace

import pandas as pd
import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict

from tests.training.conftest import write_tiny_csv_set
from vqc.config import compose
from vqc.training.recipe import (
    MIN_EPOCHS,
    calibration_warnings,
    plan_epochs,
    resolve_data_choices,
    resolve_training_choices,
)
from vqc.training.task import train


@pytest.mark.parametrize(("images", "epochs", "limit"), [
    (862, 17, None),    # 27 batches: 450 / 27 = 16.7
    (1574, 9, None),    # 50 batches
    (96, 30, None),     # 3 batches: 150 epochs, capped at 30
    (13746, MIN_EPOCHS, 113),  # 430 batches: 4 epochs of ceil(450 / 4) batches
])
def test_epochs_aim_at_a_number_of_steps(images, epochs, limit):
    assert plan_epochs(images, 32) == (epochs, limit)


def _compose(root, *overrides):
    GlobalHydra.instance().clear()
    return compose("train", ["data=csv", f"data.root={root}", *overrides])


def test_a_csvs_mask_column_is_found_and_learnt_from(tmp_path):
    root = write_tiny_csv_set(tmp_path / "set", masks=True)
    cfg = _compose(root)
    choices = {c.key: c.value for c in resolve_data_choices(cfg)}
    assert choices["data.columns.mask"] == "mask" and cfg.data.columns.mask == "mask"
    assert choices["module.mask_weight"] == 1.0 and cfg.module.mask_weight == 1.0
    assert cfg.data.preprocess.size == [16, 16]  # 16x16 images: within 240x240, not enlarged
    assert resolve_data_choices(cfg) == []  # nothing left to choose


def test_a_set_without_masks_trains_without_them(tmp_path):
    root = write_tiny_csv_set(tmp_path / "set")
    cfg = _compose(root, "data.preprocess.auto_side=32")
    choices = {c.key: c.value for c in resolve_data_choices(cfg)}
    assert cfg.data.columns.mask is None and cfg.module.mask_weight == 0.0
    assert choices["data.preprocess.size"] == [16, 16]


def test_values_set_by_hand_are_kept(tmp_path):
    root = write_tiny_csv_set(tmp_path / "set", masks=True)
    cfg = _compose(root, "data.columns.mask=null", "module.mask_weight=0",
                   "data.preprocess.size=[24,40]")
    assert [c.key for c in resolve_data_choices(cfg)] == []
    assert list(cfg.data.preprocess.size) == [24, 40] and cfg.module.mask_weight == 0


def _datamodule(counts: dict[str, tuple[int, int]]):
    frame = pd.DataFrame({"train": [c[0] for c in counts.values()],
                          "val": [c[1] for c in counts.values()]}, index=list(counts))
    return SimpleNamespace(class_counts=lambda: frame,
                           classes=SimpleNamespace(open_set="drift", good="good"),
                           train_frame=range(sum(c[0] for c in counts.values())))


def test_too_few_calibration_images_are_warned_of_before_training(tmp_path):
    cfg = _compose(tmp_path)
    small = _datamodule({"good": (60, 15), "dent": (40, 10), "drift": (0, 0)})
    warnings = calibration_warnings(cfg, small)
    assert len(warnings) == 2
    assert warnings[0].startswith("drift calibration: 125 images (5-fold cross-fit")
    assert "15 validation GOOD images cannot bound" in warnings[1]
    with open_dict(cfg):
        cfg.drift.cross_fit = 0
    assert "25 images (validation)" in calibration_warnings(cfg, small)[0]
    large = _datamodule({"good": (600, 150), "dent": (400, 100), "drift": (0, 0)})
    assert calibration_warnings(cfg, large) == []


def test_epochs_and_class_shares_are_chosen_and_recorded(tmp_path):
    cfg = _compose(tmp_path)
    chosen = resolve_training_choices(cfg, _datamodule({"good": (600, 150), "dent": (200, 50),
                                                        "drift": (0, 0)}))
    values = {c.key: c.value for c in chosen}
    assert values["trainer.max_epochs"] == 18  # 800 images: 25 batches, 450 / 25
    assert cfg.trainer.max_epochs == values["trainer.max_epochs"]
    # data.balanced=sqrt: sqrt(600) = 24.49 and sqrt(200) = 14.14, of 38.64 together
    assert values["class_shares"] == {"good": 0.634, "dent": 0.366}
    cfg.data.balanced = True
    chosen = resolve_training_choices(cfg, _datamodule({"good": (600, 150), "dent": (200, 50),
                                                        "drift": (0, 0)}))
    assert {c.key: c.value for c in chosen}["class_shares"] == {"good": 0.5, "dent": 0.5}


def test_the_default_recipe_trains_and_says_what_it_chose(tmp_path):
    """No model, module or drift named: a pretrained EfficientNet-Lite1, fine-tuned, with
    the frozen-stage drift statistics, cross-fitted, and the CSV's masks."""
    root = write_tiny_csv_set(tmp_path / "set", per_class=10, masks=True)
    cfg = _compose(root, f"paths.data_dir={tmp_path / 'data'}",
                   f"paths.output_dir={tmp_path / 'out'}", "trainer.max_epochs=2",
                   "data.num_workers=0", "data.cache_workers=1", "data.batch_size=8",
                   "trainer.enable_progress_bar=false", "logger=csv", "figures.enabled=false",
                   "module.scheduler.head_only_epochs=0", "module.scheduler.warmup_epochs=0")
    with open_dict(cfg):
        cfg.paths.run_dir = str(tmp_path / "run")
    summary = train(cfg)
    chosen = {c["key"]: c["value"] for c in summary["choices"]}
    assert chosen["data.columns.mask"] == "mask" and chosen["module.mask_weight"] == 1.0
    assert chosen["data.preprocess.size"] == [16, 16]
    assert chosen["drift.detectors.pooled.layer"] == "stage2"
    saved = json.loads((tmp_path / "run" / "choices.json").read_text())
    assert saved == summary["choices"]
    assert summary["inspection"]["report"]["escapes"] is not None


def test_a_checkpoint_is_tested_at_the_size_its_run_chose(tmp_path):
    from vqc.training.recipe import reuse_run_choices

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "choices.json").write_text(json.dumps(
        [{"key": "data.preprocess.size", "value": [96, 128], "why": "..."},
         {"key": "trainer.max_epochs", "value": 9, "why": "..."},
         {"key": "trainer.limit_train_batches", "value": 113, "why": "..."}]))
    cfg = _compose(tmp_path)
    reused = reuse_run_choices(cfg, str(run / "members" / "1" / "checkpoints" / "best.ckpt"))
    assert list(cfg.data.preprocess.size) == [96, 128]  # found three folders up
    assert cfg.trainer.max_epochs == 9 and cfg.trainer.limit_train_batches == 113
    assert [c.key for c in reused] == ["data.preprocess.size", "trainer.max_epochs",
                                       "trainer.limit_train_batches"]
    by_hand = _compose(tmp_path, "trainer.max_epochs=3")
    reuse_run_choices(by_hand, str(run / "checkpoints" / "last.ckpt"))
    assert by_hand.trainer.max_epochs == 3  # a value set by hand wins
    other = _compose(tmp_path)
    reuse_run_choices(other, str(tmp_path / "elsewhere.ckpt"))  # no run folder: warned,
    assert other.data.preprocess.size == "auto"  # chosen from the data as training does


@pytest.mark.parametrize(("scores", "rate"), [(1076, 0.001), (1968, 0.001), (499, 0.002),
                                              (120, 0.005)])
def test_the_false_drift_budget_is_as_low_as_the_scores_bound(scores, rate):
    from vqc.training.recipe import plan_target_rate

    assert plan_target_rate(scores) == pytest.approx(rate)


def test_the_rate_is_chosen_from_the_cross_fitted_count(tmp_path):
    from vqc.training.recipe import resolve_drift_choices

    cfg = _compose(tmp_path)
    chosen, _ = resolve_drift_choices(cfg, _datamodule({"good": (300, 75), "dent": (100, 24),
                                                        "drift": (0, 0)}))
    assert cfg.drift.target_rate == pytest.approx(1 / 500)  # 499 scores: their largest
    assert [c.key for c in chosen] == ["drift.target_rate"]
    with open_dict(cfg):
        cfg.drift.cross_fit, cfg.drift.target_rate = 0, "auto"
    resolve_drift_choices(cfg, _datamodule({"good": (300, 75), "dent": (100, 24),
                                            "drift": (0, 0)}))
    assert cfg.drift.target_rate == 0.005  # 99 validation scores: the largest, warned of


def test_a_masks_folder_beside_the_class_folders_is_found_and_learnt_from(tmp_path):
    """root/ground_truth/<class>/<name>_mask.png, as MVTec AD lays it out: found, its suffix
    read off the files, the masks learnt from; a folder set without one trains without."""
    import numpy as np
    from PIL import Image

    root = tmp_path / "parts"
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 2)):
        for label in ("good", "crack"):
            for i in range(n):
                path = root / split / label / f"{split}{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(path)
                if label == "crack":
                    mask = root / "ground_truth" / label / f"{split}{i}_mask.png"
                    mask.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(np.full((16, 16), 255, dtype=np.uint8)).save(mask)
    GlobalHydra.instance().clear()
    cfg = compose("train", ["data=folders", f"data.root={root}"])
    choices = {c.key: c for c in resolve_data_choices(cfg)}
    assert choices["data.masks_root"].value == str(root / "ground_truth")
    assert "files named *_mask" in choices["data.masks_root"].why
    assert cfg.data.mask_suffix == "_mask" and cfg.module.mask_weight == 1.0
    from vqc.data.build import build_data_source

    train, _ = build_data_source(dict(cfg.data)).tables()
    assert set(train["label"]) == {"good", "crack"}  # ground_truth/ is no class
    assert train.loc[train["label"] == "crack", "mask"].notna().all()

    plain = tmp_path / "plain"
    for label in ("good", "crack"):
        (plain / label).mkdir(parents=True)
        Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(plain / label / "0.png")
    GlobalHydra.instance().clear()
    cfg = compose("train", ["data=folders", f"data.root={plain}"])
    choices = {c.key: c for c in resolve_data_choices(cfg)}
    assert choices["data.masks_root"].value is None and cfg.module.mask_weight == 0.0
