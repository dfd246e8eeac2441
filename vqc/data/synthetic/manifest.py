"""The record of a written set: version, parameters and counts, read back and checked."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vqc.data.synthetic.plan import FILENAME

#: Bump when the drawing changes, so ``ensure_generated`` replaces sets made by older code.
GENERATOR_VERSION = 3
MANIFEST_NAME = "synthetic.json"


@dataclass(frozen=True)
class SyntheticSummary:
    """Where a synthetic set lies and what it holds."""

    out_dir: Path
    train_csv: Path
    test_csv: Path
    train_dir: Path
    test_dir: Path
    train_counts: dict[str, int]
    test_counts: dict[str, int]
    drift_kinds: dict[str, int]
    params: dict[str, Any]
    generated: bool  # False when ensure_generated found the set complete and kept it
    seconds: float = 0.0

    @property
    def n_train(self) -> int:
        return sum(self.train_counts.values())

    @property
    def n_test(self) -> int:
        return sum(self.test_counts.values())


def summarize(out_dir: Path, manifest: Mapping[str, Any], generated: bool,
              seconds: float = 0.0) -> SyntheticSummary:
    return SyntheticSummary(
        out_dir=out_dir,
        train_csv=out_dir / "Y_train.csv",
        test_csv=out_dir / "Y_test.csv",
        train_dir=out_dir / "input_train",
        test_dir=out_dir / "input_test",
        train_counts=dict(manifest["train_counts"]),
        test_counts=dict(manifest["test_counts"]),
        drift_kinds=dict(manifest["drift_kinds"]),
        params=dict(manifest["params"]),
        generated=generated,
        seconds=seconds,
    )


def read_manifest(out_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest of a complete set in ``out_dir``, or None (missing or unreadable)."""
    path = Path(out_dir) / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def is_complete(out: Path, manifest: Mapping[str, Any]) -> bool:
    """All CSVs and images the manifest promises are there."""
    for split in ("train", "test"):
        folder = out / f"input_{split}"
        if not (out / f"Y_{split}.csv").is_file() or not folder.is_dir():
            return False
        present = sum(1 for p in folder.iterdir() if FILENAME.match(p.name))
        if present != sum(manifest[f"{split}_counts"].values()):
            return False
    return True
