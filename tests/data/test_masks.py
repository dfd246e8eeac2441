"""Pixel masks: read from a CSV's mask column, preprocessed and augmented with their images."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from vqc.data.cache import ImageCache
from vqc.data.dataset import MASK_UNKNOWN, ImageDataset, build_transform
from vqc.data.masks import MaskPreprocessor, check_mask_sizes
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


def test_mask_cache_entries_are_apart_from_image_entries(tmp_path):
    images = Preprocessor(size=(8, 8))
    assert MaskPreprocessor(images).fingerprint() != images.fingerprint()
    assert MaskPreprocessor(images).fingerprint() != MaskPreprocessor(
        Preprocessor(size=(8, 8), resize="letterbox")).fingerprint()


def _dataset(tmp_path: Path, transform) -> ImageDataset:
    image = np.zeros((8, 8))
    image[:, 1] = 255  # a bright column, marked by its mask
    mask = np.zeros((8, 8))
    mask[:, 1] = 255
    frame = pd.DataFrame({
        "path": [_gray(tmp_path / f"{i}.png", image) for i in range(3)],
        "lib": [None] * 3, "code": [1, 0, 1],
        "mask": [_gray(tmp_path / "m.png", mask), None, None],
    })
    pre = Preprocessor(size=(8, 8))
    return ImageDataset(frame, ImageCache(tmp_path / "c", pre), transform,
                        masks=ImageCache(tmp_path / "c", MaskPreprocessor(pre)),
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
