"""Reading challenge-format predictions, labels and probabilities, and pairing them by filename.

What ``vqc-score`` scores, as library functions (a notebook scores files the same way):

    classes = resolve_classes(None, None, None)          # the challenge's
    matched = match(read_labelled(preds_csv, classes, "predictions"),
                    read_labelled(labels_csv, classes, "labels"), allow_missing=False)
    report = score_predictions(torch.tensor(matched.preds), torch.tensor(matched.labels))

Every error names the file (and the line, or the filenames involved): a name is never dropped
silently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vqc.classes import ClassSet
from vqc.errors import ConfigError, DataError
from vqc.io import csv_row, read_csv

#: How many filenames an error message lists before "and N more".
MAX_LISTED = 20


def listing(names: Sequence[str]) -> str:
    """The first ``MAX_LISTED`` names, quoted, and how many more there are."""
    shown = ", ".join(repr(n) for n in names[:MAX_LISTED])
    more = len(names) - MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def resolve_classes(spec: str | Path | None, good: str | None = None,
                    open_set: str | None = None) -> ClassSet:
    """The class list: the challenge's (``spec=None``), comma-separated names, or a
    ``.yaml``/``.json`` file with ``names`` and optionally ``good``, ``open_set``, ``aliases``.

    ``good`` and ``open_set`` override the file's; with plain names a class called ``good`` (any
    case) is the defect-free one.
    """
    if spec is None:
        base = ClassSet.challenge()
        if good is None and open_set is None:
            return base
        return ClassSet(base.names, open_set=open_set or base.open_set, good=good or base.good,
                        aliases=base.aliases)
    path = Path(spec)
    if path.suffix.lower() in {".yaml", ".yml", ".json"}:
        if not path.is_file():
            raise ConfigError(f"classes file {path}: file not found")
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise ConfigError(f"classes file {path}: unreadable ({err})") from err
        if not isinstance(data, dict) or not isinstance(data.get("names"), list):
            raise ConfigError(f"classes file {path}: expected a mapping with a 'names' list")
        return ClassSet.from_config(
            data["names"],
            open_set=open_set if open_set is not None else data.get("open_set"),
            good=good if good is not None else data.get("good"),
            aliases=data.get("aliases"),
        )
    names = [n.strip() for n in str(spec).split(",") if n.strip()]
    if good is None:
        good = next((n for n in names if n.lower() == "good"), None)
    return ClassSet.from_config(names, open_set=open_set, good=good)


@dataclass
class LabelledFile:
    """A CSV's filenames and label codes, in file order."""

    path: Path
    filenames: list[str]
    codes: list[int]
    notes: list[str] = field(default_factory=list)  # labels read as another spelling


def read_labelled(path: str | Path, classes: ClassSet, what: str = "labels") -> LabelledFile:
    """Filenames and codes of a CSV with ``filename`` and ``Label`` (names, aliases or codes).

    Refuses empty or repeated filenames and unknown labels, naming the file and line; ``what``
    ("labels", "predictions") says which file a repeated filename is in.
    """
    path = Path(path)
    frame = read_csv(path, required=["filename", "Label"], dtype=str, keep_default_na=False)
    filenames = [str(f).strip() for f in frame["filename"]]
    blank = [csv_row(i) for i, f in enumerate(filenames) if not f]
    if blank:
        raise DataError(f"{path}: empty filename on line(s) {blank[:MAX_LISTED]}")
    counts = pd.Series(filenames).value_counts()
    dupes = sorted(counts[counts > 1].index)
    if dupes:
        raise DataError(f"{path}: {len(dupes)} filename(s) appear more than once in the {what}: "
                        f"{listing(dupes)}")
    codes = []
    spellings: Counter[tuple[str, str]] = Counter()
    for i, label in enumerate(frame["Label"]):
        where = f"{path}, line {csv_row(i)} ({filenames[i]})"
        if not str(label).strip():
            raise DataError(f"{where}: empty Label")
        try:
            codes.append(classes.code(label, where))
        except DataError:
            code = classes.code_by_spelling(label)  # as training merges labels
            if code is None:
                raise
            codes.append(code)
            spellings[(str(label), classes.names[code])] += 1
    notes = [f"{path}: labels read as their class (case, spaces, '_' and '-' ignored): "
             + "; ".join(f"{a!r} -> {b!r} ({n} row(s))" for (a, b), n in sorted(spellings.items()))
             ] if spellings else []
    return LabelledFile(path, filenames, codes, notes)


@dataclass
class Matched:
    """Predictions and labels of the filenames in both files, in the labels' order."""

    filenames: list[str]
    preds: list[int]
    labels: list[int]
    missing: list[str]  # labelled, without a prediction
    unexpected: list[str]  # predicted, without a label


def match(preds: LabelledFile, labels: LabelledFile, allow_missing: bool = False) -> Matched:
    """Pair the two files by filename, in the labels' order; never drop a name silently.

    A filename in one file only is an error, unless ``allow_missing``: then the common ones are
    paired and the others listed in ``missing`` and ``unexpected``.
    """
    predicted = dict(zip(preds.filenames, preds.codes, strict=True))
    labelled = set(labels.filenames)
    missing = [f for f in labels.filenames if f not in predicted]
    unexpected = [f for f in preds.filenames if f not in labelled]
    if (missing or unexpected) and not allow_missing:
        parts = []
        if missing:
            parts.append(f"{len(missing)} labelled file(s) of {labels.path} have no prediction "
                         f"in {preds.path}: {listing(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} predicted file(s) of {preds.path} have no label in "
                         f"{labels.path}: {listing(unexpected)}")
        raise DataError("; ".join(parts) + " (allow_missing, --allow-missing in vqc-score, "
                        "scores the common files)")
    names = [f for f in labels.filenames if f in predicted]
    if not names:
        raise DataError(f"no filename is in both {preds.path} and {labels.path}")
    true = dict(zip(labels.filenames, labels.codes, strict=True))
    return Matched(names, [predicted[f] for f in names], [true[f] for f in names], missing,
                   unexpected)


def to_scored_codes(codes: list[int], filenames: list[str], classes: ClassSet,
                    scored: ClassSet, path: str | Path, verb: str = "labelled") -> list[int]:
    """Codes of ``classes`` as codes of ``scored`` (the same, or the trained classes only).

    An open-set code that ``scored`` cannot hold is an error naming the files ``verb`` (e.g.
    "labelled", "predicted") with it in ``path``.
    """
    if scored is classes:
        return codes
    position = {code: i for i, code in enumerate(classes.trained_codes)}
    outside = [f for f, c in zip(filenames, codes, strict=True) if c not in position]
    if outside:
        raise DataError(f"{path}: {len(outside)} file(s) {verb} {classes.open_set!r}, which the "
                        f"{len(scored)}x{len(scored)} cost matrix does not score: "
                        f"{listing(outside)}")
    return [position[c] for c in codes]


def _probability_columns(frame: pd.DataFrame, scored: ClassSet, path: Path) -> list[str]:
    """The column of each trained class, named by class name or by code."""
    columns = []
    for code in scored.trained_codes:
        found = [c for c in (scored.names[code], str(code)) if c in frame.columns]
        if not found:
            raise DataError(f"{path}: no probability column for class {scored.names[code]!r} "
                            f"(name or code {code}); found {list(frame.columns)}")
        columns.append(found[0])
    return columns


def read_probabilities(path: str | Path, filenames: list[str],
                       scored: ClassSet) -> torch.Tensor:
    """``(N, K)`` probabilities over the trained classes of ``scored``, rows in ``filenames``
    order; refuses missing rows, negative or non-numeric values and rows not summing to 1."""
    path = Path(path)
    frame = read_csv(path, required=["filename"], dtype={"filename": str})
    frame["filename"] = frame["filename"].astype(str).str.strip()
    columns = _probability_columns(frame, scored, path)
    dupes = sorted(frame["filename"][frame["filename"].duplicated()].unique())
    if dupes:
        raise DataError(f"{path}: filename(s) appear more than once: {listing(dupes)}")
    frame = frame.set_index("filename")
    missing = [f for f in filenames if f not in frame.index]
    if missing:
        raise DataError(f"{path}: {len(missing)} scored file(s) have no probabilities: "
                        f"{listing(missing)}")
    values = frame.loc[filenames, columns].apply(pd.to_numeric, errors="coerce").to_numpy()
    bad = [filenames[i] for i in np.nonzero(~np.isfinite(values).all(axis=1)
                                            | (values < 0).any(axis=1))[0]]
    if bad:
        raise DataError(f"{path}: missing, negative or non-numeric probabilities for "
                        f"{listing(bad)}")
    sums = values.sum(axis=1)
    off = [filenames[i] for i in np.nonzero(np.abs(sums - 1.0) > 1e-3)[0]]
    if off:
        raise DataError(f"{path}: probabilities do not sum to 1 for {listing(off)} "
                        f"(columns {columns}); pass softmax outputs, not logits")
    return torch.from_numpy(values / sums[:, None])


__all__ = [
    "MAX_LISTED",
    "LabelledFile",
    "Matched",
    "listing",
    "match",
    "read_labelled",
    "read_probabilities",
    "resolve_classes",
    "to_scored_codes",
]
