"""An inspector whose metadata was edited is refused in one line, never with a traceback and
never used with a changed value; the file takes the umask's mode like every output."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save

from tests.inspection.conftest import make_inspector, write_images
from vqc.cli import export as export_cli
from vqc.cli import predict as predict_cli
from vqc.errors import DataError
from vqc.inspection.inspector import SPEC_DIGEST, Inspector
from vqc.io import default_file_mode


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_inspector().save(tmp_path_factory.mktemp("inspector") / "inspector.safetensors")


def _header(path: Path) -> tuple[int, bytes]:
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    return size, data[8:8 + size]


def _edited(artifact: Path, folder: Path, at: int) -> Path:
    """A copy of ``artifact`` with the header byte ``at`` changed to another printable one."""
    data = bytearray(artifact.read_bytes())
    data[8 + at] = ord("X") if data[8 + at] != ord("X") else ord("Y")
    path = folder / f"edited_{at}.safetensors"
    path.write_bytes(bytes(data))
    return path


def test_every_one_byte_edit_of_the_metadata_is_refused(artifact, tmp_path) -> None:
    _, header = _header(artifact)
    start = header.index(b'"__metadata__"')
    positions = range(start, len(header), max(1, (len(header) - start) // 60))
    for at in positions:
        if header[at:at + 1] == b" ":
            continue  # padding after the JSON
        path = _edited(artifact, tmp_path, at)
        with pytest.raises(DataError, match=str(path)):
            Inspector.load(path)


def _respec(artifact: Path, folder: Path, change) -> Path:
    """``artifact`` written again with its spec changed by ``change`` (a crafted file, its
    digest recomputed so that only the schema can tell)."""
    with safe_open(str(artifact), framework="pt") as handle:
        metadata = dict(handle.metadata())
    spec = json.loads(metadata["spec"])
    change(spec)
    text = json.dumps(spec)
    metadata.update(spec=text, **{SPEC_DIGEST: hashlib.sha256(text.encode()).hexdigest()})
    path = folder / "crafted.safetensors"
    path.write_bytes(save(load_file(str(artifact)), metadata=metadata))
    return path


@pytest.mark.parametrize(("change", "named"), [
    (lambda s: s.update(driXt_threshold=s.pop("drift_threshold")),
     r"unknown key 'driXt_threshold'.*missing|unknown key 'driXt_threshold'"),
    (lambda s: s.pop("class_names"), r"missing key 'class_names'"),
    (lambda s: s.update(temperature="1.0"), r"'temperature' is a string, not a number"),
    (lambda s: s.update(model=None), r"'model' is null, not an object"),
    (lambda s: s.update(good="GOOX"), r"'good' is 'GOOX', which is not among the class names"),
    (lambda s: s.update(decision="bayeX"), r"'decision' is 'bayeX', not one of"),
    (lambda s: s.update(temperature=-1), r"'temperature' is -1, not a positive number"),
    (lambda s: s["model"].update(name="resnet9000"), r"'model' .* cannot be built"),
    (lambda s: s["preprocess"].update(sizX=s["preprocess"].pop("size")),
     r"'preprocess' has unknown key\(s\) \['sizX'\].*'size' is None"),
    (lambda s: s["preprocess"].update(mode="Q"), r"does not make an inspector"),
], ids=["unknown", "missing", "mistyped", "null", "good", "decision", "temperature",
        "model", "preprocess", "mode"])
def test_a_crafted_spec_is_refused_naming_the_key(artifact, tmp_path, change, named) -> None:
    with pytest.raises(DataError, match=named):
        Inspector.load(_respec(artifact, tmp_path, change))


def test_predict_and_export_refuse_an_edited_inspector_in_one_line(artifact, tmp_path,
                                                                   capsys) -> None:
    _, header = _header(artifact)
    at = header.index(b"drift_threshold") + 3  # "driXt_threshold"
    path = _edited(artifact, tmp_path, at)
    write_images(tmp_path / "images", 2, 1)
    assert predict_cli.main(["--inspector", str(path), "--images", str(tmp_path / "images"),
                             "--out", str(tmp_path / "out" / "sub.csv")]) == 1
    assert export_cli.main(["--inspector", str(path), "--out",
                            str(tmp_path / "out" / "model.onnx")]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 2 and "Traceback" not in err, err
    assert lines[0].startswith("vqc-predict: error: ") and "metadata was changed" in lines[0]
    assert lines[1].startswith("vqc-export: error: ") and "metadata was changed" in lines[1]


def test_the_inspector_file_takes_the_umask_mode(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        path = make_inspector().save(tmp_path / "inspector.safetensors")
        assert default_file_mode() == 0o644
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert Inspector.load(path).spec.class_names  # still reads back


def test_a_renamed_drift_tensor_is_refused_not_left_unread(artifact, tmp_path) -> None:
    """A drift tensor under another name would leave its detector to a default value: the
    tensors must be exactly those the inspector's parts read."""
    data = artifact.read_bytes()
    name = b'"drift.padim.embedding.idx"'
    assert data.count(name) == 1
    path = tmp_path / "renamed.safetensors"
    path.write_bytes(data.replace(name, b'"drift.pXdim.embedding.idx"'))
    with pytest.raises(DataError, match=r"inspector tensors changed after it was written "
                                        r"\(unknown: \['drift\.pXdim\.embedding\.idx'\]"):
        Inspector.load(path)
