"""Argmax vs the Bayes rule, and temperature scaling."""

from __future__ import annotations

import math

import pytest
import torch

from tests.metrics.cases import LABELS
from vqc.errors import ConfigError, DataError
from vqc.metrics import (
    TemperatureScaler,
    argmax_decision,
    bayes_decision,
    compare_decisions,
    decide,
    decision_cost,
    official_cost_matrix,
    sub_matrix,
)


def probs6(**by_code: float) -> torch.Tensor:
    row = torch.zeros(6, dtype=torch.float64)
    for key, value in by_code.items():
        row[int(key[1:])] = value
    return row


def test_forty_percent_defect_beats_sixty_percent_good() -> None:
    # risk of answering GOOD: 0.4 * 10000 = 4000; Missing: 0.6 * 100 = 60;
    # another defect: 0.6 * 100 + 0.4 * 1 = 60.4 -> Missing
    p = probs6(c0=0.6, c4=0.4)[None]
    assert argmax_decision(p).tolist() == [0]
    assert bayes_decision(p).tolist() == [4]  # the 7x7 default is cut to the 6 trained classes
    assert bayes_decision(p, sub_matrix(official_cost_matrix(), range(6))).tolist() == [4]


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        # GOOD wins only below 1/101 defect: 0.99 GOOD -> GOOD 0.01 * 10000 = 100 > Missing 99
        (probs6(c0=0.99, c4=0.01), 4),
        # 0.995 GOOD -> GOOD 0.005 * 10000 = 50 < Missing 0.995 * 100 = 99.5
        (probs6(c0=0.995, c4=0.005), 0),
        # between defects: answer Missing 0.3 * 1 = 0.3 < Boucle plate 0.7 * 1 -> Missing
        (probs6(c1=0.3, c4=0.7), 4),
        # half GOOD, defects 0.1 each: every defect 0.5 * 100 + 0.4 * 1 = 50.4 (tie), GOOD
        # 5000 -> the first defect, code 1
        (probs6(c0=0.5, c1=0.1, c2=0.1, c3=0.1, c4=0.1, c5=0.1), 1),
    ],
)
def test_bayes_rule_cases(p: torch.Tensor, expected: int) -> None:
    assert bayes_decision(p[None], "official").tolist() == [expected]
    assert bayes_decision(p[None], "page").tolist() == [expected]  # same without Drift


def test_codes_and_sub_matrix() -> None:
    cost = [[0, 5, 1, 2], [9, 0, 9, 9], [4, 7, 0, 3], [8, 7, 6, 0]]
    # columns stand for codes 0, 2, 3 -> sub-matrix [[0, 1, 2], [4, 0, 3], [8, 6, 0]]
    assert decision_cost(cost, 3, [0, 2, 3]).tolist() == [[0, 1, 2], [4, 0, 3], [8, 6, 0]]
    p = torch.tensor([[0.2, 0.5, 0.3]])
    # risk: code 0: 0.5*4 + 0.3*8 = 4.4; code 2: 0.2*1 + 0.3*6 = 2.0; code 3: 0.2*2 + 0.5*3 = 1.9
    assert bayes_decision(p, cost, [0, 2, 3]).tolist() == [3]
    assert argmax_decision(p, [0, 2, 3]).tolist() == [2]


def test_decide_with_drift() -> None:
    p = torch.stack([probs6(c0=0.6, c4=0.4), probs6(c0=1.0)])
    drift = torch.tensor([False, True])
    assert decide(p, "argmax", drift=drift, open_set_code=6).tolist() == [0, 6]
    assert decide(p, "bayes", "official", drift=drift, open_set_code=6).tolist() == [4, 6]
    with pytest.raises(ConfigError, match="decision rule 'median'"):
        decide(p, "median")
    with pytest.raises(DataError, match="float"):
        bayes_decision(torch.tensor([[1, 0]]))


def test_compare_decisions_shows_both() -> None:
    # every image: 60% GOOD, 40% its own class; images labelled by LABELS (Drift flagged apart)
    target = torch.tensor(LABELS)
    p = torch.zeros(len(LABELS), 6, dtype=torch.float64)
    p[:, 0] = 0.6
    for row, code in enumerate(LABELS):
        p[row, min(code, 5)] += 0.4
    p = p / p.sum(1, keepdim=True)
    reports = compare_decisions(p, target, drift=target == 6)
    # argmax: all GOOD except Drift -> 7 defect escapes * 10000 = 70000 -> PWA 0.3
    assert reports["argmax"].pwa == pytest.approx(0.3, abs=1e-12)
    assert reports["argmax"].escapes == 7
    # Bayes: every defect right; GOOD rows are (1.0 GOOD): 100% GOOD -> right: PWA 1
    assert reports["bayes"].pwa == pytest.approx(1.0, abs=1e-12)
    assert reports["bayes"].escapes == 0


def overconfident() -> tuple[torch.Tensor, torch.Tensor]:
    """200 images, 3 classes, logit 8 on the predicted class, right 140 times of 200."""
    targets = torch.arange(200) % 3
    predicted = targets.clone()
    predicted[140:] = (targets[140:] + 1) % 3
    return 8.0 * torch.nn.functional.one_hot(predicted, 3).double(), targets


def test_temperature_scaling_lowers_nll() -> None:
    logits, targets = overconfident()
    # T = 1: right p = e^8 / (e^8 + 2) -> -log = 0.00067; wrong p = 1 / (e^8 + 2) -> 8.0007
    # mean 0.7 * 0.00067 + 0.3 * 8.0007 = 2.4006
    before = TemperatureScaler.nll(logits, targets)
    assert before == pytest.approx(2.4006, abs=1e-3)
    scaler = TemperatureScaler()
    with torch.inference_mode():  # as in a validation hook
        scaler.fit(logits, targets)
    # optimum: e^s / (e^s + 2) = 0.7 -> e^s = 14/3, s = ln(14/3) = 1.5404 -> T = 8 / s = 5.193
    # NLL = -(0.7 ln 0.7 + 0.3 ln 0.15) = 0.8188
    assert scaler.temperature == pytest.approx(8 / math.log(14 / 3), rel=1e-3)
    after = TemperatureScaler.nll(logits, targets, scaler.temperature)
    assert after == pytest.approx(0.8188, abs=1e-3)
    assert after < before
    # argmax unchanged; the temperature is a buffer, saved but never trained
    assert torch.equal(scaler(logits).argmax(1), logits.argmax(1))
    assert list(scaler.parameters()) == [] and "log_temperature" in scaler.state_dict()
    assert scaler.probabilities(logits).sum(1).allclose(torch.ones(200, dtype=torch.float64))


def test_temperature_bad_inputs() -> None:
    with pytest.raises(DataError, match=r"column indices 0\.\.2"):
        TemperatureScaler().fit(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ConfigError, match="positive"):
        TemperatureScaler(0.0)


def test_a_temperature_at_its_bound_is_a_warning() -> None:
    """Validation answered right by a margin everywhere: the fit drives T to 1/100, where every
    probability is 0 or 1; that is said, not used in silence."""
    targets = torch.tensor([0, 1, 2] * 10)
    separable = torch.nn.functional.one_hot(targets, 3).float() * 5.0
    scaler = TemperatureScaler().fit(separable, targets)
    assert scaler.temperature < 1 and scaler.unbounded == "below"
    text = scaler.bound_warning(30)
    assert text is not None and text.startswith("temperature at its bound (")
    assert "fitted on 30 validation images): every validation image was answered right" in text
    assert TemperatureScaler().fit(torch.zeros(30, 3), targets).unbounded == "above"
    torch.manual_seed(0)
    noisy = separable + torch.randn(30, 3) * 5.0
    fitted = TemperatureScaler().fit(noisy, targets)
    assert not fitted.at_bound and fitted.bound_warning(30) is None
