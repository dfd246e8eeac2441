"""The full report: floor, lift, escapes, false alarms, recall, collapse, its dict form."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from tests.metrics.cases import (
    CONSTANT_COSTS_OFFICIAL,
    FLOOR_PWA_OFFICIAL,
    LABELS,
    MISTAKES,
    MISTAKES_COST_OFFICIAL,
    MISTAKES_PWA_OFFICIAL,
    NAMES,
)
from vqc.classes import ClassSet
from vqc.errors import ConfigError, DataError
from vqc.metrics import ScoreReport, classes_for_matrix, score_predictions

T = torch.tensor(LABELS)
P = torch.tensor(MISTAKES)


@pytest.fixture
def report() -> ScoreReport:
    return score_predictions(P, T)


def test_cost_and_floor(report: ScoreReport) -> None:
    assert report.n == 10
    assert report.total_cost == MISTAKES_COST_OFFICIAL
    assert report.pwa == pytest.approx(MISTAKES_PWA_OFFICIAL, abs=1e-12)
    assert report.cost_per_image == pytest.approx(2210.1)  # 22101 / 10
    assert [c.cost for c in report.constants] == CONSTANT_COSTS_OFFICIAL
    assert report.floor.name == "Missing"
    assert report.floor.pwa == pytest.approx(FLOOR_PWA_OFFICIAL, abs=1e-12)
    # lift: 0.77899 - 0.98796 = -0.20897; cost ratio 22101 / 1204 = 18.356...
    assert report.pwa_lift == pytest.approx(-0.20897, abs=1e-12)
    assert report.cost_ratio == pytest.approx(22101 / 1204)


def test_counts_recall_precision(report: ScoreReport) -> None:
    # rows (true): 0 -> {6, 4}; 1 -> 0; 2 -> 2; 3 -> 6; 4 -> {2, 4, 4}; 5 -> 5; 6 -> 5
    assert report.support == [2, 1, 1, 1, 3, 1, 1]
    assert report.predicted == [1, 0, 2, 0, 3, 2, 2]
    assert report.confusion[4] == [0, 0, 1, 0, 2, 0, 0]
    # right: codes 2, 4, 4, 5 -> 4 / 10
    assert report.accuracy == pytest.approx(0.4)
    assert report.recall == pytest.approx([0, 0, 1, 0, 2 / 3, 1, 0])
    # macro recall over the 7 classes present: (1 + 2/3 + 1) / 7
    assert report.macro_recall == pytest.approx((8 / 3) / 7)
    # precision: code 1 and 3 never predicted -> undefined
    assert report.precision[0] == 0 and report.precision[6] == 0
    assert math.isnan(report.precision[1]) and math.isnan(report.precision[3])
    assert report.precision[2] == pytest.approx(0.5) and report.precision[4] == pytest.approx(2 / 3)
    # F1 = 2 TP / (support + predicted): codes 2, 4, 5 -> 2/3 each, the rest 0 -> macro 2/7
    assert report.f1 == pytest.approx([0, 0, 2 / 3, 0, 2 / 3, 2 / 3, 0])
    assert report.macro_f1 == pytest.approx(2 / 7)
    # the same as torchmetrics' definitions
    assert report.macro_f1 == pytest.approx(
        float(MulticlassF1Score(7, average="macro")(P, T)))
    assert report.accuracy == pytest.approx(float(MulticlassAccuracy(7, average="micro")(P, T)))
    # row-normalised: Missing row 1/3 to Lift-off blanc, 2/3 right
    assert report.confusion_normalised[4][2] == pytest.approx(1 / 3)


def test_escapes_and_false_alarms(report: ScoreReport) -> None:
    # the one Boucle plate called GOOD; 7 defect images (Drift is not a defect)
    assert (report.escapes, report.defect_images) == (1, 7)
    assert report.escape_rate == pytest.approx(1 / 7)
    # both GOOD images called something else (Drift and Missing)
    assert (report.false_alarms, report.good_images, report.false_alarm_rate) == (2, 2, 1.0)
    # Drift called GOOD is no escape; GOOD called Drift is a false alarm
    other = score_predictions(torch.tensor([0, 0, 6, 0]), torch.tensor([6, 1, 0, 0]))
    assert (other.escapes, other.defect_images) == (1, 1)
    assert (other.false_alarms, other.good_images) == (1, 2)


def test_warnings(report: ScoreReport) -> None:
    assert not report.collapsed
    assert report.top_code == 4 and report.top_share == pytest.approx(0.3)
    assert any(w.startswith("no lift") for w in report.warnings)
    assert any("['Boucle plate', 'Lift-off noir']" in w for w in report.warnings)


def test_collapse() -> None:
    # always Missing: the floor itself -> lift 0, cost ratio 1, 100% of predictions one class
    collapsed = score_predictions(torch.full((10,), 4), T)
    assert collapsed.pwa == pytest.approx(FLOOR_PWA_OFFICIAL, abs=1e-12)
    assert collapsed.pwa_lift == pytest.approx(0.0, abs=1e-12)
    assert collapsed.cost_ratio == pytest.approx(1.0)
    assert collapsed.collapsed and collapsed.top_share == 1.0
    assert collapsed.warnings[0].startswith("collapse: 100.0% of the predictions are 'Missing'")
    # the share is configurable: 3 of 10 Missing passes 0.95 but not 0.25
    assert score_predictions(P, T, collapse_share=0.25).collapsed
    with pytest.raises(ConfigError, match="collapse_share"):
        score_predictions(P, T, collapse_share=0)


def test_perfect_beats_floor() -> None:
    perfect = score_predictions(T, T)
    assert perfect.pwa == 1.0 and perfect.cost_ratio == 0.0
    assert perfect.pwa_lift == pytest.approx(1 - FLOOR_PWA_OFFICIAL)
    assert perfect.warnings == []


def test_one_class_labels() -> None:
    # labels all GOOD: "always GOOD" is free, so any cost is infinitely worse
    report = score_predictions(torch.tensor([0, 4]), torch.tensor([0, 0]))
    assert report.floor.cost == 0 and report.cost_ratio == math.inf
    assert math.isnan(report.escape_rate)  # no defect image
    assert score_predictions(torch.tensor([0]), torch.tensor([0])).cost_ratio != 0.0  # 0/0: nan


def test_empty_report() -> None:
    report = ScoreReport.from_confusion(torch.zeros(7, 7, dtype=torch.long), "official")
    assert math.isnan(report.pwa) and report.warnings == ["no images scored"]
    json.loads(report.to_json())
    with pytest.raises(DataError, match="does not match"):
        ScoreReport.from_confusion(torch.zeros(6, 6), "official")


def test_classes_for_matrix() -> None:
    assert classes_for_matrix(None, 7) == ClassSet.challenge()
    six = classes_for_matrix(ClassSet.challenge(), 6)
    assert six.names == tuple(NAMES[:6]) and six.open_set is None and six.good == "GOOD"
    assert classes_for_matrix(None, 6) == six
    assert classes_for_matrix(None, 3).names == ("0", "1", "2")
    with pytest.raises(ConfigError, match="5x5 but there are 7 classes"):
        classes_for_matrix(ClassSet.challenge(), 5)


def test_from_dict_round_trip(report: ScoreReport) -> None:
    # what a run's summary.json holds comes back as the same report (nan read back from None)
    again = ScoreReport.from_dict(json.loads(report.to_json()))
    assert again.to_dict() == report.to_dict()
    assert again.floor == report.floor and math.isnan(again.precision[1])
    with pytest.raises(DataError, match=r"not a score report: missing \['floor'\]"):
        ScoreReport.from_dict({k: v for k, v in report.to_dict().items() if k != "floor"})


def test_to_json(report: ScoreReport) -> None:
    data = json.loads(report.to_json())
    assert data["floor"]["code"] == 4
    assert data["per_class"][1]["precision"] is None
    assert data["pwa"] == pytest.approx(MISTAKES_PWA_OFFICIAL)


def test_known_class_recall_and_drift_recall_stand_apart(report: ScoreReport) -> None:
    """Macro recall averages the drift class in; the known classes' mean leaves it out."""
    from vqc.metrics import render

    # recall [0, 0, 1, 0, 2/3, 1 | Drift 0]: known (8/3) / 6, all classes (8/3) / 7
    assert report.known_macro_recall == pytest.approx((8 / 3) / 6)
    assert report.drift_recall == 0.0
    data = report.to_dict()
    assert data["known_macro_recall"] == pytest.approx(0.4444, abs=1e-4)
    assert data["drift_recall"] == 0.0 and data["macro_recall"] == pytest.approx(0.3810, abs=1e-4)
    assert ScoreReport.from_dict(data).known_macro_recall == report.known_macro_recall
    assert report.scalars("test/")["test/known_macro_recall"] == report.known_macro_recall
    rows = dict(render.summary_rows(report))
    assert rows["macro recall, known classes"] == "0.4444"
    assert rows["drift recall (Drift images decided Drift)"] == "0.0000"
    assert rows["macro recall, all classes (Drift included)"] == "0.3810"
    assert "macro recall" not in rows


def test_without_drift_images_one_macro_recall_row() -> None:
    from vqc.metrics import render

    report = ScoreReport.from_confusion(torch.eye(7, dtype=torch.long) * torch.tensor(
        [2, 1, 1, 1, 1, 1, 0]), "official")
    rows = dict(render.summary_rows(report))
    assert rows["macro recall"] == "1.0000" and report.known_macro_recall == 1.0
    assert math.isnan(report.drift_recall)  # no Drift image to recall
