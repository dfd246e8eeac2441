"""Training progress in a log: what a progress bar shows a terminal, as lines."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import lightning as L

from vqc.progress import in_terminal

log = logging.getLogger("vqc.progress")

#: The figures an epoch line shows, when logged.
SHOWN = ("train/loss_epoch", "val/loss", "val/pwa")


class LogProgress(L.Callback):
    """One log line per epoch (its figures and duration) and one every ``every_n_batches``
    training batches (0: none), for runs whose output is not a terminal (a log file, a
    scheduler's output): there a progress bar shows nothing that lasts."""

    def __init__(self, every_n_batches: int = 0) -> None:
        self.every_n_batches = int(every_n_batches)
        self._start = time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.every_n_batches > 0 and (batch_idx + 1) % self.every_n_batches == 0:
            total = trainer.num_training_batches
            of = f"/{total}" if isinstance(total, int) else ""
            log.info("epoch %d: batch %d%s, %.0f s", trainer.current_epoch + 1, batch_idx + 1,
                     of, time.perf_counter() - self._start)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        figures = []
        for name in SHOWN:
            value = trainer.callback_metrics.get(name)
            if value is not None and math.isfinite(float(value)):
                figures.append(f"{name} {float(value):.4g}")
        log.info("epoch %d/%s: %s%.1f s", trainer.current_epoch + 1, trainer.max_epochs,
                 ", ".join(figures) + ", " if figures else "", time.perf_counter() - self._start)


def log_progress(every_n_batches: int = 0, terminal: bool | None = None) -> LogProgress | None:
    """The callback when standard output is not a terminal, else ``None``."""
    terminal = in_terminal() if terminal is None else terminal
    return None if terminal else LogProgress(every_n_batches)
