"""The input size ``data.preprocess.size=auto`` chooses, checked by hand."""

import numpy as np
import pytest
from PIL import Image

from vqc.data.image_sizes import MULTIPLE, choose_size, crop_sizes, read_sizes
from vqc.errors import DataError


def test_a_square_set_gets_the_networks_own_side():
    assert choose_size([(300, 300)] * 5, 240) == (240, 240)


def test_the_median_aspect_is_kept_within_the_pixel_budget():
    # h/w = 0.75, 240*240 pixels: h = sqrt(57600 * 0.75) = 207.8 -> 208, w = 277.1 -> 272
    height, width = choose_size([(900, 1200), (600, 800), (30, 40)], 240)
    assert (height, width) == (208, 272)
    assert height % MULTIPLE == 0 and width % MULTIPLE == 0


def test_small_images_are_not_enlarged_past_their_own_pixels():
    # 32x48 images: 1536 pixels < 240^2; h = sqrt(1536 * 2/3) = 32, w = 48
    assert choose_size([(32, 48)] * 3, 240) == (32, 48)


def test_extreme_aspects_are_clipped_to_four_to_one():
    height, width = choose_size([(10, 1000)], 240)
    assert width / height == pytest.approx(4.0, rel=0.1)


def test_no_sizes_and_a_tiny_side_are_refused():
    with pytest.raises(DataError, match="no image sizes"):
        choose_size([], 240)
    with pytest.raises(DataError, match="auto_side=8"):
        choose_size([(10, 10)], 8)


def test_headers_are_read_from_an_even_sample(tmp_path):
    paths = []
    for i in range(10):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.zeros((20 + i, 30), np.uint8)).save(path)
        paths.append(str(path))
    assert read_sizes(paths, limit=5) == [(20, 30), (22, 30), (24, 30), (26, 30), (28, 30)]


def test_unreadable_images_are_passed_over_and_none_readable_is_named(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("not a png")
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((5, 7), np.uint8)).save(good)
    assert read_sizes([str(bad), str(good)]) == [(5, 7)]  # the loader reports bad.png
    with pytest.raises(DataError, match=r"no readable image to size; .*bad\.png"):
        read_sizes([str(bad)])


def test_crop_boxes_give_the_sizes_of_a_rotated_and_cropped_set():
    table = {"Die01": {"angle": 55, "box": [340, 120, 500, 680]}}
    assert crop_sizes(table) == [(560, 160)]
    with pytest.raises(DataError, match="Die02"):
        crop_sizes({"Die02": {"angle": 3}})
