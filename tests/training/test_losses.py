import math

import pytest
import torch

from vqc.errors import ConfigError
from vqc.training.losses import ExpectedCostLoss, build_loss, inverse_frequency_weights


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
