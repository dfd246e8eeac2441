"""The ELPV solar cells as a CSV vqc reads: ``python -m vqc.data.elpv --out DIR``.

ELPV (``pip install elpv-dataset``; data CC BY-NC-SA 4.0, so it is installed by the user and
never shipped) holds 2,624 electroluminescence images of solar cells, 300x300 gray, each
labelled with a defect probability of 0, 1/3, 2/3 or 1 and its type, mono- or polycrystalline.
This writes ``DIR/labels.csv`` (``image,label,split,type``, image paths absolute, nothing
copied): ``functional`` (probability 0, the GOOD class) and three defect classes, one per
level, with a test split of ``--test-share`` stratified by level and type. Then::

    python train.py data=csv data.root=DIR data.classes.good=functional

``--train-type mono``: the drift case. Only monocrystalline cells are trained on; the test
split keeps its monocrystalline cells and labels its polycrystalline ones ``drift``, the new
variant the inspection must flag.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from vqc.errors import DataError
from vqc.io import write_csv_atomic

#: Class of each defect probability.
LEVELS = {0.0: "functional", 1 / 3: "defect_1of3", 2 / 3: "defect_2of3", 1.0: "defect_3of3"}
GOOD = "functional"
DRIFT = "drift"
TYPES = ("mono", "poly")


def package_labels() -> Path:
    """``labels.csv`` of the installed ``elpv-dataset`` package."""
    try:
        import elpv_dataset
    except ImportError as err:
        raise DataError("ELPV is not installed: pip install elpv-dataset (its data is "
                        "CC BY-NC-SA 4.0: for non-commercial use)") from err
    return Path(elpv_dataset.__file__).parent / "data" / "labels.csv"


def read_labels(path: Path) -> pd.DataFrame:
    """``image`` (absolute), ``label`` and ``type`` of each cell in ELPV's whitespace table."""
    raw = pd.read_csv(path, sep=r"\s+", header=None, names=["image", "probability", "type"])
    if raw.empty:
        raise DataError(f"{path}: no cells")
    levels = np.array(sorted(LEVELS))
    nearest = np.abs(raw["probability"].to_numpy()[:, None] - levels[None, :]).argmin(1)
    off = np.abs(raw["probability"] - levels[nearest]) > 1e-3
    if off.any():
        row = int(np.flatnonzero(off)[0])
        value = float(raw["probability"][row])
        raise DataError(f"{path} row {row + 1}: probability {value:g} is not 0, 1/3, 2/3 or 1")
    unknown = sorted(set(raw["type"]) - set(TYPES))
    if unknown:
        raise DataError(f"{path}: cell types {unknown} are not {list(TYPES)}")
    return pd.DataFrame({"image": [str((path.parent / p).resolve()) for p in raw["image"]],
                         "label": [LEVELS[levels[i]] for i in nearest],
                         "type": raw["type"]})


def split_cells(cells: pd.DataFrame, test_share: float = 0.25, seed: int = 0,
                train_type: str | None = None) -> pd.DataFrame:
    """A ``split`` column: ``test_share`` of each (label, type) stratum for test, at random
    (ELPV publishes no module ids, so cells of one module may land on both sides). With
    ``train_type``, cells of the other type leave training; in test they are ``drift``."""
    if not 0 < test_share < 1:
        raise DataError(f"--test-share={test_share}: must be between 0 and 1")
    rng = np.random.default_rng(seed)
    frame = cells.copy()
    frame["split"] = "train"
    for _, rows in frame.groupby(["label", "type"]):
        count = round(len(rows) * test_share)
        frame.loc[rng.permutation(rows.index.to_numpy())[:count], "split"] = "test"
    if train_type is None:
        return frame
    if train_type not in TYPES:
        raise DataError(f"--train-type={train_type!r}: one of {list(TYPES)}")
    other = frame["type"] != train_type
    frame = frame[~(other & (frame["split"] == "train"))].copy()
    frame.loc[other, "label"] = DRIFT
    return frame.reset_index(drop=True)


def write_elpv(out: Path, test_share: float = 0.25, seed: int = 0,
               train_type: str | None = None, labels: Path | None = None) -> Path:
    """Write ``out/labels.csv``; returns its path."""
    cells = split_cells(read_labels(labels or package_labels()), test_share, seed, train_type)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "labels.csv"
    write_csv_atomic(cells[["image", "label", "split", "type"]], path, index=False)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder of labels.csv")
    parser.add_argument("--test-share", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0, help="of the test split")
    parser.add_argument("--train-type", choices=TYPES, default=None,
                        help="train on this cell type only; the other is test-only drift")
    args = parser.parse_args(argv)
    path = write_elpv(args.out, args.test_share, args.seed, args.train_type)
    table = pd.read_csv(path)
    counts = table.groupby(["split", "label"]).size().unstack(fill_value=0)
    print(f"{path}: {len(table)} cells\n{counts.to_string()}")
    print(f"python train.py data=csv data.root={args.out} data.classes.good={GOOD}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
