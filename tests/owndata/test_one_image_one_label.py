"""One image, one label: a link in a class folder that leads up the tree is refused, a test image
that is a training image is reported, and ``vqc-predict`` names what it leaves out of a folder."""

from __future__ import annotations

import json
import os
import shutil
import sys

import pandas as pd
import pytest
from hydra.core.global_hydra import GlobalHydra

from tests.inspection.conftest import make_inspector, write_images
from tests.owndata.test_own_images import _folders, write_folders
from vqc.cli import predict as predict_cli
from vqc.cli import train as train_cli


def _train(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """``python train.py ARGV`` in this process; its exit status."""
    GlobalHydra.instance().clear()
    monkeypatch.setattr(sys, "argv", ["train.py", *argv])
    try:
        train_cli.main()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    finally:
        GlobalHydra.instance().clear()
    return 0


def test_a_link_up_the_tree_is_refused_naming_both_places(tmp_path, monkeypatch, capsys):
    root = write_folders(tmp_path / "parts", classes=("dent", "good", "scratch"))
    (root / "train" / "good" / "loop").symlink_to("..")  # train/good/loop -> train/
    code = _train([*_folders(root, tmp_path), f"hydra.run.dir={tmp_path / 'run'}"], monkeypatch)
    assert code == 2
    out = capsys.readouterr()
    text = out.out + out.err
    assert "train/dent/0.png and train/good/loop/dent/0.png are the same file" in text
    assert "under two classes (dent, good)" in text
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing trained


def test_a_second_link_to_a_file_of_the_same_class_reads_it_once(tmp_path) -> None:
    from vqc.data.folders import read_class_folders

    root = write_folders(tmp_path / "parts", splits=("train",))
    (root / "train" / "good" / "again.png").symlink_to(root / "train" / "good" / "0.png")
    table = read_class_folders(root)
    assert (table["label"] == "good").sum() == 10


def test_a_test_image_that_is_a_training_image_is_reported_as_leakage(tmp_path, monkeypatch):
    root = write_folders(tmp_path / "parts")
    shutil.copy(root / "train" / "good" / "4.png", root / "test" / "good" / "copy.png")
    run = tmp_path / "run"
    assert _train([*_folders(root, tmp_path, "model=basic_cnn"), f"hydra.run.dir={run}"],
                  monkeypatch) == 0
    warnings = json.loads((run / "summary.json").read_text())["warnings"]
    (leak,) = [w for w in warnings if w.startswith("leakage")]
    assert "1 of 7 test image(s)" in leak
    assert "test/good/copy.png = " in leak and "train/good/4.png" in leak


def test_predict_names_what_it_leaves_out_and_reads_sub_folders_on_request(tmp_path, capsys):
    artifact = make_inspector().save(tmp_path / "inspector.safetensors")
    images = tmp_path / "images"
    names = write_images(images, 4, 2)
    sub = images / "line2"
    deeper = write_images(sub, 2, 2)
    (images / "notes.txt").write_text("not an image\n")
    os.mkfifo(images / "camera.fifo")
    (images / ".DS_Store").write_bytes(b"\0")
    out = tmp_path / "out" / "sub.csv"
    args = ["--inspector", str(artifact), "--images", str(images), "--out", str(out)]
    assert predict_cli.main(args) == 0
    err = capsys.readouterr().err
    assert "left out of" in err
    assert "1 sub-folder(s) (--recursive reads them): line2/" in err
    assert "1 file(s) that are not images: notes.txt" in err
    assert "1 special file(s) (FIFOs, sockets, broken links): camera.fifo" in err
    assert ".DS_Store" not in err
    assert pd.read_csv(out, index_col=0)["filename"].tolist() == sorted(names)

    deep = tmp_path / "out" / "deep.csv"
    assert predict_cli.main([*args[:-1], str(deep), "--recursive"]) == 0
    filenames = pd.read_csv(deep, index_col=0)["filename"].tolist()
    assert filenames == sorted([*names, *(f"line2/{name}" for name in deeper)])


def test_each_run_lists_the_images_it_skipped_in_its_own_folder(tmp_path, monkeypatch):
    """Two runs share one cache; each run's skipped.csv is its own, beside its summary."""
    root = write_folders(tmp_path / "parts")
    (root / "train" / "good" / "broken.png").write_text("not an image")
    runs = []
    for name in ("first", "second"):
        if name == "second":
            (root / "train" / "good" / "broken.png").unlink()
            (root / "train" / "scratch" / "torn.png").write_bytes(b"\x89PNG\r\n")
        run = tmp_path / name
        assert _train([*_folders(root, tmp_path, "model=basic_cnn", "data.on_bad_image=skip",
                                 "inspector=false"), f"hydra.run.dir={run}"], monkeypatch) == 0
        runs.append(pd.read_csv(run / "skipped.csv")["path"].map(lambda p: p.split("/")[-1]))
    assert runs[0].tolist() == ["broken.png"] and runs[1].tolist() == ["torn.png"]
    assert not list((tmp_path / "data").rglob("skipped.csv"))  # nothing in the shared cache
