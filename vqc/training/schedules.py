"""Learning-rate schedules stepped every optimiser step, for fine-tuning pretrained backbones.

:func:`warmup_cosine` is the usual fine-tuning recipe: the head trains alone for
``head_only_epochs`` (the backbone's rate held at 0, so a random head does not send large
gradients into pretrained weights), then every group warms up linearly for ``warmup_epochs``
and decays along a cosine to ``min_factor`` of its rate at the last step. Pure torch.

The schedule's length is the run's number of optimiser steps (Lightning's
``estimated_stepping_batches``: ``max_epochs``, ``max_steps`` and the ``limit_*`` settings).
A run stopped by time (``trainer.max_time``) does not know it in advance:
:func:`shorten_schedule` moves the end of a running schedule (``warmup_cosine``'s total steps,
``CosineAnnealingLR``'s ``T_max``) to the step where the run is expected to stop, so that its
rate still reaches its floor (see ``vqc.training.callbacks.ScheduleFitsMaxTime``).
"""

from __future__ import annotations

import logging
import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, LRScheduler

from vqc.errors import ConfigError

log = logging.getLogger(__name__)


def warmup_cosine_factor(step: int, total: int, start: int, warmup: int,
                         min_factor: float) -> float:
    """The rate's multiplier at ``step``: 0 before ``start``, then linear warm-up over ``warmup``
    steps and a cosine from 1 down to ``min_factor`` at ``total``."""
    if step < start:
        return 0.0
    k, span = step - start, max(1, total - start)
    ramp = min(1.0, (k + 1) / warmup) if warmup > 0 else 1.0
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(k, span) / span))
    return ramp * (min_factor + (1.0 - min_factor) * cosine)


def warmup_cosine(optimizer: Optimizer, total_steps: int, steps_per_epoch: int,
                  warmup_epochs: float = 1.0, head_only_epochs: float = 0.0,
                  min_factor: float = 0.0) -> LambdaLR:
    """A per-step schedule (see the module docstring); groups named ``backbone`` (see
    ``Classifier.param_groups``) start after the head-only epochs, the others at once."""
    if total_steps < 1 or steps_per_epoch < 1:
        raise ConfigError(f"scheduler: {total_steps} steps in all, {steps_per_epoch} an epoch")
    if warmup_epochs < 0 or head_only_epochs < 0 or not 0.0 <= min_factor <= 1.0:
        raise ConfigError(
            "module.scheduler: warmup_epochs and head_only_epochs must be >= 0 and min_factor "
            f"in [0, 1]; got {warmup_epochs}, {head_only_epochs}, {min_factor}"
        )
    hold = round(head_only_epochs * steps_per_epoch)
    warmup = round(warmup_epochs * steps_per_epoch)
    if hold >= total_steps:  # a one-epoch run (debug=default): the backbone trains at once
        log.warning("module.scheduler.head_only_epochs=%s would leave no step to train the "
                    "backbone in %d steps: the backbone trains from the first step",
                    head_only_epochs, total_steps)
        hold = 0

    lambdas = [WarmupCosine(total_steps, hold if group.get("name") == "backbone" else 0,
                            warmup, min_factor)
               for group in optimizer.param_groups]
    return LambdaLR(optimizer, lambdas)


class WarmupCosine:
    """One group's factor of :func:`warmup_cosine`; an object, not a closure, so that its
    ``total`` can be moved (:func:`shorten_schedule`) and is saved with the scheduler's state
    (``LambdaLR`` saves callable objects, not functions)."""

    def __init__(self, total: int, start: int, warmup: int, min_factor: float) -> None:
        self.total, self.start, self.warmup, self.min_factor = total, start, warmup, min_factor

    def __call__(self, step: int) -> float:
        return warmup_cosine_factor(step, self.total, self.start, self.warmup, self.min_factor)


def schedule_length(scheduler: LRScheduler) -> tuple[str, int] | None:
    """``("steps", n)`` or ``("epochs", n)``: where a schedule reaches its floor, if known."""
    if isinstance(scheduler, LambdaLR):
        totals = [f.total for f in scheduler.lr_lambdas if isinstance(f, WarmupCosine)]
        return ("steps", max(totals)) if totals else None
    if isinstance(scheduler, CosineAnnealingLR):
        return "epochs", int(scheduler.T_max)
    return None


def shorten_schedule(scheduler: LRScheduler, total_steps: int, epochs: int,
                     longest: tuple[str, int] | None = None) -> bool:
    """End ``scheduler`` at ``total_steps`` (per-step schedules) or after ``epochs`` (per-epoch
    ones) when that is sooner than now, or, given ``longest`` (its first ``schedule_length``),
    later but not past it; whether it changed. The head-only phase is kept."""
    length = schedule_length(scheduler)
    if length is None:
        return False
    unit, current = length
    target = total_steps if unit == "steps" else epochs
    if longest is not None and longest[0] == unit:
        target = min(target, longest[1])
    elif target >= current:
        return False
    if target == current or target < 1:
        return False
    if isinstance(scheduler, CosineAnnealingLR):
        scheduler.T_max = target
        return True
    for factor in scheduler.lr_lambdas:
        if isinstance(factor, WarmupCosine):
            factor.total = max(target, factor.start + 1)
    return True
