"""Test images whose bytes are those of a training image: leakage that flatters test figures.

Files are compared by size first, so only files of a size found in both splits are read and
hashed (SHA-256); a copy under another name, in another folder or format-identical re-save is
found, a re-encoded copy is not.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict

import pandas as pd

#: How many pairs a note names.
SHOWN = 3
_CHUNK = 1 << 20


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None  # a missing file is reported where the images are read


def _digest(path: str) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def identical_across(train: pd.DataFrame, test: pd.DataFrame) -> list[tuple[str, str]]:
    """``(test where, train where)`` for each test image whose bytes a training image has."""
    sizes: dict[int, list[int]] = defaultdict(list)
    for i, path in enumerate(train["path"]):
        size = _size(str(path))
        if size is not None:
            sizes[size].append(i)
    by_digest: dict[str, int] = {}
    pairs = []
    for j, path in enumerate(test["path"]):
        size = _size(str(path))
        if size is None or size not in sizes:
            continue
        for i in sizes.pop(size):  # hash the training files of this size once
            digest = _digest(str(train["path"].iloc[i]))
            if digest is not None:
                by_digest.setdefault(digest, i)
        sizes[size] = []
        digest = _digest(str(path))
        if digest is not None and digest in by_digest:
            pairs.append((str(test["where"].iloc[j]),
                          str(train["where"].iloc[by_digest[digest]])))
    return pairs


def leakage_note(train: pd.DataFrame, test: pd.DataFrame | None) -> str | None:
    """A warning naming test images identical to training images, or ``None``."""
    if test is None or not len(test) or not len(train):
        return None
    pairs = identical_across(train, test)
    if not pairs:
        return None
    shown = "; ".join(f"{a} = {b}" for a, b in pairs[:SHOWN])
    more = f" ... ({len(pairs)} in all)" if len(pairs) > SHOWN else ""
    return (f"leakage: {len(pairs)} of {len(test)} test image(s) are byte for byte a training "
            f"image ({shown}{more}); the test figures will flatter the model: remove them "
            f"from one split")
