"""The readers of ``vqc-score`` as library functions: labels, predictions, probabilities,
class lists, and the pairing by filename."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.metrics.cases import NAMES
from vqc.classes import ClassSet
from vqc.errors import ConfigError, DataError
from vqc.metrics.files import (
    LabelledFile,
    listing,
    match,
    read_labelled,
    read_probabilities,
    resolve_classes,
    to_scored_codes,
)
from vqc.metrics.report import classes_for_matrix

CHALLENGE = ClassSet.challenge()


def labelled_csv(path: Path, files: list[str], labels: list[object]) -> Path:
    pd.DataFrame({"filename": files, "window": 2003, "lib": "Die01", "Label": labels}).to_csv(path)
    return path


def test_read_labelled_names_codes_and_aliases(tmp_path: Path) -> None:
    classes = ClassSet(CHALLENGE.names, open_set="Drift", good="GOOD", aliases={"ok": "GOOD"})
    path = labelled_csv(tmp_path / "l.csv", [" b.png", "a.png", "c.png"], ["Missing", 6, "ok"])
    read = read_labelled(path, classes)
    assert read == LabelledFile(path, ["b.png", "a.png", "c.png"], [4, 6, 0])


@pytest.mark.parametrize(
    ("files", "labels", "message"),
    [
        (["a.png", "a.png"], ["GOOD", "GOOD"], r"1 filename\(s\) appear more than once in the "
                                               r"labels: 'a.png'"),
        (["a.png", "b.png"], ["GOOD", "Bent"], r"l\.csv, line 3 \(b\.png\): unknown label 'Bent'"),
        (["a.png", "b.png"], ["GOOD", " "], r"l\.csv, line 3 \(b\.png\): empty Label"),
        (["a.png", " "], ["GOOD", "GOOD"], r"l\.csv: empty filename on line\(s\) \[3\]"),
    ],
    ids=["duplicate", "unknown_label", "empty_label", "empty_filename"],
)
def test_read_labelled_refuses(tmp_path: Path, files: list[str], labels: list[object],
                               message: str) -> None:
    with pytest.raises(DataError, match=message):
        read_labelled(labelled_csv(tmp_path / "l.csv", files, labels), CHALLENGE)


def test_match_in_label_order_and_never_silently() -> None:
    labels = LabelledFile(Path("l.csv"), ["a", "b", "c"], [0, 1, 2])
    preds = LabelledFile(Path("p.csv"), ["c", "x", "a"], [2, 5, 4])
    with pytest.raises(DataError, match=r"1 labelled file\(s\) of l\.csv have no prediction in "
                                        r"p\.csv: 'b'; 1 predicted file\(s\) of p\.csv have no "
                                        r"label in l\.csv: 'x'"):
        match(preds, labels)
    matched = match(preds, labels, allow_missing=True)
    assert (matched.filenames, matched.preds, matched.labels) == (["a", "c"], [4, 2], [0, 2])
    assert (matched.missing, matched.unexpected) == (["b"], ["x"])
    with pytest.raises(DataError, match="no filename is in both"):
        match(LabelledFile(Path("p.csv"), ["x"], [0]), labels, allow_missing=True)


def test_listing_says_how_many_more() -> None:
    names = [f"f{i}" for i in range(25)]
    assert listing(names).endswith("'f19' and 5 more") and listing(["a"]) == "'a'"


def test_to_scored_codes_without_the_open_set() -> None:
    six = classes_for_matrix(CHALLENGE, 6)
    assert to_scored_codes([0, 5, 3], ["a", "b", "c"], CHALLENGE, CHALLENGE, "l.csv") == [0, 5, 3]
    assert to_scored_codes([0, 5, 3], ["a", "b", "c"], CHALLENGE, six, "l.csv") == [0, 5, 3]
    with pytest.raises(DataError, match=r"l\.csv: 1 file\(s\) predicted 'Drift', which the 6x6 "
                                        r"cost matrix does not score: 'b'"):
        to_scored_codes([0, 6], ["a", "b"], CHALLENGE, six, "l.csv", "predicted")


def test_read_probabilities_by_name_or_code(tmp_path: Path) -> None:
    # columns named by class name, except code 3; rows in another order than asked
    columns = {NAMES[k] if k != 3 else "3": [0.5 if k == 0 else 0.1, 0.0 if k else 1.0]
               for k in range(6)}
    path = tmp_path / "p.csv"
    pd.DataFrame({"filename": ["b.png", "a.png"], **columns}).to_csv(path, index=False)
    probs = read_probabilities(path, ["a.png", "b.png"], CHALLENGE)
    assert probs.shape == (2, 6) and probs.dtype == torch.float64
    assert probs[0].tolist() == [1.0, 0, 0, 0, 0, 0]
    assert probs[1].tolist() == pytest.approx([0.5, 0.1, 0.1, 0.1, 0.1, 0.1])
    with pytest.raises(DataError, match=r"1 scored file\(s\) have no probabilities: 'c.png'"):
        read_probabilities(path, ["a.png", "c.png"], CHALLENGE)
    pd.DataFrame({"filename": ["a.png"], **{NAMES[k]: [3.0] for k in range(5)}}).to_csv(
        path, index=False)
    with pytest.raises(DataError, match="no probability column for class 'Short circuit MOS'"):
        read_probabilities(path, ["a.png"], CHALLENGE)
    pd.DataFrame({"filename": ["a.png"], **{NAMES[k]: [3.0] for k in range(6)}}).to_csv(
        path, index=False)
    with pytest.raises(DataError, match=r"do not sum to 1 for 'a\.png'"):
        read_probabilities(path, ["a.png"], CHALLENGE)


def test_resolve_classes(tmp_path: Path) -> None:
    assert resolve_classes(None) == CHALLENGE
    assert resolve_classes(None, good="Missing").good == "Missing"
    plain = resolve_classes("Good, crack ,dent")
    assert plain.names == ("Good", "crack", "dent") and plain.good == "Good"
    spec = tmp_path / "classes.yaml"
    spec.write_text("names: [ok, scratch, unknown]\ngood: ok\nopen_set: unknown\n"
                    "aliases: {fine: ok}\n")
    from_file = resolve_classes(spec)
    assert (from_file.good, from_file.open_set, from_file.code("fine")) == ("ok", "unknown", 0)
    assert resolve_classes(spec, open_set=None, good="scratch").good == "scratch"
    with pytest.raises(ConfigError, match=r"classes file \S*none\.yaml: file not found"):
        resolve_classes(tmp_path / "none.yaml")
    spec.write_text("[ok, scratch]\n")
    with pytest.raises(ConfigError, match="expected a mapping with a 'names' list"):
        resolve_classes(spec)
