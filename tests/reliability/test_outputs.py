"""Outputs that say what they were made from, and small file-handling failures.

``vqc-predict`` resumes only rows made from the same model, images and options, holds a lock
per ``--out``, never writes over an input, and says in one line when the disk is full; atomic
writes give the mode a plain ``open()`` would; checkpoints are replaced whole or not at all; a
cut model file is called cut; the wheel carries the Hydra configs.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch
from PIL import Image

from tests.inspection.conftest import interrupt_prediction, make_inspector, write_images
from vqc.cli import predict as predict_cli
from vqc.io import write_atomic
from vqc.training.callbacks import FiniteModelCheckpoint

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two inspectors of the same shape, different weights (A and B)."""
    folder = tmp_path_factory.mktemp("models")
    return (make_inspector(0).save(folder / "a.safetensors"),
            make_inspector(1).save(folder / "b.safetensors"))


@pytest.fixture
def images(tmp_path: Path) -> Path:
    write_images(tmp_path / "images", 9, 3)
    return tmp_path / "images"


def _args(model: Path, images: Path, *extra: str) -> list[str]:
    return ["--inspector", str(model), "--images", str(images), "--batch-size", "4", *extra]


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("vqc-predict: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- fingerprints -------------------------------------------------------------------------------
def test_resume_with_another_inspector_is_refused(models, images, tmp_path, monkeypatch, capsys):
    a, b = models
    out = tmp_path / "out" / "sub.csv"
    partial = out.with_name("sub.csv.partial.csv")
    interrupt_prediction([*_args(a, images), "--out", str(out)], monkeypatch)
    rows_of_a = partial.read_bytes()
    record = json.loads(out.with_name("sub.csv.partial.json").read_text())
    assert record["model"]["path"] == str(a.resolve())
    capsys.readouterr()

    assert predict_cli.main([*_args(b, images), "--out", str(out)]) == 1
    line = _one_line_error(capsys)
    assert re.search(r"sub\.csv\.partial\.csv: its rows were made from other inputs: this run "
                     r"has another model \(\S*b\.safetensors: sha256 [0-9a-f]{12}…, the partial "
                     r"rows' [0-9a-f]{12}… from \S*a\.safetensors\); run again with --restart",
                     line), line
    assert partial.read_bytes() == rows_of_a                # A's rows untouched
    assert not out.exists()

    assert predict_cli.main([*_args(b, images), "--out", str(out), "--restart"]) == 0
    reference = tmp_path / "ref" / "sub.csv"
    assert predict_cli.main([*_args(b, images), "--out", str(reference)]) == 0
    assert out.read_bytes() == reference.read_bytes()       # B's rows only
    assert not partial.exists() and not out.with_name("sub.csv.partial.json").exists()


def test_resume_with_other_images_or_options_is_refused(models, images, tmp_path, monkeypatch,
                                                         capsys):
    a, _ = models
    out = tmp_path / "sub.csv"
    interrupt_prediction([*_args(a, images), "--out", str(out)], monkeypatch)
    capsys.readouterr()
    assert predict_cli.main([*_args(a, images, "--on-bad-image", "drift"), "--out",
                             str(out)]) == 1
    assert "this run has other options (on_bad_image='drift', before 'error')" in (
        _one_line_error(capsys))
    replaced = images / "img_010.png"  # not predicted yet, but the set of images changed
    Image.open(images / "img_000.png").save(replaced)
    assert predict_cli.main([*_args(a, images), "--out", str(out)]) == 1
    assert re.search(r"this run has other images \(12 rows from \S*images, 12 before; names, "
                     r"libs, sizes or modification times differ\)", _one_line_error(capsys))


def test_resume_with_another_batch_size_continues(models, images, tmp_path, monkeypatch, capsys):
    a, _ = models
    reference = tmp_path / "ref.csv"
    assert predict_cli.main([*_args(a, images), "--out", str(reference)]) == 0
    out = tmp_path / "sub.csv"
    interrupt_prediction([*_args(a, images), "--out", str(out)], monkeypatch, at_batch=3)
    capsys.readouterr()
    assert predict_cli.main([*_args(a, images), "--batch-size", "3", "--out", str(out)]) == 0
    assert "resuming: 8 of 12 rows already predicted" in capsys.readouterr().err
    assert out.read_bytes() == reference.read_bytes()


def test_a_partial_file_without_its_record_is_refused(models, images, tmp_path, monkeypatch,
                                                      capsys):
    a, _ = models
    out = tmp_path / "sub.csv"
    interrupt_prediction([*_args(a, images), "--out", str(out)], monkeypatch)
    (tmp_path / "sub.csv.partial.json").unlink()
    capsys.readouterr()
    assert predict_cli.main([*_args(a, images), "--out", str(out)]) == 1
    assert re.search(r"sub\.csv\.partial\.csv: no record of the model, images and options its "
                     r"rows were made from \(sub\.csv\.partial\.json is missing\); run again "
                     r"with --restart", _one_line_error(capsys))


def test_the_final_record_names_the_inputs_and_the_outputs(models, images, tmp_path):
    a, _ = models
    out = tmp_path / "sub.csv"
    assert predict_cli.main([*_args(a, images), "--out", str(out)]) == 0
    record = json.loads((tmp_path / "sub.csv.meta.json").read_text())
    assert record["model"]["sha256"] == _sha256(a)
    assert record["images"]["count"] == 12
    assert record["options"]["on_bad_image"] == "error"
    assert record["outputs"]["submission"]["sha256"] == _sha256(out)
    assert record["outputs"]["details"]["sha256"] == _sha256(tmp_path / "sub_details.csv")
    assert out.read_text().splitlines()[0] == ",filename,window,lib,Label"  # format unchanged
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "images", "sub.csv", "sub.csv.meta.json", "sub_details.csv"]   # no lock or partial left


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the lock -----------------------------------------------------------------------------------
_HOLD = """
import sys
from vqc.lock import OutputLock
lock = OutputLock(sys.argv[1]).acquire()
print("held", flush=True)
sys.stdin.read()
"""


def test_a_second_run_on_the_same_out_is_refused(models, images, tmp_path, capsys):
    a, _ = models
    out = tmp_path / "sub.csv"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=os.environ | {"PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        assert predict_cli.main([*_args(a, images), "--out", str(out)]) == 1
        line = _one_line_error(capsys)
        assert re.search(rf"sub\.csv\.lock: another vqc-predict writing sub\.csv holds this "
                         rf"lock \(pid {holder.pid}\)", line), line
        assert not out.exists()
        assert not (tmp_path / "sub.csv.partial.csv").exists()
    finally:
        holder.kill()  # as a kill -9 would: the kernel drops its lock
        holder.wait()
    assert (tmp_path / "sub.csv.lock").exists()            # left behind by the killed holder
    assert predict_cli.main([*_args(a, images), "--out", str(out)]) == 0
    assert not (tmp_path / "sub.csv.lock").exists()


# -- outputs that are inputs --------------------------------------------------------------------
@pytest.mark.parametrize("case", ["out_is_index", "out_is_an_image", "details_is_out",
                                  "out_is_the_inspector"])
def test_an_output_that_is_an_input_is_refused(models, images, tmp_path, capsys, case):
    a, _ = models
    index = tmp_path / "index.csv"
    pd.DataFrame({"filename": sorted(p.name for p in images.iterdir())}).to_csv(index)
    before = {p: p.read_bytes() for p in (index, a, images / "img_003.png")}
    extra, match = {
        "out_is_index": (["--out", str(tmp_path / "." / "index.csv")],
                         r"--out \S*index\.csv is the --index: writing it would overwrite an "
                         r"input; give another --out"),
        "out_is_an_image": (["--out", str(images / "img_003.png")],
                            r"--out \S*img_003\.png is one of the images to predict"),
        "details_is_out": (["--out", str(tmp_path / "s.csv"), "--details",
                            str(tmp_path / "s.csv")],
                           r"--details \S*s\.csv is the same file as the --out; give another "
                           r"--details"),
        "out_is_the_inspector": (["--out", str(a)], r"--out \S*a\.safetensors is the model"),
    }[case]
    assert predict_cli.main([*_args(a, images), "--index", str(index), *extra]) == 1
    assert re.search(match, _one_line_error(capsys))
    assert {p: p.read_bytes() for p in before} == before


# -- file modes ---------------------------------------------------------------------------------
@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_outputs_get_the_mode_the_umask_allows(models, images, tmp_path, umask_022):
    a, _ = models
    out = tmp_path / "sub.csv"
    assert predict_cli.main([*_args(a, images), "--out", str(out)]) == 0
    for name in ("sub.csv", "sub_details.csv", "sub.csv.meta.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name
    os.umask(0o027)
    assert write_atomic(tmp_path / "x.txt", "x").stat().st_mode & 0o777 == 0o640


# -- bad settings and a full disk ---------------------------------------------------------------
@pytest.mark.parametrize("size", ["0", "-3"])
def test_a_batch_size_below_one_is_refused_by_the_parser(models, images, tmp_path, capsys, size):
    a, _ = models
    with pytest.raises(SystemExit) as exit_:
        predict_cli.main(["--inspector", str(a), "--images", str(images), "--out",
                          str(tmp_path / "s.csv"), "--batch-size", size])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --batch-size: {int(size)} is not a positive integer" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("code, reason", [(errno.ENOSPC, "no space left on the device"),
                                          (errno.EDQUOT, "disk quota exceeded")])
def test_a_full_disk_during_prediction_keeps_the_rows_for_resume(models, images, tmp_path,
                                                                 monkeypatch, capsys, code,
                                                                 reason):
    a, _ = models
    reference = tmp_path / "ref.csv"
    assert predict_cli.main([*_args(a, images), "--out", str(reference)]) == 0
    out = tmp_path / "sub.csv"
    partial = tmp_path / "sub.csv.partial.csv"
    real = predict_cli._append
    calls = {"n": 0}

    def full_on_the_second_batch(path, rows):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(code, os.strerror(code), str(path))
        real(path, rows)

    monkeypatch.setattr(predict_cli, "_append", full_on_the_second_batch)
    capsys.readouterr()
    assert predict_cli.main([*_args(a, images), "--out", str(out)]) == 1
    line = _one_line_error(capsys)
    assert re.search(rf"sub\.csv\.partial\.csv: cannot write: {reason}; the rows predicted so "
                     r"far are kept in \S*sub\.csv\.partial\.csv and the same command continues "
                     r"from them once there is room", line), line
    assert len(pd.read_csv(partial)) == 4
    assert not (tmp_path / "sub.csv.lock").exists()
    monkeypatch.setattr(predict_cli, "_append", real)
    assert predict_cli.main([*_args(a, images), "--out", str(out)]) == 0
    assert out.read_bytes() == reference.read_bytes()


def test_a_full_disk_writing_the_submission_is_one_line(models, images, tmp_path, monkeypatch,
                                                        capsys):
    a, _ = models
    out = tmp_path / "sub.csv"

    def full(frame, path, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(predict_cli, "write_csv_atomic", full)
    assert predict_cli.main([*_args(a, images), "--out", str(out)]) == 1
    assert re.search(r"sub_details\.csv: cannot write: no space left on the device; the rows "
                     r"predicted so far are kept in \S*sub\.csv\.partial\.csv",
                     _one_line_error(capsys))
    assert len(pd.read_csv(tmp_path / "sub.csv.partial.csv")) == 12


# -- checkpoints --------------------------------------------------------------------------------
class _Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, _):
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(tmp_path: Path, epochs: int, **trainer_kwargs) -> FiniteModelCheckpoint:
    checkpoint = FiniteModelCheckpoint(dirpath=tmp_path, filename="last", monitor=None,
                                       save_top_k=1, enable_version_counter=False)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 4)),
                                       batch_size=4)
    trainer = L.Trainer(max_epochs=epochs, callbacks=[checkpoint], logger=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu", default_root_dir=tmp_path, **trainer_kwargs)
    trainer.fit(_Tiny(), data)
    return checkpoint


def test_a_failed_checkpoint_save_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    _fit(tmp_path, epochs=1)
    last = tmp_path / "last.ckpt"
    saved = last.read_bytes()
    assert torch.load(last, weights_only=True)["epoch"] == 0

    from lightning.pytorch.plugins.io import TorchCheckpointIO

    def full_disk_halfway(self, checkpoint, path, storage_options=None):
        with open(path, "wb") as handle:  # half the bytes reach the file, then the disk is full
            handle.write(saved[: len(saved) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", full_disk_halfway)
    with pytest.raises(OSError, match="No space left"):
        _fit(tmp_path, epochs=2)
    assert last.read_bytes() == saved
    assert torch.load(last, weights_only=True)["epoch"] == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".ckpt") == []  # no temp


# -- damaged model files ------------------------------------------------------------------------
def test_a_truncated_inspector_is_called_truncated(models, images, tmp_path, capsys):
    a, _ = models
    half = tmp_path / "half.safetensors"
    half.write_bytes(a.read_bytes()[: a.stat().st_size // 2])
    assert predict_cli.main([*_args(half, images), "--out", str(tmp_path / "s.csv")]) == 1
    line = _one_line_error(capsys)
    size = half.stat().st_size
    assert re.search(rf"half\.safetensors: inspector file truncated or corrupt: {size:,} bytes, "
                     rf"but its header announces {a.stat().st_size:,}", line), line
    assert "not a vqc inspector" not in line
    # a valid safetensors file that is not vqc's keeps its own message
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(other))
    assert predict_cli.main([*_args(other, images), "--out", str(tmp_path / "s.csv")]) == 1
    assert "other.safetensors: not a vqc inspector file (format None)" in _one_line_error(capsys)


def test_a_truncated_onnx_model_is_called_truncated(models, images, tmp_path, capsys):
    from vqc.export import export_onnx

    model = export_onnx(make_inspector(0), tmp_path / "m.onnx")
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    assert predict_cli.main(["--onnx", str(cut), "--images", str(images), "--out",
                             str(tmp_path / "s.csv")]) == 1
    line = _one_line_error(capsys)
    assert re.search(rf"cut\.onnx: ONNX model file truncated or corrupt: "
                     rf"{cut.stat().st_size:,} bytes, but a field announces", line), line
    png = tmp_path / "image.onnx"
    shutil.copy(images / "img_000.png", png)
    assert predict_cli.main(["--onnx", str(png), "--images", str(images), "--out",
                             str(tmp_path / "s.csv")]) == 1
    assert "image.onnx: not a readable ONNX model" in _one_line_error(capsys)


# -- packaging ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_wheel_carries_the_configs_and_vqc_train_composes_them(tmp_path):
    """Build the wheel from a copy of the sources, install it alone, and let ``vqc-train``'s
    entry point compose the default config outside any checkout."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "conf", source / "conf")
    shutil.copytree(ROOT / "vqc", source / "vqc", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "wheel"), str(source)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "wheel").glob("vqc-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    configs = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "conf").rglob("*.yaml"))
    assert sorted(n.removeprefix("vqc/") for n in names if n.startswith("vqc/conf/")) == configs
    subprocess.run([*pip, "install", "--no-deps", "-q", "--target", str(tmp_path / "site"),
                    str(wheel)], check=True, capture_output=True)
    run = subprocess.run(
        [sys.executable, "-c", "import sys; sys.argv = ['vqc-train', '--cfg', 'job']\n"
         "import vqc.config; print(vqc.config.CONFIG_DIR)\n"
         "from vqc.cli.train import main; main()"],
        cwd=tmp_path, capture_output=True, text=True,
        env={k: v for k, v in os.environ.items() if k != "VQC_CONFIG_DIR"}
        | {"PYTHONPATH": str(tmp_path / "site")})
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines()[0] == str(tmp_path / "site" / "vqc" / "conf")
    assert re.search(r"^model:", run.stdout, re.M), run.stdout[:2000]
