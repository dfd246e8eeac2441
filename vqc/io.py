"""Files written whole or not at all, folders checked before work starts, CSV files read with
errors that name the file.

pandas is imported only by ``read_csv`` (``write_csv_atomic`` takes any frame with ``to_csv``),
so that every layer, worker processes included, can use the rest cheaply.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from vqc.errors import DataError

if TYPE_CHECKING:
    import pandas as pd


def folder_problem(folder: str | os.PathLike[str]) -> str | None:
    """Why ``folder`` cannot be created and written to (its first existing ancestor is a file,
    or not writable), or ``None``. Checked before work starts, so nothing is left behind."""
    folder = Path(folder)
    for existing in (folder, *folder.parents):
        if existing.exists():
            if not existing.is_dir():
                return f"{existing} is a file, not a folder"
            if not os.access(existing, os.W_OK | os.X_OK):
                return f"{existing} is not writable"
            return None
    return None


def default_file_mode() -> int:
    """The mode ``open()`` gives a new file: ``0o666`` less the process's umask.

    ``tempfile.mkstemp`` creates ``0o600`` files, which would make every atomically written
    output unreadable by the rest of a team. Linux tells the umask in ``/proc``; elsewhere it
    can only be read by setting it, so it is set and restored at once.
    """
    try:
        status = Path("/proc/self/status").read_text()
        umask = int(next(line.split()[1] for line in status.splitlines()
                         if line.startswith("Umask:")), 8)
    except (OSError, StopIteration, IndexError, ValueError):
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: str | os.PathLike[str], data: bytes | str, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename: never a partial file.
    The file gets the mode a plain ``open()`` would give it (see ``default_file_mode``).

    ``fsync=False`` skips flushing to the disk: still safe against a killed process (the rename
    happens after the whole write), not against a power loss; for many small, rebuildable files.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, default_file_mode())
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_csv_atomic(frame: pd.DataFrame, path: str | os.PathLike[str], **kwargs: object) -> Path:
    """``frame.to_csv`` with the atomic guarantee of ``write_atomic``."""
    return write_atomic(path, frame.to_csv(**kwargs))  # type: ignore[arg-type]


__all__ = ["default_file_mode", "folder_problem", "write_atomic", "write_csv_atomic"]


def read_csv(path: str | os.PathLike[str], required: Iterable[str] = (),
             **kwargs: object) -> pd.DataFrame:
    """Read a UTF-8 CSV; raise ``DataError`` naming the file for every way it can be unusable.

    ``required`` columns must be present (their names are listed when one is missing).
    The challenge's unnamed index column comes back as ``Unnamed: 0``.
    """
    import pandas as pd

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
