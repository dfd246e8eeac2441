"""The end of a training run on the terminal: the same tables as ``vqc-score``, read back
from the run's summary dict."""

from __future__ import annotations

import io
import json

import pytest
import torch
from rich.console import Console

from tests.metrics.cases import LABELS, MISTAKES
from vqc.cli import report as cli_report
from vqc.metrics import compare_decisions, score_predictions

T = torch.tensor(LABELS)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Console:
    console = Console(record=True, width=160, file=io.StringIO())
    monkeypatch.setattr(cli_report, "console", console)
    return console


def test_training_summary(recorded: Console, tmp_path) -> None:
    test = score_predictions(torch.tensor(MISTAKES), T)
    p = torch.full((len(LABELS), 6), 0.1)
    p[:, 0] = 0.5
    decisions = compare_decisions(p, T)
    whole = score_predictions(T, T)
    summary = json.loads(json.dumps({  # through JSON, as summary.json holds it
        "run_dir": str(tmp_path), "best_checkpoint": "best.ckpt", "optimized_metric": "val/pwa",
        "metric": 0.5, "best_monitor": "val/loss",
        "best": {"monitor": "val/loss", "score": 0.25, "epoch": 3, "metrics": {}},
        "test": test.to_dict(), "decision": "bayes",
        "test_decisions": {rule: r.to_dict() for rule, r in decisions.items()},
        "inspection": {"report": whole.to_dict(), "classifier_only": test.to_dict(),
                       "drift_auroc": 0.9, "false_drift_rate": 0.0, "drift_recall": 1.0},
    }))
    cli_report.print_training_summary(summary)
    text = recorded.export_text()
    for words in ("PWA (official)", "0.7790", "always 'Missing': PWA 0.9880",
                  "1 / 7 (14.3%)", "Per class", "Confusion matrix", "warning: no lift",
                  "Decision rules", f"{decisions['bayes'].pwa:.4f}",
                  "best checkpoint: best.ckpt (val/loss = 0.2500, epoch 3)"):
        assert words in text, words
    # the whole inspection is the headline, printed before the classifier alone, named by rule
    headline = text.index("Test: the whole inspection (drift detector + classifier)")
    assert headline < text.index("Test: classifier alone (least-cost rule)")
    assert text.index("whole inspection ") < text.index("PWA (official)")
    assert [t.title for t in cli_report.test_tables(summary["test"], "argmax")][:2] == [
        "Test: classifier alone (argmax)", "Per class"]


def test_inspection_beside_the_classifier_alone(recorded: Console) -> None:
    full = score_predictions(T, T)
    alone = score_predictions(torch.tensor(MISTAKES), T)
    cli_report.print_inspection({"report": full.to_dict(), "classifier_only": alone.to_dict(),
                                 "drift_auroc": 0.875, "false_drift_rate": None,
                                 "drift_recall": 1.0})
    text = recorded.export_text()
    assert "Test: the whole inspection (drift detector + classifier)" in text
    lines = {line.split("│")[1].strip(): line for line in text.splitlines() if "│" in line}
    assert "1.0000" in lines["whole inspection"] and "0.7790" in lines["classifier alone (argmax)"]
    header = next(line for line in text.splitlines() if "known macro recall" in line)
    assert header.index("known macro recall") < header.index("drift recall") \
        < header.index("macro recall (all classes)")
    # the classifier alone: known classes (1 + 2/3 + 1) / 6, Drift missed, all classes / 7
    cells = [c.strip() for c in lines["classifier alone (argmax)"].split("│")]
    assert cells[-4:-1] == ["0.4444", "0.0000", "0.3810"]
    assert "drift: AUROC 0.875, false-drift rate –, drift images caught 1.000" in text
