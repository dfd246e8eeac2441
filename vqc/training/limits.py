"""What the steps after training read when the trainer is limited.

``trainer.limit_{train,val,test}_batches`` (a count or a fraction) and ``trainer.fast_dev_run``
(which Lightning turns into a count of 1 or N batches for every stage) limit the epochs; the
drift fit, the calibration on validation, the scoring of the whole inspection and its figures
read the same tables outside the trainer, and read as much of them: the same number of batches
of the data set's batch size (at least one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

STAGES = ("train", "val", "test")


def limited_rows(limit: int | float | None, rows: int, batch_size: int) -> int:
    """Rows of a ``rows``-row table that ``limit`` batches of ``batch_size`` cover: an int
    counts batches, a float below 1 is a share of them (Lightning's rule), 1.0 or ``None``
    all; at least one batch."""
    if rows <= 0:
        return 0
    batches = math.ceil(rows / batch_size)
    if limit is None or (isinstance(limit, float) and limit >= 1.0):
        kept = batches
    elif isinstance(limit, float):
        kept = int(batches * limit)
    else:
        kept = min(batches, int(limit))
    return min(rows, max(1, kept) * batch_size)


@dataclass(frozen=True)
class StageLimits:
    """Rows the steps after training may read per table (``None``: all of it)."""

    train: int | None = None
    val: int | None = None
    test: int | None = None

    @classmethod
    def of(cls, trainer: Any, datamodule: Any) -> StageLimits:
        """The limits of ``trainer`` on ``datamodule``'s tables (``None`` where unlimited)."""
        batch_size = int(getattr(datamodule, "batch_size", 1) or 1)
        counts: dict[str, int | None] = {}
        for stage in STAGES:
            frame = getattr(datamodule, f"{stage}_frame", None)
            limit = getattr(trainer, f"limit_{stage}_batches", None)
            total = 0 if frame is None else len(frame)
            rows = limited_rows(limit, total, batch_size)
            counts[stage] = None if rows >= total else rows
        return cls(**counts)

    @property
    def limited(self) -> bool:
        return any(getattr(self, stage) is not None for stage in STAGES)

    def frame(self, stage: str, frame: pd.DataFrame | None, seed: int = 0
              ) -> pd.DataFrame | None:
        """``frame`` cut to its stage's rows: a seeded sample (so a cut keeps the classes of a
        table sorted by class), in the table's order."""
        rows = getattr(self, stage)
        if frame is None or rows is None or rows >= len(frame):
            return frame
        picked = np.sort(np.random.default_rng(seed).choice(len(frame), rows, replace=False))
        return frame.iloc[picked]
