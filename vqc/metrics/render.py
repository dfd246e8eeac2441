"""Showing a ``ScoreReport``: one set of rows for the terminal (rich) and for Markdown, and the
confusion matrices as a matplotlib figure.

Every place that shows scores (``vqc-score``, the end of training, the inspection report,
the Markdown files of a run) goes through here, so a figure has one name and one format
everywhere. A ``Section`` is the shared unit: a titled table of strings, rendered by
``rich_table`` or ``markdown_table``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from vqc.io import write_atomic

if TYPE_CHECKING:
    from vqc.metrics.report import ScoreReport

#: Title of the table comparing decision rules on the same probabilities.
DECISIONS_TITLE = "Decision rules"
CLASS_HEADER: tuple[str, ...] = ("code", "class", "images", "predicted", "recall", "precision",
                                 "F1", "PWA if always this class")
COMPARISON_HEADER: tuple[str, ...] = ("PWA", "floor", "lift", "cost ratio", "escapes",
                                      "false alarms", "known macro recall", "drift recall",
                                      "macro recall (all classes)")
#: The classifier's own decision, named by its rule wherever a report shows it.
RULE_NAMES = {"argmax": "argmax", "bayes": "least-cost rule"}
#: Titles of the whole inspection's headline and of its detailed tables.
INSPECTION_TITLE = "Test: the whole inspection (drift detector + classifier)"
INSPECTION_DETAIL_TITLE = "The whole inspection in detail"
WHOLE = "whole inspection"


def classifier_alone(rule: str) -> str:
    """``classifier alone (argmax)`` or ``classifier alone (least-cost rule)``."""
    return f"classifier alone ({RULE_NAMES.get(rule, rule)})"


def classifier_title(rule: str | None) -> str:
    """The title of the classifier's test report: what decided, never just "Test"."""
    return f"Test: {classifier_alone(rule)}" if rule else "Test: classifier alone"


def num(value: float | None, digits: int = 4) -> str:
    """``value`` with ``digits`` decimals; ``–`` when undefined."""
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def signed(value: float | None, digits: int = 4) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:+.{digits}f}"


def pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{100 * value:.{digits}f}%"


@dataclass(frozen=True)
class Section:
    """A titled table of strings; ``left`` are the columns of labels (the rest are figures,
    right-aligned on the terminal)."""

    title: str
    header: tuple[str, ...]
    rows: list[list[str]]
    left: tuple[int, ...] = (0,)


# --------------------------------------------------------------------------------- sections
def summary_rows(report: ScoreReport) -> list[list[str]]:
    """(figure, value) rows: PWA beside its floor and lift, escapes, false alarms..."""
    names = report.class_names
    matrix = f" ({report.cost_name})" if report.cost_name else ""
    rows = [
        ["images", str(report.n)],
        [f"PWA{matrix}", num(report.pwa)],
        ["floor: best constant predictor",
         f"always {names[report.floor.code]!r}: PWA {num(report.floor.pwa)}"],
        ["lift over the floor",
         f"{signed(report.pwa_lift)} PWA, cost ratio {num(report.cost_ratio, 3)}"],
        ["cost per image",
         f"{num(report.cost_per_image, 2)} (floor {num(report.floor_cost_per_image, 2)})"],
        ["accuracy", num(report.accuracy)],
        *recall_rows(report),
        ["macro F1", num(report.macro_f1)],
    ]
    if report.good_code is not None:
        good = names[report.good_code]
        rows += [
            [f"defect escapes (defect predicted {good})",
             f"{report.escapes} / {report.defect_images} ({pct(report.escape_rate)})"],
            [f"false alarms ({good} predicted otherwise)",
             f"{report.false_alarms} / {report.good_images} ({pct(report.false_alarm_rate)})"],
        ]
    rows.append(["most predicted class",
                 f"{names[report.top_code]!r}: {pct(report.top_share)} of predictions, "
                 f"{pct(report.top_label_share)} of labels"])
    return rows


def recall_rows(report: ScoreReport) -> list[list[str]]:
    """Macro recall of the known classes and the open-set (drift) recall side by side, then the
    macro recall of all classes, labelled as such; one ``macro recall`` row without an
    open-set class in the labels."""
    code = report.open_set_code
    if code is None or not report.support[code]:
        return [["macro recall", num(report.macro_recall)]]
    name = report.class_names[code]
    return [["macro recall, known classes", num(report.known_macro_recall)],
            [f"drift recall ({name} images decided {name})", num(report.drift_recall)],
            [f"macro recall, all classes ({name} included)", num(report.macro_recall)]]


def summary_section(report: ScoreReport, title: str) -> Section:
    return Section(title, ("figure", "value"), summary_rows(report), left=(0, 1))


def class_section(report: ScoreReport) -> Section:
    """One row per class: images, predictions, recall, precision, F1, its constant PWA."""
    rows = [
        [str(i), name, str(report.support[i]), str(report.predicted[i]),
         num(report.recall[i], 3), num(report.precision[i], 3), num(report.f1[i], 3),
         num(report.constants[i].pwa)]
        for i, name in enumerate(report.class_names)
    ]
    return Section("Per class", CLASS_HEADER, rows, left=(1,))


def confusion_sections(report: ScoreReport) -> list[Section]:
    """Counts, and the share of each true class; rows ``code name``, columns codes."""
    labels = [f"{i} {name}" for i, name in enumerate(report.class_names)]
    header = ("true \\ predicted", *map(str, range(len(labels))))
    counts = [[label, *map(str, row)] for label, row in zip(labels, report.confusion, strict=True)]
    shares = [[label, *(pct(v, 0) for v in row)]
              for label, row in zip(labels, report.confusion_normalised, strict=True)]
    return [Section("Confusion matrix (rows: true class, columns: predicted)", header, counts),
            Section("Confusion matrix, row-normalised (share of each true class)", header,
                    shares)]


def report_sections(report: ScoreReport, title: str) -> list[Section]:
    """Everything a report shows, in order: summary, per class, both confusion matrices."""
    return [summary_section(report, title), class_section(report), *confusion_sections(report)]


def comparison_section(reports: Mapping[str, ScoreReport], title: str = DECISIONS_TITLE,
                       label: str = "decision") -> Section:
    """The headline figures of several reports on the same images, one row each."""
    rows = [[name, num(r.pwa), num(r.floor.pwa), signed(r.pwa_lift), num(r.cost_ratio, 3),
             str(r.escapes), str(r.false_alarms), num(r.known_macro_recall),
             num(r.drift_recall), num(r.macro_recall)]
            for name, r in reports.items()]
    return Section(title, (label, *COMPARISON_HEADER), rows)


def inspection_section(whole: ScoreReport, alone: ScoreReport,
                       alone_rule: str = "argmax") -> Section:
    """The headline: the whole inspection, then the classifier alone (named by its rule)."""
    return comparison_section({WHOLE: whole, classifier_alone(alone_rule): alone},
                              INSPECTION_TITLE, label="")


def drift_line(auroc: float | None, false_drift: float | None,
               drift_recall: float | None) -> str:
    return (f"drift: AUROC {num(auroc, 3)}, false-drift rate {num(false_drift, 3)}, "
            f"drift images caught {num(drift_recall, 3)}")


def inspection_markdown(whole: ScoreReport, alone: ScoreReport, auroc: float | None,
                        false_drift: float | None, drift_recall: float | None,
                        alone_rule: str = "argmax") -> str:
    """The inspection report: the headline comparison and drift figures first, then the
    whole inspection's tables."""
    section = inspection_section(whole, alone, alone_rule)
    return "\n".join([f"## {section.title}", "", *markdown_table(section), "",
                      drift_line(auroc, false_drift, drift_recall), "",
                      report_markdown(whole, INSPECTION_DETAIL_TITLE)])


# --------------------------------------------------------------------------------- Markdown
def markdown_table(section: Section) -> list[str]:
    """The section's table as Markdown lines (header, rule, rows); ``|`` in cells escaped."""
    return [_md_row(section.header), _md_row(["---"] * len(section.header)),
            *(_md_row(row) for row in section.rows)]


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def report_markdown(report: ScoreReport, title: str = "Scores") -> str:
    """``## title``, the summary table, then one ``###`` part per section and the warnings."""
    first, *rest = report_sections(report, title)
    lines = [f"## {first.title}", "", *markdown_table(first)]
    for section in rest:
        lines += ["", f"### {section.title}", "", *markdown_table(section)]
    if report.warnings:
        lines += ["", "### Warnings", ""] + [f"- {w}" for w in report.warnings]
    return "\n".join(lines) + "\n"


def comparison_markdown(reports: Mapping[str, ScoreReport], title: str = DECISIONS_TITLE,
                        label: str = "decision") -> str:
    section = comparison_section(reports, title, label)
    return "\n".join([f"## {section.title}", "", *markdown_table(section)]) + "\n"


def decisions_markdown(reports: Mapping[str, ScoreReport]) -> str:
    """A Markdown table comparing decision rules on the headline figures."""
    return comparison_markdown(reports, DECISIONS_TITLE)


# --------------------------------------------------------------------------------- terminal
def rich_table(section: Section) -> Table:
    table = Table(title=section.title, title_justify="left")
    for i, head in enumerate(section.header):
        table.add_column(head, justify="left" if i in section.left else "right")
    for row in section.rows:
        table.add_row(*row)
    return table


def report_tables(report: ScoreReport, title: str) -> list[Table]:
    return [rich_table(s) for s in report_sections(report, title)]


def print_warnings(console: Console, warnings: Sequence[str]) -> None:
    for warning in warnings:
        console.print(f"[bold yellow]warning:[/] {warning}", highlight=False)


def print_report(console: Console, report: ScoreReport, title: str) -> None:
    """The report's tables, then its warnings."""
    for table in report_tables(report, title):
        console.print(table)
    print_warnings(console, report.warnings)


def print_comparison(console: Console, reports: Mapping[str, ScoreReport],
                     title: str = DECISIONS_TITLE, label: str = "decision") -> None:
    console.print(rich_table(comparison_section(reports, title, label)))


# --------------------------------------------------------------------------------- figure
def confusion_figure(report: ScoreReport, title: str = "") -> Any:
    """A matplotlib ``Figure``: counts and row-normalised confusion matrices side by side.

    Drawn on an Agg canvas without pyplot, so it never changes the caller's backend.
    """
    import torch
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from torchmetrics.utilities.plot import plot_confusion_matrix

    size = len(report.class_names)
    side = max(5.0, 0.9 * size + 2.5)
    fig = Figure(figsize=(2 * side, side), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    labels: list[int | str] = [f"{i} {n}" if len(n) <= 14 else f"{i} {n[:13]}…"
                               for i, n in enumerate(report.class_names)]
    counts = torch.tensor(report.confusion)
    shares = torch.tensor(report.confusion_normalised).nan_to_num(0.0)
    plot_confusion_matrix(counts, ax=left, labels=labels, cmap="Blues")
    plot_confusion_matrix(shares, ax=right, labels=labels, cmap="Blues")
    left.set_title("counts")
    right.set_title("share of each true class")
    fig.suptitle(title or f"PWA {num(report.pwa)} | floor {num(report.floor.pwa)} "
                 f"(always {report.floor.name}) | cost ratio {num(report.cost_ratio, 3)}")
    return fig


def save_confusion_png(report: ScoreReport, path: str | Path, title: str = "") -> Path:
    """Write ``confusion_figure`` as a PNG, atomically."""
    buffer = io.BytesIO()
    confusion_figure(report, title).savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return write_atomic(path, buffer.getvalue())
