"""Shared fixtures: tiny image sets written to a temporary folder in each layout."""

from __future__ import annotations

import logging
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("MPLBACKEND", "Agg")

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vqc.data.preprocess import Preprocessor, RotateCrop


@pytest.fixture(autouse=True)
def _no_log_handler_left_behind():
    """A run made in-process (Hydra's job logging) adds handlers to the root logger that write
    to this test's captured output, which pytest closes afterwards: a later test's log line
    would then fail on a closed stream. Remove what a test added; pytest's own handlers come
    and go by themselves."""
    root = logging.getLogger()
    before = set(root.handlers)
    yield
    for handler in [h for h in root.handlers if h not in before]:
        if not type(handler).__module__.startswith("_pytest"):
            root.removeHandler(handler)
            handler.close()


#: A small rotate/crop table for 40x60 images (two "dies").
TINY_TABLE = {"DieA": RotateCrop(30, (20, 15, 36, 55)), "DieB": RotateCrop(-20, (15, 10, 31, 50))}
TINY_CLASSES = ["GOOD", "Scratch", "Dent", "Drift"]


def tiny_image(rng: np.random.Generator, code: int,
               size: tuple[int, int] = (40, 60)) -> Image.Image:
    """A noisy grayscale image whose brightness depends on the class code."""
    width, height = size
    base = 60 + 50 * code
    array = np.clip(rng.normal(base, 10, (height, width)), 0, 255).astype(np.uint8)
    return Image.fromarray(array, mode="L")


@dataclass
class TinyChallenge:
    root: Path
    train_csv: Path
    test_csv: Path
    train_images: Path
    test_images: Path
    train: pd.DataFrame
    test: pd.DataFrame


def write_tiny_challenge(root: Path, counts: dict[str, int], test_counts: dict[str, int],
                         seed: int = 0) -> TinyChallenge:
    """Challenge layout: input_train/, Y_train.csv, input_test/, Y_test.csv with tiny PNGs."""
    rng = np.random.default_rng(seed)
    tables = {}
    for split, split_counts in (("train", counts), ("test", test_counts)):
        folder = root / f"input_{split}"
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for label, n in split_counts.items():
            for _ in range(n):
                name = f"{split}_{len(rows):04d}.png"
                lib = ["DieA", "DieB"][len(rows) % 2]
                tiny_image(rng, TINY_CLASSES.index(label)).save(folder / name)
                rows.append({"filename": name, "window": 2003 + 2 * (len(rows) % 2), "lib": lib,
                             "Label": label})
        frame = pd.DataFrame(rows)
        frame.to_csv(root / f"Y_{split}.csv")
        tables[split] = frame
    return TinyChallenge(root, root / "Y_train.csv", root / "Y_test.csv", root / "input_train",
                         root / "input_test", tables["train"], tables["test"])


@pytest.fixture
def tiny_challenge(tmp_path: Path) -> TinyChallenge:
    return write_tiny_challenge(
        tmp_path / "challenge",
        {"GOOD": 12, "Scratch": 8, "Dent": 5},
        {"GOOD": 3, "Scratch": 2, "Dent": 2, "Drift": 2},
    )


@pytest.fixture
def tiny_preprocessor() -> Preprocessor:
    return Preprocessor(size=(20, 8), mode="L", rotate_crop=TINY_TABLE)
