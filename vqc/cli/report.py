"""Printing a run's results on the terminal.

The scores come back from the run's summary dict (``ScoreReport.to_dict`` form) and are shown by
``vqc.metrics.render``, the same tables as ``vqc-evaluate`` and the run's Markdown reports.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from vqc.metrics.render import DECISIONS_TITLE, num, print_comparison, print_report, report_tables
from vqc.metrics.report import ScoreReport

console = Console()

#: Titles of the tables at the end of a training run.
TEST_TITLE = "Test"
INSPECTION_TITLE = "Test: the whole inspection (drift detector + classifier)"


def test_tables(test: dict[str, Any]) -> list[Table]:
    """The tables of a test report dict (summary, per class, confusion matrices)."""
    return report_tables(ScoreReport.from_dict(test), TEST_TITLE)


def print_training_summary(summary: dict[str, Any]) -> None:
    test = summary.get("test")
    if test:
        print_report(console, ScoreReport.from_dict(test), TEST_TITLE)
        decisions = summary.get("test_decisions") or {}
        if decisions:
            print_comparison(console, {rule: ScoreReport.from_dict(d)
                                       for rule, d in decisions.items()}, DECISIONS_TITLE)
    inspection = summary.get("inspection")
    if inspection:
        print_inspection(inspection)
    console.print(f"best checkpoint: {summary.get('best_checkpoint')} "
                  f"({summary.get('optimized_metric')} = {num(summary.get('metric'))})")
    console.print(f"run folder (pictures in figures/, summary.json): {summary['run_dir']}")
    wandb_dir = summary.get("wandb_dir")
    if wandb_dir:
        console.print(f"W&B run: {wandb_dir}  (upload with: wandb sync {wandb_dir})")


def print_inspection(inspection: dict[str, Any]) -> None:
    """The whole pipeline (drift + classifier) on test, beside the classifier alone."""
    reports = {"inspection": ScoreReport.from_dict(inspection["report"]),
               "classifier alone (argmax)": ScoreReport.from_dict(inspection["classifier_only"])}
    print_comparison(console, reports, INSPECTION_TITLE, label="")
    console.print(f"drift: AUROC {num(inspection.get('drift_auroc'), 3)}, "
                  f"false-drift rate {num(inspection.get('false_drift_rate'), 3)}, "
                  f"drift images caught {num(inspection.get('drift_recall'), 3)}")
    note = inspection.get("drift_note")
    if note and inspection.get("drift_recall") is None:
        console.print(note)  # why there is nothing to score
