"""On-disk cache of preprocessed images.

Decoding, rotating, cropping and resizing happen once per image; every later epoch and run
reads a small ``.npy`` file instead. The key of an entry covers the file (absolute path, size,
modification time) and the preprocessing fingerprint, so editing either invalidates it. Entries
are written to a temporary file and renamed into place, so a killed build never leaves a
corrupt entry behind; an entry found unreadable all the same (empty or cut short, as a machine
that lost power may leave it) is rebuilt.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vqc.data.preprocess import Preprocessor
from vqc.io import write_atomic


@dataclass
class CacheStats:
    """Counts of this process's cache look-ups (workers of a DataLoader keep their own)."""

    hits: int = 0
    decoded: int = 0


class ImageCache:
    """Preprocessed images keyed by file identity and preprocessing settings."""

    def __init__(self, root: str | os.PathLike[str], preprocessor: Preprocessor) -> None:
        self.preprocessor = preprocessor
        self.root = Path(root) / preprocessor.fingerprint()
        self.stats = CacheStats()

    def key(self, path: str | os.PathLike[str]) -> str:
        path = Path(path).resolve()
        stat = path.stat()
        identity = f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}"
        return hashlib.sha256(identity.encode()).hexdigest()[:32]

    def entry_path(self, path: str | os.PathLike[str]) -> Path:
        key = self.key(path)
        return self.root / key[:2] / f"{key}.npy"

    def get(self, path: str | os.PathLike[str], lib: str | None = None) -> np.ndarray:
        """The preprocessed array of ``path``, from the cache or computed and stored."""
        if not Path(path).is_file():
            # Let the preprocessor raise its clear "file not found" error.
            return self.preprocessor(path, lib)
        entry = self.entry_path(path)
        if entry.is_file():
            try:
                array = np.load(entry, allow_pickle=False)
            except (OSError, ValueError, EOFError):
                array = None  # unreadable entry (e.g. disk trouble): rebuild it below
            if array is not None:
                self.stats.hits += 1
                return array
        array = self.preprocessor(path, lib)
        self.stats.decoded += 1
        self._store(entry, array)
        return array

    def _store(self, entry: Path, array: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        # Rebuildable, and an empty or torn entry is rebuilt on read: no fsync per image.
        write_atomic(entry, buffer.getvalue(), fsync=False)
