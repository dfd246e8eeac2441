"""The W&B run is the review: what a tiny offline run holds, read back from its run file."""

import json
from pathlib import Path

import pandas as pd
import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict

from tests.training.conftest import fast_overrides
from tests.training.wandb_records import (
    artifacts,
    closed,
    history,
    metric_definitions,
    run_config,
    run_record,
    summary,
)
from vqc.config import compose
from vqc.training.task import run_task

INSPECTION = ("pwa", "pwa_floor", "cost_ratio", "escapes", "good_flagged", "known_macro_recall",
              "drift_auroc", "false_drift_rate", "drift_caught")


@pytest.fixture
def offline_wandb(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_DATA_DIR", raising=False)
    for name in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))


def _run_file(run: Path) -> Path:
    (path,) = (run / "wandb").glob("offline-run-*/run-*.wandb")
    return closed(path)


def _table(run_file: Path, key: str) -> tuple[dict, dict]:
    """A logged table as ``wandb sync`` uploads it: from its ``run_table`` artifact, which holds
    its JSON and its images (the summary and history refer to it); and that artifact's files."""
    assert summary(run_file)[key]["_type"] == "table-file"
    (files,) = [a["files"] for a in artifacts(run_file)
                if a["type"] == "run_table" and f"{key}.table.json" in a["files"]]
    return json.loads(Path(files[f"{key}.table.json"]).read_text()), files


@pytest.mark.timeout(300)
def test_the_offline_run_holds_the_whole_review(tiny_csv_set, tmp_path, offline_wandb):
    run = tmp_path / "run"
    overrides = [o for o in fast_overrides(tiny_csv_set, tmp_path, "depth=2")
                 if not o.startswith("logger=")]
    GlobalHydra.instance().clear()
    cfg = compose("train", [*overrides, "logger=wandb", "trainer.max_epochs=3",
                            "figures.enabled=false", "tags=[smoke,${model.name}]"])
    with open_dict(cfg):
        cfg.paths.run_dir = str(run)
    printed = []
    result = run_task(cfg, "tiny", None, report=lambda s: printed.append(sorted(s)))
    assert printed  # the report was shown (before the run closed: see test_train's sweep)
    run_file = _run_file(run)
    info, final, rows = run_record(run_file), summary(run_file), history(run_file)
    assert list(info.tags) == ["smoke", "cnn"] and info.display_name == "tiny"

    # best-epoch summaries, not the last epoch's
    assert metric_definitions(run_file)["val/pwa"].summary.max
    epochs = [row["val/pwa"] for row in rows if "val/pwa" in row]
    assert len(epochs) == 3 and final["val/pwa"] == {"max": max(epochs)}
    losses = [row["val/loss"] for row in rows if "val/loss" in row]
    assert final["val/loss"] == {"min": min(losses)}

    # the whole inspection's figures, in the history and the summary, as in summary.json
    inspection = result["inspection"]
    expected = {"pwa": inspection["report"]["pwa"],
                "pwa_floor": inspection["report"]["floor"]["pwa"],
                "cost_ratio": inspection["report"]["cost_ratio"],
                "escapes": inspection["report"]["escapes"],
                "good_flagged": inspection["report"]["false_alarms"],
                "drift_auroc": inspection["drift_auroc"],
                "false_drift_rate": inspection["false_drift_rate"],
                "drift_caught": inspection["drift_recall"]}
    (logged,) = [row for row in rows if "inspection/pwa" in row]
    for name in INSPECTION:
        assert f"inspection/{name}" in final and f"inspection/{name}" in logged, name
    for name, value in expected.items():
        assert final[f"inspection/{name}"] == pytest.approx(value), name
    recalls = inspection["report"]["recall"][:3]  # good, dent, scratch: drift left out
    assert final["inspection/known_macro_recall"] == pytest.approx(sum(recalls) / 3)

    # the predictions table: one row per test image, its thumbnail, classes, scores, reason
    table, files = _table(run_file, "inspection/predictions")
    assert table["columns"] == ["image", "filename", "true", "predicted", "p_good", "p_dent",
                                "p_scratch", "drift_score", "reason"]
    csv = pd.read_csv(run / "test_predictions.csv")
    assert len(table["data"]) == len(csv) == 12
    names = ["good", "dent", "scratch", "drift"]
    assert [row[2] for row in table["data"]] == [names[c] for c in csv["label"]]
    assert [row[3] for row in table["data"]] == [names[c] for c in csv["decision"]]
    for row in table["data"]:  # each with its thumbnail, in the table's artifact
        assert row[0]["_type"] == "image-file" and max(row[0]["width"], row[0]["height"]) <= 64
        assert Path(files[row[0]["path"]]).is_file()
    # offline, the staged copies lie in the run folder, not in the user's home
    assert all(Path(local).is_relative_to(run) for local in files.values())
    per_class, _ = _table(run_file, "inspection/per_class")
    assert [row[0] for row in per_class["data"]] == names
    assert [row[3] for row in per_class["data"]] == pytest.approx(
        inspection["report"]["recall"], nan_ok=True)

    # the interactive confusion matrix: its table and W&B's chart of it
    counts, _ = _table(run_file, "inspection/confusion_matrix_table")
    assert sum(row[-1] for row in counts["data"]) == 12
    charts = run_config(run_file)["_wandb"]["visualize"]
    assert "confusion_matrix" in json.dumps(charts["inspection/confusion_matrix"])

    # the artifacts, logged offline with the run, and the files in them
    logged_artifacts = {a["type"]: a for a in artifacts(run_file) if a["type"] != "run_table"}
    assert set(logged_artifacts) == {"model", "inspector", "predictions", "report"}
    run_id = info.run_id
    assert {a["name"] for a in logged_artifacts.values()} == {
        f"{kind}-{run_id}" for kind in logged_artifacts}
    best = Path(result["best_checkpoint"])
    assert logged_artifacts["model"]["files"] == {best.name: str(best)}
    assert "best" in logged_artifacts["model"]["aliases"]
    assert logged_artifacts["inspector"]["files"] == {
        "inspector.safetensors": str(run / "inspector.safetensors")}
    assert set(logged_artifacts["predictions"]["files"]) == {"test_predictions.csv"}
    assert set(logged_artifacts["report"]["files"]) == {"test_report.md", "inspection_report.md",
                                                        "summary.json"}

    # the reports' text, inside the run
    for name, file in (("test", "test_report.md"), ("inspection", "inspection_report.md")):
        page = (run_file.parent / "files" / final[f"report/{name}"]["path"]).read_text()
        title = next(line for line in (run / file).read_text().splitlines()
                     if line.startswith("#")).lstrip("# ")  # warnings may come first
        assert "<table>" in page and "PWA" in page and title in page, name


def test_tags_come_from_the_config_and_experiments():
    GlobalHydra.instance().clear()
    assert list(compose("train", []).logger.wandb.tags) == ["efficientnet_lite1"]
    GlobalHydra.instance().clear()
    assert list(compose("train", ["experiment=origin_cnn5"]).logger.wandb.tags) == [
        "origin_cnn5", "cnn"]


def test_an_exported_onnx_model_becomes_an_artifact(tmp_path, offline_wandb):
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    from vqc.training.review import log_run_files

    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    for name in ("checkpoints/best.ckpt", "inspector.safetensors", "inspector.onnx",
                 "test_report.md"):
        (run_dir / name).write_text(f"# {name}\n")
    logger = WandbLogger(save_dir=str(run_dir), offline=True, project="vqc")
    summary_ = {"best_checkpoint": str(run_dir / "checkpoints/best.ckpt"),
                "inspector": str(run_dir / "inspector.safetensors")}
    log_run_files([logger], run_dir, summary_)
    wandb.finish()
    kinds = {a["type"]: a["files"] for a in artifacts(_run_file(run_dir))}
    assert kinds["onnx"] == {"inspector.onnx": str(run_dir / "inspector.onnx")}
    assert set(kinds) == {"model", "inspector", "onnx", "report"}  # no predictions: none made


def test_other_loggers_get_none_of_it(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    from vqc.training.review import define_best_metrics, log_inspection, log_run_files

    loggers = [CSVLogger(str(tmp_path))]
    # nothing is read: the inspection result, frame and cache are never touched
    define_best_metrics(loggers)
    log_inspection(loggers, None, None, None, 0)
    log_run_files(loggers, tmp_path / "missing", {})
    assert not (tmp_path / "wandb").exists()


@pytest.mark.parametrize(("review", "message"), [
    ({"thumbnail": 2}, "logger.wandb.review.thumbnail=2: expected a whole number of at least 8"),
    ({"max_images": -1}, "logger.wandb.review.max_images=-1"),
    ({"artifacts": "yes"}, "logger.wandb.review.artifacts='yes': expected true or false"),
    ({"thumbnails": 64}, "logger.wandb.review.thumbnails: unknown setting"),
])
def test_a_bad_review_setting_is_refused_before_training(tmp_path, offline_wandb, review,
                                                         message):
    from omegaconf import OmegaConf

    from vqc.errors import ConfigError
    from vqc.training.loggers import build_loggers

    spec = OmegaConf.create({"wandb": {"_target_": "lightning.pytorch.loggers.WandbLogger",
                                       "save_dir": str(tmp_path / "run"), "review": review}})
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        build_loggers(spec, "x", None)
    assert not (tmp_path / "run").exists()


@pytest.mark.timeout(300)
def test_warnings_raised_during_the_run_reach_its_summary(tiny_csv_set, tmp_path, offline_wandb):
    """The drift calibration's and the temperature's warnings come after the run started: they
    reach summary.json, the reports and the W&B summary all the same."""
    run = tmp_path / "run"
    overrides = [o for o in fast_overrides(tiny_csv_set, tmp_path, "depth=2")
                 if not o.startswith("logger=")]
    GlobalHydra.instance().clear()
    cfg = compose("train", [*overrides, "logger=wandb", "trainer.max_epochs=4", "lr=0.01",
                            "figures.enabled=false"])
    with open_dict(cfg):
        cfg.paths.run_dir = str(run)
    result = run_task(cfg, "tiny", None)
    late = [w for w in result["warnings"]
            if w.startswith(("drift calibration:", "temperature at its bound"))]
    assert any(w.startswith("drift calibration:") for w in late)  # 4 validation GOOD images
    temperature = json.loads((run / "summary.json").read_text())
    assert temperature["warnings"] == result["warnings"]
    final = summary(_run_file(run))
    assert final["warning_count"] == len(result["warnings"])
    for text in late:
        assert text in final["warnings"]
        assert text in (run / "inspection_report.md").read_text()
