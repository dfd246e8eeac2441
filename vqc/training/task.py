"""The training task: config in, trained and tested model out, the optimised metric returned."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import warnings as pywarnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from vqc.data.build import build_datamodule
from vqc.errors import ConfigError
from vqc.inspection.evaluate import evaluate_inspector
from vqc.inspection.fit import fit_inspector
from vqc.inspection.inspector import InspectorSpec
from vqc.interrupts import interruptible
from vqc.io import write_atomic
from vqc.metrics import decisions_markdown, load_cost_matrix
from vqc.metrics.cost import challenge_shaped_matrix
from vqc.metrics.render import classifier_title
from vqc.models import build_model, member_count
from vqc.models.freeze import random_frozen_warning
from vqc.training.callbacks import BEST_KEY, configured_callbacks
from vqc.training.distributed import check_launch, local_rank, rank_zero_tester
from vqc.training.limits import StageLimits
from vqc.training.loggers import add_warning, build_loggers, finish_wandb, record_warnings
from vqc.training.losses import build_loss
from vqc.training.mask_loss import MaskSupervision
from vqc.training.members import ensemble_size, join_members, train_member
from vqc.training.module import MASK_HEAD_PREFIX, ClassifierModule, without_mask_head
from vqc.training.preflight import add_open_set, check_drift
from vqc.training.progress import log_progress
from vqc.training.recipe import (
    report_choices,
    resolve_data_choices,
    resolve_drift_choices,
    resolve_training_choices,
    resume_choices,
)
from vqc.training.review import define_best_metrics, log_inspection, log_run_files
from vqc.training.sweep import metric_floor

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


def model_options(cfg: DictConfig) -> dict[str, Any]:
    """The ``model`` group as ``build_model`` keyword arguments (its family's keys only)."""
    return dict(OmegaConf.to_container(cfg.model, resolve=True))


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
        if OmegaConf.select(cfg, "data.columns.mask") is not None:
            cfg.data.columns.mask = None
        if OmegaConf.select(cfg, "data.masks_root") is not None:
            cfg.data.read_masks = False  # its folder is still no class


def mask_supervision(cfg: DictConfig, model: Any) -> MaskSupervision | None:
    """The mask head of ``module.mask_weight`` > 0 (the last feature map, which the pooled
    embedding averages, has ``num_features`` channels)."""
    weight = float(cfg.module.get("mask_weight", 0.0))
    return MaskSupervision(int(model.num_features), weight) if weight > 0 else None


def _resume_path(cfg: DictConfig, run_dir: Path, module: ClassifierModule) -> str | None:
    """The checkpoint to resume from (``ckpt_path``), checked to be one of this very model."""
    ckpt = cfg.get("ckpt_path")
    if not ckpt:
        return None
    if ckpt == "last":
        last = run_dir / "checkpoints" / "last.ckpt"
        if not last.is_file():
            log.info("no %s yet: starting from scratch", last)
            return None
        log.info("resuming from %s", last)
        ckpt = str(last)
    elif not Path(ckpt).is_file():
        raise ConfigError(f"ckpt_path={ckpt}: file not found")
    _check_checkpoint(str(ckpt), module, cfg, resume=True)
    return str(ckpt)


def _check_checkpoint(path: str, module: ClassifierModule, cfg: DictConfig,
                      resume: bool = False) -> dict[str, Any] | None:
    """Refuse, with a message naming the file, a checkpoint that is unreadable without
    unpickling objects, or whose weights are not those of the configured model; ``resume``:
    also one without the optimizer's state (a best checkpoint holds the weights only).
    Returns what chose the checkpoint (``callbacks.best_record``), when it says."""
    if not zipfile.is_zipfile(path):
        raise ConfigError(f"ckpt_path={path}: not a checkpoint (a file written by torch.save)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        if "Weights only load failed" in str(err):
            found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
            what = f" such as {found.group(1)}" if found else ""
            raise ConfigError(f"ckpt_path={path}: refused: it holds objects{what} besides "
                              "tensors and plain values, and checkpoints are never "
                              "unpickled") from err
        lines = str(err).strip().splitlines()
        reason = f"{type(err).__name__}: {lines[0][:200]}" if lines else type(err).__name__
        raise ConfigError(f"ckpt_path={path}: not a readable checkpoint ({reason})") from err
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ConfigError(f"ckpt_path={path}: not a training checkpoint (no state_dict)")
    if resume and "optimizer_states" not in checkpoint:
        raise ConfigError(f"ckpt_path={path}: holds the weights only (a best checkpoint), "
                          "not the optimizer's state training resumes from: resume from "
                          "checkpoints/last.ckpt (ckpt_path=last), or test these weights with "
                          "eval.py ckpt_path=...")
    ours = module.state_dict()
    mask_trained = any(key.startswith(MASK_HEAD_PREFIX) for key in state)
    if resume and mask_trained != (module.mask_head is not None):
        raise ConfigError(f"ckpt_path={path}: trained {'with' if mask_trained else 'without'} "
                          f"pixel masks, resumed {'without' if mask_trained else 'with'}: set "
                          "module.mask_weight (and data.columns.mask or data.masks_root) as the "
                          "run had them")
    if not resume:  # testing needs the network, not the training-only mask head
        state = without_mask_head(state) if module.mask_head is None else state
    missing = sorted(set(ours) - set(state))
    unexpected = sorted(set(state) - set(ours))
    shapes = [f"{key} {tuple(getattr(state[key], 'shape', ()))} in the file, "
              f"{tuple(ours[key].shape)} here"
              for key in sorted(set(ours) & set(state))
              if tuple(getattr(state[key], "shape", ())) != tuple(ours[key].shape)]
    if missing or unexpected or shapes:
        parts = [f"{what} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
                 for what, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                    ("other shapes", shapes)) if keys]
        raise ConfigError(
            f"ckpt_path={path}: a checkpoint of another model or data set than this run's "
            f"(model={cfg.model.name}, {len(module.classes.trained_codes)} trained classes): "
            + "; ".join(parts)
        )
    record = checkpoint.get(BEST_KEY)
    return record if isinstance(record, dict) else None


def train(cfg: DictConfig, run_name: str = "run", group: str | None = None) -> dict[str, Any]:
    """Fit, then test the best checkpoint; returns the run's summary (also in summary.json)."""
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
    resume = _resume_path(cfg, run_dir, module)  # checked before anything is written
    loggers = build_loggers(cfg.get("logger"), run_name, group)
    callbacks = configured_callbacks(cfg, run_dir / "figures" if cfg.figures.enabled else None)
    progress = log_progress(int(cfg.trainer.get("log_every_n_steps") or 0))
    callbacks += [progress] if progress else []
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    check_launch(trainer)
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
    chosen_rows = report_choices(choices, run_dir)
    # Checkpoints hold tensors and plain values only: load them without unpickling objects.
    with interruptible("training", lightning=True):
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume, weights_only=True)
    floor = metric_floor(cfg.get("optimized_metric"), trainer.callback_metrics)
    tester = trainer
    if trainer.world_size > 1:  # test, inspector and files on rank 0, in one process
        tester = rank_zero_tester(trainer, cfg.trainer, loggers)
        if tester is None:
            return {"run_dir": str(run_dir), "rank": trainer.global_rank}
    summary: dict[str, Any] = {"run_dir": str(run_dir), "epochs": trainer.current_epoch,
                               "choices": chosen_rows, "warnings": warnings}
    checkpoint = trainer.checkpoint_callback
    best = getattr(checkpoint, "best_model_path", "") if checkpoint else ""
    summary["best_checkpoint"] = best or None
    summary["best"] = getattr(checkpoint, "best_record", None)
    summary["best_monitor"] = getattr(checkpoint, "monitor", None)
    summary["best_score"] = _number(getattr(checkpoint, "best_model_score", None))
    if networks > 1:
        summary["members"] = [train_member(cfg, datamodule, run_dir, k, build_module)
                              for k in range(1, networks)]
        join_members(cfg, module, datamodule, best, summary["members"], build_module)
        best = ""  # the module holds the ensemble: tested and inspected as it is
    tested = bool(cfg.test and datamodule.test_frame is not None and len(datamodule.test_frame))
    if tested:
        summary.update(test_checkpoint(tester, module, datamodule, best, run_dir, warnings))
    summary["decision"] = str(cfg.module.decision)
    if cfg.get("inspector", True):
        summary.update(build_inspector(cfg, module, datamodule, best, run_dir, tested,
                                       warnings, StageLimits.of(tester, datamodule)))
    metric_name = cfg.get("optimized_metric")
    summary["optimized_metric"] = metric_name
    summary["metric"] = _metric(trainer, metric_name, summary["best"])
    if summary["metric"] is None and tester is not trainer:
        summary["metric"] = _metric(tester, metric_name, None)
    summary["metric_floor"] = floor
    summary["wandb_dir"] = _wandb_dir(loggers)
    write_atomic(run_dir / "summary.json", json.dumps(summary, indent=2, default=str))
    log_run_files(loggers, run_dir, summary, cfg)
    _drop_last_checkpoint(cfg, run_dir, sweep_job=group is not None)
    return summary


def _drop_last_checkpoint(cfg: DictConfig, run_dir: Path, sweep_job: bool) -> None:
    """A finished run's ``last.ckpt`` (weights and optimizer state, three times the weights'
    size with Adam) is removed where ``keep_last_checkpoint`` says so; by default from sweep
    jobs, which would otherwise keep gigabytes nobody resumes."""
    keep = cfg.get("keep_last_checkpoint")
    if keep if keep is not None else not sweep_job:
        return
    last = run_dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        size = last.stat().st_size / 2**20
        last.unlink()
        log.info("removed %s (%.0f MB): the run has finished (keep_last_checkpoint=true keeps "
                 "it)", last, size)


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


def test_checkpoint(tester: L.Trainer, module: ClassifierModule, datamodule: Any,
                    checkpoint: str | None, run_dir: Path,
                    warnings: list[str]) -> dict[str, Any]:
    """Test ``checkpoint`` (``None``: the module's weights as they are) and write
    ``test_report.md``; the test report and the decision rules' reports."""
    with interruptible("testing", lightning=True):
        tester.test(module, datamodule=datamodule, ckpt_path=checkpoint or None,
                    weights_only=True, verbose=False)
    if module.temperature_warning:
        add_warning(module.temperature_warning, warnings, module.loggers)
    write_atomic(run_dir / "test_report.md", with_warnings(
        module.test_report.to_markdown(classifier_title(module.decision)) + "\n"
        + decisions_markdown(module.test_decisions), warnings))
    return {"test": module.test_report.to_dict(),
            "test_decisions": {rule: r.to_dict() for rule, r in module.test_decisions.items()}}


def inspector_spec(cfg: DictConfig, module: ClassifierModule, datamodule: Any) -> InspectorSpec:
    classes = datamodule.classes
    data = OmegaConf.to_container(cfg.data, resolve=True)
    return InspectorSpec(
        class_names=list(classes.names), open_set=classes.open_set, good=classes.good,
        model={**{k: v for k, v in model_options(cfg).items()
                  if k not in ("pretrained", "weights", "unfreeze")},
               "num_classes": datamodule.num_classes, "in_channels": datamodule.in_channels,
               **({"members": n} if (n := member_count(module.model)) > 1 else {})},
        preprocess=dict(data["preprocess"]), mean=data.get("mean"), std=data.get("std"),
        decision=cfg.module.decision, cost_matrix=module.cost.tolist(),
        temperature=float(module.temperature.temperature),
    )


def build_inspector(cfg: DictConfig, module: ClassifierModule, datamodule: Any,
                    best: str | None, run_dir: Path, tested: bool = False,
                    warnings: list[str] | None = None,
                    limits: StageLimits | None = None) -> dict[str, Any]:
    """Fit drift on the best weights, score the whole pipeline on test, save the artifact.

    ``tested``: the module already holds the best weights and the temperature fitted on
    validation (testing loads and calibrates them); otherwise they are loaded and fitted here.
    ``limits``: the trainer's limits, which the drift fit, calibration, scoring and figures
    keep to as well.
    """
    with interruptible("fitting drift and scoring the inspection"):
        return _build_inspector(cfg, module, datamodule, best, run_dir, tested, warnings,
                                limits or StageLimits())


def _build_inspector(cfg: DictConfig, module: ClassifierModule, datamodule: Any,
                     best: str | None, run_dir: Path, tested: bool,
                     warnings: list[str] | None, limits: StageLimits) -> dict[str, Any]:
    if not tested:
        if best:
            module.load_checkpoint_weights(best)
        module.fit_temperature(datamodule)  # the checkpoint holds the uncalibrated value
    model = module.network.cpu().eval()
    drift_cfg = OmegaConf.to_container(cfg.drift, resolve=True) if cfg.get("drift") else None
    with pywarnings.catch_warnings(record=True) as caught:
        pywarnings.simplefilter("always", UserWarning)
        inspector = fit_inspector(
            model, datamodule, inspector_spec(cfg, module, datamodule), drift_cfg,
            train_frame=limits.frame("train", datamodule.train_frame),
            val_frame=limits.frame("val", datamodule.val_frame))
    if warnings is not None:  # e.g. a validation split too small for the false-drift budget
        for found in caught:
            if f"{os.sep}vqc{os.sep}" not in str(found.filename):
                continue  # a library's own warnings stay where they were
            add_warning(f"drift calibration: {found.message}", warnings, module.loggers)
        if module.temperature_warning:
            add_warning(module.temperature_warning, warnings, module.loggers)
    path = inspector.save(run_dir / "inspector.safetensors")
    return {"inspector": str(path),
            **report_inspection(cfg, inspector, datamodule, run_dir, warnings or [],
                                module.loggers, module.current_epoch, module.global_step,
                                limits)}


def report_inspection(cfg: DictConfig, inspector: Any, datamodule: Any, run_dir: Path,
                      warnings: list[str], loggers: list[Any],
                      step: int = 0, global_step: int = 0,
                      limits: StageLimits | None = None) -> dict[str, Any]:
    """Score the whole inspection on the test set: ``inspection_report.md``,
    ``test_predictions.csv``, the inspection's pictures and its W&B review (nothing without a
    test set). ``step``: the epoch the pictures are filed under; ``global_step``: the W&B
    step of the review; ``limits``: the trainer's, which scoring and figures keep to."""
    test_frame = (limits or StageLimits()).frame("test", datamodule.test_frame)
    if test_frame is None or not len(test_frame):
        return {}
    result = evaluate_inspector(inspector, test_frame, datamodule.cache)
    write_atomic(run_dir / "inspection_report.md", with_warnings(result.to_markdown(), warnings))
    from vqc.io import write_csv_atomic

    write_csv_atomic(result.predictions, run_dir / "test_predictions.csv", index=False)
    log_inspection(loggers, result, test_frame, datamodule.cache, global_step, cfg)
    if cfg.figures.enabled:
        from vqc.inspection.figures import inspection_figures, send_figures

        limit = cfg.get("debug_limits")
        pictures = inspection_figures(inspector, result, test_frame,
                                      datamodule.cache, run_dir / "figures",
                                      tsne_max_points=int(limit) if limit else 2000)
        send_figures(loggers, pictures, step)
    return {"inspection": result.to_dict()}


def with_warnings(markdown: str, warnings: list[str]) -> str:
    """A report with its run's warnings on top, where nobody reading it can miss them."""
    if not warnings:
        return markdown
    return "".join(f"> **WARNING**: {text}\n\n" for text in warnings) + markdown


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
             report: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
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
