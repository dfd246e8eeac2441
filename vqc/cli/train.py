"""``python train.py`` / ``vqc-train``: train, test and log one configuration (or a sweep)."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from vqc.config import CONFIG_DIR
from vqc.errors import VqcError

log = logging.getLogger("vqc")


def _names() -> tuple[str, str | None]:
    """The run's name and, in a multirun, the sweep's (the W&B group)."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    if hydra_cfg.mode == RunMode.MULTIRUN:
        overrides = hydra_cfg.job.override_dirname or f"job{hydra_cfg.job.num}"
        return overrides, f"sweep-{Path(hydra_cfg.sweep.dir).name}"
    return run_dir.name, None


@hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    warnings.filterwarnings("ignore", category=FutureWarning)
    # Lightning prints its own INFO lines; do not repeat them through Hydra's handlers.
    logging.getLogger("lightning.pytorch").propagate = False
    from vqc.cli.report import print_training_summary
    from vqc.training.task import run_task

    run_name, group = _names()
    try:
        summary = run_task(cfg, run_name, group)
    except VqcError as err:
        log.error("%s", err)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise
        sys.exit(2)
    print_training_summary(summary)
    return summary.get("metric")


if __name__ == "__main__":
    main()
