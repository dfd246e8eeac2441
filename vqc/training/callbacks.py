"""Lightning callbacks of a training run: the checkpoint that skips non-finite epochs, and the
pictures (confusion matrices, t-SNE, misclassified images) drawn from the module's outputs."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from weakref import proxy

import lightning as L
import torch
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, RichProgressBar, Timer
from torch import Tensor

from vqc.classes import ClassSet
from vqc.plotting import save_figure, tsne_figure
from vqc.training.figures import misclassified_figure
from vqc.training.schedules import schedule_length, shorten_schedule

log = logging.getLogger(__name__)


class EpochProgressBar(RichProgressBar):
    """Lightning's rich progress bar, counting epochs from 1 as vqc's log does ("Epoch 3/3"
    for the last of three, where Lightning shows "Epoch 2/2")."""

    def _get_train_description(self, current_epoch: int) -> str:
        description = super()._get_train_description(current_epoch + 1)
        if self.trainer.max_epochs is not None and self.trainer.max_epochs >= 0:
            description = description.replace(f"/{self.trainer.max_epochs - 1}",
                                              f"/{self.trainer.max_epochs}", 1)
        return description


#: Key of a checkpoint file (and of the callback's state) holding :func:`best_record`.
BEST_KEY = "vqc_best"


def best_record(trainer: L.Trainer, monitor: str, score: Tensor | None) -> dict[str, Any]:
    """The monitor's name and value at this epoch, and every scalar figure logged beside it."""
    metrics = {}
    for name, value in trainer.callback_metrics.items():
        tensor = torch.as_tensor(value)
        if tensor.numel() == 1 and bool(torch.isfinite(tensor)):
            metrics[name] = float(tensor)
    return {"monitor": monitor, "score": None if score is None else float(score),
            "epoch": int(trainer.current_epoch) + 1, "metrics": metrics}


class FiniteModelCheckpoint(ModelCheckpoint):
    """A ``ModelCheckpoint`` that passes over non-finite monitored values instead of saving them.

    Lightning turns a NaN score into -inf (mode ``max``) or +inf (``min``) but still saves it as
    the best while it holds fewer than ``save_top_k`` checkpoints, so a diverged first epoch
    would become the best checkpoint: the model that is tested and shipped. Here such an epoch
    is never saved as best; the best is the best finite epoch, or there is none.

    Each checkpoint is written to a temporary file in its own folder, then renamed over the
    previous one, so a save that fails (a full disk) leaves the previous checkpoint whole.
    (Lightning writes through a temporary file of the system's temporary folder and moves it
    into place; when that folder is on another file system, the move is a copy that a full
    disk cuts short, in place.)
    """

    def check_monitor_top_k(self, trainer: L.Trainer, current: Tensor | None = None) -> bool:
        if current is not None and not bool(torch.isfinite(torch.as_tensor(current)).all()):
            epoch = "?" if trainer is None else trainer.current_epoch + 1
            log.warning("epoch %s: %s = %s is not finite; not a candidate for the best "
                        "checkpoint", epoch, self.monitor, float(current))
            return False
        return super().check_monitor_top_k(trainer, current)

    #: What the best checkpoint was chosen by: ``{"monitor", "score", "epoch", "metrics"}``
    #: (``epoch`` counted from 1, ``metrics`` every scalar logged that epoch); also saved in the
    #: checkpoint file under :data:`BEST_KEY`, so ``eval.py`` can name it.
    best_record: dict[str, Any] | None = None

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        if not _is_local_file_protocol(filepath):
            super()._save_checkpoint(trainer, filepath)
            return
        path = Path(filepath)
        tmp = path.with_name(f".{path.name}.partial")
        if self.monitor is not None and filepath == self.best_model_path:  # not a last.ckpt
            self.best_record = best_record(trainer, self.monitor, self.current_score)
        try:
            checkpoint = trainer._checkpoint_connector.dump_checkpoint(self.save_weights_only)
            if self.best_record is not None and filepath == self.best_model_path:
                checkpoint[BEST_KEY] = self.best_record
            trainer.strategy.save_checkpoint(checkpoint, tmp)
            trainer.strategy.barrier("FiniteModelCheckpoint._save_checkpoint")
            if trainer.is_global_zero and tmp.is_file():
                os.replace(tmp, path)
        except BaseException:
            if trainer.is_global_zero:
                tmp.unlink(missing_ok=True)
            raise
        # what ModelCheckpoint._save_checkpoint does after saving
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), BEST_KEY: self.best_record}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.best_record = state_dict.get(BEST_KEY, self.best_record)

    @property
    def state_key(self) -> str:
        # Lightning keys a callback's saved state by its class name: keep ModelCheckpoint's, so
        # that checkpoints written with either class resume with their best score.
        key = super().state_key
        return ModelCheckpoint.__qualname__ + key.removeprefix(type(self).__qualname__)


def warn_unguarded(callbacks: Iterable[Any]) -> None:
    """Warn about monitoring checkpoints that could save a diverged epoch as the best."""
    for callback in callbacks:
        if (isinstance(callback, ModelCheckpoint) and callback.monitor is not None
                and not isinstance(callback, FiniteModelCheckpoint)):
            log.warning("callbacks: a ModelCheckpoint monitoring %s can save a non-finite epoch "
                        "as the best; use %s.%s instead", callback.monitor, __name__,
                        FiniteModelCheckpoint.__name__)


class RunFigures(L.Callback):
    """Pictures of a run, saved under ``out_dir`` and sent to the trainer's loggers.

    Validation: confusion matrix and t-SNE after the last epoch, and every ``every_n_epochs``
    epochs if that is above 0 (files ``val_*_epochNNN.png``). Test: confusion matrix, t-SNE
    and up to ``max_misclassified`` misclassified images. Drawn from what the module leaves in
    ``epoch_outputs`` and returns from ``test_step`` (the decided codes); rank 0 only.
    ``out_dir=None`` makes none.
    """

    def __init__(self, out_dir: str | Path | None = None, every_n_epochs: int = 0,
                 tsne: bool = True, tsne_max_points: int = 2000,
                 max_misclassified: int = 32) -> None:
        self.out_dir = None if out_dir is None else str(out_dir)
        self.every_n_epochs = every_n_epochs
        self.tsne = tsne
        self.tsne_max_points = tsne_max_points
        self.max_misclassified = max_misclassified
        self._misclassified: list[tuple[Tensor, int, int]] = []

    def due(self, epoch: int, max_epochs: int | None) -> bool:
        """Whether validation pictures are made after ``epoch`` (0-based)."""
        if self.out_dir is None:
            return False
        last = max_epochs is not None and max_epochs > 0 and epoch == max_epochs - 1
        periodic = self.every_n_epochs > 0 and (epoch + 1) % self.every_n_epochs == 0
        return last or periodic

    def _active(self, trainer: L.Trainer) -> bool:
        return self.out_dir is not None and trainer.is_global_zero

    # -- hooks ----------------------------------------------------------------------------------
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not self._active(trainer):
            return
        outputs = getattr(pl_module, "epoch_outputs", {}).get("val")
        if outputs is not None and self.due(trainer.current_epoch, trainer.max_epochs):
            self.epoch_figures(trainer, "val", outputs, pl_module.classes)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._misclassified = []

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                          outputs: Any, batch: Any, batch_idx: int,
                          dataloader_idx: int = 0) -> None:
        room = self.max_misclassified - len(self._misclassified)
        if not self._active(trainer) or not isinstance(outputs, Tensor) or room <= 0:
            return
        images, target = batch[0], batch[1]
        for i in (outputs != target).nonzero().flatten()[:room].tolist():
            self._misclassified.append((images[i].detach().float().cpu(), int(target[i]),
                                        int(outputs[i])))

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._active(trainer):
            return
        outputs = getattr(pl_module, "epoch_outputs", {}).get("test")
        if outputs is not None:
            self.epoch_figures(trainer, "test", outputs, pl_module.classes)
        if self._misclassified:
            fig = misclassified_figure(self._misclassified, pl_module.classes,
                                       "test: misclassified (true -> predicted)")
            self._save(trainer, fig, "test/misclassified", "test_misclassified.png")
        self._misclassified = []

    # -- drawing --------------------------------------------------------------------------------
    def _save(self, trainer: L.Trainer, fig: Any, key: str, name: str) -> Path:
        return save_figure(fig, Path(str(self.out_dir)) / name, trainer.loggers, key,
                           trainer.current_epoch)

    def epoch_figures(self, trainer: L.Trainer, stage: str, outputs: Any,
                      classes: ClassSet) -> None:
        """Confusion matrix of ``outputs.report`` and t-SNE of ``outputs.features``."""
        suffix = "" if stage == "test" else f"_epoch{trainer.current_epoch:03d}"
        fig = outputs.report.confusion_figure(title=f"{stage} confusion matrix")
        self._save(trainer, fig, f"{stage}/confusion_matrix", f"{stage}_confusion{suffix}.png")
        if not self.tsne or len(outputs.features) < 5:
            return
        try:
            fig = tsne_figure(outputs.features, outputs.codes, classes,
                              f"{stage} embeddings (t-SNE)", self.tsne_max_points)
        except ValueError as err:  # degenerate embeddings, e.g. all identical
            log.warning("t-SNE skipped: %s", err)
        else:
            self._save(trainer, fig, f"{stage}/tsne", f"{stage}_tsne{suffix}.png")


def configured_callbacks(cfg: Any, out_dir: Path | None) -> list[L.Callback]:
    """The config's ``callbacks`` (a progress bar only if ``trainer.enable_progress_bar``),
    the run's pictures into ``out_dir`` (``None``: none), and with ``trainer.max_time`` the
    schedule that ends when the time does."""
    from hydra.utils import instantiate

    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    if not cfg.trainer.get("enable_progress_bar", True):
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    warn_unguarded(callbacks)
    limit = cfg.get("debug_limits")
    callbacks.append(RunFigures(out_dir=out_dir, every_n_epochs=int(cfg.figures.every_n_epochs),
                                tsne=bool(cfg.figures.tsne),
                                tsne_max_points=int(limit) if limit else 2000))
    if cfg.trainer.get("max_time"):
        callbacks.append(ScheduleFitsMaxTime())
    return callbacks


class ScheduleFitsMaxTime(L.Callback):
    """With ``trainer.max_time``, end the learning-rate schedule where the time runs out.

    A schedule's length comes from ``max_epochs`` (``estimated_stepping_batches``); a run
    stopped earlier by its time limit would end with its rate barely decayed. After every
    epoch (its training and validation) this estimates how many epochs fit in the time left,
    at the slower of the mean pace and the last epoch's, and moves the end of every schedule
    it knows (:func:`vqc.training.schedules.shorten_schedule`) there: sooner when the machine
    got busier, later again (never past the first plan) when it got free, so that a burst of
    load in the first epochs does not cut the whole run short.
    """

    def __init__(self) -> None:
        self._start: float | None = None
        self._last: float | None = None
        self._first_step = 0
        self._first_epoch = 0
        self._spent = 0.0
        self._longest: list[tuple[str, int] | None] = []
        self.planned_epochs: int | None = None

    @staticmethod
    def clock() -> float:
        return time.monotonic()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = self._last = self.clock()
        self._first_step = trainer.global_step
        self._first_epoch = trainer.current_epoch
        timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
        # a resumed run: the Timer brings back the time spent before, which is not left
        self._spent = float(timer.time_elapsed("train")) if timer is not None else 0.0
        self._longest = [schedule_length(c.scheduler) for c in trainer.lr_scheduler_configs]

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._start is None or self._last is None:
            return
        timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
        limit = getattr(timer, "_duration", None)
        if not limit:
            return
        now = self.clock()
        elapsed = max(now - self._start, 1e-9)
        done = max(1, trainer.current_epoch + 1 - self._first_epoch)
        pace = max(elapsed / done, now - self._last)
        self._last = now
        left = max(0, math.floor((float(limit) - self._spent - elapsed) / pace))
        epochs = trainer.current_epoch + 1 + left
        if trainer.max_epochs is not None and trainer.max_epochs > 0:
            epochs = min(epochs, trainer.max_epochs)
        if epochs == self.planned_epochs or (self.planned_epochs is None and epochs ==
                                              trainer.max_epochs):
            return
        self.planned_epochs = epochs
        steps = (trainer.global_step - self._first_step) / done
        total = trainer.global_step + round((epochs - trainer.current_epoch - 1) * steps)
        longest = self._longest or [None] * len(trainer.lr_scheduler_configs)
        changed = [shorten_schedule(config.scheduler, total, epochs, first)
                   for config, first in zip(trainer.lr_scheduler_configs, longest, strict=False)]
        if any(changed):
            log.info("max_time: about %d epochs fit; the learning-rate schedule now ends "
                     "after epoch %d (step %d)", epochs, epochs, total)


__all__ = ["FiniteModelCheckpoint", "RunFigures", "ScheduleFitsMaxTime", "configured_callbacks",
           "warn_unguarded"]
