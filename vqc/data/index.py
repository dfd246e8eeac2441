"""Assemble a data set's train and test tables from its source (see ``vqc.data.layouts``).

This is where labels become codes, the open-set label is kept out of training, files are
checked to exist and libs to be known, and the class list can be inferred from the data.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from vqc.classes import ClassSet
from vqc.data.labels import harmonise_labels
from vqc.data.layouts import DataSource
from vqc.errors import ConfigError, DataError

log = logging.getLogger(__name__)

OnBad = Literal["error", "skip"]


@dataclass
class DataIndex:
    """A data set's tables with integer codes in column ``code`` (-1 where unlabelled)."""

    classes: ClassSet
    train: pd.DataFrame
    test: pd.DataFrame | None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: What a user should read about the data (labels merged, files left out), for the summary.
    warnings: list[str] = field(default_factory=list)

    def counts(self, frame: pd.DataFrame | None) -> list[int]:
        if frame is None:
            return [0] * len(self.classes)
        codes = frame["code"].to_numpy()
        return np.bincount(codes[codes >= 0], minlength=len(self.classes)).tolist()


def infer_classes(labels: Sequence[str], good: str | None, open_set: str | None) -> ClassSet:
    """Classes found in the data: ``good`` first, the open-set label last, others sorted."""
    found = sorted({str(x) for x in labels if x is not None})
    good = good if good in found else None
    open_set = open_set if open_set in found else None
    middle = [n for n in found if n not in (good, open_set)]
    names = ([good] if good else []) + middle + ([open_set] if open_set else [])
    return ClassSet(tuple(names), open_set=open_set, good=good)


def _encode(frame: pd.DataFrame, classes: ClassSet) -> pd.DataFrame:
    frame = frame.copy()
    frame["code"] = [-1 if label is None else classes.code(label, where)
                     for label, where in zip(frame["label"], frame["where"], strict=True)]
    return frame


def _drop_missing_files(frame: pd.DataFrame, on_bad: OnBad,
                        skipped: list[tuple[str, str]]) -> pd.DataFrame:
    exists = np.array([Path(p).is_file() for p in frame["path"]], dtype=bool)
    if exists.all():
        return frame
    missing = frame[~exists]
    if on_bad == "error":
        shown = "; ".join(f"{p} ({w})" for p, w in
                          zip(missing["path"].head(5), missing["where"].head(5), strict=True))
        raise DataError(f"{len(missing)} image file(s) not found: {shown}"
                        + (" ..." if len(missing) > 5 else ""))
    skipped.extend((p, "file not found") for p in missing["path"])
    return frame[exists].reset_index(drop=True)


def build_index(source: DataSource, classes: ClassSet | None,
                known_libs: Sequence[str] = (), on_bad_image: OnBad = "error",
                good: str | None = None, open_set: str | None = None) -> DataIndex:
    """Read, check and encode a data set.

    ``classes=None`` infers the class list from the labels (see ``infer_classes``).
    ``known_libs`` non-empty means every row's lib must be one of them (the rotate/crop table).
    """
    if on_bad_image not in ("error", "skip"):
        raise ConfigError(f"data.on_bad_image={on_bad_image!r}: expected 'error' or 'skip'")
    train, test = source.tables()
    name = source.name
    if len(train) == 0:
        raise DataError(f"{name}: the training set is empty (no training rows or images)")
    preferred = [*(classes.names if classes is not None else ()), good, open_set]
    (train, test), merged = harmonise_labels([train, test], preferred)
    if classes is None:
        labels = list(train["label"]) + ([] if test is None else list(test["label"]))
        classes = infer_classes(labels, good, open_set)
    skipped: list[tuple[str, str]] = []
    frames = []
    for frame in (train, test):
        if frame is None:
            frames.append(None)
            continue
        if known_libs:
            unknown = frame[~frame["lib"].isin(list(known_libs))]
            if len(unknown):
                raise DataError(f"{unknown['where'].iloc[0]}: unknown lib "
                                f"{unknown['lib'].iloc[0]!r}; the rotate/crop table knows "
                                f"{sorted(known_libs)} ({len(unknown)} such row(s))")
        frame = _drop_missing_files(_encode(frame, classes), on_bad_image, skipped)
        frames.append(frame)
    train, test = frames
    train = _without_open_set(train, classes)
    _check_training_classes(train, classes, name)
    for path, reason in skipped:
        log.warning("skipped %s: %s", path, reason)
    notes = list(getattr(source, "notes", []) or []) + ([merged] if merged else [])
    return DataIndex(classes=classes, train=train, test=test, skipped=skipped, warnings=notes)


def _without_open_set(train: pd.DataFrame, classes: ClassSet) -> pd.DataFrame:
    code = classes.open_set_code
    if code is None:
        return train
    dropped = int((train["code"] == code).sum())
    if dropped:
        log.warning("%d training image(s) labelled %r (the open-set label) are not trained on",
                    dropped, classes.open_set)
    return train[train["code"] != code].reset_index(drop=True)


def _check_training_classes(train: pd.DataFrame, classes: ClassSet, name: str) -> None:
    if len(train) == 0:
        raise DataError(f"{name}: the training set is empty (every training row was left "
                        "out: open-set label or skipped image)")
    counts = np.bincount(train["code"].to_numpy(), minlength=len(classes))
    empty = [classes.names[c] for c in classes.trained_codes if counts[c] == 0]
    if empty:
        raise DataError(f"{name}: class(es) {empty} have no training images; remove them from "
                        "data.classes.names or add images")
