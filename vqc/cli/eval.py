"""``python eval.py`` / ``vqc-test``: test a given checkpoint or inspector on a data config.

    python eval.py ckpt_path=outputs/runs/X/checkpoints/best-epoch007.ckpt
    python eval.py inspector=outputs/runs/X/inspector.safetensors data=csv data.root=/data/new

A checkpoint in a run folder is tested with the settings that run was made with (its
``.hydra/overrides.yaml``, then the overrides given here: ``vqc/cli/run_settings.py``); an
inspector carries its own. The reports go to a run folder of their own under ``outputs/evals/``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from vqc.cli.start import quiet_library_warnings
from vqc.config import CONFIG_DIR, register_resolvers
from vqc.errors import VqcError
from vqc.interrupts import Interrupted, handle_signals

log = logging.getLogger("vqc")
register_resolvers()
_run_settings_line: str | None = None


def alias_main() -> None:
    """``vqc-eval``: the former name of ``vqc-test``, kept as an alias."""
    print("vqc-eval is an alias of vqc-test (the same command)", file=sys.stderr)
    main()


def main() -> None:
    """``python eval.py`` / ``vqc-test [overrides]``: a checkpoint's run settings come first."""
    global _run_settings_line
    from vqc.cli.run_settings import with_run_settings

    try:
        args, _run_settings_line = with_run_settings(sys.argv[1:])
    except VqcError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    sys.argv = [sys.argv[0], *args]
    with handle_signals():
        _hydra_main()


@hydra.main(config_path=str(CONFIG_DIR), config_name="eval", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    quiet_library_warnings()
    logging.getLogger("lightning.pytorch").propagate = False
    from vqc.cli.report import console, print_inspection, print_training_summary
    from vqc.cli.start import start_run
    from vqc.config_checks import CHECKS
    from vqc.training.evaluation import evaluate, one_target

    if _run_settings_line:
        log.info("%s", _run_settings_line)
    try:
        start_run(cfg, checks=[*CHECKS, one_target])
        summary = evaluate(cfg, Path(HydraConfig.get().runtime.output_dir).name)
    except Interrupted as stop:
        log.error("%s; nothing of it is kept: the same command starts it again", stop)
        sys.exit(stop.exit_code)
    except (VqcError, OSError) as err:
        log.error("%s", err)
        sys.exit(2)
    if summary.get("test"):
        print_training_summary({**summary, "best_checkpoint": summary.get("checkpoint")})
    else:
        if summary.get("inspection"):
            print_inspection(summary["inspection"])
        console.print(f"run folder (pictures in figures/, summary.json): {summary['run_dir']}")


if __name__ == "__main__":
    main()
