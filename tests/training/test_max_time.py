"""A run stopped by ``trainer.max_time`` ends its learning-rate schedule where the time does."""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import pytest

from tests.training.conftest import fast_overrides
from tests.training.test_train import _cfg
from vqc.training.callbacks import ScheduleFitsMaxTime
from vqc.training.schedules import warmup_cosine_factor
from vqc.training.task import train

LR = 1e-3
LR_MONITOR = ("+callbacks.lr_monitor={_target_:lightning.pytorch.callbacks.LearningRateMonitor,"
              "logging_interval:step}")


def rates(run: Path) -> pd.DataFrame:
    """The learning rate of each group at each step, as the CSV logger recorded it."""
    frame = pd.read_csv(next((run / "csv").rglob("metrics.csv")))
    columns = [c for c in frame.columns if c.startswith("lr-")]
    return frame.dropna(subset=columns[:1]).set_index("step")[columns]


@pytest.mark.parametrize("module", ["default", "finetune"])
def test_schedule_reaches_its_floor_at_the_estimated_stop(tiny_csv_set, tmp_path, monkeypatch,
                                                          module):
    """4 epochs of 3 steps allowed, 5 minutes of time, a first epoch that took 100 s: about 3
    epochs fit, so the schedule (per step for finetune, per epoch for default) must be at its
    floor (0) when the 4th epoch starts, not where a 4-epoch schedule would be."""
    ticks = itertools.count(0.0, 100.0)  # every epoch takes 100 s
    monkeypatch.setattr(ScheduleFitsMaxTime, "clock", staticmethod(lambda: next(ticks)))
    run = tmp_path / "run"
    cfg = _cfg(fast_overrides(tiny_csv_set, tmp_path, "depth=2", f"module={module}",
                              f"lr={LR}", "trainer.max_epochs=4",
                              "trainer.max_time=00:00:05:00", LR_MONITOR, "test=false",
                              "inspector=false", "figures.enabled=false",
                              "data.balanced=false"), run)
    summary = train(cfg)
    assert summary["epochs"] == 4  # the real clock did not stop it: only the plan changed
    lr = rates(run)
    steps_per_epoch = 3
    start_of_fourth = 3 * steps_per_epoch
    assert lr.index.max() >= start_of_fourth
    at_fourth = lr.loc[start_of_fourth].to_numpy()
    assert (at_fourth < 1e-3 * LR).all(), lr
    # without the time limit the 4-epoch schedule would still be well above its floor there
    if module == "finetune":
        planned = warmup_cosine_factor(start_of_fourth, 4 * steps_per_epoch, 0,
                                       steps_per_epoch, 0.0)
    else:
        import math

        planned = 0.5 * (1 + math.cos(math.pi * 3 / 4))
    assert planned > 0.1
    assert (lr.loc[0].to_numpy() > 0).any()  # it did train


def test_no_time_limit_keeps_the_schedule_of_max_epochs(tiny_csv_set, tmp_path):
    run = tmp_path / "run"
    cfg = _cfg(fast_overrides(tiny_csv_set, tmp_path, "depth=2", "module=finetune",
                              f"lr={LR}", "trainer.max_epochs=4", LR_MONITOR, "test=false",
                              "inspector=false", "figures.enabled=false"), run)
    train(cfg)
    head = rates(run).filter(like="head").iloc[:, 0]
    expected = LR * warmup_cosine_factor(9, 12, 0, 3, 0.0)
    assert head.loc[9] == pytest.approx(expected, rel=1e-4)


def test_a_machine_that_slows_down_halfway_shortens_the_plan_again():
    """Epoch 1 in 10 s of a 100 s budget: 10 epochs fit; epoch 2 takes 40 s, so at its pace
    only one more fits (50 s left): the plan is shortened; epoch 3 takes 1 s, and the plan is
    lengthened again at the mean pace."""
    from types import SimpleNamespace

    from lightning.pytorch.callbacks import Timer

    ticks = iter([0.0, 10.0, 50.0, 51.0])
    callback = ScheduleFitsMaxTime()
    callback.clock = lambda: next(ticks)  # type: ignore[method-assign]
    timer = Timer(duration="00:00:01:40")
    trainer = SimpleNamespace(callbacks=[timer], current_epoch=0, global_step=0,
                              max_epochs=20, lr_scheduler_configs=[], should_stop=False)
    callback.on_train_start(trainer, None)
    trainer.global_step = 5
    callback.on_train_epoch_end(trainer, None)
    assert callback.planned_epochs == 10  # 1 + floor(90 / 10)
    trainer.current_epoch, trainer.global_step = 1, 10
    callback.on_train_epoch_end(trainer, None)
    assert callback.planned_epochs == 3  # 2 + floor(50 / 40): the last epoch's pace
    trainer.current_epoch, trainer.global_step = 2, 15
    callback.on_train_epoch_end(trainer, None)  # 51 s: at the mean pace 17 s, 2 more fit
    assert callback.planned_epochs == 5  # the machine is free again: lengthened


def test_a_resumed_run_counts_the_time_spent_before_it_stopped():
    """100 s allowed, 60 s spent before the resume (the Timer's offset): after one more epoch
    of 10 s, 3 more fit in the 30 s left, not 9."""
    from types import SimpleNamespace

    from lightning.pytorch.callbacks import Timer

    ticks = iter([0.0, 10.0])
    callback = ScheduleFitsMaxTime()
    callback.clock = lambda: next(ticks)  # type: ignore[method-assign]
    timer = Timer(duration="00:00:01:40")
    timer._offset = 60.0  # what Timer.load_state_dict restores
    trainer = SimpleNamespace(callbacks=[timer], current_epoch=5, global_step=50,
                              max_epochs=20, lr_scheduler_configs=[])
    callback.on_train_start(trainer, None)
    trainer.global_step = 60
    callback.on_train_epoch_end(trainer, None)
    assert callback.planned_epochs == 6 + 3
