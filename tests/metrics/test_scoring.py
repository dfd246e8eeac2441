"""``ScoringMetrics``: the torchmetrics wrapper that fills a ``ScoreReport`` from batches."""

from __future__ import annotations

import pytest
import torch

from tests.metrics.cases import FLOOR_PWA_OFFICIAL, LABELS, MISTAKES, MISTAKES_PWA_OFFICIAL, NAMES
from vqc.errors import ConfigError, DataError
from vqc.metrics import ScoringMetrics, official_cost_matrix, score_predictions, sub_matrix

T = torch.tensor(LABELS)


def test_metric_compute_keys_and_trained_scores() -> None:
    metric = ScoringMetrics(prefix="val/")
    # (N, 6) scores over the trained classes, right on every non-Drift image
    scores = torch.nn.functional.one_hot(T.clamp(max=5), 6).float()
    metric.update(scores, T)
    out = metric.compute()
    # only the Drift image is wrong: called Short circuit MOS, 1000 -> 1 - 1000 / 100000
    assert float(out["val/pwa"]) == pytest.approx(0.99, abs=1e-12)
    assert float(out["val/pwa_floor"]) == pytest.approx(FLOOR_PWA_OFFICIAL, abs=1e-12)
    assert float(out["val/recall/Drift"]) == 0.0
    assert float(out["val/escapes"]) == 0.0
    assert all(v.ndim == 0 for v in out.values())
    fig, axes = metric.plot()
    assert len(axes) >= 2 and "PWA 0.9900" in fig.get_suptitle()


def test_batches_add_up_to_one_report() -> None:
    # two updates hold the same confusion matrix as one call on everything
    metric = ScoringMetrics()
    metric.update(torch.tensor(MISTAKES[:4]), T[:4])
    metric.update(torch.tensor(MISTAKES[4:]), T[4:])
    report = metric.report()
    assert report.cost_name == "official"
    assert report.pwa == pytest.approx(MISTAKES_PWA_OFFICIAL, abs=1e-12)
    assert report.confusion == score_predictions(torch.tensor(MISTAKES), T).confusion


def test_six_class_metric_refuses_drift() -> None:
    metric = ScoringMetrics(sub_matrix(official_cost_matrix(), range(6)))
    assert metric.classes.names == tuple(NAMES[:6])
    with pytest.raises(DataError, match=r"target has class codes \[6\] outside 0..5"):
        metric.update(torch.tensor([0]), torch.tensor([6]))
    with pytest.raises(ConfigError, match="collapse_share"):
        ScoringMetrics(collapse_share=1.5)
