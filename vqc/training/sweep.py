"""Sweeps that survive a failing job, with a summary of every job kept up to date.

With ``SweepSummary`` registered as a Hydra callback (``conf/hydra/default.yaml``), a multirun
isolates its jobs' failures:

- ``python train.py -m`` catches a job's failure, logs it, hands it to ``record_failure`` and
  returns ``None`` to the sweeper, so the other jobs run. The Optuna sweeper tells such a trial
  to the study as failed and goes on. (A NaN would not do: Optuna refuses it as a value, and the
  sweeper's attempt to tell the trial as failed *with* that value raises and ends the study.)
  The job's W&B run, if it was started, has been closed as failed (``run_task``).
- After each job, its outcome goes to ``job_result.json`` in its folder, and ``sweep_summary.csv``
  and ``sweep_summary.json`` in the sweep folder are rewritten (atomically) from all of them:
  the job's number, swept overrides, status (``ok`` / ``failed``), metric, its warnings (how
  many, and the first: a run can succeed and still warn that, say, frozen blocks hold random
  weights), error, W&B state
  (``finished``, ``failed``, ``not started``: the job failed before its W&B run was created,
  ``off``) and folder. Each PWA beside its floor (the best constant answer's) and lift: the
  optimised metric (``metric``), and, read from the job's ``summary.json``, the test PWA of the
  classifier (``test_pwa``) and of the whole inspection (``inspection_pwa``).
- At the end of the sweep the table is printed and, when any job failed, the command exits with
  status 1.

Jobs run by a launcher in other processes (SLURM) write their own ``job_result.json``; the
summary is rebuilt from those files after each job and once more at the end.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from vqc.errors import VqcError
from vqc.training.run_names import override_key, swept_keys
from vqc.training.summary import RunSummary
from vqc.training.sweep_table import (
    SCORES,
    SUMMARY_CSV,
    SUMMARY_JSON,
    finite_number,
    print_summary,
    read_json,
    read_summary,
)

log = logging.getLogger("vqc")

RESULT_FILE = "job_result.json"
COLUMNS = ("job", "status", *(f"{name}{part}" for name in SCORES
                              for part in ("", "_floor", "_lift")),
           "overrides", "warnings", "first_warning", "error", "wandb", "wandb_run", "run_dir",
           "seconds")
#: Exit status of a sweep in which at least one job failed.
FAILED_EXIT_CODE = 1

# Job folder -> its failure, from ``record_failure`` (in the task) to ``on_job_end``.
_failures: dict[str, dict[str, str]] = {}


def _key(folder: str | Path) -> str:
    return str(Path(folder).resolve())


def _process_rank() -> int:
    """The global rank when every process of a distributed run runs the sweep (torchrun, SLURM
    tasks): only rank 0 keeps the summary."""
    for name in ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


def describe(error: BaseException) -> str:
    """``Type: message`` on one line, as the summary shows it."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def isolates_failures(hydra_cfg: Any) -> bool:
    """Whether ``SweepSummary`` is among Hydra's callbacks (else a failing job raises)."""
    callbacks = OmegaConf.select(hydra_cfg, "callbacks") or {}
    return any(isinstance(spec, DictConfig | dict)
               and str(spec.get("_target_", "")).endswith("sweep.SweepSummary")
               for spec in callbacks.values())


def record_failure(error: BaseException, job_dir: str | Path | None = None,
                   status: str = "failed") -> None:
    """Note that the current job failed with ``error``; ``SweepSummary`` records it at its end.

    Returns ``None``: what the task hands the sweeper for a failed job.
    """
    if job_dir is None:
        from hydra.core.hydra_config import HydraConfig

        job_dir = HydraConfig.get().runtime.output_dir
    _failures[_key(job_dir)] = {
        "error": describe(error),
        "traceback": "".join(traceback.format_exception(error)),
        "status": status,
    }


def record_interruption(stop: BaseException, cfg: DictConfig) -> None:
    """Record the current job as ``interrupted`` now: the sweep ends with it (a signal stops the
    whole command), so ``SweepSummary.on_job_end`` will not run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.utils import JobReturn, JobStatus

    hydra = HydraConfig.get()
    try:
        record_failure(stop, hydra.runtime.output_dir, status="interrupted")
        config = OmegaConf.create({"optimized_metric": cfg.get("optimized_metric"),
                                   "logger": cfg.get("logger"), "hydra": hydra})
        job_return = JobReturn(overrides=list(hydra.overrides.task), status=JobStatus.FAILED)
        job_return.return_value = stop
        SweepSummary()._record(config, job_return)
    except Exception as err:  # recording must never hide the interruption
        log.warning("sweep summary: cannot record the interrupted job: %s", err)


def wandb_state(config: DictConfig, job_dir: Path, failed: bool) -> tuple[str, str | None]:
    """The job's W&B state (``finished``, ``failed``, ``not started``, ``off``) and run folder."""
    specs = OmegaConf.select(config, "logger") or {}
    spec = next((s for s in specs.values() if isinstance(s, DictConfig)
                 and str(s.get("_target_", "")).endswith("WandbLogger")), None)
    if spec is None:
        return "off", None
    try:
        from vqc.training.loggers import resolve_wandb_mode

        if resolve_wandb_mode(spec.get("mode")) == "disabled":
            return "off", None
    except Exception:  # an unusable mode: the job failed on it, no run was made
        return "not started", None
    try:
        save_dir = Path(str(spec.save_dir))
    except Exception:
        save_dir = job_dir
    runs = sorted(p for p in (save_dir / "wandb").glob("*run-*")
                  if p.is_dir() and not p.is_symlink())
    if not runs:
        return "not started", None
    # run_task closes the run with exit code 1 when the job raised
    return ("failed" if failed else "finished"), str(runs[-1])


def metric_floor(name: str | None, metrics: Any) -> float | None:
    """The floor of metric ``name`` (a constant answer's score) among logged ``metrics``:
    ``NAME_floor`` for a PWA, 1 for a cost ratio; ``None`` for other metrics."""
    if not name:
        return None
    if name.endswith("cost_ratio"):
        return 1.0
    if name.endswith("pwa"):
        value = metrics.get(f"{name}_floor") if hasattr(metrics, "get") else None
        return None if value is None else finite_number(value)
    return None


def lift(name: str, value: Any, floor: Any) -> float | None:
    """How far ``value`` is above its floor (for a cost ratio, below: lower is better)."""
    value, floor = finite_number(value), finite_number(floor)
    if value is None or floor is None:
        return None
    return floor - value if name.endswith("cost_ratio") else value - floor


def _scores(row_metric: float | None, metric_name: str | None,
            summary: dict[str, Any] | None) -> dict[str, float | None]:
    """``metric``, ``test_pwa`` and ``inspection_pwa``, each with its ``_floor`` and ``_lift``."""
    summary = summary or {}
    test = summary.get("test") or {}
    inspection = (summary.get("inspection") or {}).get("report") or {}
    values = {
        "metric": (row_metric, summary.get("metric_floor"), metric_name or ""),
        "test_pwa": (test.get("pwa"), (test.get("floor") or {}).get("pwa"), "pwa"),
        "inspection_pwa": (inspection.get("pwa"), (inspection.get("floor") or {}).get("pwa"),
                           "pwa"),
    }
    out: dict[str, float | None] = {}
    for key, (value, floor, name) in values.items():
        out[key] = finite_number(value)
        out[f"{key}_floor"] = finite_number(floor)
        out[f"{key}_lift"] = lift(name, value, floor)
    return out


def _write_atomic(path: Path, text: str) -> None:
    from vqc.io import write_atomic

    write_atomic(path, text)


def write_summary(sweep_dir: str | Path, header: dict[str, Any] | None = None) -> list[dict]:
    """Rebuild the sweep's summary files from its jobs' ``job_result.json``; returns the rows."""
    sweep_dir = Path(sweep_dir)
    if header is None:
        header = {k: v for k, v in (read_summary(sweep_dir) or {}).items()
                  if k in ("sweep_dir", "sweep_id", "swept", "started")}
    sweep_id = header.get("sweep_id")
    rows: dict[int, dict[str, Any]] = {}
    for path in sweep_dir.rglob(RESULT_FILE):
        row = read_json(path)
        if not row or "job" not in row:
            continue
        if sweep_id and row.get("sweep_id") not in (None, sweep_id):
            continue  # left by an earlier sweep into the same folder
        rows[int(row["job"])] = row
    jobs = [rows[n] for n in sorted(rows)]
    failed = sum(row.get("status") == "failed" for row in jobs)
    interrupted = sum(row.get("status") == "interrupted" for row in jobs)
    summary = {**header, "updated": time.strftime("%Y-%m-%dT%H:%M:%S"), "n_jobs": len(jobs),
               "n_ok": len(jobs) - failed - interrupted, "n_failed": failed,
               "n_interrupted": interrupted, "jobs": jobs}
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in jobs:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in COLUMNS})
    _write_atomic(sweep_dir / SUMMARY_CSV, buffer.getvalue())
    _write_atomic(sweep_dir / SUMMARY_JSON, json.dumps(summary, indent=2, default=str))
    return jobs


def _job_summary(job_dir: Path) -> RunSummary | None:
    """The job's ``summary.json``, or ``None`` when it has none or it does not read."""
    try:
        return RunSummary.read(job_dir)
    except VqcError:
        return None


class SweepSummary(Callback):
    """Hydra callback: records every job of a multirun, keeps the summary, fails at the end."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self._header: dict[str, Any] | None = None

    @staticmethod
    def _multirun(config: DictConfig) -> bool:
        from hydra.types import RunMode

        mode = OmegaConf.select(config, "hydra.mode")
        return mode == RunMode.MULTIRUN or str(mode) == "MULTIRUN"

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if _process_rank() != 0:
            return
        try:
            sweep_dir = Path(str(config.hydra.sweep.dir))
            self._header = {"sweep_dir": str(sweep_dir),
                            "sweep_id": f"{time.strftime('%Y%m%d-%H%M%S')}-{id(self):x}",
                            "swept": swept_keys(config),
                            "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
            write_summary(sweep_dir, self._header)
        except Exception as err:  # recording must never stop the sweep
            log.warning("sweep summary: cannot start it: %s", err)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if self._multirun(config):
            job_dir = str(config.hydra.runtime.output_dir)
            self._started[_key(job_dir)] = time.monotonic()
            _failures.pop(_key(job_dir), None)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if not self._multirun(config) or _process_rank() != 0:
            return
        try:
            self._record(config, job_return)
        except Exception as err:
            log.warning("sweep summary: cannot record job %s: %s",
                        OmegaConf.select(config, "hydra.job.num"), err)

    def _record(self, config: DictConfig, job_return: Any) -> None:
        from hydra.core.utils import JobStatus

        job_dir = Path(str(config.hydra.runtime.output_dir))
        sweep_dir = Path(str(config.hydra.sweep.dir))
        failure = _failures.pop(_key(job_dir), None)
        value = getattr(job_return, "_return_value", None)
        if job_return.status == JobStatus.FAILED and failure is None:
            error = value if isinstance(value, BaseException) else RuntimeError(str(value))
            failure = {"error": describe(error),
                       "traceback": "".join(traceback.format_exception(error))}
        header = self._header or {k: v for k, v in (read_summary(sweep_dir) or {}).items()
                                  if k in ("sweep_dir", "sweep_id", "swept", "started")}
        swept = set(header.get("swept") or [])
        overrides = [str(o) for o in (job_return.overrides or [])]
        shown = [o for o in overrides if override_key(o) in swept] if swept else overrides
        wandb, wandb_run = wandb_state(config, job_dir, failed=failure is not None)
        started = self._started.pop(_key(job_dir), None)
        metric_name = OmegaConf.select(config, "optimized_metric")
        summary = None if failure else _job_summary(job_dir)
        scores = _scores(None if failure else finite_number(value), metric_name, summary)
        warnings = [str(w) for w in (summary or {}).get("warnings") or []]
        row = {
            "job": int(config.hydra.job.num),
            "status": failure.get("status", "failed") if failure else "ok",
            **scores,
            "optimized_metric": metric_name,
            "overrides": " ".join(shown),
            "warnings": len(warnings) if summary else None,
            "first_warning": warnings[0] if warnings else None,
            "error": failure["error"] if failure else None,
            "wandb": wandb,
            "wandb_run": wandb_run,
            "run_dir": str(job_dir),
            "seconds": None if started is None else round(time.monotonic() - started, 1),
            "all_overrides": overrides,
            "sweep_id": header.get("sweep_id"),
            "traceback": failure["traceback"] if failure else None,
        }
        _write_atomic(job_dir / RESULT_FILE, json.dumps(row, indent=2, default=str))
        write_summary(sweep_dir, header or None)
        if failure:
            log.error("job %d %s (%s); recorded in %s", row["job"], row["status"],
                      failure["error"], sweep_dir / SUMMARY_CSV)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if _process_rank() != 0:
            return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            jobs = write_summary(sweep_dir, self._header)
            print_summary(jobs, sweep_dir)
        except Exception as err:
            log.warning("sweep summary: cannot write it: %s", err)
            return
        failed = [row["job"] for row in jobs if row.get("status") == "failed"]
        log.info("sweep summary: %s", sweep_dir / SUMMARY_CSV)
        if failed:
            log.error("%d of %d jobs failed (job %s); exit status %d", len(failed), len(jobs),
                      ", ".join(map(str, failed)), FAILED_EXIT_CODE)
            sys.stdout.flush()
            sys.exit(FAILED_EXIT_CODE)


__all__ = ["SweepSummary", "isolates_failures", "lift", "metric_floor", "read_summary",
           "record_failure", "record_interruption", "wandb_state", "write_summary"]
