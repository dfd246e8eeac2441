"""Printing a run's results on the terminal.

The scores come back from the run's summary dict (``ScoreReport.to_dict`` form) and are shown by
``vqc.metrics.render``, the same tables as ``vqc-score`` and the run's Markdown reports.
"""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from vqc.metrics.render import (
    DECISIONS_TITLE,
    INSPECTION_TITLE,
    classifier_title,
    drift_line,
    inspection_section,
    num,
    print_comparison,
    print_report,
    report_tables,
    rich_table,
)
from vqc.metrics.report import ScoreReport

console = Console(width=None if sys.stdout.isatty() else 160)  # a log file keeps whole tables

#: Title of the classifier's test tables when the summary does not name its rule.
TEST_TITLE = classifier_title(None)
__all__ = ["INSPECTION_TITLE", "TEST_TITLE", "print_inspection", "print_training_summary",
           "test_tables"]


def test_tables(test: dict[str, Any], rule: str | None = None) -> list[Table]:
    """The tables of a test report dict (summary, per class, confusion matrices)."""
    return report_tables(ScoreReport.from_dict(test), classifier_title(rule))


def print_training_summary(summary: dict[str, Any]) -> None:
    """The whole inspection first (the figures to quote), then the classifier alone."""
    inspection = summary.get("inspection")
    if inspection:
        print_inspection(inspection)
    test = summary.get("test")
    if test:
        print_report(console, ScoreReport.from_dict(test),
                     classifier_title(summary.get("decision")))
        decisions = summary.get("test_decisions") or {}
        if decisions:
            print_comparison(console, {rule: ScoreReport.from_dict(d)
                                       for rule, d in decisions.items()}, DECISIONS_TITLE)
    console.print(best_checkpoint_line(summary))
    console.print(f"run folder (pictures in figures/, summary.json): {summary['run_dir']}")
    wandb_dir = summary.get("wandb_dir")
    if wandb_dir:
        console.print(f"W&B run: {wandb_dir}  (upload with: wandb sync {wandb_dir})")


def best_checkpoint_line(summary: dict[str, Any]) -> str:
    """``best checkpoint: PATH (val/loss = 0.1234, epoch 7)``: what chose it, and its value."""
    best = summary.get("best") or {}
    monitor = best.get("monitor") or summary.get("best_monitor")
    score = best.get("score", summary.get("best_score"))
    if monitor:
        epoch = f", epoch {best['epoch']}" if best.get("epoch") else ""
        why = f"{monitor} = {num(score)}{epoch}"
    elif summary.get("kind") == "test" or "best_monitor" not in summary:
        why = "the checkpoint does not record what chose it"  # written before it was kept
    else:
        why = "the last epoch: no figure monitored"
    return f"best checkpoint: {summary.get('best_checkpoint')} ({why})"


def print_inspection(inspection: dict[str, Any]) -> None:
    """The whole pipeline (drift + classifier) on test, beside the classifier alone (argmax)."""
    console.print(rich_table(inspection_section(
        ScoreReport.from_dict(inspection["report"]),
        ScoreReport.from_dict(inspection["classifier_only"]))))
    console.print(drift_line(inspection.get("drift_auroc"), inspection.get("false_drift_rate"),
                             inspection.get("drift_recall")))
    note = inspection.get("drift_note")
    if note and inspection.get("drift_recall") is None:
        console.print(note)  # why there is nothing to score
