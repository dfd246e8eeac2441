"""Printing a run's results on the terminal."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def test_tables(test: dict[str, Any]) -> tuple[Table, Table]:
    """Headline figures (PWA beside its floor) and per-class recall of a test report dict."""
    floor = test["floor"]
    head = Table(title="Test: PWA and what it hides")
    head.add_column("figure")
    head.add_column("value", justify="right")
    rows = [
        ("PWA", _fmt(test["pwa"])),
        (f"best constant predictor ({floor['name']})", _fmt(floor["pwa"])),
        ("lift over it", _fmt(test["pwa_lift"])),
        ("cost / its cost", _fmt(test["cost_ratio"], 3)),
        ("defect escapes (defect -> good)",
         f"{test['escapes']} of {test['defect_images']} ({_fmt(test['escape_rate'], 3)})"),
        ("false alarms (good -> other)",
         f"{test['false_alarms']} of {test['good_images']} ({_fmt(test['false_alarm_rate'], 3)})"),
        ("accuracy", _fmt(test["accuracy"])),
        ("macro recall", _fmt(test["macro_recall"])),
    ]
    for name, value in rows:
        head.add_row(name, value)
    per_class = Table(title="Test: per class")
    for column in ("code", "class", "images", "recall", "precision"):
        per_class.add_column(column, justify="left" if column == "class" else "right")
    for row in test["per_class"]:
        per_class.add_row(str(row["code"]), row["name"], str(row["images"]),
                          _fmt(row["recall"], 3), _fmt(row["precision"], 3))
    return head, per_class


def print_training_summary(summary: dict[str, Any]) -> None:
    test = summary.get("test")
    if test:
        for table in test_tables(test):
            console.print(table)
        for warning in test.get("warnings") or []:
            console.print(f"[yellow]warning:[/yellow] {warning}")
        decisions = summary.get("test_decisions") or {}
        for rule, figures in decisions.items():
            console.print(f"decision {rule:>6}: PWA {_fmt(figures['pwa'])}, "
                          f"escapes {figures['escapes']}")
    inspection = summary.get("inspection")
    if inspection:
        print_inspection(inspection)
    console.print(f"best checkpoint: {summary.get('best_checkpoint')} "
                  f"({summary.get('optimized_metric')} = {_fmt(summary.get('metric'))})")
    console.print(f"run folder (pictures in figures/, summary.json): {summary['run_dir']}")
    wandb_dir = summary.get("wandb_dir")
    if wandb_dir:
        console.print(f"W&B run: {wandb_dir}  (upload with: wandb sync {wandb_dir})")


def print_inspection(inspection: dict[str, Any]) -> None:
    """The whole pipeline (drift + classifier) on test, beside the classifier alone."""
    full, alone = inspection["report"], inspection["classifier_only"]
    table = Table(title="Test: the whole inspection (drift detector + classifier)")
    for column in ("", "inspection", "classifier alone (argmax)"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_row("PWA", _fmt(full["pwa"]), _fmt(alone["pwa"]))
    table.add_row("best constant predictor", _fmt(full["floor"]["pwa"]),
                  _fmt(alone["floor"]["pwa"]))
    table.add_row("cost / its cost", _fmt(full["cost_ratio"], 3), _fmt(alone["cost_ratio"], 3))
    table.add_row("defect escapes", str(full["escapes"]), str(alone["escapes"]))
    table.add_row("false alarms", str(full["false_alarms"]), str(alone["false_alarms"]))
    table.add_row("macro recall", _fmt(full["macro_recall"]), _fmt(alone["macro_recall"]))
    console.print(table)
    console.print(f"drift: AUROC {_fmt(inspection.get('drift_auroc'), 3)}, "
                  f"false-drift rate {_fmt(inspection.get('false_drift_rate'), 3)}, "
                  f"drift images caught {_fmt(inspection.get('drift_recall'), 3)}")
