"""Writing a set to disk: images (in worker processes), label CSVs and the manifest."""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vqc.classes import CHALLENGE_CLASS_NAMES
from vqc.data.synthetic.counts import (
    DEFAULT_CLASS_FLOOR,
    DEFAULT_DRIFT_FRACTION,
    TRAINED_CLASSES,
)
from vqc.data.synthetic.drift import DRIFT_KINDS
from vqc.data.synthetic.manifest import (
    GENERATOR_VERSION,
    MANIFEST_NAME,
    SyntheticSummary,
    is_complete,
    read_manifest,
    summarize,
)
from vqc.data.synthetic.plan import (
    FILENAME,
    Job,
    default_workers,
    image_rng,
    plan_jobs,
    validated_params,
)
from vqc.data.synthetic.render import render_image
from vqc.errors import ConfigError
from vqc.progress import phase


def _write_image(job: Job) -> str:
    rendered = render_image(job.label, job.lib, job.window,
                            image_rng(job.seed, job.split, job.index), job.drift_kind)
    rendered.image.save(job.path, format="PNG", compress_level=1, compress_type=zlib.Z_RLE)
    return job.path


def _write_images(jobs: list[Job], workers: int) -> None:
    with phase("synthetic data", len(jobs)) as step:
        if workers == 1 or len(jobs) < 2:
            for job in jobs:
                _write_image(job)
                step.advance()
            return
        # spawn: safe inside processes that already run threads (torch, Lightning).
        context = multiprocessing.get_context("spawn")
        with context.Pool(min(workers, len(jobs))) as pool:
            for _ in pool.imap_unordered(_write_image, jobs, chunksize=8):
                step.advance()


def _write_csv(jobs: list[Job], path: Path) -> None:
    # pandas is imported here, not at the top: worker processes never need it.
    import pandas as pd

    from vqc.io import write_csv_atomic

    frame = pd.DataFrame(
        {
            "filename": [Path(j.path).name for j in jobs],
            "window": [j.window for j in jobs],
            "lib": [j.lib for j in jobs],
            "Label": [j.label for j in jobs],
        },
        columns=["filename", "window", "lib", "Label"],
    )
    write_csv_atomic(frame, path, index=True)


def _lists_only_synthetic_files(csv_path: Path) -> bool:
    """Whether a label file names only images this generator writes (so may be replaced)."""
    try:
        with csv_path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    if not rows or rows[0][:2] != ["", "filename"]:
        return False
    return all(len(row) > 1 and FILENAME.match(row[1]) for row in rows[1:])


def _prepare_dir(out_dir: Path) -> None:
    """Make ``out_dir`` and its image folders; refuse folders that hold someone else's data."""
    foreign = [n for n in ("Y_train.csv", "Y_test.csv")
               if (out_dir / n).exists() and not _lists_only_synthetic_files(out_dir / n)]
    if foreign:
        raise ConfigError(
            f"{out_dir}: {foreign} list images this generator did not write; refusing to "
            "overwrite that data set (choose another output folder)"
        )
    try:
        for sub in ("input_train", "input_test"):
            (out_dir / sub).mkdir(parents=True, exist_ok=True)
        (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    except OSError as err:
        raise ConfigError(f"{out_dir}: cannot write the synthetic data set there ({err})") from err


def _remove_stale(folder: Path, keep: set[str]) -> None:
    """Delete images of an earlier set that the new one does not list (only our own names)."""
    for path in folder.iterdir():
        if FILENAME.match(path.name) and path.name not in keep:
            path.unlink()


def _counts(jobs: list[Job], names: Sequence[str]) -> dict[str, int]:
    return {n: sum(j.label == n for j in jobs) for n in names}


def generate(out_dir: str | os.PathLike[str], n_train: int = 1500, n_test: int = 300,
             seed: int = 0, class_floor: int = DEFAULT_CLASS_FLOOR,
             workers: int | None = None,
             drift_fraction: float = DEFAULT_DRIFT_FRACTION) -> SyntheticSummary:
    """Write a synthetic set in the challenge layout to ``out_dir`` (replacing an earlier one).

    ``class_floor`` is the least number of training images per class (the test set gets the
    floor scaled by ``n_test / n_train``); ``drift_fraction`` of the test set is Drift.
    ``workers`` processes draw the images (default: up to 2); the result does not depend on it.
    """
    start = time.perf_counter()
    params = validated_params(n_train, n_test, seed, class_floor, drift_fraction)
    n_workers = default_workers(workers)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder; cannot write the synthetic set")
    plan = plan_jobs(out, params)
    _prepare_dir(out)
    try:
        _write_images(plan["train"] + plan["test"], n_workers)
        for split, jobs in plan.items():
            _remove_stale(out / f"input_{split}", {Path(j.path).name for j in jobs})
            _write_csv(jobs, out / f"Y_{split}.csv")
    except OSError as err:
        raise ConfigError(f"{out}: cannot write the synthetic data set there ({err})") from err
    manifest = {
        "generator": "vqc.data.synthetic",
        "version": GENERATOR_VERSION,
        "params": params,
        "train_counts": _counts(plan["train"], TRAINED_CLASSES),
        "test_counts": _counts(plan["test"], CHALLENGE_CLASS_NAMES),
        "drift_kinds": {k: sum(j.drift_kind == k for j in plan["test"]) for k in DRIFT_KINDS},
    }
    from vqc.io import write_atomic

    write_atomic(out / MANIFEST_NAME, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return summarize(out, manifest, generated=True, seconds=time.perf_counter() - start)


def ensure_generated(out_dir: str | os.PathLike[str], **kwargs: Any) -> SyntheticSummary:
    """``generate(out_dir, **kwargs)`` unless a complete set with the same parameters is there."""
    unknown = sorted(set(kwargs) - {"n_train", "n_test", "seed", "class_floor", "workers",
                                    "drift_fraction"})
    if unknown:
        raise ConfigError(f"synthetic: unknown parameter(s) {unknown}")
    wanted = validated_params(
        kwargs.get("n_train", 1500), kwargs.get("n_test", 300), kwargs.get("seed", 0),
        kwargs.get("class_floor", DEFAULT_CLASS_FLOOR),
        kwargs.get("drift_fraction", DEFAULT_DRIFT_FRACTION),
    )
    out = Path(out_dir)
    manifest = read_manifest(out)
    try:
        same = (manifest is not None and manifest.get("version") == GENERATOR_VERSION
                and manifest.get("params") == wanted and is_complete(out, manifest))
    except (KeyError, TypeError, AttributeError):
        same = False
    if same:
        return summarize(out, manifest, generated=False)  # type: ignore[arg-type]
    return generate(out, **kwargs)
