from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vqc.data.preprocess import CHALLENGE_ROTATE_CROP, Preprocessor, RotateCrop, load_image
from vqc.errors import ConfigError, DataError

DIE_SIZES = {"Die01": (540, 630), "Die02": (720, 840), "Die03": (720, 840), "Die04": (540, 630)}


@pytest.mark.parametrize("lib", sorted(CHALLENGE_ROTATE_CROP))
def test_rotate_crop_matches_pil_pixel_for_pixel(tmp_path: Path, lib: str) -> None:
    rng = np.random.default_rng(1)
    width, height = DIE_SIZES[lib]
    image = Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8), mode="L")
    path = tmp_path / "die.png"
    image.save(path)
    spec = CHALLENGE_ROTATE_CROP[lib]
    expected = np.asarray(Image.open(path).rotate(spec.angle, expand=True).crop(spec.box))
    left, upper, right, lower = spec.box
    pre = Preprocessor(size=(lower - upper, right - left), rotate_crop=CHALLENGE_ROTATE_CROP)
    got = pre(path, lib)
    assert got.shape == (1, lower - upper, 160)
    np.testing.assert_array_equal(got[0], expected)


@pytest.mark.parametrize("lib", sorted(CHALLENGE_ROTATE_CROP))
def test_official_boxes_lie_inside_the_rotated_die_image(lib: str) -> None:
    # An all-white die image: a black pixel in the strip comes from outside the image. At these
    # sizes only Die01 loses a corner of its strip (13 x 18 px, 0.14 %).
    white = Image.new("L", DIE_SIZES[lib], 255)
    strip = np.asarray(CHALLENGE_ROTATE_CROP[lib].apply(white))
    assert strip.shape[1] == 160
    assert (strip == 0).mean() < 0.002


def test_image_smaller_than_its_crop_box_names_file_and_lib(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    Image.new("L", (100, 100)).save(path)
    pre = Preprocessor(size=(64, 16), rotate_crop=CHALLENGE_ROTATE_CROP)
    with pytest.raises(DataError, match=r"small\.png.*too small.*Die02"):
        pre(path, "Die02")


def test_unknown_lib_is_an_error_when_a_table_exists(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.new("L", (540, 630)).save(path)
    pre = Preprocessor(size=(64, 16), rotate_crop=CHALLENGE_ROTATE_CROP)
    with pytest.raises(DataError, match="unknown lib 'Die09'"):
        pre(path, "Die09")


def test_no_table_only_resizes(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.new("L", (30, 20), 77).save(path)
    out = Preprocessor(size=(10, 15))(path)
    assert out.shape == (1, 10, 15) and out.dtype == np.uint8 and (out == 77).all()


def _save(tmp_path: Path, image: Image.Image, name: str = "x.png") -> Path:
    path = tmp_path / name
    image.save(path)
    return path


def test_sixteen_bit_is_scaled_to_eight_bits(tmp_path: Path) -> None:
    array = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    path = _save(tmp_path, Image.fromarray(array))
    assert Image.open(path).mode.startswith("I")
    np.testing.assert_array_equal(np.asarray(load_image(path)), [[0, 100, 255]])


def test_rgb_becomes_luminance(tmp_path: Path) -> None:
    path = _save(tmp_path, Image.new("RGB", (4, 4), (255, 0, 0)))
    # ITU-R 601-2: L = R * 299/1000 = 76.245 -> 76
    assert np.asarray(load_image(path)).tolist() == [[76] * 4] * 4


def test_palette_and_rgba_are_converted(tmp_path: Path) -> None:
    palette = Image.new("P", (4, 4))
    palette.putpalette([0, 0, 0, 200, 200, 200] + [0] * 762)
    palette.putpixel((0, 0), 1)
    gray = np.asarray(load_image(_save(tmp_path, palette, "p.png")))
    assert gray[0, 0] == 200 and gray[1, 1] == 0
    rgba = Image.new("RGBA", (2, 1), (100, 100, 100, 255))
    rgba.putpixel((1, 0), (100, 100, 100, 0))  # fully transparent -> black background
    out = np.asarray(load_image(_save(tmp_path, rgba, "a.png")))
    assert out.tolist() == [[100, 0]]
    assert load_image(_save(tmp_path, rgba, "b.png"), mode="RGB").mode == "RGB"


def test_gray_input_in_rgb_mode_has_three_channels(tmp_path: Path) -> None:
    path = _save(tmp_path, Image.new("L", (8, 8), 50))
    out = Preprocessor(size=(4, 4), mode="RGB")(path)
    assert out.shape == (3, 4, 4) and (out == 50).all()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("hello, I am text"), "not a readable image"),
        (lambda p: None, "not found"),
    ],
)
def test_unreadable_files_name_the_file(tmp_path: Path, make, message: str) -> None:
    path = tmp_path / "bad.png"
    make(path)
    with pytest.raises(DataError, match=message) as info:
        load_image(path)
    assert "bad.png" in str(info.value)


def test_truncated_png_is_an_error(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = _save(tmp_path, Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated"):
        load_image(path)


def test_pixel_limit_refuses_large_images(tmp_path: Path) -> None:
    path = _save(tmp_path, Image.new("L", (200, 100)))
    with pytest.raises(DataError, match="decompression bomb"):
        load_image(path, max_pixels=10_000)
    assert load_image(path, max_pixels=20_000).size == (200, 100)


def test_fingerprint_changes_with_every_setting() -> None:
    base = Preprocessor(size=(20, 8), rotate_crop={"A": RotateCrop(10, (0, 0, 5, 5))})
    variants = [
        Preprocessor(size=(20, 9), rotate_crop=base.rotate_crop),
        Preprocessor(size=(20, 8), mode="RGB", rotate_crop=base.rotate_crop),
        Preprocessor(size=(20, 8), rotate_crop={"A": RotateCrop(11, (0, 0, 5, 5))}),
        Preprocessor(size=(20, 8), rotate_crop={"A": RotateCrop(10, (0, 0, 5, 6))}),
        Preprocessor(size=(20, 8)),
    ]
    prints = {base.fingerprint()} | {v.fingerprint() for v in variants}
    assert len(prints) == 1 + len(variants)
    same = Preprocessor(size=[20, 8], rotate_crop={"A": {"angle": 10, "box": [0, 0, 5, 5]}})
    assert same.fingerprint() == base.fingerprint()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": (0, 4)},
        {"size": (4, 4), "mode": "CMYK"},
        {"size": (4, 4), "rotate_crop": {"A": {"angle": 1}}},
        {"size": (4, 4), "rotate_crop": {"A": {"angle": 1, "box": [5, 0, 5, 9]}}},
    ],
)
def test_bad_preprocess_settings_are_config_errors(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        Preprocessor(**kwargs)


def test_letterbox_keeps_the_aspect_ratio_on_the_images_mean(tmp_path: Path) -> None:
    # a 40 x 20 (width x height) image: left half 0, right half 200; mean 100
    array = np.zeros((20, 40), dtype=np.uint8)
    array[:, 20:] = 200
    path = tmp_path / "wide.png"
    Image.fromarray(array).save(path)
    boxed = Preprocessor(size=(40, 40), resize="letterbox")(path)[0]
    assert boxed.shape == (40, 40)
    assert (boxed[:10] == 100).all() and (boxed[30:] == 100).all()  # padding: the mean
    assert boxed[20, 2] == 0 and boxed[20, 37] == 200  # the image, not stretched vertically
    stretched = Preprocessor(size=(40, 40))(path)[0]
    assert stretched[0, 2] == 0 and stretched[39, 37] == 200
    assert Preprocessor(size=(40, 40)).fingerprint() != Preprocessor(
        size=(40, 40), resize="letterbox").fingerprint()


def test_unknown_resize_mode_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"preprocess\.resize='crop'"):
        Preprocessor(size=(8, 8), resize="crop")


def _sixteen_bit(path: Path, peak: int) -> Path:
    array = np.linspace(0, peak, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(array).save(path)
    return path


def test_twelve_bit_data_in_a_sixteen_bit_file_is_warned_about_and_can_be_read(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from vqc.data import preprocess

    preprocess._RESCALE_WARNED.discard("12-bit")
    path = _sixteen_bit(tmp_path / "camera.png", 4095)
    dark = np.asarray(load_image(path))
    assert dark.max() == 16  # 4095 / 65535 * 255: nearly black
    assert "values stop at 4095 (12-bit data?)" in caplog.text
    assert "data.preprocess.bit_depth=12" in caplog.text
    right = Preprocessor(size=(64, 64), bit_depth=12)(path)
    assert right.max() == 255
    assert Preprocessor(size=(64, 64)).fingerprint() != \
        Preprocessor(size=(64, 64), bit_depth=12).fingerprint()
    caplog.clear()
    assert np.asarray(load_image(_sixteen_bit(tmp_path / "full.png", 60000))).max() == 233
    assert "12-bit" not in caplog.text


def test_an_image_too_small_to_inspect_is_refused(tmp_path: Path) -> None:
    Image.new("L", (1, 1), 128).save(tmp_path / "dot.png")
    with pytest.raises(DataError, match=r"dot\.png: image of 1x1 px is too small to inspect"):
        Preprocessor(size=(32, 32))(tmp_path / "dot.png")


def test_only_vqcs_pixel_limit_speaks(tmp_path: Path) -> None:
    """10,000 x 10,000 pixels is over Pillow's own limit (89 M): Pillow's warning and text do
    not appear beside vqc's refusal."""
    import warnings

    Image.new("1", (10_000, 10_000)).save(tmp_path / "huge.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DataError) as info:
            load_image(tmp_path / "huge.png")
    assert str(info.value).endswith("huge.png: 10000x10000 = 100,000,000 pixels exceeds the "
                                    "limit of 50,000,000 (possible decompression bomb; raise "
                                    "preprocess.max_pixels)")
    assert not [w for w in caught if "DecompressionBomb" in w.category.__name__]
