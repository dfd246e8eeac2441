"""An exponential moving average of the weights: Lightning's ``WeightAveraging`` with an EMA and a
start.

Lightning's callback does the work: it keeps the averaged copy, validates and checkpoints the
average (the best checkpoint holds the averaged weights; ``last.ckpt`` both, so training
resumes with each where it was) and leaves the average in the model when training ends. This
subclass only chooses the averaging: an EMA of the given ``decay``, updated after every
optimiser step from ``start_epoch`` on (a fine-tuning run's first epoch trains a random head
alone; averaging it in would drag the average back towards it).
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import WeightAveraging
from torch.optim.swa_utils import get_ema_avg_fn

from vqc.errors import ConfigError


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

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch = trainer.current_epoch

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return step_idx is not None and self._epoch >= self.start_epoch
