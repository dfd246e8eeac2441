"""``python train.py`` / ``vqc-train``: train, test and log one configuration (or a sweep)."""

from __future__ import annotations

import itertools
import logging
import math
import shlex
import sys
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from vqc.config import CONFIG_DIR, register_resolvers
from vqc.errors import VqcError
from vqc.interrupts import Interrupted, handle_signals
from vqc.io import folder_problem

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


#: Settings that decide where a model's weights come from: a sweep over them is expanded when
#: the jobs' weights are checked, before Hydra starts (at most MAX_CHECKED_JOBS combinations).
WEIGHT_KEYS = ("model", "model.name", "model.source", "model.pretrained", "model.weights")
MAX_CHECKED_JOBS = 16


def _early_errors(argv: list[str]) -> str | None:
    """What would stop the run, found before Hydra starts and before any data is read: a run or
    cache folder that cannot be created, or pretrained weights that cannot be had (in a sweep:
    only when every job would stop, said once). A message naming the setting, or ``None``.

    Only plain overrides (and ``-m``) are looked at; with any other flag, or when the config
    does not compose, Hydra runs as usual and reports what it finds.
    """
    multirun = False
    overrides = []
    for arg in argv:
        if arg in ("-m", "--multirun"):
            multirun = True
        elif arg.startswith("-"):
            return None
        else:
            overrides.append(arg)
    try:
        from hydra import compose, initialize_config_dir
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parsed = OverridesParser.create().parse_overrides(overrides)
        plain = [o.input_line for o in parsed if not o.is_sweep_override()]
        swept = [[f"{o.input_line.split('=', 1)[0]}={v}" for v in o.sweep_string_iterator()]
                 for o in parsed if o.is_sweep_override() and o.key_or_group in WEIGHT_KEYS]
        n_jobs = math.prod(len(list(o.sweep_string_iterator()))
                           for o in parsed if o.is_sweep_override())
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("train", plain, return_hydra_config=True)
            jobs = list(itertools.islice(itertools.product(*swept), MAX_CHECKED_JOBS))
            models = [compose("train", [*plain, *job]).model if job else cfg.model
                      for job in jobs]
        run_key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
        folders = {run_key: OmegaConf.select(cfg, run_key),
                   "paths.cache_dir": OmegaConf.select(cfg, "paths.cache_dir")}
    except Exception:
        return None
    for key, folder in folders.items():
        problem = folder_problem(str(folder)) if folder else None
        if problem:
            parent = "paths.output_dir" if key.startswith("hydra.") else "paths.data_dir"
            return (f"{key}={folder}: cannot create this folder: {problem} (it lies under "
                    f"{parent} unless {key} is set itself)")
    return _weights_error(models, n_jobs if multirun else 1)


def _weights_error(models: list[DictConfig], n_jobs: int) -> str | None:
    """The error of a run whose pretrained weights cannot be had; in a sweep of ``n_jobs``,
    said once when every job's cannot (a sweep where some can runs, and the others fail by
    themselves)."""
    from vqc.models import locate_weights

    errors = []
    for model in models:
        try:
            locate_weights(str(model.name), OmegaConf.to_container(model, resolve=True))
        except VqcError as err:
            errors.append(str(err))
        except Exception:
            return None  # not this check's to report: the run says what it is
    if not errors or len(errors) < len(models):
        return None
    if n_jobs == 1:
        return errors[0]
    return (f"every job of this sweep ({n_jobs} jobs) would stop on its weights; none is run.\n"
            + "\n".join(dict.fromkeys(errors)))


def main() -> float | None:
    """``python train.py [overrides]``: the output folders are checked, then Hydra runs."""
    with handle_signals():
        problem = _early_errors(sys.argv[1:])
        if problem:
            print(f"{Path(sys.argv[0]).name}: error: {problem}", file=sys.stderr)
            sys.exit(2)
        return _hydra_main()


def resume_hint(stop: Interrupted, cfg: DictConfig) -> str:
    """One line: what was interrupted, and the command that takes the run up again."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if not (run_dir / "checkpoints" / "last.ckpt").is_file():
        return f"{stop}; no epoch had finished, so there is nothing to resume: start it again"
    overrides = [o for o in HydraConfig.get().overrides.task
                 if not o.startswith(("ckpt_path=", "hydra.run.dir="))]
    script = sys.argv[0]  # train.py as it was given; an installed vqc-train by its name
    launch = ["python", script] if script.endswith(".py") else [Path(script).name]
    command = shlex.join([*launch, *overrides, "ckpt_path=last", f"hydra.run.dir={run_dir}"])
    done = "training resumes from its last finished epoch" if stop.phase.startswith(
        "training") else "training is done; it goes on with testing and drift"
    return f"{stop}; resume with: {command}  ({done})"


@hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> float | None:
    warnings.filterwarnings("ignore", category=FutureWarning)
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
