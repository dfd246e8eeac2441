"""A sweep's summary files (their names, reading them back) and the table a finished sweep
prints: each job's status, scores beside their floor and lift, warnings, W&B state, error and
folder."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

SUMMARY_CSV = "sweep_summary.csv"
SUMMARY_JSON = "sweep_summary.json"
#: Figures shown with their floor and lift (``NAME_floor``, ``NAME_lift``).
SCORES = ("metric", "test_pwa", "inspection_pwa")

#: How the table shows each job status.
STATUS_STYLE = {"ok": "[green]ok[/green]", "failed": "[red]failed[/red]",
                "interrupted": "[yellow]interrupted[/yellow]"}


def print_summary(jobs: list[dict[str, Any]], sweep_dir: str | Path) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    failed = sum(row.get("status") == "failed" for row in jobs)
    interrupted = sum(row.get("status") == "interrupted" for row in jobs)
    stopped = f", {interrupted} interrupted" if interrupted else ""
    table = Table(title=f"Sweep: {len(jobs) - failed - interrupted} ok, {failed} failed{stopped}",
                  caption=f"{Path(sweep_dir) / SUMMARY_CSV}; floor: the best constant "
                          "answer's score, lift: how far above it")
    metric_name = next((row.get("optimized_metric") for row in jobs
                        if row.get("optimized_metric")), None) or "metric"
    # the test and inspection columns only when some job has them
    shown = [key for key in SCORES
             if key == "metric" or any(row.get(key) is not None for row in jobs)]
    titles = {"metric": metric_name, "test_pwa": "test PWA", "inspection_pwa": "inspection PWA"}
    table.add_column("job", justify="right")
    table.add_column("overrides", min_width=12)
    table.add_column("status")
    for key in shown:
        table.add_column(titles[key], justify="right")
        table.add_column("floor", justify="right")
        table.add_column("lift", justify="right")
    for column in ("warnings", "W&B", "error", "folder"):
        table.add_column(column)
    for row in jobs:
        error = row.get("error") or ""
        count, first = row.get("warnings"), row.get("first_warning") or ""
        warned = "–" if count is None else str(count)
        if first:
            short = first[:77] + "..." if len(first) > 80 else first
            warned = f"[yellow]{count}: {escape(short)}[/yellow]"
        scores = []
        for key in shown:
            scores += [_shown(row.get(key)), _shown(row.get(f"{key}_floor")),
                       _shown_lift(row.get(f"{key}_lift"))]
        table.add_row(
            str(row["job"]), escape(row.get("overrides") or ""),
            STATUS_STYLE.get(str(row.get("status")), "[red]failed[/red]"),
            *scores, warned, row.get("wandb") or "",
            escape(error if len(error) <= 160 else error[:157] + "..."),
            escape(Path(row["run_dir"]).name) if row.get("run_dir") else "",
        )
    console = Console()
    if not console.is_terminal:  # a log file: room for every column
        console.width = max(console.width, 160)
    console.print(table)


def _shown(value: Any) -> str:
    number = finite_number(value)
    return "–" if number is None else f"{number:.4f}"


def _shown_lift(value: Any) -> str:
    """A lift, red when the job is no better than a constant answer."""
    number = finite_number(value)
    if number is None:
        return "–"
    return f"[green]{number:+.4f}[/green]" if number > 0 else f"[red]{number:+.4f}[/red]"


def finite_number(value: Any) -> float | None:
    """``value`` as a finite float, or ``None``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_summary(sweep_dir: str | Path) -> dict[str, Any] | None:
    """The sweep's ``sweep_summary.json`` (``None`` when absent)."""
    return read_json(Path(sweep_dir) / SUMMARY_JSON)


__all__ = ["SCORES", "STATUS_STYLE", "SUMMARY_CSV", "SUMMARY_JSON", "finite_number",
           "print_summary", "read_json", "read_summary"]
