"""An exponential moving average of the weights: Lightning's ``WeightAveraging`` with an EMA and a
start.

Lightning's callback does the work: it keeps the averaged copy, validates the average, writes it
into checkpoints as their weights (with the current weights beside it, so training resumes with
each where it was) and leaves the average in the model when training ends. This subclass
chooses the averaging (an EMA of the given ``decay``, updated after every optimiser step from
``start_epoch`` on: a fine-tuning run's first epoch trains a random head alone, and averaging
it in would drag the average back towards it) and departs from the callback in two places:

- **Nothing averaged yet, nothing swapped.** Before ``start_epoch`` the "average" is the copy
  taken when training began: validating it would score the untrained model (and checkpoint
  selection would read that score), and a run that ends before ``start_epoch`` would end with
  its training thrown away. Until the first update, the model is validated, saved and left as
  it is.
- **Checkpoints are saved whole.** Lightning writes the average into a checkpoint only when it
  saves everything: a weights-only save (``save_weights_only``, how the best checkpoint is kept)
  would hold the current weights although the average was what validation chose. The
  checkpoint callbacks save whole while this one is on; the best checkpoint then also holds the
  optimiser's state.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import WeightAveraging
from torch.optim.swa_utils import get_ema_avg_fn

from vqc.errors import ConfigError

log = logging.getLogger(__name__)


class EmaWeights(WeightAveraging):
    """``decay`` in (0, 1): the share of the average kept at each step (0.99: about the last 100
    steps weigh); ``start_epoch``: the first (0-based) epoch whose steps are averaged."""

    def __init__(self, decay: float = 0.99, start_epoch: int = 0, **kwargs: Any) -> None:
        if not 0.0 < float(decay) < 1.0:
            raise ConfigError(f"callbacks.weight_averaging.decay must be in (0, 1), got {decay!r}")
        if int(start_epoch) < 0:
            raise ConfigError("callbacks.weight_averaging.start_epoch must be >= 0, got "
                              f"{start_epoch!r}")
        super().__init__(avg_fn=get_ema_avg_fn(float(decay)), **kwargs)
        self.decay = float(decay)
        self.start_epoch = int(start_epoch)
        self._epoch = 0

    @property
    def averaging(self) -> bool:
        """Whether the average holds at least one update."""
        return self._average_model is not None and int(self._average_model.n_averaged) > 0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage != "fit":
            return
        for callback in trainer.checkpoint_callbacks:
            if getattr(callback, "save_weights_only", False):
                callback.save_weights_only = False  # type: ignore[attr-defined]
                log.info("weight averaging: %s checkpoints are saved whole, so that they hold "
                         "the averaged weights", getattr(callback, "filename", None) or "the")

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch = trainer.current_epoch

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return step_idx is not None and self._epoch >= self.start_epoch

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.averaging:
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.averaging:  # no update between the two: both swap or neither does
            super().on_validation_epoch_end(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.averaging:
            super().on_train_end(trainer, pl_module)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        if self.averaging:
            super().on_save_checkpoint(trainer, pl_module, checkpoint)
