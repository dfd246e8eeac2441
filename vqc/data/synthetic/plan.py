"""The parameters of a set and its plan: every image's file, class, die, window and seed."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vqc.data.synthetic.counts import (
    DIE_PREFERENCE,
    DRIFT,
    TRAINED_CLASSES,
    split_counts,
)
from vqc.data.synthetic.drift import DRIFT_KINDS
from vqc.data.synthetic.layout import LIBS, WINDOWS
from vqc.errors import ConfigError

_SPLIT_CODES = {"train": 0, "test": 1}
FILENAME = re.compile(r"^syn_(train|test)_\d+\.png$")


@dataclass(frozen=True)
class Job:
    """One image to draw and save (picklable, for worker processes)."""

    path: str
    seed: int
    split: str
    index: int
    label: str
    lib: str
    window: int
    drift_kind: str | None = None


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one image: depends on (seed, split, index) only."""
    return np.random.default_rng([seed, _SPLIT_CODES[split], 1, index])


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ConfigError(f"synthetic: {name}={value!r} must be an integer")
    if value < minimum:
        raise ConfigError(f"synthetic: {name}={value} must be >= {minimum}")
    return int(value)


def validated_params(n_train: int, n_test: int, seed: int, class_floor: int,
                     drift_fraction: float) -> dict[str, Any]:
    """Validated parameters that decide the content of a set (what the manifest records)."""
    n_train = _check_int("n_train", n_train, 1)
    n_test = _check_int("n_test", n_test, 0)
    seed = _check_int("seed", seed, 0)
    class_floor = _check_int("class_floor", class_floor, 0)
    if not isinstance(drift_fraction, int | float) or not 0 <= drift_fraction < 1:
        raise ConfigError(f"synthetic: drift_fraction={drift_fraction!r} must be in [0, 1)")
    needed = class_floor * len(TRAINED_CLASSES)
    if n_train < needed:
        raise ConfigError(
            f"synthetic: n_train={n_train} is too small for class_floor={class_floor}: "
            f"{len(TRAINED_CLASSES)} classes need at least {needed} images; "
            "raise n_train or lower class_floor"
        )
    return {"n_train": n_train, "n_test": n_test, "seed": seed, "class_floor": class_floor,
            "drift_fraction": float(drift_fraction)}


def default_workers(workers: int | None) -> int:
    if workers is None:
        return max(1, min(2, os.cpu_count() or 1))
    return _check_int("workers", workers, 1)


def plan_jobs(out_dir: Path, params: Mapping[str, Any]) -> dict[str, list[Job]]:
    """Every image of both splits: file, class, die, window (and drift kind), in order."""
    train, test = split_counts(params["n_train"], params["n_test"], params["class_floor"],
                               params["drift_fraction"])
    seed = params["seed"]
    digits = max(5, len(str(max(params["n_train"], params["n_test"]))))
    plan: dict[str, list[Job]] = {}
    for split, counts in (("train", train), ("test", test)):
        rng = np.random.default_rng([seed, _SPLIT_CODES[split], 0])
        labels = [name for name, n in counts.items() for _ in range(n)]
        labels = [labels[i] for i in rng.permutation(len(labels))]
        folder = out_dir / f"input_{split}"
        jobs = []
        for index, label in enumerate(labels):
            preference = np.asarray(DIE_PREFERENCE.get(label, (1.0,) * len(LIBS)))
            lib = LIBS[int(rng.choice(len(LIBS), p=preference / preference.sum()))]
            window = WINDOWS[int(rng.integers(len(WINDOWS)))]
            kind = str(rng.choice(DRIFT_KINDS)) if label == DRIFT else None
            name = f"syn_{split}_{index:0{digits}d}.png"
            jobs.append(Job(str(folder / name), seed, split, index, label, lib, window, kind))
        plan[split] = jobs
    return plan
