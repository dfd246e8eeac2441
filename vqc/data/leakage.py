"""Test images whose bytes are those of a training image: leakage that flatters test figures.

Files are compared by size, then by their first 64 KiB, then whole (SHA-256), so a set costs
little more than a listing unless it holds copies. A copy under another name or in another
folder is found; a re-encoded copy is not. The data module checks once a run, when it builds
its index.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict

import pandas as pd

#: How many pairs a note names.
SHOWN = 3
#: Bytes compared before whole files are.
HEAD = 1 << 16
_CHUNK = 1 << 20


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None  # a missing file is reported where the images are read


def _digest(path: str, limit: int | None = None) -> str | None:
    """SHA-256 of the file's first ``limit`` bytes (all of it by default)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            if limit is not None:
                digest.update(handle.read(limit))
            else:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def _key(path: str, size: int) -> tuple[int, str | None]:
    """What two identical files share for sure: their size and first :data:`HEAD` bytes."""
    return size, _digest(path, HEAD)


def identical_across(train: pd.DataFrame, test: pd.DataFrame) -> list[tuple[str, str]]:
    """``(test where, train where)`` for each test image whose bytes a training image has.

    Sizes first, then the first 64 KiB of the files of a shared size, then the whole files
    whose heads agree: a large set of same-sized images (BMP, raw TIFF) costs a 64 KiB read
    an image, not a read of every byte."""
    sizes = [_size(str(p)) for p in test["path"]]
    test_sizes = {s for s in sizes if s is not None}
    heads: dict[tuple[int, str | None], list[int]] = defaultdict(list)
    for i, path in enumerate(train["path"]):
        size = _size(str(path))
        if size in test_sizes:
            heads[_key(str(path), size)].append(i)
    pairs = []
    full: dict[int, str | None] = {}
    for j, (path, size) in enumerate(zip(test["path"], sizes, strict=True)):
        if size is None:
            continue
        candidates = heads.get(_key(str(path), size), [])
        if not candidates:
            continue
        digest = _digest(str(path))
        for i in candidates:
            if i not in full:
                full[i] = _digest(str(train["path"].iloc[i]))
            if digest is not None and full[i] == digest:
                pairs.append((str(test["where"].iloc[j]), str(train["where"].iloc[i])))
                break
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
