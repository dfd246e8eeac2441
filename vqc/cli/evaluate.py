"""``vqc-score``: score a predictions CSV against a labels CSV.

Both files have the challenge's columns (an unnamed index, ``filename``, ``window``, ``lib``,
``Label``); only ``filename`` and ``Label`` are read. Labels may be class names or codes. Every
filename must appear in both files: unmatched names are listed and the run fails, unless
``--allow-missing`` scores the common part and lists them in the report.

Prints PWA with its floor and lift, escapes, false alarms, per-class recall and the confusion
matrix; with ``--out DIR`` also writes ``scores.json``, ``scores.md`` and ``confusion.png``.
With ``--probabilities`` it also compares the argmax and the Bayes-rule decisions.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from rich.console import Console

from vqc.errors import DataError, VqcError
from vqc.io import folder_problem, write_atomic
from vqc.metrics.cost import NAMED_MATRICES, load_cost_matrix
from vqc.metrics.files import (
    Matched,
    listing,
    match,
    read_labelled,
    read_probabilities,
    resolve_classes,
    to_scored_codes,
)
from vqc.metrics.render import decisions_markdown, print_comparison, print_report
from vqc.metrics.report import DEFAULT_COLLAPSE_SHARE, ScoreReport, classes_for_matrix
from vqc.metrics.scoring import compare_decisions, score_predictions

PROG = "vqc-score"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Score challenge-format predictions against labels: PWA, its floor and "
                    "lift, escapes, false alarms, per-class recall, confusion matrix.",
    )
    parser.add_argument("--predictions", required=True, type=Path,
                        help="CSV with columns filename and Label (a class code or name)")
    parser.add_argument("--labels", required=True, type=Path,
                        help="CSV with columns filename and Label (class names or codes)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for scores.json, scores.md and confusion.png")
    parser.add_argument("--matrix", default="official",
                        help="cost matrix: official (default), page, or a .csv/.npy file; a "
                             "matrix one class smaller than the class list scores without the "
                             "open-set class")
    parser.add_argument("--classes", default=None,
                        help="class names in code order, comma-separated, or a .yaml/.json file "
                             "with names, good, open_set, aliases (default: the challenge's)")
    parser.add_argument("--good", default=None,
                        help="the defect-free class (default: a class named 'good', any case)")
    parser.add_argument("--open-set", default=None,
                        help="the open-set class that no classifier is trained on")
    parser.add_argument("--probabilities", type=Path, default=None,
                        help="optional CSV: filename and one probability column per trained "
                             "class (named by class name or code); adds argmax vs Bayes rule")
    parser.add_argument("--collapse-share", type=float, default=DEFAULT_COLLAPSE_SHARE,
                        help="warn when one class takes more than this share of the "
                             f"predictions (default {DEFAULT_COLLAPSE_SHARE})")
    parser.add_argument("--allow-missing", action="store_true",
                        help="score the filenames found in both files and list the others, "
                             "instead of failing")
    return parser


def check_out_folder(out: Path) -> None:
    """Raise ``DataError`` when ``--out`` cannot be created or written to (checked before any
    scoring, so a bad folder costs nothing and leaves nothing behind)."""
    problem = folder_problem(out)
    if problem:
        raise DataError(f"--out {out}: cannot create this folder: {problem}")


def run(args: argparse.Namespace, console: Console) -> int:
    if args.out is not None:
        check_out_folder(args.out)
    classes = resolve_classes(args.classes, args.good, args.open_set)
    cost = load_cost_matrix(args.matrix)
    scored = classes_for_matrix(classes, cost.shape[0])
    cost_name = args.matrix if str(args.matrix).lower() in NAMED_MATRICES else str(args.matrix)

    preds = read_labelled(args.predictions, classes, "predictions")
    labels = read_labelled(args.labels, classes, "labels")
    matched = match(preds, labels, args.allow_missing)
    true_codes = to_scored_codes(matched.labels, matched.filenames, classes, scored, args.labels,
                                 "labelled")
    pred_codes = to_scored_codes(matched.preds, matched.filenames, classes, scored,
                                 args.predictions, "predicted")
    report = score_predictions(torch.tensor(pred_codes), torch.tensor(true_codes), cost,
                               scored, args.collapse_share)
    report.cost_name = cost_name
    report.warnings.extend([*labels.notes, *preds.notes])
    if matched.missing:
        report.warnings.append(f"{len(matched.missing)} labelled file(s) without a prediction, "
                               f"not scored: {listing(matched.missing)}")
    if matched.unexpected:
        report.warnings.append(f"{len(matched.unexpected)} predicted file(s) without a label, "
                               f"not scored: {listing(matched.unexpected)}")

    decisions: dict[str, ScoreReport] = {}
    if args.probabilities is not None:
        probs = read_probabilities(args.probabilities, matched.filenames, scored)
        drift = None
        if scored.open_set_code is not None:
            drift = torch.tensor(pred_codes) == scored.open_set_code
        decisions = compare_decisions(probs, torch.tensor(true_codes), cost, scored,
                                      codes=scored.trained_codes, drift=drift,
                                      collapse_share=args.collapse_share)

    title = f"{args.predictions.name} scored against {args.labels.name}"
    print_report(console, report, title)
    if decisions:
        print_comparison(console, decisions)
    if args.out is not None:
        written = write_outputs(args, report, decisions, matched)
        console.print(f"wrote {', '.join(map(str, written))}", highlight=False)
    return 0


def write_outputs(args: argparse.Namespace, report: ScoreReport,
                  decisions: dict[str, ScoreReport], matched: Matched) -> list[Path]:
    """``scores.json``, ``scores.md`` and ``confusion.png`` in ``--out``."""
    payload = {
        "predictions": str(args.predictions),
        "labels": str(args.labels),
        "probabilities": None if args.probabilities is None else str(args.probabilities),
        "cost_matrix": report.cost_name,
        "scores": report.to_dict(),
        "unscored": {"labelled_without_prediction": matched.missing,
                     "predicted_without_label": matched.unexpected},
        "decisions": {rule: r.to_dict() for rule, r in decisions.items()},
    }
    markdown = (f"# Evaluation\n\npredictions: `{args.predictions}`  \n"
                f"labels: `{args.labels}`\n\n" + report.to_markdown(title="Scores"))
    if decisions:
        markdown += "\n" + decisions_markdown(decisions)
    return [
        write_atomic(args.out / "scores.json",
                     json.dumps(payload, indent=2, allow_nan=False) + "\n"),
        write_atomic(args.out / "scores.md", markdown),
        report.save_confusion_png(args.out / "confusion.png"),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 bad input or config, 2 bad arguments)."""
    args = build_parser().parse_args(None if argv is None else list(argv))
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    try:
        return run(args, console)
    except (VqcError, OSError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1


def alias_main() -> int:
    """``vqc-evaluate``: the former name of ``vqc-score``, kept as an alias."""
    print("vqc-evaluate is an alias of vqc-score (the same command)", file=sys.stderr)
    return main()


if __name__ == "__main__":
    sys.exit(main())
