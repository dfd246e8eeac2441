import math

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from tests.training.conftest import fast_overrides, write_tiny_csv_set
from vqc.config import compose
from vqc.data.build import build_datamodule
from vqc.errors import ConfigError
from vqc.training.losses import (
    EscapePenalty,
    ExpectedCostLoss,
    build_loss,
    inverse_frequency_weights,
)
from vqc.training.task import build_module


def test_expected_cost_loss_by_hand():
    cost = torch.tensor([[0.0, 100.0], [10_000.0, 0.0]])
    loss = ExpectedCostLoss(cost)
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])  # p = (.5, .5) and (.75, .25)
    target = torch.tensor([0, 1])
    # row 0: 0.5 * 100 / 10000 = 0.005; row 1: 0.75 * 10000 / 10000 = 0.75; mean 0.3775
    assert loss(logits, target).item() == pytest.approx(0.3775)


def test_inverse_frequency_weights_by_hand():
    # N = 100, K = 2: 100 / (2 * 80) = 0.625 and 100 / (2 * 20) = 2.5
    assert inverse_frequency_weights([80, 20]).tolist() == pytest.approx([0.625, 2.5])
    with pytest.raises(ConfigError, match="every class needs images"):
        inverse_frequency_weights([3, 0])


def test_weighted_cross_entropy_upweights_the_rare_class():
    logits = torch.zeros(2, 2)
    plain = build_loss("cross_entropy", [80, 20])
    weighted = build_loss("weighted_cross_entropy", [80, 20])
    target = torch.tensor([1, 1])
    assert plain(logits, target).item() == pytest.approx(math.log(2))
    # weighted mean over one class equals the plain loss; mixing classes shows the weights:
    mixed = torch.tensor([0, 1])
    assert weighted(logits, mixed).item() == pytest.approx(math.log(2))
    confident = torch.tensor([[5.0, 0.0], [5.0, 0.0]])
    expected = (0.625 * -torch.log_softmax(confident[0], 0)[0]
                + 2.5 * -torch.log_softmax(confident[1], 0)[1]) / (0.625 + 2.5)
    assert weighted(confident, mixed).item() == pytest.approx(expected.item())


def test_unknown_loss_is_a_config_error():
    with pytest.raises(ConfigError, match=r"module\.loss='focal'"):
        build_loss("focal", [1, 1])


def test_escape_penalty_by_hand():
    loss = build_loss("cross_entropy", [1, 1], escape_weight=2.0, good_index=0)
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])  # p_good = 1/2 and 3/4
    target = torch.tensor([0, 1])  # a GOOD image (no penalty) and a defect one
    # cross entropy: (ln 2 + ln 4) / 2; penalty: 2 * -ln(1 - 3/4) / 2 = ln 4; total 3.5 ln 2
    assert loss(logits, target).item() == pytest.approx(3.5 * math.log(2))


def test_escape_penalty_reads_good_at_its_index_and_stays_finite():
    # three classes, GOOD is the middle one: only the defect image of class 2 is penalised
    loss = build_loss("cross_entropy", [1, 1, 1], escape_weight=1.0, good_index=1)
    logits = torch.tensor([[0.0, 0.0, 0.0], [0.0, math.log(2.0), 0.0]])  # p_good 1/3 and 1/2
    target = torch.tensor([1, 2])
    cross_entropy = (math.log(3) + math.log(4)) / 2
    assert loss(logits, target).item() == pytest.approx(cross_entropy + math.log(2) / 2)
    certain = loss(torch.tensor([[0.0, 80.0, 0.0]]), torch.tensor([0]))
    assert torch.isfinite(certain) and certain.item() > 80  # p_good = 1 in float32


def test_escape_penalty_off_or_without_good():
    assert isinstance(build_loss("cross_entropy", [1, 1], escape_weight=0.0),
                      torch.nn.CrossEntropyLoss)
    with pytest.raises(ConfigError, match=r"module\.escape_weight=0\.5.*no GOOD class"):
        build_loss("cross_entropy", [1, 1], escape_weight=0.5, good_index=None)


def test_the_run_penalises_p_good_at_the_good_class_index(tmp_path):
    data = write_tiny_csv_set(tmp_path / "set", per_class=3)
    GlobalHydra.instance().clear()
    cfg = compose("train", fast_overrides(data, tmp_path, "module.escape_weight=0.5"))
    datamodule = build_datamodule(cfg.data, cfg.paths.cache_dir, seed=0)
    datamodule.prepare_data()
    datamodule.setup()
    loss = build_module(cfg, datamodule).loss_fn
    assert isinstance(loss, EscapePenalty) and loss.weight == 0.5
    classes = datamodule.classes
    assert classes.names[classes.trained_codes[loss.good_index]] == "good"
