"""The training task: config in, trained and tested model out, the optimised metric returned."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from vqc.data.build import build_datamodule
from vqc.data.layouts import gives_masks
from vqc.errors import ConfigError
from vqc.interrupts import interruptible
from vqc.metrics import load_cost_matrix
from vqc.metrics.cost import challenge_shaped_matrix
from vqc.models import build_model
from vqc.models.freeze import random_frozen_warning
from vqc.training.callbacks import configured_callbacks
from vqc.training.checkpoints import drop_last_checkpoint, resume_path
from vqc.training.distributed import check_launch, local_rank, rank_zero_tester
from vqc.training.limits import StageLimits
from vqc.training.loggers import build_loggers, finish_wandb, record_warnings
from vqc.training.losses import build_loss
from vqc.training.mask_loss import MaskSupervision
from vqc.training.members import ensemble_size, join_members, train_member
from vqc.training.module import ClassifierModule
from vqc.training.preflight import add_open_set, check_drift
from vqc.training.progress import log_progress
from vqc.training.recipe import (
    report_choices,
    resolve_data_choices,
    resolve_drift_choices,
    resolve_training_choices,
    resume_choices,
)
from vqc.training.review import define_best_metrics, log_run_files
from vqc.training.summary import RunSummary
from vqc.training.sweep import metric_floor
from vqc.training.testing import build_inspector, model_options, test_checkpoint

log = logging.getLogger(__name__)


def cost_matrix_for(spec: Any, classes: Any) -> torch.Tensor:
    """The configured cost matrix; the named ones take the data set's shape when it differs."""
    named = isinstance(spec, str) and spec in ("official", "page")
    if named and len(classes) != 7:
        return challenge_shaped_matrix(len(classes), classes.good_code, classes.open_set_code,
                                       variant=spec)
    if isinstance(spec, DictConfig | list) or OmegaConf.is_list(spec):
        spec = OmegaConf.to_container(spec) if OmegaConf.is_config(spec) else spec
    return load_cost_matrix(spec, len(classes))


def build_module(cfg: DictConfig, datamodule: Any) -> ClassifierModule:
    classes = datamodule.classes
    model = build_model(**model_options(cfg), num_classes=datamodule.num_classes,
                        in_channels=datamodule.in_channels)
    model.freeze_bn_stats(bool(cfg.module.get("freeze_bn_stats", False)))
    cost = cost_matrix_for(cfg.module.cost_matrix, classes)
    trained = classes.trained_codes
    counts = datamodule.class_counts()["train"].to_numpy()[trained].tolist()
    good = classes.good_code
    loss = build_loss(cfg.module.loss, counts, cost[trained][:, trained],
                      float(cfg.module.label_smoothing),
                      escape_weight=float(cfg.module.get("escape_weight", 0.0)),
                      good_index=trained.index(good) if good in trained else None)
    mask_head = mask_supervision(cfg, model)
    if cfg.module.compile:
        model = torch.compile(model)
        if mask_head is not None:
            log.warning("module.compile: training steps with pixel masks (module.mask_weight) "
                        "run the uncompiled network; validation and test run it compiled")
    return ClassifierModule(
        model=model, classes=classes, cost=cost, loss=loss,
        optimizer=instantiate(cfg.module.optimizer),
        scheduler=instantiate(cfg.module.scheduler) if cfg.module.scheduler else None,
        lr=float(cfg.lr), backbone_lr_factor=float(cfg.module.backbone_lr_factor),
        decision=cfg.module.decision, collapse_share=float(cfg.module.collapse_share),
        channels_last=bool(cfg.module.channels_last), nan_policy=cfg.module.nan_policy,
        mask_head=mask_head,
    )


def without_mask_training(cfg: DictConfig) -> None:
    """Testing needs no pixel masks: ``module.mask_weight`` and ``data.columns.mask`` off and
    ``data.read_masks`` false, so a run trained with masks is evaluated on any set, with masks
    or without."""
    with open_dict(cfg):
        cfg.module.mask_weight = 0.0
        layout = gives_masks(str(cfg.data.get("layout")))
        if layout is not None:
            layout.masks_off(cfg.data)


def mask_supervision(cfg: DictConfig, model: Any) -> MaskSupervision | None:
    """The mask head of ``module.mask_weight`` > 0 (the last feature map, which the pooled
    embedding averages, has ``num_features`` channels)."""
    weight = float(cfg.module.get("mask_weight", 0.0))
    return MaskSupervision(int(model.num_features), weight) if weight > 0 else None


@dataclass
class Run:
    """What a training run is made of, once set up and checked, before ``fit``."""

    run_dir: Path
    datamodule: Any
    module: ClassifierModule
    trainer: L.Trainer
    loggers: list[Any]
    resume: str | None
    warnings: list[str]
    choices: list[dict[str, Any]]
    networks: int


def train(cfg: DictConfig, run_name: str = "run", group: str | None = None) -> RunSummary:
    """Fit, then test the best checkpoint; returns the run's summary (also in summary.json)."""
    run = set_up(cfg, run_name, group)
    # Checkpoints hold tensors and plain values only: load them without unpickling objects.
    with interruptible("training", lightning=True):
        run.trainer.fit(run.module, datamodule=run.datamodule, ckpt_path=run.resume,
                        weights_only=True)
    summary = after_fit(cfg, run)
    if summary.rank is None:
        summary.write()
        log_run_files(run.loggers, run.run_dir, summary, cfg)
        drop_last_checkpoint(cfg, run.run_dir, sweep_job=group is not None)
    return summary


def set_up(cfg: DictConfig, run_name: str, group: str | None) -> Run:
    """The data, the module, the trainer and the loggers, every choice and check made before
    the first epoch; the run's warnings recorded where a reviewer sees them."""
    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    choices = resume_choices(cfg, run_dir)  # a resumed run keeps what it chose
    choices += resolve_data_choices(cfg)  # the config's "auto" values, before the data is read
    datamodule = prepare_data(cfg)
    if datamodule.val_frame is None or len(datamodule.val_frame) == 0:
        raise ConfigError(
            f"data.val_fraction={cfg.data.get('val_fraction')} leaves no validation images and "
            "the data has no val split: validation chooses the best checkpoint and fits the "
            "temperature and the drift threshold; set data.val_fraction (e.g. 0.2) or give a "
            "val split")
    datamodule.write_skipped(run_dir)
    choices += resolve_training_choices(cfg, datamodule)
    module = build_module(cfg, datamodule)
    early = check_drift(cfg, module.network, choices)  # drift layers fit the model: fail now
    rate, calibration = resolve_drift_choices(cfg, datamodule)
    choices += rate
    resume = resume_path(cfg, run_dir, module)  # checked before anything is written
    loggers = build_loggers(cfg.get("logger"), run_name, group)
    trainer = _trainer(cfg, run_dir, loggers)
    networks = ensemble_size(cfg)
    if networks > 1 and trainer.world_size > 1:
        raise ConfigError(f"ensemble={networks} trains its networks one after the other on one "
                          "device: set trainer.devices=1 or ensemble=1")
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    define_best_metrics(loggers)
    warnings = [w for w in (random_frozen_warning(module.model), *early, *calibration) if w]
    for text in warnings:
        log.warning("WARNING: %s", text)
    warnings += datamodule.index.warnings  # logged when the data was read
    record_warnings(loggers, warnings)
    return Run(run_dir, datamodule, module, trainer, loggers, resume, warnings,
               report_choices(choices, run_dir), networks)


def _trainer(cfg: DictConfig, run_dir: Path, loggers: list[Any]) -> L.Trainer:
    callbacks = configured_callbacks(cfg, run_dir / "figures" if cfg.figures.enabled else None)
    progress = log_progress(int(cfg.trainer.get("log_every_n_steps") or 0))
    callbacks += [progress] if progress else []
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    check_launch(trainer)
    return trainer


def after_fit(cfg: DictConfig, run: Run) -> RunSummary:
    """The ensemble's other networks, the test of the best weights, the inspector: the run's
    summary (on the other processes of a distributed run, only their rank)."""
    trainer, module, datamodule = run.trainer, run.module, run.datamodule
    floor = metric_floor(cfg.get("optimized_metric"), trainer.callback_metrics)
    tester = trainer
    if trainer.world_size > 1:  # test, inspector and files on rank 0, in one process
        tester = rank_zero_tester(trainer, cfg.trainer, run.loggers)
        if tester is None:
            return RunSummary(run_dir=str(run.run_dir), rank=trainer.global_rank)
    checkpoint = trainer.checkpoint_callback
    best = getattr(checkpoint, "best_model_path", "") if checkpoint else ""
    summary = RunSummary(
        run_dir=str(run.run_dir), epochs=trainer.current_epoch,
        classes=list(run.datamodule.classes.names), choices=run.choices,
        warnings=run.warnings, best_checkpoint=best or None,
        best=getattr(checkpoint, "best_record", None),
        best_monitor=getattr(checkpoint, "monitor", None),
        best_score=_number(getattr(checkpoint, "best_model_score", None)),
        decision=str(cfg.module.decision), optimized_metric=cfg.get("optimized_metric"),
        metric_floor=floor, wandb_dir=_wandb_dir(run.loggers))
    if run.networks > 1:
        summary.members = [train_member(cfg, datamodule, run.run_dir, k, build_module)
                           for k in range(1, run.networks)]
        join_members(cfg, module, datamodule, best, summary.members, build_module)
        best = ""  # the module holds the ensemble: tested and inspected as it is
    tested = bool(cfg.test and datamodule.test_frame is not None and len(datamodule.test_frame))
    if tested:
        summary.update(test_checkpoint(tester, module, datamodule, best, run.run_dir,
                                       run.warnings))
    if cfg.get("inspector", True):
        summary.update(build_inspector(cfg, module, datamodule, best, run.run_dir, tested,
                                       run.warnings, StageLimits.of(tester, datamodule)))
    summary.metric = _metric(trainer, summary.optimized_metric, summary.best)
    if summary.metric is None and tester is not trainer:
        summary.metric = _metric(tester, summary.optimized_metric, None)
    return summary


def prepare_data(cfg: DictConfig) -> Any:
    """The data module of ``cfg``, prepared (by rank 0) and set up, everything seeded."""
    # Pretrained weights fine-tuned on real images make denormal floats, which the CPU
    # computes a hundred times slower (an EfficientNet epoch took minutes instead of seconds).
    torch.set_flush_denormal(True)
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    resolve_data_choices(cfg)  # nothing left to choose when train() did it
    datamodule = build_datamodule(cfg.data, cfg.paths.cache_dir, seed=int(cfg.seed),
                                  masks=float(cfg.module.get("mask_weight", 0.0)) > 0)
    if local_rank() == 0:  # other processes of a distributed run find the data prepared
        datamodule.prepare_data()
    datamodule.setup()
    add_open_set(cfg, datamodule)  # drift on, no drift images: the answer exists all the same
    return datamodule


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _metric(trainer: L.Trainer, name: str | None,
            best: dict[str, Any] | None) -> float | None:
    """``name`` at the best checkpoint's epoch, else at the last epoch."""
    if name and best and name in best.get("metrics", {}):
        return _number(best["metrics"][name])
    if name and name in trainer.callback_metrics:
        return _number(trainer.callback_metrics[name])
    return None


def _wandb_dir(loggers: list[Any]) -> str | None:
    for logger in loggers:
        if type(logger).__name__ == "WandbLogger":
            try:
                return str(Path(logger.experiment.dir).parent)
            except Exception:
                return None
    return None


def run_task(cfg: DictConfig, run_name: str, group: str | None,
             report: Callable[[RunSummary], None] | None = None) -> RunSummary:
    """``train`` with the W&B run always closed (failed if the task raised).

    ``report`` shows the summary (rank 0) while the W&B run is open, so its log holds it too.
    """
    failed = True
    try:
        summary = train(cfg, run_name, group)
        if report is not None and not summary.get("rank"):
            report(summary)
        failed = False
        return summary
    finally:
        finish_wandb(failed)
        os.environ.pop("WANDB_RUN_ID", None)
