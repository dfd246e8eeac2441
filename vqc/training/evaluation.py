"""The evaluation task: a given checkpoint or inspector tested on a data config, with the same
reports and pictures as the end of a training run (``eval.py`` / ``vqc-test``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf, open_dict

from vqc.errors import ConfigError
from vqc.training.callbacks import configured_callbacks
from vqc.training.checkpoints import check_checkpoint
from vqc.training.loggers import build_loggers, record_warnings
from vqc.training.members import ensemble_size
from vqc.training.preflight import check_drift
from vqc.training.recipe import (
    resolve_drift_choices,
    resolve_training_choices,
    reuse_run_choices,
)
from vqc.training.summary import RunSummary
from vqc.training.task import build_module, prepare_data, without_mask_training
from vqc.training.testing import build_inspector, report_inspection, test_checkpoint

log = logging.getLogger(__name__)


def one_target(cfg: DictConfig) -> Iterator[str]:
    """A config check of ``eval.py``: exactly one of ``ckpt_path`` and ``inspector``, a file."""
    ckpt, inspector = cfg.get("ckpt_path"), cfg.get("inspector")
    if bool(ckpt) == bool(inspector):
        yield ("ckpt_path, inspector: give exactly one: ckpt_path=PATH (a training checkpoint) "
               "or inspector=PATH (an inspector.safetensors)")
        return
    key, path = ("ckpt_path", ckpt) if ckpt else ("inspector", inspector)
    if not isinstance(path, str):
        yield f"{key}={path}: must be a file path"
    elif not Path(path).is_file():
        yield f"{key}={path}: file not found"


def evaluate(cfg: DictConfig, run_name: str = "eval") -> RunSummary:
    """Test ``cfg.ckpt_path`` (then, with ``fit_inspector``, fit drift on its weights and score
    the whole inspection, as training does) or score ``cfg.inspector``; writes the reports,
    ``test_predictions.csv``, pictures and ``summary.json`` into the run folder."""
    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.get("inspector"):
        summary = _evaluate_inspector(cfg, run_dir)
    else:
        summary = _evaluate_checkpoint(cfg, run_dir, run_name)
    summary.write()
    return summary


def _one_member(cfg: DictConfig, ckpt: str) -> str | None:
    """The warning that ``ckpt`` is one network of an ensemble run, tested alone."""
    networks = ensemble_size(cfg)
    if networks == 1:
        return None
    return (f"ensemble={networks}: {ckpt} is one of the run's {networks} networks, tested "
            "alone here; the run's inspector.safetensors holds all of them "
            "(eval.py inspector=RUN/inspector.safetensors)")


def _evaluate_checkpoint(cfg: DictConfig, run_dir: Path, run_name: str) -> RunSummary:
    ckpt = str(cfg.ckpt_path)
    without_mask_training(cfg)
    reuse_run_choices(cfg, ckpt)  # the size its run chose, not one chosen from this data
    datamodule = prepare_data(cfg)
    datamodule.write_skipped(run_dir)
    resolve_training_choices(cfg, datamodule)  # "auto" epochs: a number
    asked = bool(cfg.model.get("pretrained")) or bool(cfg.model.get("weights"))
    with open_dict(cfg):  # the checkpoint holds every weight: no ImageNet file needed
        for key in ("pretrained", "weights"):
            if key in cfg.model:
                cfg.model[key] = False if key == "pretrained" else None
    module = build_module(cfg, datamodule)
    model = module.model
    if asked and cfg.model.get("unfreeze") is None and hasattr(model, "fine_tune_unfreeze"):
        model.default_unfreeze = model.fine_tune_unfreeze  # frozen as in training: the
        model.unfreeze(None)                               # drift layer is chosen from it
    best = check_checkpoint(ckpt, module, cfg)
    if datamodule.test_frame is None or not len(datamodule.test_frame):
        raise ConfigError(f"data={cfg.data.get('layout')}: no test images to evaluate "
                          f"{ckpt} on ({how_to_add_test(cfg)})")
    loggers = build_loggers(cfg.get("logger"), run_name, None)
    callbacks = [c for c in configured_callbacks(
        cfg, run_dir / "figures" if cfg.figures.enabled else None)
        if not isinstance(c, ModelCheckpoint)]  # nothing is trained: nothing to save
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks,
                                     enable_checkpointing=False)
    fitted = bool(cfg.get("fit_inspector", True))
    early = [*check_drift(cfg, module.network), *resolve_drift_choices(cfg, datamodule)[1]] \
        if fitted else []  # drift fitted as in training: layer and rate chosen alike
    warnings = [w for w in (_one_member(cfg, ckpt), *early) if w]  # weights: the checkpoint's
    for text in warnings:
        log.warning("WARNING: %s", text)
    record_warnings(loggers, warnings)
    summary = RunSummary(run_dir=str(run_dir), kind="test", checkpoint=ckpt, best=best,
                         warnings=warnings)
    summary.update(test_checkpoint(trainer, module, datamodule, ckpt, run_dir, warnings))
    summary["decision"] = str(cfg.module.decision)  # the tables titled as training titles them
    if fitted:
        summary.update(build_inspector(cfg, module, datamodule, ckpt, run_dir, True, warnings))
    return summary


def how_to_add_test(cfg: DictConfig) -> str:
    """Where the data's layout takes its test images from, for an error without any."""
    layout = str(cfg.data.get("layout"))
    if layout == "folders":
        return f"add a test/ folder of class folders under data.root={cfg.data.get('root')}"
    if layout == "csv":
        return (f"give test rows the value {cfg.data.get('test_split')!r} in the CSV's split "
                "column, or set data.test_csv")
    return "set the data config's test split or test_csv"


def _evaluate_inspector(cfg: DictConfig, run_dir: Path) -> RunSummary:
    """The inspector's own classes and preprocessing, so that the images are prepared as those
    it was fitted on."""
    from vqc.inspection.inspector import Inspector

    path = str(cfg.inspector)
    inspector = Inspector.load(path)
    spec = inspector.spec
    with open_dict(cfg):
        cfg.data.classes.names = list(spec.class_names)
        cfg.data.classes.good = spec.good
        cfg.data.classes.open_set = spec.open_set
        cfg.data.preprocess = OmegaConf.merge(cfg.data.preprocess, spec.preprocess)
        cfg.data.mean, cfg.data.std = spec.mean, spec.std
    without_mask_training(cfg)
    datamodule = prepare_data(cfg)
    if datamodule.test_frame is None or not len(datamodule.test_frame):
        raise ConfigError(f"data={cfg.data.get('layout')}: no test images to evaluate {path} "
                          f"on ({how_to_add_test(cfg)})")
    summary = RunSummary(run_dir=str(run_dir), kind="test", inspector=path)
    summary.update(report_inspection(cfg, inspector, datamodule, run_dir, [], []))
    return summary
