"""A user's own folders and CSVs, read through the data config (``data=folders``/``data=csv``):
nothing dropped or merged without a word, nothing outside the data set opened."""

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

from vqc.config import compose
from vqc.data.build import build_datamodule
from vqc.data.preprocess import load_image
from vqc.errors import ConfigError, DataError


def _module(tmp_path: Path, layout: str, root: Path, *extra: str):
    GlobalHydra.instance().clear()
    cfg = compose("train", [f"data={layout}", f"data.root={root}", "data.num_workers=0",
                            "data.cache_workers=1", "data.preprocess.size=[8,8]", *extra])
    dm = build_datamodule(cfg.data, str(tmp_path / "cache"))
    dm.setup()
    return dm


def _save(path: Path, value: int = 90, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    Image.fromarray(rng.integers(0, 255, (12, 12), dtype=np.uint8)).save(path, format=fmt)


def test_train_val_test_folders_are_the_split(tmp_path):
    root = tmp_path / "parts"
    for split, n in (("train", 4), ("val", 2), ("test", 1)):
        for label in ("good", "dent"):
            for i in range(n):
                _save(root / split / label / f"{i}.png", i)
    dm = _module(tmp_path, "folders", root)
    counts = dm.class_counts()
    assert counts["train"].tolist() == [4, 4]
    assert counts["val"].tolist() == [2, 2]
    assert counts["test"].tolist() == [1, 1]
    assert set(dm.val_frame["filename"].str.split("/").str[0]) == {"val"}


def test_every_pillow_format_symlinks_followed_and_hidden_files_left_out(tmp_path, caplog):
    root = tmp_path / "parts"
    for i, ext in enumerate((".png", ".gif", ".webp", ".tif", ".bmp", ".jpg")):
        _save(root / "good" / f"{i}{ext}", i)
    elsewhere = tmp_path / "elsewhere" / "dent"
    for i in range(3):
        _save(elsewhere / f"{i}.png", 10 + i)
    os.symlink(elsewhere, root / "dent", target_is_directory=True)
    (root / "good" / "._0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS
    (root / "good" / ".DS_Store").write_bytes(b"\x00")
    (root / "good" / "notes.txt").write_text("lot 12")
    caplog.set_level(logging.INFO)
    dm = _module(tmp_path, "folders", root, "data.val_fraction=0")
    assert dm.class_counts()["train"].tolist() == [6, 3]
    assert "2 hidden file(s)" in caplog.text
    assert any("1 file(s) left out" in w and "notes.txt" in w for w in dm.index.warnings)


def test_class_labels_differing_in_case_space_or_separator_are_one_class(tmp_path, caplog):
    rows = []
    for i, label in enumerate(["good", "good", "Good", "GOOD ", "lift_off", "Lift-off",
                               "lift off"]):
        _save(tmp_path / f"{i}.png", i)
        rows.append({"image": f"{i}.png", "label": label, "split": "train"})
    pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
    caplog.set_level(logging.WARNING)
    dm = _module(tmp_path, "csv", tmp_path, "data.val_fraction=0")
    assert dm.classes.names == ("good", "Lift-off")  # a tie: the first spelling in order
    assert dm.classes.good == "good"
    assert dm.class_counts()["train"].tolist() == [4, 3]
    assert "'GOOD', 'Good' -> 'good' (2 image(s))" in caplog.text
    assert "'lift off', 'lift_off' -> 'Lift-off' (2 image(s))" in caplog.text


def test_configured_names_that_are_one_class_are_refused(tmp_path):
    _save(tmp_path / "0.png")
    pd.DataFrame([{"image": "0.png", "label": "good", "split": "train"}]).to_csv(
        tmp_path / "labels.csv", index=False)
    with pytest.raises(ConfigError, match=r"'Good' and 'good' name one class"):
        _module(tmp_path, "csv", tmp_path, "data.classes.names=[Good,good]",
                "data.classes.good=good", "data.classes.open_set=null")


def test_a_csv_group_column_alone_groups_the_split(tmp_path):
    rows = []
    for i in range(24):
        _save(tmp_path / f"{i}.png", i)
        rows.append({"image": f"{i}.png", "label": ["good", "dent"][i % 2], "split": "train",
                     "batch": f"b{i // 4}"})
    pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
    dm = _module(tmp_path, "csv", tmp_path, "data.columns.group=batch", "data.val_fraction=0.3")
    assert set(dm.train_frame["group"]).isdisjoint(dm.val_frame["group"])
    old = _module(tmp_path, "csv", tmp_path, "data.columns.group=batch", "data.group_by=group",
                  "data.val_fraction=0.3")
    assert set(old.train_frame["group"]).isdisjoint(old.val_frame["group"])


@pytest.mark.parametrize("path", ["../../etc/passwd", "sub/../../outside.png", "../set2/a.png"])
def test_csv_paths_leaving_the_root_are_refused_with_their_row(tmp_path, path):
    root = tmp_path / "set"
    _save(root / "a.png")
    _save(tmp_path / "outside.png")
    pd.DataFrame([{"image": "a.png", "label": "good", "split": "train"},
                  {"image": path, "label": "good", "split": "train"}]).to_csv(
        root / "labels.csv", index=False)
    with pytest.raises(DataError, match=rf"labels.csv row 3: image path '{path}' leaves "
                                        "data.root"):
        _module(tmp_path, "csv", root)


def test_absolute_csv_paths_are_taken_as_written(tmp_path):
    root = tmp_path / "set"
    _save(root / "a.png")
    _save(tmp_path / "elsewhere" / "b.png")
    pd.DataFrame([{"image": "a.png", "label": "good", "split": "train"},
                  {"image": str(tmp_path / "elsewhere" / "b.png"), "label": "good",
                   "split": "train"}]).to_csv(root / "labels.csv", index=False)
    assert len(_module(tmp_path, "csv", root, "data.val_fraction=0").train_frame) == 2


def test_animated_gif_is_refused_and_float_tiff_rescaling_is_logged(tmp_path, caplog):
    frames = [Image.new("L", (8, 8), v) for v in (0, 128, 255)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(DataError, match=r"anim.gif: animated or multi-page image \(3 frames\)"):
        load_image(tmp_path / "anim.gif")
    values = np.linspace(-1.0, 4.0, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(values, mode="F").save(tmp_path / "depth.tif")
    caplog.set_level(logging.WARNING)
    image = np.asarray(load_image(tmp_path / "depth.tif"))
    assert image.max() == 255 and image.min() == 0  # 4.0 is the maximum; negatives clipped
    assert "depth.tif: 32-bit float image divided by its own maximum" in caplog.text


def test_a_merge_of_labels_is_logged_once_however_often_the_tables_are_read(tmp_path, caplog):
    from vqc.data import labels

    labels._WARNED.clear()
    frame = pd.DataFrame({"label": ["good", "good", "Good", "scratch"]})
    caplog.set_level(logging.WARNING)
    for _ in range(3):
        (merged,), message = labels.harmonise_labels([frame])
        assert message and "'Good' -> 'good'" in message  # the summary gets it every time
        assert merged["label"].tolist() == ["good", "good", "good", "scratch"]
    assert caplog.text.count("class labels merged") == 1
