"""The synthetic data set: challenge layout, official crop, determinism, and class cues."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vqc.classes import CHALLENGE_CLASS_NAMES
from vqc.data.preprocess import CHALLENGE_ROTATE_CROP, load_image
from vqc.data.synthetic import (
    DIE_SIZES,
    DRIFT_KINDS,
    LIBS,
    MANIFEST_NAME,
    REAL_TRAIN_COUNTS,
    STRIP_WIDTH,
    TRAINED_CLASSES,
    WINDOWS,
    SyntheticSummary,
    class_counts,
    ensure_generated,
    generate,
    image_rng,
    main,
    render_image,
    split_counts,
)
from vqc.errors import ConfigError

TINY = {"n_train": 40, "n_test": 16, "seed": 3, "class_floor": 4, "workers": 1}
SMALL = {"n_train": 8, "n_test": 4, "seed": 5, "class_floor": 1, "workers": 1}


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory: pytest.TempPathFactory) -> SyntheticSummary:
    return generate(tmp_path_factory.mktemp("synthetic") / "set", **TINY)


def crop(image: Image.Image, lib: str) -> np.ndarray:
    """The official preprocessing of one die image, as float."""
    return np.asarray(CHALLENGE_ROTATE_CROP[lib].apply(image), dtype=np.float32)


def pixels(path: Path) -> np.ndarray:
    return np.asarray(load_image(path))


# ---------------------------------------------------------------------------------------------
# Layout and format
# ---------------------------------------------------------------------------------------------


def test_csvs_have_the_challenge_format(tiny_set: SyntheticSummary) -> None:
    for csv, n in ((tiny_set.train_csv, 40), (tiny_set.test_csv, 16)):
        assert csv.read_text(encoding="utf-8").splitlines()[0] == ",filename,window,lib,Label"
        frame = pd.read_csv(csv)
        assert list(frame.columns) == ["Unnamed: 0", "filename", "window", "lib", "Label"]
        assert frame["Unnamed: 0"].tolist() == list(range(n))
        assert set(frame["window"]) <= set(WINDOWS)
        assert set(frame["lib"]) <= set(LIBS)
        assert set(frame["Label"]) <= set(CHALLENGE_CLASS_NAMES)


def test_every_listed_file_is_an_8bit_gray_png_of_its_die_size(
        tiny_set: SyntheticSummary) -> None:
    names = []
    for csv, folder in ((tiny_set.train_csv, tiny_set.train_dir),
                        (tiny_set.test_csv, tiny_set.test_dir)):
        frame = pd.read_csv(csv)
        names += frame["filename"].tolist()
        for row in frame.itertuples():
            with Image.open(folder / row.filename) as image:
                assert image.format == "PNG"
                assert image.mode == "L"
                assert image.size == DIE_SIZES[row.lib]
        assert sorted(p.name for p in folder.glob("*.png")) == sorted(frame["filename"])
    assert len(names) == len(set(names)) == 56  # unique across train and test
    assert DIE_SIZES["Die01"] == DIE_SIZES["Die04"] == (540, 630)
    assert DIE_SIZES["Die02"] == DIE_SIZES["Die03"] == (720, 840)


def test_drift_only_in_test_and_class_floor_in_train(tiny_set: SyntheticSummary) -> None:
    train = pd.read_csv(tiny_set.train_csv)["Label"].value_counts().to_dict()
    test = pd.read_csv(tiny_set.test_csv)["Label"].value_counts().to_dict()
    assert "Drift" not in train
    assert test.get("Drift", 0) >= 1
    assert set(train) == set(TRAINED_CLASSES)
    assert min(train.values()) >= TINY["class_floor"]
    assert train == {k: v for k, v in tiny_set.train_counts.items() if v}
    assert test == {k: v for k, v in tiny_set.test_counts.items() if v}
    assert tiny_set.n_train == 40 and tiny_set.n_test == 16


def test_default_counts_follow_the_real_imbalance() -> None:
    train, test = split_counts(1500, 300, 25, 0.07)
    assert sum(train.values()) == 1500 and sum(test.values()) == 300
    assert min(train.values()) == 25
    assert max(train, key=train.get) == "Missing"
    assert train["GOOD"] > train["Lift-off blanc"] > train["Lift-off noir"]
    share = train["Missing"] / 1500
    real = REAL_TRAIN_COUNTS["Missing"] / sum(REAL_TRAIN_COUNTS.values())
    assert abs(share - real) < 0.03
    assert 0.05 <= test["Drift"] / 300 <= 0.10
    assert "Drift" not in train
    assert class_counts(6, 1) == dict.fromkeys(TRAINED_CLASSES, 1)


# ---------------------------------------------------------------------------------------------
# The official crop gives back the drawn strip
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lib", LIBS)
def test_official_rotate_crop_recovers_the_drawn_strip(lib: str) -> None:
    left, upper, right, lower = CHALLENGE_ROTATE_CROP[lib].box
    assert right - left == STRIP_WIDTH
    for i, label in enumerate(("GOOD", "Lift-off blanc")):
        rendered = render_image(label, lib, WINDOWS[i], np.random.default_rng([11, i]))
        assert rendered.image.mode == "L" and rendered.image.size == DIE_SIZES[lib]
        assert rendered.strip.shape == (lower - upper, STRIP_WIDTH)
        got = crop(rendered.image, lib)
        drawn = rendered.strip.astype(np.float32)
        assert got.shape == drawn.shape
        assert np.abs(got - drawn).mean() < 6.0  # sensor noise and resampling only
        assert np.corrcoef(got.ravel(), drawn.ravel())[0, 1] > 0.95
        # A wrong angle or box gives something else entirely.
        shifted = np.abs(got[:, 20:] - drawn[:, :-20]).mean()
        assert shifted > 2 * np.abs(got - drawn).mean()


def test_saved_files_are_the_rendered_images(tiny_set: SyntheticSummary) -> None:
    frame = pd.read_csv(tiny_set.test_csv)
    for row in frame.head(3).itertuples():
        rendered = render_image(row.Label, row.lib, row.window,
                                image_rng(TINY["seed"], "test", row.Index))
        assert np.array_equal(pixels(tiny_set.test_dir / row.filename),
                              np.asarray(rendered.image))


def test_full_die_image_is_textured_not_black() -> None:
    image = np.asarray(render_image("GOOD", "Die02", 2003, np.random.default_rng(1)).image)
    assert 40 < image.mean() < 160
    assert (image < 10).mean() < 0.01  # no empty corners
    assert image.std() > 15


# ---------------------------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------------------------


def test_same_seed_same_bytes_and_pixels_whatever_the_workers(
        tiny_set: SyntheticSummary, tmp_path: Path) -> None:
    params = {**TINY, "n_train": 24, "n_test": 8, "class_floor": 2}
    one = generate(tmp_path / "one", **{**params, "workers": 1})
    two = generate(tmp_path / "two", **{**params, "workers": 2})
    for split in ("train", "test"):
        first = (one.out_dir / f"Y_{split}.csv").read_bytes()
        assert first == (two.out_dir / f"Y_{split}.csv").read_bytes()
    for name in pd.read_csv(one.train_csv)["filename"]:
        assert np.array_equal(pixels(one.train_dir / name), pixels(two.train_dir / name))


def test_different_seed_differs(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", **SMALL)
    b = generate(tmp_path / "b", **{**SMALL, "seed": SMALL["seed"] + 1})
    assert a.train_csv.read_bytes() != b.train_csv.read_bytes()
    name = pd.read_csv(a.train_csv)["filename"][0]
    assert not np.array_equal(pixels(a.train_dir / name), pixels(b.train_dir / name))


# ---------------------------------------------------------------------------------------------
# ensure_generated, errors, command line
# ---------------------------------------------------------------------------------------------


def test_ensure_generated_skips_complete_sets_and_redoes_incomplete_ones(
        tmp_path: Path) -> None:
    out = tmp_path / "set"
    assert ensure_generated(out, **SMALL).generated
    stamp = (out / "Y_train.csv").stat().st_mtime_ns
    again = ensure_generated(out, **SMALL)
    assert not again.generated
    assert (out / "Y_train.csv").stat().st_mtime_ns == stamp
    assert again.train_counts == ensure_generated(out, **SMALL).train_counts

    (out / MANIFEST_NAME).unlink()  # as after a generation killed before its end
    assert ensure_generated(out, **SMALL).generated
    assert (out / MANIFEST_NAME).is_file()

    next(iter((out / "input_test").glob("*.png"))).unlink()
    assert ensure_generated(out, **SMALL).generated

    bigger = ensure_generated(out, **{**SMALL, "n_train": 10})
    assert bigger.generated and bigger.n_train == 10
    assert len(list((out / "input_train").glob("*.png"))) == 10


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_train": 100, "class_floor": 25}, "too small for class_floor=25"),
        ({"n_test": -1}, "n_test=-1"),
        ({"n_train": -5}, "n_train=-5"),
        ({"class_floor": -1}, "class_floor=-1"),
        ({"workers": 0}, "workers=0"),
        ({"drift_fraction": 1.5}, "drift_fraction"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_bad_parameters_raise_config_errors(tmp_path: Path, params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        generate(tmp_path / "set", **{**SMALL, **params})
    assert not (tmp_path / "set").exists()


def test_unwritable_output_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="a_file"):
        generate(blocker / "set", **SMALL)
    with pytest.raises(ConfigError, match="a_file"):
        generate(blocker, **SMALL)


def test_refuses_to_overwrite_a_foreign_data_set(tmp_path: Path) -> None:
    labels = ",filename,window,lib,Label\n0,IMG_0001.png,2003,Die01,GOOD\n"
    (tmp_path / "Y_train.csv").write_text(labels)
    with pytest.raises(ConfigError, match="did not write"):
        generate(tmp_path, **SMALL)
    assert (tmp_path / "Y_train.csv").read_text() == labels


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    args = ["--out", str(out), "--n-train", "8", "--n-test", "4", "--class-floor", "1",
            "--seed", "5", "--workers", "1"]
    assert main(args) == 0
    assert (out / "Y_train.csv").is_file() and (out / "Y_test.csv").is_file()
    assert len(list((out / "input_train").glob("*.png"))) == 8
    assert main([*args, "--if-needed"]) == 0
    assert "kept" in capsys.readouterr().out
    assert main(["--out", str(out), "--n-train", "10"]) == 2
    assert "class_floor" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Class cues: an image of each class against the GOOD image drawn from the same generator
# (same die, placement, lighting and noise), in the official crop.
# ---------------------------------------------------------------------------------------------

PAIRS = 6


def pairs(label: str, **kwargs: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(GOOD, label) official crops for a few dies and windows."""
    out = []
    for i in range(PAIRS):
        lib, window = LIBS[i % 4], WINDOWS[(i // 2) % 2]
        good = render_image("GOOD", lib, window, np.random.default_rng([7, i]))
        other = render_image(label, lib, window, np.random.default_rng([7, i]), **kwargs)
        out.append((crop(good.image, lib), crop(other.image, lib)))
    return out


def wire_columns(strip: np.ndarray, rows: tuple[float, float]) -> list[np.ndarray]:
    """Rows ``rows`` (fractions of height) of a band around each of the two wires."""
    h = strip.shape[0]
    band = slice(int(rows[0] * h), int(rows[1] * h))
    return [strip[band, x - 12:x + 13] for x in (50, 110)]


def feet(strip: np.ndarray) -> np.ndarray:
    """Pixels around the top and bottom bond feet of both wires."""
    h = strip.shape[0]
    top = strip[int(0.02 * h):int(0.2 * h), 28:132]
    bottom = strip[int(0.8 * h):int(0.98 * h), 28:132]
    return np.concatenate([top.ravel(), bottom.ravel()])


def test_missing_has_less_wire_brightness_than_good() -> None:
    drops = [min(m.mean() for m in wire_columns(missing, (0.3, 0.7)))
             - min(g.mean() for g in wire_columns(good, (0.3, 0.7)))
             for good, missing in pairs("Missing")]
    assert np.mean(drops) < -8
    assert max(drops) < 0


def test_flat_loop_lacks_the_arch_highlight() -> None:
    def crest(strip: np.ndarray) -> float:
        return min(band.max(axis=1).mean() for band in wire_columns(strip, (0.2, 0.5)))

    drops = [crest(flat) - crest(good) for good, flat in pairs("Boucle plate")]
    assert np.mean(drops) < -25
    assert max(drops) < 0


def test_lift_off_blanc_brightens_and_noir_darkens_a_foot() -> None:
    white = [(feet(lifted) - feet(good) > 40).sum() for good, lifted in pairs("Lift-off blanc")]
    dark = [(feet(lifted) - feet(good) < -40).sum() for good, lifted in pairs("Lift-off noir")]
    assert np.mean(white) > 80 and min(white) > 20
    assert np.mean(dark) > 80 and min(dark) > 20
    top_white = [np.sort(feet(lifted))[-60:].mean() - np.sort(feet(good))[-60:].mean()
                 for good, lifted in pairs("Lift-off blanc")]
    assert np.mean(top_white) > 15


def test_short_circuit_is_a_bright_strand() -> None:
    for good, short in pairs("Short circuit MOS"):
        diff = short - good
        changed = np.abs(diff) > 4
        assert 0 < changed.mean() < 0.02  # a strand, nothing else changes
        assert 40 < diff.max() < 100  # brighter than the background, not saturated
        rows = np.nonzero(changed)[0] / diff.shape[0]
        assert 0.2 < rows.mean() < 0.7  # between the feet, towards the MOS block
        assert diff.min() > -20


def test_drift_kinds_spoil_the_image() -> None:
    def render(kind: str | None, i: int) -> np.ndarray:
        label = "Drift" if kind else "GOOD"
        image = render_image(label, LIBS[i % 4], 2003, np.random.default_rng([9, i]),
                             drift_kind=kind).image
        return crop(image, LIBS[i % 4])

    def sharp_edges(strip: np.ndarray) -> float:
        """Share of steps > 20 grey levels between neighbours (noise alone makes almost none)."""
        h = strip.shape[0]
        inner = strip[int(0.05 * h):int(0.95 * h), :148]  # away from the empty rotated corner
        return float((np.abs(np.diff(inner, axis=1)) > 20).mean())

    for i in range(2):
        normal = render(None, i)
        assert render("overexposed", i).mean() > 1.5 * normal.mean()
        assert render("underexposed", i).mean() < 0.5 * normal.mean()
        assert sharp_edges(render("blur", i)) < 0.2 * sharp_edges(normal)
    assert set(DRIFT_KINDS) >= {"foreign_object", "scratch", "blur"}
    with pytest.raises(ConfigError, match="drift_kind"):
        render_image("GOOD", "Die01", 2003, np.random.default_rng(0), drift_kind="blur")


def test_windows_are_lit_differently() -> None:
    a = render_image("GOOD", "Die03", 2003, np.random.default_rng(4)).strip.astype(float)
    b = render_image("GOOD", "Die03", 2005, np.random.default_rng(4)).strip.astype(float)
    assert np.abs(a - b).mean() > 5
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9  # same scene, other light
