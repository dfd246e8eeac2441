"""Readers that turn a data set on disk into one index table.

Three layouts are understood:

* ``challenge``: the challenge's CSV (unnamed index, ``filename``, ``window``, ``lib``, ``Label``)
  beside a folder of PNGs;
* ``csv``: any CSV with an image column and a label column, optionally a split and a group
  column (column names configurable), image paths relative to a root folder;
* ``folders``: one folder per class (``root/<class>/*``), or one folder per split holding those
  (``root/train/<class>/*``, ``root/val/<class>/*``, ``root/test/<class>/*``; see
  ``vqc.data.folders``).

Every reader returns a ``pandas.DataFrame`` with the columns of
``vqc.data.table.INDEX_COLUMNS``. Labels are kept as names here; ``vqc.data.index`` turns them
into codes once the class list is known.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from vqc.data.folders import image_extensions
from vqc.data.table import finish_table
from vqc.errors import ConfigError, DataError
from vqc.io import csv_row, read_csv

#: Every extension Pillow opens.
IMAGE_EXTENSIONS = image_extensions()


def _check_duplicates(frame: pd.DataFrame, column: str, source: str) -> None:
    dupes = frame[frame.duplicated(column, keep=False)]
    if len(dupes):
        shown = ", ".join(f"{name!r} ({where})" for name, where in
                          zip(dupes[column].head(6), dupes["where"].head(6), strict=True))
        raise DataError(f"{source}: {dupes[column].nunique()} duplicate {column}(s): {shown}")


def _clean_label(value: object) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


def read_challenge(csv: str | os.PathLike[str], images: str | os.PathLike[str],
                   require_label: bool = True) -> pd.DataFrame:
    """The challenge's ``Y_*.csv`` (or ``win_and_lib.csv`` with ``require_label=False``)."""
    csv = Path(csv)
    required = ["filename", "lib"] + (["Label"] if require_label else [])
    raw = read_csv(csv, required=required, dtype={"filename": str, "lib": str})
    index_column = raw.columns[0] if raw.columns[0].startswith("Unnamed") else None
    frame = pd.DataFrame({
        "filename": raw["filename"].astype(str).str.strip(),
        "lib": raw["lib"].astype(str).str.strip(),
        "window": raw["window"] if "window" in raw.columns else None,
        "label": raw["Label"].map(_clean_label) if "Label" in raw.columns else None,
        "where": [f"{csv} row {csv_row(i)}" for i in range(len(raw))],
        "orig_index": raw[index_column] if index_column else range(len(raw)),
    })
    frame["path"] = [str(Path(images).resolve() / name) for name in frame["filename"]]
    frame["group"] = frame["lib"]
    if require_label:
        _require_labels(frame, csv)
    _check_duplicates(frame, "filename", str(csv))
    return finish_table(frame)


def read_generic_csv(csv: str | os.PathLike[str], root: str | os.PathLike[str] | None,
                     columns: Mapping[str, str | None], require_label: bool = True) -> pd.DataFrame:
    """A CSV ``image,label[,split][,group][,lib][,mask]`` with configurable column names.

    Relative image and mask paths are resolved against ``root`` (default: the CSV's folder). A
    row's mask may be empty (no mask for that image); a mask named but missing is refused.
    """
    csv = Path(csv)
    names = {"image": "image", "label": "label", "split": None, "group": None, "lib": None,
             "mask": None}
    names.update({k: v for k, v in columns.items() if k in names})
    unknown = sorted(set(columns) - set(names))
    if unknown:
        raise ConfigError(f"data.columns: unknown key(s) {unknown}; known: {sorted(names)}")
    required = [names["image"]] + ([names["label"]] if require_label else [])
    required += [names[k] for k in ("split", "group", "lib") if names[k]]
    raw = read_csv(csv, required=required, dtype=str, keep_default_na=False)
    if names["mask"] == "auto":  # data.columns.mask: auto, where no run resolved it
        names["mask"] = "mask" if "mask" in raw.columns else None
    if names["mask"] and names["mask"] not in raw.columns:
        raise DataError(f"{csv}: no column {names['mask']!r} of pixel masks "
                        f"(data.columns.mask); found {list(raw.columns)}. A set without masks: "
                        "data.columns.mask=null module.mask_weight=0")
    base = Path(root) if root is not None else csv.parent
    images = raw[names["image"]].astype(str).str.strip()
    frame = pd.DataFrame({
        "filename": images,
        "path": _paths_inside(base, images, csv, "data.root" if root is not None else None),
        "label": raw[names["label"]].map(_clean_label) if names["label"] in raw.columns else None,
        "where": [f"{csv} row {csv_row(i)}" for i in range(len(raw))],
        "orig_index": range(len(raw)),
    })
    for key in ("split", "group", "lib"):
        column = names[key]
        frame[key] = raw[column].map(_clean_label) if column else None
    if frame["group"].isna().all() and names["lib"]:
        frame["group"] = frame["lib"]
    if names["mask"]:
        frame["mask"] = _mask_paths(base, raw[names["mask"]].astype(str).str.strip(), csv,
                                    "data.root" if root is not None else None)
    if require_label:
        _require_labels(frame, csv)
    _check_duplicates(frame, "path", str(csv))
    return finish_table(frame)


def _paths_inside(base: Path, images: pd.Series, csv: Path, key: str | None) -> list[str]:
    """Absolute paths of ``images``: relative ones under ``base``, where they must stay (a
    ``../`` path leaving it is refused with its row); absolute ones as written, the CSV's
    author's explicit choice. Symlinks inside ``base`` are the data set's own and followed."""
    return [_path_inside(base, name, csv, i, key) for i, name in enumerate(images)]


def _path_inside(base: Path, name: str, csv: Path, i: int, key: str | None,
                 what: str = "image") -> str:
    """One path of ``_paths_inside``; ``i``: its data row, ``what`` it names, for messages."""
    if Path(name).is_absolute():
        return str(Path(name).resolve())
    top = Path(os.path.abspath(base))
    lexical = Path(os.path.normpath(top / name))
    if not lexical.is_relative_to(top):
        where = key or "the CSV's folder"
        raise DataError(f"{csv} row {csv_row(i)}: {what} path {name!r} leaves {where} "
                        f"({top}); relative paths must stay inside it")
    return str(lexical.resolve())


def _mask_paths(base: Path, masks: pd.Series, csv: Path, key: str | None) -> list[str | None]:
    """Absolute mask paths (None where a row names none); a named file must exist."""
    paths: list[str | None] = []
    for i, name in enumerate(masks):
        path = _path_inside(base, name, csv, i, key, "mask") if name else None
        if path is not None and not Path(path).is_file():
            raise DataError(f"{csv} row {csv_row(i)}: mask {name!r} not found ({path})")
        paths.append(path)
    return paths


def _require_labels(frame: pd.DataFrame, source: Path) -> None:
    empty = frame[frame["label"].isna()]
    if len(empty):
        raise DataError(f"{source}: {len(empty)} row(s) without a label, first at "
                        f"{empty['where'].iloc[0]}")
