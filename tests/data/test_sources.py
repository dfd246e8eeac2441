"""Each layout loads, and each bad input gives an error that names its culprit."""

from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import TINY_TABLE, tiny_image
from vqc.classes import ClassSet
from vqc.data.index import build_index, infer_classes
from vqc.data.layouts import ChallengeFiles, ClassFolders, CsvList
from vqc.errors import ConfigError, DataError

CLASSES = ClassSet(("GOOD", "Scratch", "Dent", "Drift"), open_set="Drift", good="GOOD")


def _challenge(tiny, **extra) -> ChallengeFiles:
    return ChallengeFiles(train_csv=str(tiny.train_csv), train_images=str(tiny.train_images),
                          test_csv=str(tiny.test_csv), test_images=str(tiny.test_images), **extra)


def test_challenge_layout(tiny_challenge):
    index = build_index(_challenge(tiny_challenge), CLASSES, known_libs=list(TINY_TABLE))
    assert index.counts(index.train) == [12, 8, 5, 0]
    assert index.counts(index.test) == [3, 2, 2, 2]  # Drift stays in test
    row = index.train.iloc[0]
    assert Path(row["path"]).is_file() and row["lib"] in TINY_TABLE
    assert index.train["orig_index"].tolist() == list(range(25))


def test_open_set_rows_in_training_csv_are_not_trained_on(tiny_challenge):
    frame = pd.read_csv(tiny_challenge.train_csv, index_col=0)
    frame.loc[0, "Label"] = "Drift"
    frame.to_csv(tiny_challenge.train_csv)
    index = build_index(_challenge(tiny_challenge), CLASSES)
    assert index.counts(index.train) == [11, 8, 5, 0]


def test_unlabelled_test_index(tiny_challenge):
    frame = pd.read_csv(tiny_challenge.test_csv, index_col=0).drop(columns="Label")
    frame.to_csv(tiny_challenge.root / "win_and_lib.csv")
    source = _challenge(tiny_challenge, test_labelled=False)
    source.test_csv = str(tiny_challenge.root / "win_and_lib.csv")
    index = build_index(source, CLASSES)
    assert (index.test["code"] == -1).all() and len(index.test) == 9


def _write_images(folder: Path, names: list[str]) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        tiny_image(rng, 0).save(folder / name)


def test_generic_csv_with_custom_columns_and_inferred_classes(tmp_path):
    names = [f"img/{i}.png" for i in range(9)]
    _write_images(tmp_path, names)
    pd.DataFrame({
        "file": names,
        "kind": ["ok", "ok", "ok", "dent", "dent", "dent", "crack", "crack", "weird"],
        "part": ["train"] * 7 + ["test"] * 2,
    }).to_csv(tmp_path / "list.csv", index=False)
    source = CsvList(csv=str(tmp_path / "list.csv"),
                     columns={"image": "file", "label": "kind", "split": "part"})
    index = build_index(source, None, good="ok", open_set="weird")
    assert index.classes.names == ("ok", "crack", "dent", "weird")
    assert index.classes.open_set == "weird" and index.classes.good == "ok"
    assert index.counts(index.train) == [3, 1, 3, 0]
    assert index.counts(index.test) == [0, 1, 0, 1]


def test_class_folders_flat_and_split(tmp_path):
    _write_images(tmp_path / "flat", ["good/a.png", "good/b.png", "dent/c.png"])
    index = build_index(ClassFolders(root=str(tmp_path / "flat")), None,
                        good="good")
    assert index.classes.names == ("good", "dent") and index.test is None
    _write_images(tmp_path / "split", ["train/good/a.png", "train/dent/b.jpg",
                                       "test/good/c.png", "test/drift/d.png"])
    index = build_index(ClassFolders(root=str(tmp_path / "split")), None,
                        good="good", open_set="drift")
    assert index.classes.names == ("good", "dent", "drift")
    assert index.counts(index.train) == [1, 1, 0] and index.counts(index.test) == [1, 0, 1]


# -- bad input ---------------------------------------------------------------------------------
def _edit_train_csv(tiny, edit) -> None:
    frame = pd.read_csv(tiny.train_csv, index_col=0)
    edit(frame)
    frame.to_csv(tiny.train_csv)


def test_missing_image_file_names_file_and_row(tiny_challenge):
    (tiny_challenge.train_images / "train_0003.png").unlink()
    with pytest.raises(DataError, match=r"train_0003\.png.*Y_train\.csv row 5"):
        build_index(_challenge(tiny_challenge), CLASSES)


def test_missing_image_file_is_listed_when_skipping(tiny_challenge):
    (tiny_challenge.train_images / "train_0003.png").unlink()
    index = build_index(_challenge(tiny_challenge), CLASSES, on_bad_image="skip")
    assert len(index.train) == 24
    assert index.skipped == [(str(tiny_challenge.train_images.resolve() / "train_0003.png"),
                              "file not found")]


def test_unknown_label_names_row(tiny_challenge):
    _edit_train_csv(tiny_challenge, lambda f: f.__setitem__("Label", f["Label"].where(
        f.index != 6, "Bent")))
    with pytest.raises(DataError, match=r"Y_train\.csv row 8: unknown label 'Bent'"):
        build_index(_challenge(tiny_challenge), CLASSES)


def test_unknown_lib_names_row(tiny_challenge):
    _edit_train_csv(tiny_challenge, lambda f: f.__setitem__("lib", f["lib"].where(
        f.index != 2, "Die77")))
    with pytest.raises(DataError, match=r"row 4: unknown lib 'Die77'"):
        build_index(_challenge(tiny_challenge), CLASSES, known_libs=list(TINY_TABLE))


def test_duplicate_filenames_are_named(tiny_challenge):
    _edit_train_csv(tiny_challenge, lambda f: f.__setitem__("filename", f["filename"].where(
        f.index != 1, "train_0000.png")))
    with pytest.raises(DataError, match=r"duplicate filename.*'train_0000\.png'.*row 2"):
        build_index(_challenge(tiny_challenge), CLASSES)


def test_csv_without_needed_columns(tiny_challenge):
    _edit_train_csv(tiny_challenge, lambda f: f.drop(columns="lib", inplace=True))
    with pytest.raises(DataError, match=r"Y_train\.csv: missing column\(s\) \['lib'\]"):
        build_index(_challenge(tiny_challenge), CLASSES)


def test_csv_not_in_utf8(tiny_challenge):
    text = tiny_challenge.train_csv.read_text().replace("GOOD", "Défaut", 1)
    tiny_challenge.train_csv.write_bytes(text.encode("latin-1"))
    with pytest.raises(DataError, match=r"Y_train\.csv: not UTF-8"):
        build_index(_challenge(tiny_challenge), CLASSES)


def test_empty_csv(tiny_challenge):
    tiny_challenge.train_csv.write_text("")
    with pytest.raises(DataError, match=r"Y_train\.csv: CSV file is empty"):
        build_index(_challenge(tiny_challenge), CLASSES)


def test_class_with_no_training_images(tiny_challenge):
    classes = ClassSet(("GOOD", "Scratch", "Dent", "Bent", "Drift"), open_set="Drift")
    with pytest.raises(DataError, match=r"\['Bent'\] have no training images"):
        build_index(_challenge(tiny_challenge), classes)


def test_unset_root_is_a_config_error():
    with pytest.raises(ConfigError, match=r"data\.train_csv is not set"):
        build_index(ChallengeFiles(train_csv="???"), CLASSES)


def test_open_set_must_be_the_last_class():
    with pytest.raises(ConfigError, match="must be the last"):
        ClassSet(("GOOD", "Drift", "Dent"), open_set="Drift")


def test_inferred_classes_order():
    classes = infer_classes(["b", "good", "a", "drift", "b"], good="good", open_set="drift")
    assert classes.names == ("good", "a", "b", "drift")
    assert infer_classes(["x", "y"], good="good", open_set="drift").open_set is None


def test_labels_may_be_codes_or_names():
    classes = ClassSet.challenge()
    assert classes.codes(["GOOD", "4", 6, "Short circuit MOS"]) == [0, 4, 6, 5]
    with pytest.raises(DataError, match=r"unknown label .7."):
        classes.code("7")


def test_folder_without_images(tmp_path):
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="no images"):
        build_index(ClassFolders(root=str(tmp_path)), None)
