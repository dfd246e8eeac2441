"""Loggers from config, with W&B offline unless the user has configured it."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from vqc.errors import ConfigError
from vqc.training.review import ReviewSettings

log = logging.getLogger(__name__)

WANDB_MODES = ("online", "offline", "disabled")


def wandb_configured() -> bool:
    """True when an API key is available (environment or ``wandb login``'s netrc entry)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        auth = netrc.netrc().authenticators("api.wandb.ai")
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return bool(auth and auth[2])


def resolve_wandb_mode(mode: str | None) -> str:
    """``WANDB_MODE`` wins; ``auto`` is online with an API key and offline without one."""
    env = os.environ.get("WANDB_MODE")
    chosen = env or mode or "auto"
    if chosen == "dryrun":
        chosen = "offline"
    if chosen == "auto":
        chosen = "online" if wandb_configured() else "offline"
    if chosen not in WANDB_MODES:
        raise ConfigError(f"logger.wandb.mode={chosen!r}: expected auto, {', '.join(WANDB_MODES)}")
    if chosen == "online" and not wandb_configured():
        raise ConfigError("W&B mode is online but no API key is configured: run `wandb login` "
                          "or set WANDB_API_KEY, or use logger.wandb.mode=offline")
    return chosen


def wandb_tags(tags: Any) -> list[str]:
    """The run's tags as W&B takes them: strings of 1 to 64 characters, each once."""
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = [tags]
    out = [str(t).strip()[:64] for t in tags if t is not None and str(t).strip()]
    return list(dict.fromkeys(out))


def build_loggers(cfg: DictConfig | None, run_name: str, group: str | None) -> list[Any]:
    """Instantiate every logger of the ``logger`` group (W&B gets its mode, name and group)."""
    if not cfg:
        return []
    loggers = []
    for key, spec in cfg.items():
        if spec is None:
            continue
        spec = OmegaConf.to_container(spec, resolve=True)
        if str(spec.get("_target_", "")).endswith("WandbLogger"):
            mode = resolve_wandb_mode(spec.pop("mode", "auto"))
            if mode == "disabled":
                log.info("W&B disabled")
                continue
            # what the run holds besides the curves (vqc.training.review): checked here, before
            # any training
            ReviewSettings.from_spec(spec.pop("review", None))
            spec["offline"] = mode == "offline"
            spec["name"] = spec.get("name") or run_name
            spec["group"] = spec.get("group") or group
            spec["tags"] = wandb_tags(spec.get("tags"))
            Path(spec["save_dir"]).mkdir(parents=True, exist_ok=True)
            os.environ.setdefault("WANDB_SILENT", "true")
        try:
            logger = instantiate(spec)
        except Exception as err:
            raise ConfigError(f"logger.{key}: cannot create it ({err})") from err
        init = getattr(logger, "_wandb_init", None)
        if isinstance(init, dict) and init.get("anonymous") is None:
            # Lightning passes anonymous=None, which wandb answers with a deprecation warning
            init.pop("anonymous", None)
        loggers.append(logger)
    return loggers


def finish_wandb(failed: bool) -> None:
    """Close the current W&B run (marked failed when the job failed).

    Without this, the jobs of a multirun run in one process would all log into one W&B run.
    """
    try:
        import wandb
    except ImportError:  # pragma: no cover - wandb is a dependency
        return
    if wandb.run is not None:
        wandb.finish(exit_code=1 if failed else 0)


def record_warnings(loggers: list[Any], warnings: list[str]) -> None:
    """Put warnings where a reviewer sees them: the run's hyperparameters in every logger and,
    in W&B, the run summary and an alert (both kept offline and uploaded by ``wandb sync``)."""
    if not warnings:
        return
    for logger in loggers:
        logger.log_hyperparams({"warnings": list(warnings)})
    _to_wandb(loggers, warnings, warnings)


def add_warning(text: str, warnings: list[str], loggers: list[Any]) -> None:
    """A warning raised once the run is under way (the drift calibration, the temperature):
    logged, added to the run's ``warnings`` (summary.json, reports) and sent to W&B now, in
    the run summary and as an alert, as :func:`record_warnings` does for those at the start."""
    if text in warnings:
        return
    log.warning("WARNING: %s", text)
    warnings.append(text)
    _to_wandb(loggers, warnings, [text])


def _to_wandb(loggers: list[Any], warnings: list[str], new: list[str]) -> None:
    for logger in loggers:
        if type(logger).__name__ != "WandbLogger":
            continue
        run = logger.experiment
        run.summary["warnings"] = "\n".join(warnings)
        run.summary["warning_count"] = len(warnings)
        for text in new:
            try:
                run.alert(title="vqc warning", text=text[:1000])
            except Exception as error:  # alerts need a server in some wandb versions
                log.debug("W&B alert not sent: %s", error)
