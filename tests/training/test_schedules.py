"""The fine-tuning schedule: head alone, then warm-up and cosine, per parameter group."""

from __future__ import annotations

import math

import pytest
import torch

from vqc.training.schedules import warmup_cosine, warmup_cosine_factor


def test_factor_by_hand() -> None:
    # 10 steps, start 2, warm-up 2: 0, 0, then 1/2 and 2/2 of the cosine, cosine to 0 at 10
    factors = [warmup_cosine_factor(s, 10, 2, 2, 0.0) for s in range(11)]
    assert factors[:2] == [0.0, 0.0]
    assert factors[2] == pytest.approx(0.5 * 1.0)
    assert factors[3] == pytest.approx(0.5 * (1 + math.cos(math.pi * 1 / 8)))
    assert factors[6] == pytest.approx(0.5)  # half way through the cosine
    assert factors[10] == pytest.approx(0.0)
    assert warmup_cosine_factor(10, 10, 0, 0, 0.1) == pytest.approx(0.1)


def test_backbone_waits_for_the_head_only_epochs() -> None:
    head, backbone = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD([{"params": head.parameters(), "lr": 1.0, "name": "head"},
                                 {"params": backbone.parameters(), "lr": 0.1,
                                  "name": "backbone"}])
    schedule = warmup_cosine(optimizer, total_steps=20, steps_per_epoch=5, warmup_epochs=0,
                             head_only_epochs=1)
    rates = []
    for _ in range(20):
        rates.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        schedule.step()
    assert [r[1] for r in rates[:5]] == [0.0] * 5
    assert rates[0][0] == pytest.approx(1.0)
    assert rates[5][1] == pytest.approx(0.1)
    assert rates[19][1] < 0.01 and rates[19][0] < 0.01


def test_head_only_longer_than_the_run_gives_way(caplog) -> None:
    """A one-epoch run (debug=default) with a head-only epoch: the backbone trains at once."""
    import logging

    layer = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD([{"params": layer.parameters(), "name": "backbone"}], lr=1.0)
    with caplog.at_level(logging.WARNING, logger="vqc"):
        schedule = warmup_cosine(optimizer, total_steps=10, steps_per_epoch=5,
                                 head_only_epochs=2, warmup_epochs=0)
    assert schedule.lr_lambdas[0].start == 0
    assert schedule.lr_lambdas[0](0) == 1.0  # no hold: the backbone's rate from step 0
    assert "head_only_epochs=2 would leave no step" in caplog.text
