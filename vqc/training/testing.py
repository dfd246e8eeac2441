"""What follows training: the best weights tested, then the inspector (drift fitted on the same
weights) scored on the test split and saved; each report carries the run's warnings on top."""

from __future__ import annotations

import logging
import os
import warnings as pywarnings
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from vqc.inspection.evaluate import evaluate_inspector
from vqc.inspection.fit import fit_inspector
from vqc.inspection.inspector import InspectorSpec
from vqc.interrupts import interruptible
from vqc.io import write_atomic
from vqc.metrics import decisions_markdown
from vqc.metrics.render import classifier_title
from vqc.models import member_count
from vqc.training.limits import StageLimits
from vqc.training.loggers import add_warning
from vqc.training.module import ClassifierModule
from vqc.training.review import log_inspection

log = logging.getLogger(__name__)


def model_options(cfg: DictConfig) -> dict[str, Any]:
    """The ``model`` group as ``build_model`` keyword arguments (its family's keys only)."""
    return dict(OmegaConf.to_container(cfg.model, resolve=True))


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


__all__ = ["build_inspector", "inspector_spec", "model_options", "report_inspection",
           "test_checkpoint", "with_warnings"]
