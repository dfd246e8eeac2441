"""A failing job of a sweep is recorded and the others run; the sweep then exits non-zero."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from tests.training.conftest import fast_overrides, write_tiny_csv_set
from tests.training.wandb_records import records
from vqc.errors import ConfigError
from vqc.training.run_names import job_run_name
from vqc.training.sweep import (
    RESULT_FILE,
    SUMMARY_CSV,
    SUMMARY_JSON,
    SweepSummary,
    record_failure,
)

ROOT = Path(__file__).resolve().parents[2]


def _job_config(sweep: Path, num: int) -> OmegaConf:
    return OmegaConf.create({
        "optimized_metric": "val/pwa", "logger": {"csv": {"_target_": "CSVLogger"}},
        "hydra": {"mode": "MULTIRUN", "sweep": {"dir": str(sweep)},
                  "runtime": {"output_dir": str(sweep / str(num))}, "job": {"num": num},
                  "overrides": {"task": ["seed=1", "unfreeze=0,12,1"]},
                  "sweeper": {"params": None}},
    })


def _job_return(status: JobStatus, value, overrides: list[str]) -> JobReturn:
    ret = JobReturn(overrides=overrides, status=status)
    ret.return_value = value
    return ret


def _rows(sweep: Path) -> list[dict]:
    with open(sweep / SUMMARY_CSV, newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_callback_records_each_job_and_fails_the_sweep_at_its_end(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    (sweep / "7").mkdir(parents=True)  # a job of an earlier sweep into the same folder
    (sweep / "7" / RESULT_FILE).write_text(json.dumps({"job": 7, "status": "failed",
                                                       "sweep_id": "old"}))
    callback = SweepSummary()
    callback.on_multirun_start(_job_config(sweep, 0))
    assert json.loads((sweep / SUMMARY_JSON).read_text())["jobs"] == []
    outcomes = [
        (JobStatus.COMPLETED, 0.75, None),                              # ok
        (JobStatus.COMPLETED, None, ConfigError("unfreeze=12 is out of range for resnet18")),
        (JobStatus.FAILED, RuntimeError("escaped the task"), None),     # raised through Hydra
    ]
    for num, (status, value, failure) in enumerate(outcomes):
        config = _job_config(sweep, num)
        (sweep / str(num)).mkdir()
        callback.on_job_start(config, task_function=None)
        if failure is not None:
            assert record_failure(failure, sweep / str(num)) is None
        unfreeze = ("0", "12", "1")[num]
        callback.on_job_end(config, _job_return(status, value, ["seed=1", f"unfreeze={unfreeze}"]))
        assert len(_rows(sweep)) == num + 1  # rewritten after every job
    with pytest.raises(SystemExit) as exit_info:
        callback.on_multirun_end(_job_config(sweep, 0))
    assert exit_info.value.code == 1

    rows = _rows(sweep)
    assert [r["job"] for r in rows] == ["0", "1", "2"]  # job 7 of the earlier sweep left out
    assert [r["status"] for r in rows] == ["ok", "failed", "failed"]
    assert [r["overrides"] for r in rows] == ["unfreeze=0", "unfreeze=12", "unfreeze=1"]
    assert float(rows[0]["metric"]) == 0.75 and rows[1]["metric"] == rows[2]["metric"] == ""
    assert rows[1]["error"] == "ConfigError: unfreeze=12 is out of range for resnet18"
    assert rows[2]["error"] == "RuntimeError: escaped the task"
    assert {r["wandb"] for r in rows} == {"off"}
    summary = json.loads((sweep / SUMMARY_JSON).read_text())
    assert (summary["n_ok"], summary["n_failed"], summary["swept"]) == (1, 2, ["unfreeze"])
    assert "RuntimeError: escaped the task" in summary["jobs"][2]["traceback"]
    job = json.loads((sweep / "1" / RESULT_FILE).read_text())
    assert job["all_overrides"] == ["seed=1", "unfreeze=12"]
    printed = capsys.readouterr().out
    assert "1 ok, 2 failed" in printed and "unfreeze=12" in printed


def test_the_summary_shows_each_pwa_beside_its_floor_and_lift(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    callback = SweepSummary()
    callback.on_multirun_start(_job_config(sweep, 0))
    # what train writes: the floor of the optimised metric, the test and inspection reports
    summaries = [
        {"metric_floor": 0.9929, "test": {"pwa": 0.9929, "floor": {"pwa": 0.9929}},
         "inspection": {"report": {"pwa": 0.9901, "floor": {"pwa": 0.9929}}}},
        {"metric_floor": 0.9929, "test": {"pwa": 0.9975, "floor": {"pwa": 0.9929}},
         "inspection": {"report": {"pwa": 0.9980, "floor": {"pwa": 0.9929}}}},
    ]
    for num, (metric, data) in enumerate(zip((0.9929, 0.9971), summaries, strict=True)):
        config = _job_config(sweep, num)
        (sweep / str(num)).mkdir(parents=True)
        (sweep / str(num) / "summary.json").write_text(json.dumps(data))
        callback.on_job_start(config, task_function=None)
        callback.on_job_end(config, _job_return(JobStatus.COMPLETED, metric, [f"unfreeze={num}"]))
    callback.on_multirun_end(_job_config(sweep, 0))
    rows = _rows(sweep)
    assert [float(r["metric_floor"]) for r in rows] == [0.9929, 0.9929]
    assert [round(float(r["metric_lift"]), 4) for r in rows] == [0.0, 0.0042]
    assert [round(float(r["test_pwa_lift"]), 4) for r in rows] == [0.0, 0.0046]
    assert [round(float(r["inspection_pwa_lift"]), 4) for r in rows] == [-0.0028, 0.0051]
    printed = capsys.readouterr().out
    for text in ("val/pwa", "floor", "lift", "test PWA", "inspection PWA", "+0.0000", "-0.0028",
                 "+0.0042"):
        assert text in printed, text


def test_a_job_run_name_starts_with_its_swept_values(tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / SUMMARY_JSON).write_text(json.dumps({"swept": ["unfreeze", "model"]}))
    hydra = OmegaConf.create({
        "sweep": {"dir": str(sweep)}, "job": {"num": 3, "override_dirname": "x"},
        "overrides": {"task": ["data.root=/a/long/path", "model=resnet101", "seed=1",
                               "unfreeze=8"]},
        "runtime": {"choices": {"experiment": "magnetic_tile"}}, "sweeper": {"params": None}})
    assert job_run_name(hydra) == "unfreeze=8,model=resnet101 · magnetic_tile"
    # without the sweep's summary: the command line's sweeps, no experiment
    (sweep / SUMMARY_JSON).unlink()
    hydra.runtime.choices.experiment = None
    monkeypatch.setattr("sys.argv", ["train.py", "-m", "seed=1", "model=resnet101,resnet50"])
    assert job_run_name(hydra) == "model=resnet101"


def test_a_sweep_without_failures_ends_normally(tmp_path):
    sweep = tmp_path / "sweep"
    callback = SweepSummary()
    callback.on_multirun_start(_job_config(sweep, 0))
    callback.on_job_start(_job_config(sweep, 0), task_function=None)
    callback.on_job_end(_job_config(sweep, 0),
                        _job_return(JobStatus.COMPLETED, float("nan"), ["unfreeze=0"]))
    callback.on_multirun_end(_job_config(sweep, 0))  # no SystemExit
    assert [(r["status"], r["metric"]) for r in _rows(sweep)] == [("ok", "")]


def _env() -> dict[str, str]:
    return os.environ | {"WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "WANDB_SILENT": "true"}


def _sweep_command(data: Path, tmp: Path, sweep: Path, *extra: str) -> list[str]:
    overrides = [o for o in fast_overrides(data, tmp, "model=cnn", "depth=2")
                 if not o.startswith("logger=")]
    return [sys.executable, str(ROOT / "train.py"), "-m", *overrides, "logger=wandb",
            "trainer.max_epochs=1", "test=false", "inspector=false", "figures.enabled=false",
            f"hydra.sweep.dir={sweep}", *extra]


def _exit_code(wandb_file: Path) -> int:
    exits = [r.exit for r in records(wandb_file) if r.WhichOneof("record_type") == "exit"]
    assert len(exits) == 1, f"{wandb_file}: {len(exits)} exit records"
    return exits[0].exit_code


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_one_failing_job_does_not_stop_the_sweep(tmp_path):
    data = write_tiny_csv_set(tmp_path / "set")
    sweep = tmp_path / "sweep"
    # depth=2: the CNN has 2 blocks, so unfreeze=3 is a config error of job 1 alone.
    result = subprocess.run(_sweep_command(data, tmp_path, sweep, "unfreeze=0,3,1"), env=_env(),
                            cwd=tmp_path, capture_output=True, text=True, timeout=540)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "2 ok, 1 failed" in result.stdout  # the table
    assert "1 of 3 jobs failed (job 1)" in result.stdout + result.stderr

    rows = _rows(sweep)
    assert [(r["job"], r["overrides"], r["status"]) for r in rows] == [
        ("0", "unfreeze=0", "ok"), ("1", "unfreeze=3", "failed"), ("2", "unfreeze=1", "ok")]
    for row in (rows[0], rows[2]):  # the other jobs completed
        folder = Path(row["run_dir"])
        assert folder == sweep / row["job"]
        # a finished sweep job keeps its best weights, not last.ckpt (keep_last_checkpoint)
        assert not (folder / "checkpoints" / "last.ckpt").is_file()
        assert list((folder / "checkpoints").glob("best-*.ckpt"))
        assert 0.0 <= float(row["metric"]) <= 1.0 and row["error"] == ""
        assert row["wandb"] == "finished"
        (wandb_file,) = Path(row["wandb_run"]).glob("run-*.wandb")
        assert _exit_code(wandb_file) == 0
    failed = rows[1]
    assert "unfreeze=3" in failed["error"] and failed["error"].startswith("ConfigError")
    assert failed["metric"] == ""
    # The error came before the W&B run was created: recorded as such, and no run was left.
    assert failed["wandb"] == "not started" and failed["wandb_run"] == ""
    assert not (sweep / "1" / "wandb").exists()
    assert not (sweep / "1" / "checkpoints").exists()
    summary = json.loads((sweep / SUMMARY_JSON).read_text())
    assert (summary["n_jobs"], summary["n_ok"], summary["n_failed"]) == (3, 2, 1)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_job_failing_during_training_closes_its_wandb_run_as_failed(tmp_path):
    data = write_tiny_csv_set(tmp_path / "set")
    sweep = tmp_path / "sweep"
    # lr=1e38 passes the config check (lr=nan does not) and fails in the first optimizer step,
    # which overflows: a failure during training, after the job's W&B run was created.
    result = subprocess.run(_sweep_command(data, tmp_path, sweep, "lr=1e38"), env=_env(),
                            cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert result.returncode == 1, result.stderr[-3000:]
    (row,) = _rows(sweep)
    assert row["status"] == "failed" and "overflow" in row["error"]
    assert row["wandb"] == "failed"
    (wandb_file,) = Path(row["wandb_run"]).glob("run-*.wandb")
    assert _exit_code(wandb_file) == 1


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_an_optuna_study_goes_on_after_a_failed_trial(tmp_path):
    data = write_tiny_csv_set(tmp_path / "set")
    sweep = tmp_path / "sweep"
    overrides = [o for o in fast_overrides(data, tmp_path, "model=cnn")
                 if not o.startswith(("logger=", "unfreeze="))]  # the sweep sets unfreeze
    # Only unfreeze varies; with depth=2, unfreeze=3 fails. The sampler's seed (seed=42) draws
    # 3, 0, 0: the first trial fails.
    command = [sys.executable, str(ROOT / "train.py"), "-m", "hparams_search=optuna",
               "hydra.sweeper.n_trials=3", "hydra.sweeper.params.depth=2",
               "hydra.sweeper.params.dropout=0.0", "hydra.sweeper.params.lr=0.001",
               "hydra.sweeper.params.unfreeze='choice(0,3)'", *overrides, "logger=csv",
               "trainer.max_epochs=1", "test=false", "inspector=false", "figures.enabled=false",
               f"hydra.sweep.dir={sweep}"]
    result = subprocess.run(command, env=_env(), cwd=tmp_path, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 1, result.stderr[-3000:]
    rows = _rows(sweep)
    assert len(rows) == 3
    statuses = {r["status"] for r in rows}
    assert statuses == {"ok", "failed"}, rows
    assert all("unfreeze=3" in r["error"] for r in rows if r["status"] == "failed")
    # The study told the failure to Optuna and went on to its end: best trial written.
    results = (sweep / "optimization_results.yaml").read_text()
    assert "unfreeze: 0" in results
