"""``python train.py`` / ``vqc-train``: train, test and log one configuration (or a sweep)."""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from vqc.cli.start import quiet_library_warnings
from vqc.config import CONFIG_DIR, register_resolvers
from vqc.errors import VqcError
from vqc.interrupts import Interrupted, handle_signals

log = logging.getLogger("vqc")
register_resolvers()


def _names() -> tuple[str, str | None]:
    """The run's name and, in a multirun, the sweep's (the W&B group)."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    if hydra_cfg.mode == RunMode.MULTIRUN:
        from vqc.training.run_names import job_run_name

        return job_run_name(hydra_cfg), f"sweep-{Path(hydra_cfg.sweep.dir).name}"
    return run_dir.name, None


def main() -> float | None:
    """``python train.py [overrides]``: checked first (``vqc.cli.precheck``), then Hydra runs."""
    from vqc.cli.precheck import early_errors, sweep_listing

    name = Path(sys.argv[0]).name
    with handle_signals():
        try:
            listing = sweep_listing(sys.argv[1:])
            if listing is not None:
                print(listing)
                return None
            problem = early_errors(sys.argv[1:])
            if problem:
                print(f"{name}: error: {problem}", file=sys.stderr)
                sys.exit(2)
            return _hydra_main()
        except VqcError as err:
            print(f"{name}: error: {err}", file=sys.stderr)
            sys.exit(2)
        except Interrupted as stop:  # before the task started: nothing to resume
            print(f"{name}: {stop}", file=sys.stderr)
            sys.exit(stop.exit_code)


def resume_hint(stop: Interrupted, cfg: DictConfig) -> str:
    """One line: what was interrupted, and the command that takes the run up again."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if not (run_dir / "checkpoints" / "last.ckpt").is_file():
        return f"{stop}; no epoch had finished, so there is nothing to resume: start it again"
    overrides = [o for o in HydraConfig.get().overrides.task
                 if not o.startswith(("ckpt_path=", "hydra.run.dir="))]
    script = sys.argv[0]  # train.py as it was given; an installed vqc-train by its name
    launch = ["python", script] if script.endswith(".py") else [Path(script).name]
    quoted = "'" + str(run_dir).replace("\\", "\\\\").replace("'", "\\'") + "'"  # for Hydra
    single = ["hydra.mode=RUN"] if HydraConfig.get().mode == RunMode.MULTIRUN else []
    command = shlex.join([*launch, *overrides, "ckpt_path=last", f"hydra.run.dir={quoted}",
                          *single])
    done = "training resumes from its last finished epoch" if stop.phase.startswith(
        "training") else "training is done; it goes on with testing and drift"
    return f"{stop}; resume with: {command}  ({done})"


@hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> float | None:
    quiet_library_warnings()
    # Lightning prints its own INFO lines; do not repeat them through Hydra's handlers.
    logging.getLogger("lightning.pytorch").propagate = False
    from vqc.cli.report import print_training_summary
    from vqc.cli.start import start_run
    from vqc.training.sweep import isolates_failures, record_failure, record_interruption
    from vqc.training.task import run_task

    run_name, group = _names()
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    # In a sweep (with the SweepSummary callback), a failing job is recorded and the sweep goes
    # on: the sweeper gets None, and the command exits non-zero at the end.
    isolated = multirun and isolates_failures(HydraConfig.get())
    try:
        start_run(cfg)  # the config checked, shown and saved before any work
        # the report is printed before the W&B run closes: its log keeps it
        summary = run_task(cfg, run_name, group, report=print_training_summary)
    except Interrupted as stop:
        log.error("%s", resume_hint(stop, cfg))
        if multirun:
            record_interruption(stop, cfg)
        logging.shutdown()
        sys.exit(stop.exit_code)
    except (VqcError, OSError) as err:
        # OSError: a file or folder that cannot be read or written (the message names it)
        log.error("%s", err)
        if isolated:
            return record_failure(err)
        if multirun:
            raise
        sys.exit(2)
    except Exception as err:
        if not isolated:
            raise
        log.exception("job failed: %s", err)
        return record_failure(err)
    if summary.get("rank"):
        return None  # another process of a distributed run: rank 0 reports
    return summary.get("metric")


if __name__ == "__main__":
    main()
