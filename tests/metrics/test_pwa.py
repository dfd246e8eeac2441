"""PWA against hand-computed values for each matrix, and input validation."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch

from tests.metrics.cases import (
    LABELS,
    MISTAKES,
    MISTAKES_PWA_OFFICIAL,
    MISTAKES_PWA_PAGE,
)
from vqc.errors import DataError
from vqc.metrics import (
    PenaltyWeightedAccuracy,
    official_cost_matrix,
    page_cost_matrix,
    penalty_weighted_accuracy,
    sub_matrix,
)

T = torch.tensor(LABELS)


def pwa(preds: list[int], labels: list[int], matrix: object = None) -> float:
    metric = PenaltyWeightedAccuracy(matrix)  # type: ignore[arg-type]
    metric.update(torch.tensor(preds), torch.tensor(labels))
    return float(metric.compute())


@pytest.mark.parametrize("matrix", ["official", "page"])
def test_perfect_is_one(matrix: str) -> None:
    assert pwa(LABELS, LABELS, matrix) == 1.0


@pytest.mark.parametrize(
    ("matrix", "constant", "expected"),
    [
        # 7 defects and 1 Drift called GOOD: 8 * 10000 = 80000 -> 1 - 80000 / 100000
        ("official", 0, 0.2),
        ("page", 0, 0.2),
        # 2 GOOD * 100 + 4 other defects * 1 + Drift 1000 = 1204 -> 1 - 0.01204
        ("official", 4, 0.98796),
        ("page", 4, 0.98796),
        # official: 2 * 10000 + 7 * 1000 = 27000 -> 0.73; page: 2 * 100 + 7 * 1 = 207
        ("official", 6, 0.73),
        ("page", 6, 0.99793),
    ],
)
def test_everything_one_class(matrix: str, constant: int, expected: float) -> None:
    assert pwa([constant] * len(LABELS), LABELS, matrix) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("matrix", "expected"), [("official", MISTAKES_PWA_OFFICIAL), ("page", MISTAKES_PWA_PAGE)]
)
def test_known_mistakes(matrix: str, expected: float) -> None:
    assert pwa(MISTAKES, LABELS, matrix) == pytest.approx(expected, abs=1e-12)
    # the functional form agrees, and batches accumulate
    assert float(penalty_weighted_accuracy(torch.tensor(MISTAKES), T, matrix)) == pytest.approx(
        expected, abs=1e-12)
    metric = PenaltyWeightedAccuracy(matrix)
    metric.update(torch.tensor(MISTAKES[:4]), T[:4])
    metric.update(torch.tensor(MISTAKES[4:]), T[4:])
    assert float(metric.compute()) == pytest.approx(expected, abs=1e-12)


def test_six_by_six_without_drift() -> None:
    six = sub_matrix(official_cost_matrix(), range(6))
    labels = [0, 0, 1, 2, 3, 4, 4, 4, 5]  # N = 9, max C = 10000 -> N * max C = 90000
    assert pwa(labels, labels, six) == 1.0
    # 7 defects called GOOD: 70000 -> 1 - 70000 / 90000 = 2 / 9
    assert pwa([0] * 9, labels, six) == pytest.approx(2 / 9, abs=1e-12)
    # always Missing: 2 * 100 + 4 * 1 = 204 -> 1 - 204 / 90000
    assert pwa([4] * 9, labels, six) == pytest.approx(1 - 204 / 90000, abs=1e-12)
    # 0->4 100, 1->0 10000, 3->1 1, 4->2 1: 10102 -> 1 - 10102 / 90000 = 0.887755...
    mistakes = [4, 0, 0, 2, 1, 2, 4, 4, 5]
    assert pwa(mistakes, labels, six) == pytest.approx(1 - 10102 / 90000, abs=1e-12)
    assert torch.equal(sub_matrix(page_cost_matrix(), range(6)), six)


def test_any_square_matrix() -> None:
    matrix = [[0, 1, 2], [3, 0, 4], [5, 6, 0]]  # max 6
    # 0->1 costs 1, 2->0 costs 5: 6 -> 1 - 6 / (4 * 6) = 0.75
    assert pwa([1, 1, 0, 2], [0, 1, 2, 2], matrix) == pytest.approx(0.75, abs=1e-12)


def test_scores_over_trained_classes_on_the_full_matrix() -> None:
    # (N, 6) scores: argmax column k is code k; labels may hold Drift (6)
    scores = torch.full((len(LABELS), 6), -1.0)
    for row, code in enumerate(MISTAKES):
        scores[row, min(code, 5)] = 1.0  # predicted Drift is impossible: 6 -> 5
    # vs MISTAKES: 0->5 (100 instead of 10000) and 3->5 (1 instead of 1000):
    # 22101 - 10000 + 100 - 1000 + 1 = 11202 -> 0.88798
    metric = PenaltyWeightedAccuracy()
    metric.update(scores, T)
    assert float(metric.compute()) == pytest.approx(0.88798, abs=1e-12)


def test_score_codes_map_columns() -> None:
    # two columns standing for codes 4 and 0: row picks column 0 -> code 4
    metric = PenaltyWeightedAccuracy(score_codes=[4, 0])
    metric.update(torch.tensor([[2.0, 1.0], [0.0, 3.0]]), torch.tensor([0, 0]))
    # GOOD -> Missing 100, GOOD -> GOOD 0: 1 - 100 / (2 * 10000) = 0.995
    assert float(metric.compute()) == pytest.approx(0.995, abs=1e-12)


@pytest.mark.parametrize(
    ("preds", "target", "message"),
    [
        (torch.tensor([0, 7]), torch.tensor([0, 1]), r"preds has class codes \[7\] outside 0..6"),
        (torch.tensor([0, 1]), torch.tensor([-1, 1]), r"target has class codes \[-1\]"),
        (torch.tensor([0, 1, 2]), torch.tensor([0, 1]), "differ in length"),
        (torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), r"must be \(N, K\) scores"),
        (torch.zeros(2, 8), torch.tensor([0, 1]), "more than the cost matrix's 7"),
        (torch.tensor([0, 1]), torch.tensor([0.0, 1.0]), "integer class codes"),
        (torch.tensor([[0, 1]]), torch.tensor([0]), r"must be 1-D"),
    ],
)
def test_bad_inputs(preds: torch.Tensor, target: torch.Tensor, message: str) -> None:
    with pytest.raises(DataError, match=message):
        PenaltyWeightedAccuracy().update(preds, target)


def test_empty_is_nan_and_reset() -> None:
    metric = PenaltyWeightedAccuracy()
    with pytest.warns(UserWarning):  # torchmetrics: compute before update
        assert torch.isnan(metric.compute())
    metric.update(torch.tensor([1]), torch.tensor([0]))
    metric.reset()
    metric.update(torch.tensor([0]), torch.tensor([0]))
    assert float(metric.compute()) == 1.0


def test_plot() -> None:
    metric = PenaltyWeightedAccuracy()
    metric.update(torch.tensor(MISTAKES), T)
    fig, ax = metric.plot()
    assert ax is not None
    plt.close(fig)
    fig, _ = metric.plot([torch.tensor(0.9), torch.tensor(0.95)])
    plt.close(fig)
