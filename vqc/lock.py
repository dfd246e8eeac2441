"""One process at a time per output: an exclusive lock file that names its holder.

``OutputLock(path)`` holds ``fcntl.flock`` on ``PATH.lock`` and writes its pid there; a second
process gets a ``LockedError`` naming the lock file and that pid instead of waiting. The kernel
drops the lock when its holder dies, so a killed run never leaves a lock that blocks the next
one. The lock file is removed on release; a process that opened it just before then finds, once
it holds the lock, that the path now names another file (or none) and tries again, so two
processes never both hold the lock of one path.

(``filelock``, also installed, keeps its lock file after release by design and keeps no record
of the holder's pid, both of which this module needs.)
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from vqc.errors import DataError
from vqc.io import default_file_mode


class LockedError(DataError):
    """The lock is held by another process."""


class OutputLock:
    """An exclusive, non-blocking lock on ``path`` (through ``PATH.lock``); a context manager."""

    def __init__(self, path: str | os.PathLike[str], what: str = "run") -> None:
        self.target = Path(path)
        self.path = self.target.with_name(f"{self.target.name}.lock")
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, default_file_mode())
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 64).decode(errors="replace").strip()
                os.close(fd)
                pid = f"pid {holder}" if holder.isdigit() else "a process starting up"
                raise LockedError(
                    f"{self.path}: another {self.what} writing {self.target.name} holds this "
                    f"lock ({pid}); wait for it to end, or give another --out") from None
            except BaseException:
                os.close(fd)
                raise
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # released and removed by its holder meanwhile: lock the new file
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still held: see the module's docstring
        finally:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.release()


__all__ = ["LockedError", "OutputLock"]
