"""One rendering of a report: the same rows on the terminal (rich) and in Markdown."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
import torch
from rich.console import Console

from tests.metrics.cases import LABELS, MISTAKES
from vqc.metrics import (
    ScoreReport,
    compare_decisions,
    decisions_markdown,
    render,
    score_predictions,
)


@pytest.fixture
def report() -> ScoreReport:
    return score_predictions(torch.tensor(MISTAKES), torch.tensor(LABELS))


def recorded(draw: Callable[[Console], None]) -> str:
    """What ``draw`` prints, as plain text."""
    console = Console(record=True, width=160, file=io.StringIO())
    draw(console)
    return console.export_text()


def test_markdown_rows(report: ScoreReport) -> None:
    md = report.to_markdown()
    assert md.startswith("## Scores\n\n| figure | value |\n")
    assert "| PWA (official) | 0.7790 |" in md
    assert "| floor: best constant predictor | always 'Missing': PWA 0.9880 |" in md
    assert "| defect escapes (defect predicted GOOD) | 1 / 7 (14.3%) |" in md
    assert "| 1 | Boucle plate | 1 | 0 | 0.000 | – | 0.000 | 0.9879 |" in md
    # confusion: Missing (3 images) -> Lift-off blanc once, right twice; its shares in percent
    assert "| 4 Missing | 0 | 0 | 1 | 0 | 2 | 0 | 0 |" in md
    assert "| 4 Missing | 0% | 0% | 33% | 0% | 67% | 0% | 0% |" in md
    assert "### Warnings\n\n- no lift: the predictions cost 18.36 times" in md


def test_terminal_shows_the_markdown_rows(report: ScoreReport) -> None:
    text = recorded(lambda c: render.print_report(c, report, "submission.csv"))
    assert "submission.csv" in text and "warning: never predicted" in text
    # every cell of every Markdown table is printed on the terminal, in the same words
    for section in render.report_sections(report, "submission.csv"):
        for row in section.rows:
            for cell in row:
                assert cell in text, (section.title, cell)
    assert "Confusion matrix, row-normalised (share of each true class)" in text


def test_pipes_in_names_are_escaped() -> None:
    section = render.Section("t", ("a|b", "c"), [["x|y", "1"]])
    assert render.markdown_table(section) == ["| a\\|b | c |", "| --- | --- |", "| x\\|y | 1 |"]


def test_undefined_figures() -> None:
    assert render.num(float("nan")) == "–" and render.num(None) == "–"
    assert render.signed(0.25) == "+0.2500" and render.pct(0.123) == "12.3%"
    empty = ScoreReport.from_confusion(torch.zeros(7, 7, dtype=torch.long), "official")
    rows = dict(render.summary_rows(empty))
    assert rows["PWA"] == "–" and rows["defect escapes (defect predicted GOOD)"] == "0 / 0 (–)"


def test_decision_rules_terminal_and_markdown(report: ScoreReport) -> None:
    p = torch.full((len(LABELS), 6), 0.1)
    p[:, 0] = 0.5  # argmax answers GOOD everywhere; Bayes a defect
    reports = compare_decisions(p, torch.tensor(LABELS))
    md = decisions_markdown(reports)
    assert md.startswith("## Decision rules\n\n| decision | PWA | floor | lift |")
    argmax = reports["argmax"]
    row = (f"| argmax | {argmax.pwa:.4f} | {argmax.floor.pwa:.4f} | {argmax.pwa_lift:+.4f} | "
           f"{argmax.cost_ratio:.3f} | {argmax.escapes} | {argmax.false_alarms} |")
    assert row in md
    text = recorded(lambda c: render.print_comparison(c, reports))
    for cell in render.comparison_section(reports).rows[1]:
        assert cell in text


def test_confusion_png(report: ScoreReport, tmp_path) -> None:
    fig = render.confusion_figure(report)
    assert len(fig.axes) >= 2 and "always Missing" in fig.get_suptitle()
    png = report.save_confusion_png(tmp_path / "cm.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
