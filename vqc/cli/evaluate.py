"""``vqc-evaluate``: score a predictions CSV against a labels CSV.

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from rich.table import Table

from vqc.data.classes import ClassSet
from vqc.data.csvio import csv_row, folder_problem, read_csv, write_atomic
from vqc.errors import ConfigError, DataError, VqcError
from vqc.metrics.cost import NAMED_MATRICES, load_cost_matrix
from vqc.metrics.report import (
    DEFAULT_COLLAPSE_SHARE,
    ScoreReport,
    classes_for_matrix,
    compare_decisions,
    decisions_markdown,
    score_predictions,
)

PROG = "vqc-evaluate"
#: How many unmatched filenames an error message lists before "and N more".
MAX_LISTED = 20


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


def resolve_classes(spec: str | None, good: str | None, open_set: str | None) -> ClassSet:
    """The class list from ``--classes``, ``--good`` and ``--open-set``."""
    if spec is None:
        base = ClassSet.challenge()
        if good is None and open_set is None:
            return base
        return ClassSet(base.names, open_set=open_set or base.open_set, good=good or base.good,
                        aliases=base.aliases)
    path = Path(spec)
    if path.suffix.lower() in {".yaml", ".yml", ".json"}:
        if not path.is_file():
            raise ConfigError(f"--classes {path}: file not found")
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise ConfigError(f"--classes {path}: unreadable ({err})") from err
        if not isinstance(data, dict) or not isinstance(data.get("names"), list):
            raise ConfigError(f"--classes {path}: expected a mapping with a 'names' list")
        return ClassSet.from_config(
            data["names"],
            open_set=open_set if open_set is not None else data.get("open_set"),
            good=good if good is not None else data.get("good"),
            aliases=data.get("aliases"),
        )
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if good is None:
        good = next((n for n in names if n.lower() == "good"), None)
    return ClassSet.from_config(names, open_set=open_set, good=good)


@dataclass
class LabelledFile:
    """A CSV's filenames and label codes, in file order."""

    path: Path
    filenames: list[str]
    codes: list[int]


def read_labelled(path: Path, classes: ClassSet, what: str) -> LabelledFile:
    """Filenames and codes of a challenge-format CSV; errors name the file and line."""
    frame = read_csv(path, required=["filename", "Label"], dtype=str, keep_default_na=False)
    filenames = [str(f).strip() for f in frame["filename"]]
    blank = [csv_row(i) for i, f in enumerate(filenames) if not f]
    if blank:
        raise DataError(f"{path}: empty filename on line(s) {blank[:MAX_LISTED]}")
    counts = pd.Series(filenames).value_counts()
    dupes = sorted(counts[counts > 1].index)
    if dupes:
        raise DataError(f"{path}: {len(dupes)} filename(s) appear more than once in the {what}: "
                        f"{_listing(dupes)}")
    codes = []
    for i, label in enumerate(frame["Label"]):
        where = f"{path}, line {csv_row(i)} ({filenames[i]})"
        if not str(label).strip():
            raise DataError(f"{where}: empty Label")
        codes.append(classes.code(label, where))
    return LabelledFile(path, filenames, codes)


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:MAX_LISTED])
    more = len(names) - MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


@dataclass
class Matched:
    filenames: list[str]
    preds: list[int]
    labels: list[int]
    missing: list[str]  # labelled, without a prediction
    unexpected: list[str]  # predicted, without a label


def match(preds: LabelledFile, labels: LabelledFile, allow_missing: bool) -> Matched:
    """Pair the two files by filename, in the labels' order; never drop a name silently."""
    predicted = dict(zip(preds.filenames, preds.codes, strict=True))
    labelled = set(labels.filenames)
    missing = [f for f in labels.filenames if f not in predicted]
    unexpected = [f for f in preds.filenames if f not in labelled]
    if (missing or unexpected) and not allow_missing:
        parts = []
        if missing:
            parts.append(f"{len(missing)} labelled file(s) of {labels.path} have no prediction "
                         f"in {preds.path}: {_listing(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} predicted file(s) of {preds.path} have no label in "
                         f"{labels.path}: {_listing(unexpected)}")
        raise DataError("; ".join(parts) + " (--allow-missing scores the common files)")
    names = [f for f in labels.filenames if f in predicted]
    if not names:
        raise DataError(f"no filename is in both {preds.path} and {labels.path}")
    true = dict(zip(labels.filenames, labels.codes, strict=True))
    return Matched(names, [predicted[f] for f in names], [true[f] for f in names], missing,
                   unexpected)


def to_scored_codes(codes: list[int], filenames: list[str], classes: ClassSet,
                    scored: ClassSet, path: Path, verb: str) -> list[int]:
    """Codes of ``classes`` as codes of ``scored`` (the same, or the trained classes only)."""
    if scored is classes:
        return codes
    position = {code: i for i, code in enumerate(classes.trained_codes)}
    outside = [f for f, c in zip(filenames, codes, strict=True) if c not in position]
    if outside:
        raise DataError(f"{path}: {len(outside)} file(s) {verb} {classes.open_set!r}, which the "
                        f"{len(scored)}x{len(scored)} cost matrix does not score: "
                        f"{_listing(outside)}")
    return [position[c] for c in codes]


def read_probabilities(path: Path, filenames: list[str], scored: ClassSet) -> torch.Tensor:
    """``(N, K)`` probabilities over the trained classes of ``scored``, rows in ``filenames``
    order."""
    frame = read_csv(path, required=["filename"], dtype={"filename": str})
    frame["filename"] = frame["filename"].astype(str).str.strip()
    trained = scored.trained_codes
    columns = []
    for code in trained:
        candidates = [scored.names[code], str(code)]
        found = [c for c in candidates if c in frame.columns]
        if not found:
            raise DataError(f"{path}: no probability column for class {scored.names[code]!r} "
                            f"(name or code {code}); found {list(frame.columns)}")
        columns.append(found[0])
    dupes = sorted(frame["filename"][frame["filename"].duplicated()].unique())
    if dupes:
        raise DataError(f"{path}: filename(s) appear more than once: {_listing(dupes)}")
    frame = frame.set_index("filename")
    missing = [f for f in filenames if f not in frame.index]
    if missing:
        raise DataError(f"{path}: {len(missing)} scored file(s) have no probabilities: "
                        f"{_listing(missing)}")
    values = frame.loc[filenames, columns].apply(pd.to_numeric, errors="coerce").to_numpy()
    bad = [filenames[i] for i in np.nonzero(~np.isfinite(values).all(axis=1)
                                            | (values < 0).any(axis=1))[0]]
    if bad:
        raise DataError(f"{path}: missing, negative or non-numeric probabilities for "
                        f"{_listing(bad)}")
    sums = values.sum(axis=1)
    off = [filenames[i] for i in np.nonzero(np.abs(sums - 1.0) > 1e-3)[0]]
    if off:
        raise DataError(f"{path}: probabilities do not sum to 1 for {_listing(off)} "
                        f"(columns {columns}); pass softmax outputs, not logits")
    return torch.from_numpy(values / sums[:, None])


def print_report(console: Console, report: ScoreReport, title: str) -> None:
    summary = Table(title=title, show_header=False, title_justify="left")
    summary.add_column("figure", style="bold")
    summary.add_column("value")
    for key, value in report.summary_rows():
        summary.add_row(key, value)
    console.print(summary)

    per_class = Table(title="Per class", title_justify="left")
    for i, head in enumerate(report.CLASS_HEADER):
        per_class.add_column(head, justify="left" if i == 1 else "right")
    for row in report.class_rows():
        per_class.add_row(*row)
    console.print(per_class)

    confusion = Table(title="Confusion matrix (rows: true, columns: predicted)",
                      title_justify="left")
    confusion.add_column("true \\ pred")
    for i in range(len(report.class_names)):
        confusion.add_column(str(i), justify="right")
    for i, (name, row) in enumerate(zip(report.class_names, report.confusion, strict=True)):
        confusion.add_row(f"{i} {name}", *(str(v) if v else "." for v in row))
    console.print(confusion)
    for warning in report.warnings:
        console.print(f"[bold yellow]warning:[/] {warning}", highlight=False)


def print_decisions(console: Console, reports: dict[str, ScoreReport]) -> None:
    table = Table(title="Decision rules on --probabilities", title_justify="left")
    for head in ("decision", "PWA", "floor", "lift", "cost ratio", "escapes", "false alarms",
                 "macro recall"):
        table.add_column(head, justify="left" if head == "decision" else "right")
    for rule, r in reports.items():
        table.add_row(rule, f"{r.pwa:.4f}", f"{r.floor.pwa:.4f}", f"{r.pwa_lift:+.4f}",
                      f"{r.cost_ratio:.3f}", str(r.escapes), str(r.false_alarms),
                      f"{r.macro_recall:.4f}")
    console.print(table)


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
    if matched.missing:
        report.warnings.append(f"{len(matched.missing)} labelled file(s) without a prediction, "
                               f"not scored: {_listing(matched.missing)}")
    if matched.unexpected:
        report.warnings.append(f"{len(matched.unexpected)} predicted file(s) without a label, "
                               f"not scored: {_listing(matched.unexpected)}")

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
        print_decisions(console, decisions)

    if args.out is not None:
        payload = {
            "predictions": str(args.predictions),
            "labels": str(args.labels),
            "probabilities": None if args.probabilities is None else str(args.probabilities),
            "cost_matrix": cost_name,
            "scores": report.to_dict(),
            "unscored": {"labelled_without_prediction": matched.missing,
                         "predicted_without_label": matched.unexpected},
            "decisions": {rule: r.to_dict() for rule, r in decisions.items()},
        }
        markdown = (f"# Evaluation\n\npredictions: `{args.predictions}`  \n"
                    f"labels: `{args.labels}`\n\n" + report.to_markdown(title="Scores"))
        if decisions:
            markdown += "\n" + decisions_markdown(decisions)
        write_atomic(args.out / "scores.json",
                     json.dumps(payload, indent=2, allow_nan=False) + "\n")
        write_atomic(args.out / "scores.md", markdown)
        report.save_confusion_png(args.out / "confusion.png")
        console.print(f"wrote {args.out / 'scores.json'}, {args.out / 'scores.md'}, "
                      f"{args.out / 'confusion.png'}", highlight=False)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 bad input or config, 2 bad arguments)."""
    args = build_parser().parse_args(None if argv is None else list(argv))
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    try:
        return run(args, console)
    except (VqcError, OSError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
