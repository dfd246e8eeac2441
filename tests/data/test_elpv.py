"""ELPV's table as a CSV vqc reads: levels as classes, a stratified test split, the drift case."""

import pandas as pd
import pytest

from vqc.data.elpv import DRIFT, read_labels, split_cells, write_elpv
from vqc.errors import DataError


def _labels(tmp_path, rows):
    path = tmp_path / "labels.csv"
    path.write_text("\n".join(f"images/cell{i:04d}.png  {p}  {t}"
                              for i, (p, t) in enumerate(rows)) + "\n")
    return path


def _cells(tmp_path):
    rows = [(0.0, "mono")] * 8 + [(0.0, "poly")] * 8 + [(1.0, "mono")] * 4 \
        + [(0.3333333333333333, "poly")] * 4 + [(0.6666666666666666, "mono")] * 4
    return read_labels(_labels(tmp_path, rows))


def test_levels_become_classes_and_paths_absolute(tmp_path):
    cells = _cells(tmp_path)
    assert cells["label"].value_counts().to_dict() == {
        "functional": 16, "defect_3of3": 4, "defect_1of3": 4, "defect_2of3": 4}
    assert all(p.startswith(str(tmp_path)) for p in cells["image"])


def test_the_test_split_is_a_quarter_of_each_level_and_type(tmp_path):
    frame = split_cells(_cells(tmp_path), 0.25, seed=3)
    test = frame[frame["split"] == "test"]
    assert test.groupby(["label", "type"]).size().to_dict() == {
        ("defect_1of3", "poly"): 1, ("defect_2of3", "mono"): 1, ("defect_3of3", "mono"): 1,
        ("functional", "mono"): 2, ("functional", "poly"): 2}


def test_the_drift_case_trains_on_one_type_and_tests_the_other_as_drift(tmp_path):
    frame = split_cells(_cells(tmp_path), 0.25, seed=3, train_type="mono")
    train, test = frame[frame["split"] == "train"], frame[frame["split"] == "test"]
    assert set(train["type"]) == {"mono"}
    assert set(test.loc[test["type"] == "poly", "label"]) == {DRIFT}
    assert (test["label"] == DRIFT).sum() == 3  # a quarter of the 8 + 4 poly cells
    assert DRIFT not in set(train["label"])


def test_a_probability_off_the_four_levels_is_refused_with_its_row(tmp_path):
    path = _labels(tmp_path, [(0.0, "mono"), (0.5, "mono")])
    with pytest.raises(DataError, match=r"row 2: probability 0\.5"):
        read_labels(path)
    with pytest.raises(DataError, match="cell types"):
        read_labels(_labels(tmp_path, [(0.0, "thin")]))


def test_the_csv_is_written_for_data_csv(tmp_path):
    labels = _labels(tmp_path, [(0.0, "mono")] * 4 + [(1.0, "poly")] * 4)
    path = write_elpv(tmp_path / "out", labels=labels)
    table = pd.read_csv(path)
    assert list(table.columns) == ["image", "label", "split", "type"]
    assert (table["split"] == "test").sum() == 2
