"""Cost matrices for Penalty Weighted Accuracy: the challenge's two, loading and validation.

Rows are the true class, columns the predicted class, both in code order. ``C[i, j]`` is what
predicting ``j`` costs when the truth is ``i``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from vqc.errors import ConfigError, DataError
from vqc.io import read_csv

_GOOD_TO_DEFECT = 100.0
_DEFECT_TO_GOOD = 10_000.0
_DEFECT_TO_DEFECT = 1.0
_DRIFT_TO_KNOWN = 1_000.0
_OPEN_SET_TO_GOOD = 10_000.0


def _challenge_matrix(good_to_drift: float, defect_to_drift: float) -> list[list[float]]:
    good = [0.0] + [_GOOD_TO_DEFECT] * 5 + [good_to_drift]
    defects = [
        [_DEFECT_TO_GOOD]
        + [0.0 if j == i else _DEFECT_TO_DEFECT for j in range(1, 6)]
        + [defect_to_drift]
        for i in range(1, 6)
    ]
    drift = [_OPEN_SET_TO_GOOD] + [_DRIFT_TO_KNOWN] * 5 + [0.0]
    return [good, *defects, drift]


#: The challenge notebook's matrix (codes 0..6: GOOD, five defects, Drift). The default.
OFFICIAL_COST_MATRIX: tuple[tuple[float, ...], ...] = tuple(
    tuple(row) for row in _challenge_matrix(good_to_drift=10_000.0, defect_to_drift=1_000.0)
)
#: The variant shown on the challenge page: GOOD->Drift costs 100 and defect->Drift costs 1.
PAGE_COST_MATRIX: tuple[tuple[float, ...], ...] = tuple(
    tuple(row) for row in _challenge_matrix(good_to_drift=100.0, defect_to_drift=1.0)
)

NAMED_MATRICES: dict[str, tuple[tuple[float, ...], ...]] = {
    "official": OFFICIAL_COST_MATRIX,
    "page": PAGE_COST_MATRIX,
}

CostSpec = str | os.PathLike[str] | Sequence[Sequence[float]] | Tensor | np.ndarray | None


def official_cost_matrix() -> Tensor:
    """The notebook's 7x7 matrix as a float64 tensor."""
    return torch.tensor(OFFICIAL_COST_MATRIX, dtype=torch.float64)


def page_cost_matrix() -> Tensor:
    """The challenge page's 7x7 variant as a float64 tensor."""
    return torch.tensor(PAGE_COST_MATRIX, dtype=torch.float64)


def validate_cost_matrix(
    matrix: Any, num_classes: int | None = None, name: str = "cost matrix"
) -> Tensor:
    """Return ``matrix`` as a float64 tensor, or raise ``ConfigError`` saying what is wrong.

    A cost matrix must be square (at least 2x2), finite and non-negative, cost nothing on its
    diagonal (a right answer is free) and cost something somewhere (else PWA divides by zero).
    """
    try:
        if isinstance(matrix, Tensor):
            tensor = matrix.detach().to(device="cpu", dtype=torch.float64)
        else:
            tensor = torch.tensor(np.array(_plain(matrix), dtype=np.float64))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{name}: not a matrix of numbers ({err})") from err
    if tensor.ndim != 2 or tensor.shape[0] != tensor.shape[1]:
        raise ConfigError(f"{name}: must be a square matrix, got shape {tuple(tensor.shape)}")
    size = tensor.shape[0]
    if size < 2:
        raise ConfigError(f"{name}: needs at least 2 classes, got {size}x{size}")
    if num_classes is not None and size != num_classes:
        raise ConfigError(f"{name}: is {size}x{size} but there are {num_classes} classes")
    if not torch.isfinite(tensor).all():
        bad = [tuple(int(v) for v in ij) for ij in (~torch.isfinite(tensor)).nonzero()]
        raise ConfigError(f"{name}: non-finite values at (row, column) {bad}")
    if (tensor < 0).any():
        bad = [tuple(int(v) for v in ij) for ij in (tensor < 0).nonzero()]
        raise ConfigError(f"{name}: negative costs at (row, column) {bad}")
    diagonal = tensor.diagonal()
    if (diagonal != 0).any():
        bad = [int(i) for i in (diagonal != 0).nonzero().flatten()]
        raise ConfigError(f"{name}: the diagonal must be 0 (a right answer costs nothing); "
                          f"non-zero at rows {bad}")
    if tensor.max() <= 0:
        raise ConfigError(f"{name}: all costs are 0, so PWA is undefined")
    return tensor.clone()


def _plain(matrix: Any) -> Any:
    """Nested plain lists from any nested sequence (e.g. an OmegaConf ``ListConfig``)."""
    if isinstance(matrix, np.ndarray | str | bytes):
        return matrix
    try:
        return [list(row) for row in matrix]
    except TypeError:
        return matrix


def sub_matrix(matrix: Tensor, codes: Sequence[int]) -> Tensor:
    """Rows and columns ``codes`` of ``matrix``, in that order (e.g. the 6x6 part without Drift).

    The maximum cost of the result may be lower than the full matrix's; PWA on the sub-matrix
    normalises by the sub-matrix's own maximum.
    """
    matrix = validate_cost_matrix(matrix)
    index = [int(c) for c in codes]
    size = matrix.shape[0]
    bad = [c for c in index if not 0 <= c < size]
    if bad:
        raise ConfigError(f"sub_matrix: codes {bad} out of range 0..{size - 1}")
    if len(set(index)) != len(index):
        raise ConfigError(f"sub_matrix: repeated codes in {index}")
    idx = torch.tensor(index, dtype=torch.long)
    return validate_cost_matrix(matrix[idx][:, idx], name=f"cost sub-matrix {index}")


def load_cost_matrix(spec: CostSpec = None, num_classes: int | None = None) -> Tensor:
    """A cost matrix from config.

    ``spec`` is ``None`` or ``"official"`` (the default), ``"page"``, a path to a ``.csv`` or
    ``.npy`` file, or the matrix itself (nested lists, array or tensor). A CSV holds the numbers
    only, or with a header row and/or a first column of class names, which are ignored.
    """
    if spec is None:
        spec = "official"
    if isinstance(spec, str) and spec.strip().lower() in NAMED_MATRICES:
        matrix = torch.tensor(NAMED_MATRICES[spec.strip().lower()], dtype=torch.float64)
        return validate_cost_matrix(matrix, num_classes, name=f"cost matrix {spec!r}")
    if isinstance(spec, str | os.PathLike):
        path = Path(spec)
        if path.suffix.lower() not in {".csv", ".npy"}:
            names = ", ".join(repr(n) for n in NAMED_MATRICES)
            raise ConfigError(f"cost matrix {str(spec)!r}: expected {names}, "
                              "or a path to a .csv or .npy file")
        matrix = _read_npy(path) if path.suffix.lower() == ".npy" else _read_matrix_csv(path)
        return validate_cost_matrix(matrix, num_classes, name=f"cost matrix {path}")
    return validate_cost_matrix(spec, num_classes)


def _read_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: cost matrix file not found")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable .npy array ({err})") from err


def _is_number(cell: object) -> bool:
    try:
        float(str(cell))
    except ValueError:
        return False
    return True


def _read_matrix_csv(path: Path) -> np.ndarray:
    frame = read_csv(path, header=None, dtype=str)
    frame = frame.apply(lambda col: col.str.strip())
    numeric = frame.apply(pd.to_numeric, errors="coerce")
    # A name is a cell that is not a number at all; "nan" or "inf" are numbers (refused later,
    # with their position, by validate_cost_matrix).
    names = frame.map(lambda cell: not _is_number(cell))
    if len(frame) and names.iloc[0].any():  # a header row of names
        frame, numeric, names = frame.iloc[1:], numeric.iloc[1:], names.iloc[1:]
    if frame.shape[1] and names.iloc[:, 0].all():  # a first column of names
        frame, numeric, names = frame.iloc[:, 1:], numeric.iloc[:, 1:], names.iloc[:, 1:]
    if names.to_numpy().any():
        rows, cols = np.nonzero(names.to_numpy())
        cells = [f"row {r + 1}, column {c + 1}" for r, c in zip(rows[:5], cols[:5], strict=True)]
        raise DataError(f"{path}: cost matrix has empty or non-numeric cells ({'; '.join(cells)})")
    return numeric.to_numpy(dtype=np.float64)


def challenge_shaped_matrix(num_classes: int, good_code: int | None = 0,
                            open_set_code: int | None = None,
                            variant: str = "official") -> Tensor:
    """A matrix with the challenge's costs for any number of defect classes.

    GOOD predicted as a defect costs 100, a defect predicted GOOD 10,000, one defect for another
    1; the open-set class (if any) costs as in the ``variant`` ("official" or "page"). Used for
    data sets other than the challenge's, e.g. one good class, five defects and a drift class.
    """
    if variant not in NAMED_MATRICES:
        raise ConfigError(f"cost matrix variant {variant!r}: expected one of "
                          f"{list(NAMED_MATRICES)}")
    if good_code is None:
        raise ConfigError("a challenge-shaped cost matrix needs a good class (data.classes.good)")
    good_to_open = 10_000.0 if variant == "official" else 100.0
    defect_to_open = 1_000.0 if variant == "official" else 1.0
    matrix = torch.full((num_classes, num_classes), _DEFECT_TO_DEFECT, dtype=torch.float64)
    matrix[good_code, :] = _GOOD_TO_DEFECT
    matrix[:, good_code] = _DEFECT_TO_GOOD
    if open_set_code is not None:
        matrix[:, open_set_code] = defect_to_open
        matrix[open_set_code, :] = _DRIFT_TO_KNOWN
        matrix[open_set_code, good_code] = _OPEN_SET_TO_GOOD
        matrix[good_code, open_set_code] = good_to_open
    matrix.fill_diagonal_(0.0)
    return validate_cost_matrix(matrix, num_classes, name=f"{variant}-shaped cost matrix")
