"""A small class-folder set trained with the defaults alone answers images unlike any part,
noise, a checkerboard, white and black, as drift (slow: a pretrained network at 96x128)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.training.test_train import _cfg
from vqc.training.task import train


def _parts(root: Path, seed: int = 0) -> Path:
    """good, dent, scratch: 40 training and 10 test images each, 90x120 gray; and, in test
    only, four images no camera on the line would take."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:90, :120]
    for split, count in (("train", 40), ("test", 10)):
        for label in ("good", "dent", "scratch"):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                image = 120 + rng.normal(0, 8, (90, 120))
                if label == "dent":
                    y, x = rng.integers(20, 70), rng.integers(20, 100)
                    image -= 60 * np.exp(-((rows - y) ** 2 + (cols - x) ** 2) / 60)
                if label == "scratch":
                    y = rng.integers(10, 80)
                    image[y:y + 2, 10:110] = 230
                Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    drift = root / "test" / "drift"
    drift.mkdir()
    checker = (np.indices((90, 120)) // 10).sum(0) % 2 * 255
    for name, array in (("noise", rng.integers(0, 256, (90, 120))), ("checker", checker),
                        ("white", np.full((90, 120), 255)), ("black", np.zeros((90, 120)))):
        Image.fromarray(array.astype(np.uint8)).save(drift / f"{name}.png")
    return root


@pytest.mark.slow
def test_images_unlike_any_part_are_drift_with_the_defaults(tmp_path):
    root = _parts(tmp_path / "parts")
    cfg = _cfg(["data=folders", f"data.root={root}", f"paths.data_dir={tmp_path / 'data'}",
                f"paths.output_dir={tmp_path / 'out'}", "trainer.max_epochs=6",
                "data.num_workers=0", "logger=csv", "figures.enabled=false",
                "trainer.enable_progress_bar=false"], tmp_path / "run")
    summary = train(cfg)
    chosen = {c["key"]: c["value"] for c in summary["choices"]}
    assert chosen["data.preprocess.size"] == [96, 128]  # 90x120 kept at its aspect
    predictions = pd.read_csv(tmp_path / "run" / "test_predictions.csv")
    drift = predictions[predictions["filename"].str.startswith("test/drift/")]
    assert len(drift) == 4
    assert (drift["decision"] == drift["label"]).all(), drift[["filename", "reason"]]
    parts = predictions[~predictions["filename"].str.startswith("test/drift/")]
    assert (parts["decision"] == parts["label"]).mean() >= 0.9
