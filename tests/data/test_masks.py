"""Pixel masks: read from a CSV's mask column, preprocessed and augmented with their images."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from vqc.data.cache import ImageCache
from vqc.data.dataset import ImageDataset, build_transform
from vqc.data.layouts import CsvList
from vqc.data.masks import MASK_UNKNOWN, MaskPreprocessor, check_mask_sizes
from vqc.data.preprocess import Preprocessor
from vqc.data.sources import read_generic_csv
from vqc.errors import DataError


def _gray(path: Path, array: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8), mode="L").save(path)
    return str(path)


def _csv(root: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root / "labels.csv"


def test_the_mask_column_gives_absolute_paths_and_none_where_empty(tmp_path):
    _gray(tmp_path / "a.png", np.zeros((4, 4)))
    _gray(tmp_path / "b.png", np.zeros((4, 4)))
    _gray(tmp_path / "m" / "a.png", np.zeros((4, 4)))
    csv = _csv(tmp_path, [{"image": "a.png", "label": "dent", "mask": "m/a.png"},
                          {"image": "b.png", "label": "good", "mask": ""}])
    frame = read_generic_csv(csv, None, {"mask": "mask"})
    assert frame["mask"].iloc[0] == str((tmp_path / "m" / "a.png").resolve())
    assert pd.isna(frame["mask"].iloc[1])
    assert read_generic_csv(csv, None, {})["mask"].isna().all()  # column not named: no masks


def test_a_csv_without_the_named_mask_column_says_how_to_go_without(tmp_path):
    _gray(tmp_path / "a.png", np.zeros((4, 4)))
    csv = _csv(tmp_path, [{"image": "a.png", "label": "dent"}])
    with pytest.raises(DataError, match=r"no column 'mask' of pixel masks \(data\.columns\.mask\)"
                                        r".*data\.columns\.mask=null module\.mask_weight=0"):
        read_generic_csv(csv, None, {"mask": "mask"})


def test_a_missing_or_escaping_mask_is_refused_with_its_row(tmp_path):
    _gray(tmp_path / "a.png", np.zeros((4, 4)))
    csv = _csv(tmp_path, [{"image": "a.png", "label": "dent", "mask": "m/gone.png"}])
    with pytest.raises(DataError, match=r"labels.csv row 2: mask 'm/gone.png' not found"):
        read_generic_csv(csv, None, {"mask": "mask"})
    csv = _csv(tmp_path, [{"image": "a.png", "label": "dent", "mask": "../x.png"}])
    with pytest.raises(DataError, match=r"row 2: mask path '../x.png' leaves"):
        read_generic_csv(csv, None, {"mask": "mask"})


def test_a_mask_of_another_size_than_its_image_is_refused(tmp_path):
    frame = pd.DataFrame({"path": [_gray(tmp_path / "a.png", np.zeros((4, 6)))],
                          "mask": [_gray(tmp_path / "m.png", np.zeros((4, 4)))],
                          "where": ["labels.csv row 2"]})
    with pytest.raises(DataError, match=r"labels.csv row 2: mask m.png is 4x4 but image a.png "
                                        r"is 6x4"):
        check_mask_sizes(frame)


@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
def test_masks_are_resized_by_nearest_neighbour_to_0_and_1(tmp_path, resize):
    mask = np.zeros((4, 8))
    mask[:2, :4] = 200  # top-left quarter; 100 is under the threshold
    mask[2:, 4:] = 100
    out = MaskPreprocessor(Preprocessor(size=(8, 8), resize=resize))(_gray(tmp_path / "m.png",
                                                                            mask))
    assert out.dtype == np.uint8 and out.shape == (1, 8, 8)
    expected = np.zeros((8, 8), dtype=np.uint8)
    if resize == "stretch":
        expected[:4, :4] = 1
    else:  # 8x4 scaled to 8x4, centred: rows 2-5, the mask's top half on rows 2-3
        expected[2:4, :4] = 1
    assert np.array_equal(out[0], expected)


def test_a_one_pixel_crack_survives_shrinking_and_a_0_1_mask_counts_every_non_zero_pixel(
        tmp_path):
    crack = np.zeros((16, 16))
    crack[:, 1] = 1  # saved as 0/1, one pixel wide, off every nearest-neighbour sample
    out = MaskPreprocessor(Preprocessor(size=(4, 4)))(_gray(tmp_path / "m.png", crack))
    expected = np.zeros((4, 4), dtype=np.uint8)
    expected[:, 0] = 1
    assert np.array_equal(out[0], expected)


def test_a_mask_is_rotated_and_cropped_as_its_image(tmp_path):
    pattern = np.zeros((10, 16))
    pattern[2:5, 3:12] = 255
    pre = Preprocessor(size=(8, 6), rotate_crop={"die": {"angle": 90, "box": [1, 2, 9, 14]}})
    image = pre(_gray(tmp_path / "i.png", pattern), "die")
    mask = MaskPreprocessor(pre)(_gray(tmp_path / "m.png", pattern), "die")
    assert mask.any() and not mask.all()
    assert np.array_equal(mask[0], (image[0] > 127).astype(np.uint8))


def test_an_unreadable_mask_is_refused_with_its_row(tmp_path):
    bad = tmp_path / "m.png"
    bad.write_bytes(b"not a png")
    frame = pd.DataFrame({"path": [_gray(tmp_path / "a.png", np.zeros((4, 4)))],
                          "mask": [str(bad)], "where": ["labels.csv row 7"]})
    with pytest.raises(DataError, match=r"labels.csv row 7: mask .*m.png is not a readable image"):
        check_mask_sizes(frame)


def test_a_test_csv_needs_no_mask_column(tmp_path):
    for name in ("a.png", "b.png", "m.png"):
        _gray(tmp_path / name, np.zeros((4, 4)))
    _csv(tmp_path, [{"image": "a.png", "label": "dent", "mask": "m.png"}])
    pd.DataFrame([{"image": "b.png", "label": "dent"}]).to_csv(tmp_path / "test.csv",
                                                               index=False)
    train, test = CsvList(csv=str(tmp_path / "labels.csv"), columns={"mask": "mask", "split": None},
                          test_csv=str(tmp_path / "test.csv")).tables()
    assert train["mask"].notna().all() and test["mask"].isna().all()


def test_mask_cache_entries_are_apart_from_image_entries(tmp_path):
    images = Preprocessor(size=(8, 8))
    assert MaskPreprocessor(images).fingerprint() != images.fingerprint()
    assert MaskPreprocessor(images).fingerprint() != MaskPreprocessor(
        Preprocessor(size=(8, 8), resize="letterbox")).fingerprint()


def _dataset(tmp_path: Path, transform) -> ImageDataset:
    """Rows: a defect with its mask, GOOD without one, a defect without one, a defect whose
    mask marks nothing, GOOD with an empty mask."""
    image = np.zeros((8, 8))
    image[:, 1] = 255  # a bright column, marked by its mask
    mask = np.zeros((8, 8))
    mask[:, 1] = 255
    empty = _gray(tmp_path / "empty.png", np.zeros((8, 8)))
    frame = pd.DataFrame({
        "path": [_gray(tmp_path / f"{i}.png", image) for i in range(5)],
        "lib": [None] * 5, "code": [1, 0, 1, 1, 0],
        "mask": [_gray(tmp_path / "m.png", mask), None, None, empty, empty],
    })
    pre = Preprocessor(size=(8, 8))
    return ImageDataset(frame, ImageCache(tmp_path / "c", pre), transform,
                        mask_cache=ImageCache(tmp_path / "c", MaskPreprocessor(pre)),
                        clean_codes=frozenset({0}))


def test_a_mask_follows_its_image_through_geometric_augmentation(tmp_path):
    dataset = _dataset(tmp_path, build_transform([v2.RandomHorizontalFlip(p=1.0)]))
    image, code, mask = dataset[0]
    assert code == 1 and mask.shape == (8, 8) and mask.dtype == torch.uint8
    assert torch.equal(mask.bool(), image[0] > 0.5)  # the column moved to x = 6 with its mask
    assert mask[:, 6].all() and mask.sum() == 8


def test_without_a_mask_good_is_clean_and_a_defect_unknown_whatever_the_augmentation(tmp_path):
    shift = v2.RandomAffine(degrees=0, translate=(0.4, 0.4))
    dataset = _dataset(tmp_path, build_transform([shift]))
    for seed in range(5):
        assert dataset[(1, seed)][2].eq(0).all()
        assert dataset[(2, seed)][2].eq(MASK_UNKNOWN).all()
        assert dataset[(3, seed)][2].eq(MASK_UNKNOWN).all()  # a defect marked nowhere
        assert dataset[(4, seed)][2].eq(0).all()
