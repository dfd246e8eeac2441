"""A tiny CSV data set and the overrides that make a training run take seconds."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image


def write_tiny_csv_set(root: Path, per_class: int = 8, size: int = 16, seed: int = 0,
                       masks: bool = False) -> Path:
    """good / dent / scratch (train and test) plus test-only drift, as ``labels.csv``.

    ``masks``: a ``mask`` column, naming the scratch's pixel mask on scratch rows (the bright
    column), and empty elsewhere (dent: no mask given; good: nothing to mark)."""
    rng = np.random.default_rng(seed)
    rows = []
    for split, n in (("train", per_class), ("test", 3)):
        for code, label in enumerate(("good", "dent", "scratch", "drift")):
            if label == "drift" and split == "train":
                continue
            for i in range(n):
                array = rng.normal(60 + 50 * code, 12, (size, size)).clip(0, 255)
                if label == "scratch":
                    array[:, size // 2] = 255
                name = f"images/{split}_{label}_{i}.png"
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(array.astype(np.uint8), mode="L").save(root / name)
                row = {"image": name, "label": label, "split": split}
                if masks:
                    row["mask"] = _write_mask(root, name, size) if label == "scratch" else ""
                rows.append(row)
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root


def _write_mask(root: Path, image: str, size: int) -> str:
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[:, size // 2] = 255
    name = image.replace("images/", "masks/")
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask, mode="L").save(root / name)
    return name


@pytest.fixture
def tiny_csv_set(tmp_path: Path) -> Path:
    return write_tiny_csv_set(tmp_path / "set")


#: What the fast runs train unless they say otherwise: the from-scratch CNN with PaDiM, the
#: classic recipe (the default recipe fine-tunes a pretrained network: tests/training/
#: test_recipe.py).
CLASSIC = {"model": "cnn", "module": "default", "drift": "padim", "unfreeze": "-1", "dropout": "0",
           "trainer.max_time": "null"}


def fast_overrides(data_root: Path, tmp: Path, *extra: str) -> list[str]:
    model = next((e.split("=", 1)[1] for e in extra if e.startswith("model=")), "cnn")
    narrow = ["model.width=8"] if model in ("cnn", "basic_cnn") else []
    given = {e.split("=", 1)[0].lstrip("+~") for e in extra}
    classic = [f"{key}={value}" for key, value in CLASSIC.items() if key not in given]
    if model.startswith(("resnet", "resnest")) and not given & {"model.pretrained",
                                                                  "model.weights"}:
        classic.append("model.pretrained=false")  # their ImageNet weights need a hub
    return [
        *classic,
        "data=csv", f"data.root={data_root}", "data.preprocess.size=[32,32]",
        "data.num_workers=0", "data.cache_workers=1", "data.batch_size=8",
        f"paths.data_dir={tmp / 'data'}", f"paths.output_dir={tmp / 'out'}",
        "trainer.max_epochs=2", "trainer.accelerator=cpu", "trainer.log_every_n_steps=1",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
        "callbacks=none", "logger=csv", "figures.tsne=false", *narrow,
        "drift.n_features=8", *extra,
    ]


def strip_warnings(report: str) -> str:
    """A report without the run's warnings on top (``> **WARNING**: …`` paragraphs)."""
    while report.startswith("> **WARNING**"):
        report = report.split("\n\n", 1)[1] if "\n\n" in report else ""
    return report
