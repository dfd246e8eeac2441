"""The training task end to end on tiny images, composed from the real config."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict

from tests.training.conftest import fast_overrides
from tests.training.wandb_records import (
    closed,
    output_text,
    run_config,
    run_group,
    run_record,
)
from vqc.config import compose
from vqc.errors import ConfigError
from vqc.training.task import train

ROOT = Path(__file__).resolve().parents[2]


def _cfg(overrides: list[str], run_dir: Path):
    GlobalHydra.instance().clear()
    cfg = compose("train", overrides)
    with open_dict(cfg):
        cfg.paths.run_dir = str(run_dir)
    return cfg


@pytest.mark.parametrize("model", ["basic_cnn", "cnn", "resnet18"])
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_each_family_trains_one_fast_dev_run_step(tiny_csv_set, tmp_path, model, mode):
    cfg = _cfg(fast_overrides(tiny_csv_set, tmp_path, f"model={model}", "depth=2",
                              f"data.preprocess.mode={mode}", "trainer.fast_dev_run=1",
                              "test=false", "figures.enabled=false"), tmp_path / "run")
    summary = train(cfg)
    assert summary["epochs"] == 1


def test_training_writes_checkpoints_summary_and_figures(tiny_csv_set, tmp_path):
    run = tmp_path / "run"
    cfg = _cfg(fast_overrides(tiny_csv_set, tmp_path, "depth=2"), run)
    summary = train(cfg)
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert Path(summary["best_checkpoint"]).is_file()
    test = summary["test"]
    assert test["class_names"] == ["good", "dent", "scratch", "drift"]
    assert sum(test["support"]) == 12  # 3 per class, drift included
    assert {"pwa", "escapes", "recall"} <= set(test)
    assert set(summary["test_decisions"]) == {"argmax", "bayes"}
    assert (run / "figures" / "test_confusion.png").is_file()
    assert (run / "test_report.md").read_text().count("PWA") >= 1
    assert json.loads((run / "summary.json").read_text())["epochs"] == 2
    # then the whole inspection: drift fitted, scored on test, saved as one artifact
    assert Path(summary["inspector"]).is_file()
    inspection = summary["inspection"]
    assert 0.0 <= inspection["drift_auroc"] <= 1.0
    assert 0.0 <= inspection["false_drift_rate"] <= 1.0
    predictions = (run / "test_predictions.csv").read_text().splitlines()
    assert len(predictions) == 1 + 12 and predictions[0].startswith("filename,label,decision")


def test_random_frozen_blocks_are_warned_about_in_summary_and_reports(tiny_csv_set, tmp_path):
    run = tmp_path / "run"
    cfg = _cfg(fast_overrides(tiny_csv_set, tmp_path, "depth=2", "unfreeze=1",
                              "figures.enabled=false", "trainer.max_epochs=1"), run)
    summary = train(cfg)
    frozen = [w for w in summary["warnings"] if "RANDOM" in w]
    assert len(frozen) == 1 and frozen[0] == summary["warnings"][0]
    assert json.loads((run / "summary.json").read_text())["warnings"] == summary["warnings"]
    for report in ("test_report.md", "inspection_report.md"):
        assert (run / report).read_text().startswith("> **WARNING**: unfreeze=1 freezes")
    quiet = _cfg(fast_overrides(tiny_csv_set, tmp_path, "depth=2", "unfreeze=-1",
                                "figures.enabled=false", "trainer.max_epochs=1",
                                "inspector=false"), tmp_path / "quiet")
    assert not [w for w in train(quiet)["warnings"] if "RANDOM" in w]


def test_resume_continues_at_the_next_epoch(tiny_csv_set, tmp_path):
    run = tmp_path / "run"
    train(_cfg(fast_overrides(tiny_csv_set, tmp_path, "depth=2", "test=false",
                              "figures.enabled=false", "trainer.max_epochs=1"), run))
    first = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert first["epoch"] == 0
    summary = train(_cfg(fast_overrides(tiny_csv_set, tmp_path, "depth=2", "test=false",
                                        "figures.enabled=false", "trainer.max_epochs=3",
                                        "ckpt_path=last"), run))
    resumed = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert resumed["epoch"] == 2 and summary["epochs"] == 3
    # The resumed run did 2 more epochs of steps, not 3: 3 batches per epoch (24 train images
    # less 6 for validation -> 18 images / batch 8).
    assert resumed["global_step"] == first["global_step"] + 2 * 3
    # the best checkpoint holds the weights only: refused as a point to resume from
    best = next((run / "checkpoints").glob("best-*.ckpt"))
    assert "optimizer_states" not in torch.load(best, weights_only=True)
    with pytest.raises(ConfigError, match=r"holds the weights only.*ckpt_path=last"):
        train(_cfg(fast_overrides(tiny_csv_set, tmp_path, "depth=2", "test=false",
                                  "figures.enabled=false", f"ckpt_path={best}"), run))


EMA = ["+callbacks.weight_averaging._target_=vqc.training.averaging.EmaWeights",
       "+callbacks.weight_averaging.decay=0.5", "+callbacks.weight_averaging.start_epoch=0"]


def test_weight_averaging_is_checkpointed_tested_and_resumed(tiny_csv_set, tmp_path):
    run = tmp_path / "run"
    common = ["depth=2", "figures.enabled=false", "inspector=false", *EMA]
    train(_cfg(fast_overrides(tiny_csv_set, tmp_path, *common, "trainer.max_epochs=2"), run))
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    average, current = last["state_dict"], last["current_model_state"]
    assert set(average) == set(current)
    assert any(not torch.equal(average[k], current[k]) for k in average)  # averaged, not a copy
    best = torch.load(next((run / "checkpoints").glob("best-*.ckpt")), weights_only=True)
    assert "current_model_state" in best  # saved whole: its weights are the average
    # resumed, the averaged and the current weights go on from where each was
    summary = train(_cfg(fast_overrides(tiny_csv_set, tmp_path, *common, "trainer.max_epochs=3",
                                        "ckpt_path=last"), run))
    assert summary["epochs"] == 3
    resumed = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert int(resumed["averaging_state"]["n_averaged"]) == int(
        last["averaging_state"]["n_averaged"]) + 3  # one epoch more: 3 steps


def test_multirun_writes_one_offline_wandb_run_per_job(tiny_csv_set, tmp_path):
    env = os.environ | {"WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "WANDB_SILENT": "true"}
    overrides = [o for o in fast_overrides(tiny_csv_set, tmp_path, "model=resnet18")
                 if not o.startswith("logger=")]
    command = [sys.executable, str(ROOT / "train.py"), "-m", *overrides, "logger=wandb",
               "unfreeze=0,1", "trainer.max_epochs=1", "test=false", "figures.enabled=false",
               f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    configs, groups = [], set()
    for job in ("0", "1"):
        runs = list((tmp_path / "sweep" / job / "wandb").glob("offline-run-*/run-*.wandb"))
        assert len(runs) == 1, f"job {job}: {runs}"
        closed(runs[0])
        configs.append(_flatten(run_config(runs[0])))
        groups.add(run_group(runs[0]))
        # the name starts with the swept value, where a list that cuts names still shows it
        info = run_record(runs[0])
        assert info.display_name == f"unfreeze={job}", info.display_name
        assert list(info.tags) == ["resnet18"]
        # the terminal report was printed while the run was open: the run's log holds it
        assert "best checkpoint:" in output_text(runs[0])
        # a finished sweep job keeps its best weights, not the state to resume from
        checkpoints = tmp_path / "sweep" / job / "checkpoints"
        assert list(checkpoints.glob("best-*.ckpt"))
        assert not (checkpoints / "last.ckpt").exists()
    assert groups == {"sweep-sweep"}  # one group, named after the sweep folder
    first, second = configs
    differing = {k for k in set(first) | set(second)
                 if not k.startswith("_wandb") and first.get(k) != second.get(k)}
    # Only unfreeze differs, the job's own folder (paths.run_dir and what derives from it), and
    # the warning that unfreeze froze random weights (resnet18 offline, no weights), which
    # names the value.
    folders = {k for k in differing if str(tmp_path / "sweep") in str(first.get(k))}
    assert differing - folders == {"unfreeze", "model.unfreeze", "warnings"}
    for config, n in zip(configs, (0, 1), strict=True):
        assert f"unfreeze={n} freezes" in str(config["warnings"]) and "RANDOM" in str(
            config["warnings"])
    assert (first["unfreeze"], second["unfreeze"]) == (0, 1)


def _flatten(config: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_inspector_step_fits_two_drift_detectors(tiny_csv_set, tmp_path):
    from vqc.inspection.inspector import Inspector

    run = tmp_path / "run"
    overrides = [o for o in fast_overrides(tiny_csv_set, tmp_path, "depth=2",
                                           "trainer.max_epochs=1", "figures.enabled=false",
                                           "drift=padim_pooled",
                                           "drift.detectors.padim.n_features=8",
                                           "drift.detectors.pooled.fit_on=good")
                 if not o.startswith("drift.n_features")]
    cfg = _cfg(overrides, run)
    summary = train(cfg)
    inspector = Inspector.load(summary["inspector"])
    assert inspector.drift.names == ["padim", "pooled"]
    assert inspector.drift.detectors["padim"].config.n_features == 8
    assert inspector.drift.detectors["pooled"].config.fit_on == "good"
    assert 0.0 <= summary["inspection"]["false_drift_rate"] <= 1.0


def test_an_ensemble_trains_its_members_and_answers_as_one(tiny_csv_set, tmp_path):
    from vqc.data.dataset import frame_batches
    from vqc.inspection.inspector import Inspector
    from vqc.models import member_count
    from vqc.training.task import prepare_data

    run = tmp_path / "run"
    common = ["depth=2", "figures.enabled=false", "trainer.max_epochs=1", "ensemble=2",
              "callbacks=default"]  # a learning-rate monitor too: members log their curves
    cfg = _cfg(fast_overrides(tiny_csv_set, tmp_path, *common), run)
    summary = train(cfg)
    (member,) = summary["members"]
    assert member["seed"] == 42 + 1000 and Path(member["best_checkpoint"]).is_file()
    assert Path(member["best_checkpoint"]).parent == run / "members" / "1" / "checkpoints"
    assert not (run / "members" / "1" / "checkpoints" / "last.ckpt").exists()
    assert "lr-AdamW" in (run / "members" / "1" / "metrics.csv").read_text().splitlines()[0]
    # the saved inspector runs both networks: its probabilities are the mean of the two
    # best checkpoints' (at the fitted temperature)
    inspector = Inspector.load(summary["inspector"])
    assert member_count(inspector.classifier) == 2
    weights = [torch.load(path, weights_only=True)["state_dict"]
               for path in (summary["best_checkpoint"], member["best_checkpoint"])]
    assert not torch.equal(weights[0]["model.head.fc.weight"], weights[1]["model.head.fc.weight"])
    datamodule = prepare_data(cfg)
    images, _, libs = next(iter(frame_batches(datamodule.test_frame, datamodule.cache,
                                              datamodule.eval_transform, 12)))
    alone = inspector.classifier.others[0]
    probs = []
    for state in weights:
        alone.load_state_dict({k[len("model."):]: v for k, v in state.items()
                               if k.startswith("model.")})
        probs.append(alone(images).softmax(dim=1))
    mean = (probs[0] + probs[1]) / 2
    temperature = inspector.spec.temperature
    torch.testing.assert_close(inspector(images, libs).probabilities.float(),
                               (mean.log() / temperature).softmax(dim=1), rtol=1e-4, atol=1e-5)
    assert summary["test"]["pwa"] == pytest.approx(
        json.loads((run / "summary.json").read_text())["test"]["pwa"])
    # resumed, the finished member is taken as it is, not trained again
    stamp = Path(member["best_checkpoint"]).stat().st_mtime_ns
    again = train(_cfg(fast_overrides(tiny_csv_set, tmp_path, *common, "ckpt_path=last"), run))
    assert again["members"] == [member]
    assert Path(member["best_checkpoint"]).stat().st_mtime_ns == stamp
