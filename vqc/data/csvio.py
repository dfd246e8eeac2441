"""Reading CSV files with errors that name the file.

The atomic writers and the folder check live in ``vqc.io``; they are re-exported here for
code written against their old place.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from vqc.errors import DataError
from vqc.io import folder_problem, write_atomic, write_csv_atomic


def read_csv(path: str | os.PathLike[str], required: Iterable[str] = (),
             **kwargs: object) -> pd.DataFrame:
    """Read a UTF-8 CSV; raise ``DataError`` naming the file for every way it can be unusable.

    ``required`` columns must be present (their names are listed when one is missing).
    The challenge's unnamed index column comes back as ``Unnamed: 0``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: CSV file not found")
    try:
        frame = pd.read_csv(path, encoding="utf-8", **kwargs)  # type: ignore[arg-type]
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); "
                        "save it as UTF-8") from err
    except pd.errors.EmptyDataError as err:
        raise DataError(f"{path}: CSV file is empty") from err
    except pd.errors.ParserError as err:
        raise DataError(f"{path}: malformed CSV ({err})") from err
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    return frame


def csv_row(index: int) -> int:
    """Line number in the file of data row ``index`` (1-based, header is line 1)."""
    return int(index) + 2


__all__ = ["csv_row", "folder_problem", "read_csv", "write_atomic", "write_csv_atomic"]
