"""Cost matrices: the challenge's two, loading from config or files, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vqc.errors import ConfigError, DataError
from vqc.metrics.cost import (
    load_cost_matrix,
    official_cost_matrix,
    page_cost_matrix,
    sub_matrix,
    validate_cost_matrix,
)


def test_official_matrix_cells() -> None:
    c = official_cost_matrix()
    assert c.shape == (7, 7)
    assert c[0].tolist() == [0, 100, 100, 100, 100, 100, 10000]
    assert c[3].tolist() == [10000, 1, 1, 0, 1, 1, 1000]
    assert c[6].tolist() == [10000, 1000, 1000, 1000, 1000, 1000, 0]
    assert c.max() == 10000


def test_page_variant_differs_in_two_cells_only() -> None:
    official, page = official_cost_matrix(), page_cost_matrix()
    diff = (official != page).nonzero().tolist()
    # GOOD -> Drift (row 0) and defect -> Drift (rows 1..5), all in the Drift column
    assert diff == [[r, 6] for r in range(6)]
    assert page[0, 6] == 100
    assert page[1:6, 6].tolist() == [1, 1, 1, 1, 1]


def test_sub_matrix_drops_drift() -> None:
    six = sub_matrix(official_cost_matrix(), range(6))
    assert six.shape == (6, 6)
    assert torch.equal(six, sub_matrix(page_cost_matrix(), range(6)))
    assert six[1, 0] == 10000 and six[0, 5] == 100
    reordered = sub_matrix(official_cost_matrix(), [6, 0])
    assert reordered.tolist() == [[0, 10000], [10000, 0]]


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        ([[0, 1, 2], [1, 0, 2]], "square"),
        ([[0, 1], [-1, 0]], "negative"),
        ([[0, float("nan")], [1, 0]], "non-finite"),
        ([[1, 1], [1, 0]], "diagonal"),
        ([[0, 0], [0, 0]], "all costs are 0"),
        ([[0]], "at least 2"),
        ([[0, 1], [1]], "not a matrix"),
        ("cheap", "expected 'official', 'page'"),
    ],
)
def test_invalid_matrices_are_refused(matrix: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_cost_matrix(matrix)  # type: ignore[arg-type]


def test_size_must_match_classes() -> None:
    with pytest.raises(ConfigError, match="7x7 but there are 6 classes"):
        validate_cost_matrix(official_cost_matrix(), num_classes=6)


def test_named_and_default() -> None:
    assert torch.equal(load_cost_matrix(), official_cost_matrix())
    assert torch.equal(load_cost_matrix("Page"), page_cost_matrix())
    nested = [[0, 2], [3, 0]]  # a list from config
    assert load_cost_matrix(nested).tolist() == [[0.0, 2.0], [3.0, 0.0]]


def test_files(tmp_path) -> None:
    plain = tmp_path / "plain.csv"
    plain.write_text("0,1\n5,0\n")
    assert load_cost_matrix(plain).tolist() == [[0, 1], [5, 0]]
    named = tmp_path / "named.csv"
    named.write_text("true,GOOD,Scratch\nGOOD,0,100\nScratch,10000,0\n")
    assert load_cost_matrix(str(named)).tolist() == [[0, 100], [10000, 0]]
    npy = tmp_path / "m.npy"
    np.save(npy, np.array([[0.0, 3.0], [4.0, 0.0]]))
    assert load_cost_matrix(npy).tolist() == [[0, 3], [4, 0]]

    bad = tmp_path / "bad.csv"
    bad.write_text("0,1\nx,0\n")
    with pytest.raises(DataError, match=r"bad\.csv.*non-numeric"):
        load_cost_matrix(bad)
    with pytest.raises(DataError, match="not found"):
        load_cost_matrix(tmp_path / "none.csv")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("0,1\n1,1\n")
    with pytest.raises(ConfigError, match=r"wrong\.csv.*diagonal"):
        load_cost_matrix(wrong)
