"""Pixel masks for class folders: a masks tree mirroring the images', matched by name."""

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vqc.data.layouts import ClassFolders
from vqc.errors import ConfigError, DataError


def _png(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 4), value, dtype=np.uint8), mode="L").save(path)
    return path


def _masks_of(table) -> dict[str, str | None]:
    return {Path(f).name: (Path(m).name if isinstance(m, str) else None)
            for f, m in zip(table["filename"], table["mask"], strict=True)}


def test_mvtec_ground_truth_beside_the_split_folders_with_a_suffix(tmp_path, caplog):
    for name in ("train/good/a.png", "train/crack/b.png", "test/crack/c.png", "test/good/d.png"):
        _png(tmp_path / name)
    _png(tmp_path / "ground_truth/crack/b_mask.png", 255)
    _png(tmp_path / "ground_truth/crack/c_mask.png", 255)
    source = ClassFolders(root=str(tmp_path), masks_root=str(tmp_path / "ground_truth"),
                          mask_suffix="_mask")
    with caplog.at_level(logging.WARNING):
        train, test = source.tables()
    assert _masks_of(train) == {"a.png": None, "b.png": "b_mask.png"}
    assert _masks_of(test) == {"c.png": "c_mask.png", "d.png": None}
    assert set(train["label"]) == {"good", "crack"}  # ground_truth/ is no class ...
    assert source.notes == [] and caplog.records == []  # ... and not "beside the splits"
    assert Path(train["mask"].dropna().iloc[0]).is_absolute()


def test_a_mirrored_tree_with_its_split_folders_and_any_image_format(tmp_path):
    _png(tmp_path / "data/train/crack/b.png")
    _png(tmp_path / "data/val/crack/b.png")  # the same name in another split
    _png(tmp_path / "masks/train/crack/b.bmp", 255)
    _png(tmp_path / "masks/val/crack/b.png", 255)
    train, _ = ClassFolders(root=str(tmp_path / "data"),
                            masks_root=str(tmp_path / "masks")).tables()
    by_split = dict(zip(train["split"], train["mask"], strict=True))
    assert Path(by_split["train"]).parts[-3:] == ("train", "crack", "b.bmp")
    assert Path(by_split["val"]).parts[-3:] == ("val", "crack", "b.png")


def test_class_folders_without_splits_and_a_masks_folder_among_them(tmp_path):
    _png(tmp_path / "good/a.png")
    _png(tmp_path / "crack/sub/b.png")
    _png(tmp_path / "masks/crack/sub/b.png", 255)
    train, test = ClassFolders(root=str(tmp_path), masks_root=str(tmp_path / "masks")).tables()
    assert test is None
    assert set(train["label"]) == {"good", "crack"}  # masks/ is not a class
    assert _masks_of(train) == {"a.png": None, "b.png": "b.png"}


def test_two_files_that_could_be_one_images_mask_are_refused_naming_both(tmp_path):
    _png(tmp_path / "data/crack/b.png")
    _png(tmp_path / "masks/crack/b.png", 255)
    _png(tmp_path / "masks/crack/b.tif", 255)
    with pytest.raises(DataError, match=r"crack/b\.png: 2 mask files could be this image's: "
                                        r"crack/b\.png, crack/b\.tif; keep one"):
        ClassFolders(root=str(tmp_path / "data"), masks_root=str(tmp_path / "masks")).tables()


def test_a_mask_under_the_split_and_one_without_it_are_ambiguous(tmp_path):
    _png(tmp_path / "data/train/crack/b.png")
    _png(tmp_path / "masks/train/crack/b.png", 255)
    _png(tmp_path / "masks/crack/b.png", 255)
    with pytest.raises(DataError, match=r"2 mask files could be"):
        ClassFolders(root=str(tmp_path / "data"), masks_root=str(tmp_path / "masks")).tables()


def test_mask_files_of_no_image_are_named_in_a_warning_and_kept_out(tmp_path, caplog):
    _png(tmp_path / "data/crack/b.png")
    _png(tmp_path / "masks/crack/b.png", 255)
    _png(tmp_path / "masks/crack/typo.png", 255)
    source = ClassFolders(root=str(tmp_path / "data"), masks_root=str(tmp_path / "masks"))
    with caplog.at_level(logging.WARNING):
        train, _ = source.tables()
    assert _masks_of(train) == {"b.png": "b.png"}
    assert len(source.notes) == 1 and "1 mask file(s) belong to no image" in source.notes[0]
    assert "crack/typo.png" in caplog.text


def test_a_wrong_suffix_that_matches_nothing_is_refused_with_the_path_expected(tmp_path):
    _png(tmp_path / "data/crack/b.png")
    _png(tmp_path / "masks/crack/b_mask.png", 255)
    with pytest.raises(DataError, match=r"none of its 1 mask file\(s\) belongs to an image: the "
                                        r"mask of crack/b\.png would be crack/b\.<ext> under it "
                                        r"\(data\.mask_suffix=''\); found e\.g\. crack/b_mask"):
        ClassFolders(root=str(tmp_path / "data"), masks_root=str(tmp_path / "masks")).tables()


def test_a_missing_masks_folder_or_one_inside_a_class_folder_is_refused(tmp_path):
    _png(tmp_path / "data/crack/b.png")
    _png(tmp_path / "data/crack/masks/b.png", 255)
    with pytest.raises(ConfigError, match=r"data\.masks_root='.*gone': folder not found"):
        ClassFolders(root=str(tmp_path / "data"), masks_root=str(tmp_path / "gone")).tables()
    with pytest.raises(ConfigError, match=r"lies in a class folder: its masks would be read as "
                                          r"images"):
        ClassFolders(root=str(tmp_path / "data"),
                     masks_root=str(tmp_path / "data/crack/masks")).tables()


def test_one_mask_without_split_folders_for_two_images_of_the_same_name_is_refused(tmp_path):
    _png(tmp_path / "data/train/crack/000.png")
    _png(tmp_path / "data/test/crack/000.png")
    _png(tmp_path / "masks/crack/000.png", 255)
    with pytest.raises(DataError, match=r"train/crack/000\.png and .*test/crack/000\.png: both "
                                        r"would take the mask crack/000\.png; give the masks "
                                        r"folder the split folders"):
        ClassFolders(root=str(tmp_path / "data"), masks_root=str(tmp_path / "masks")).tables()


def test_with_read_masks_off_the_masks_folder_is_still_no_class(tmp_path):
    """How eval.py tests a run trained with masks: the same data keys, no mask read."""
    _png(tmp_path / "good/a.png")
    _png(tmp_path / "crack/b.png")
    _png(tmp_path / "masks/crack/b.png", 255)
    train, _ = ClassFolders(root=str(tmp_path), masks_root=str(tmp_path / "masks"),
                            read_masks=False).tables()
    assert set(train["label"]) == {"good", "crack"}
    assert train["mask"].isna().all()


def test_a_symlink_back_up_the_masks_tree_is_walked_once(tmp_path):
    _png(tmp_path / "data/crack/b.png")
    _png(tmp_path / "masks/crack/b.png", 255)
    (tmp_path / "masks/crack/loop").symlink_to(tmp_path / "masks", target_is_directory=True)
    train, _ = ClassFolders(root=str(tmp_path / "data"),
                            masks_root=str(tmp_path / "masks")).tables()
    assert _masks_of(train) == {"b.png": "b.png"}
