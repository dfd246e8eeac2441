"""What a set of predictions was made from: the model file, the images and the options.

A ``Fingerprint`` is written beside ``vqc-predict``'s partial and final outputs (JSON files, so
that the submission CSV keeps the challenge's format exactly), and a resumed run compares its
own with the partial file's before keeping any row.

- The model: the SHA-256 of the file's bytes. Reading an inspector or ONNX file once more
  costs a fraction of loading it (hashing runs at about 1 GB/s), and unlike size and mtime it
  cannot be fooled by a copy, a ``touch`` or a file rewritten within the same second.
- The images: the SHA-256 of the rows in output order (filename, lib, window) and of each
  image's size and mtime (nanoseconds). Hashing every image's bytes would read the whole data
  set again before a resume; a changed image changes its size or mtime. Paths are taken
  relative to the image folder, so a folder moved or renamed with ``mv`` still matches.
- The options that change the rows (``--on-bad-image``, and the vqc version that computes
  them); options that only change the speed, such as the batch size, are left out.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vqc.errors import DataError

FORMAT = "vqc-predict-fingerprint/1"
_CHUNK = 1 << 20


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def images_sha256(folder: Path, rows: Iterable[tuple[str, str, str]]) -> str:
    """The SHA-256 of ``(filename, lib, window)`` rows, in order, with each image's size and
    mtime; a missing image counts as size -1 (it is refused or answered later)."""
    digest = hashlib.sha256()
    for filename, lib, window in rows:
        try:
            stat = os.stat(folder / filename)
            size, mtime = stat.st_size, stat.st_mtime_ns
        except OSError:
            size, mtime = -1, -1
        digest.update(json.dumps([filename, lib, window, size, mtime]).encode() + b"\n")
    return digest.hexdigest()


@dataclass(frozen=True)
class Fingerprint:
    """The model file, the images and the row-changing options of a prediction run."""

    model: dict[str, Any]
    images: dict[str, Any]
    options: dict[str, Any]
    format: str = FORMAT
    outputs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, model_path: Path, images: Path, index: Path | None,
           rows: Iterable[tuple[str, str, str]], options: Mapping[str, Any]) -> Fingerprint:
        rows = list(rows)
        return cls(
            model={"path": str(model_path.resolve()), "size": model_path.stat().st_size,
                   "sha256": file_sha256(model_path)},
            images={"folder": str(images.resolve()),
                    "index": None if index is None else str(index.resolve()),
                    "count": len(rows), "sha256": images_sha256(images, rows)},
            options=dict(options))

    def differences(self, now: Fingerprint) -> list[str]:
        """How ``now`` differs from this (recorded) fingerprint, in words: the model, the
        images, the options."""
        found = []
        if self.model["sha256"] != now.model["sha256"]:
            found.append(f"another model ({now.model['path']}: sha256 "
                         f"{now.model['sha256'][:12]}…, the partial rows' "
                         f"{self.model['sha256'][:12]}… from {self.model['path']})")
        if self.images["sha256"] != now.images["sha256"]:
            source = now.images["index"] or now.images["folder"]
            found.append(f"other images ({now.images['count']} rows from {source}, "
                         f"{self.images['count']} before; names, libs, sizes or modification "
                         "times differ)")
        if self.options != now.options:
            changed = sorted(k for k in {*self.options, *now.options}
                             if self.options.get(k) != now.options.get(k))
            found.append("other options (" + ", ".join(
                f"{k}={now.options.get(k)!r}, before {self.options.get(k)!r}" for k in changed)
                + ")")
        return found

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def read(cls, path: Path) -> Fingerprint:
        """The fingerprint in ``path``; ``DataError`` naming the file if it is not one."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}")
            return cls(**data)
        except (OSError, ValueError, TypeError, AttributeError) as err:
            raise DataError(f"{path}: not a readable vqc-predict fingerprint ({err})") from err


__all__ = ["Fingerprint", "file_sha256", "images_sha256"]
