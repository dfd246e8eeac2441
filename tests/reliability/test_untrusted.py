"""Untrusted files: a crafted pickle never runs.

Each crafted file holds an object whose ``__reduce__`` creates a marker file when unpickled
(``test_the_crafted_files_do_run_code_when_unpickled`` shows that it does). Given to vqc
wherever a model file is read, it must be refused with a message naming it, and the marker must
never appear: checkpoints and weights are read with ``torch.load(weights_only=True)``,
artifacts with safetensors, exported models by ONNX Runtime, cost matrices with
``np.load(allow_pickle=False)``.
"""

from __future__ import annotations

import ast
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.reliability.test_bad_input import (
    ROOT,
    TrainCli,
    assert_clear_failure,
    files_in,
    leftovers,
    train_args,
    train_basic_cnn,
)
from tests.training.conftest import write_tiny_csv_set


@pytest.fixture(scope="module")
def train_cli() -> TrainCli:
    return TrainCli.shared()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_csv_set(tmp_path_factory.mktemp("set"))


@pytest.fixture(scope="module")
def basic_cnn_checkpoint(train_cli: TrainCli, data: Path,
                         tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_basic_cnn(train_cli, data, tmp_path_factory.mktemp("basic_cnn"))


class RunsCode:
    """Unpickled, it calls ``open(marker, "w")``: the marker file appears."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def crafted_checkpoint(path: Path, marker: Path,
                       state: dict[str, torch.Tensor] | None = None) -> Path:
    """A ``torch.save`` file shaped like a checkpoint, with the code-running object inside."""
    state = state if state is not None else {"weight": torch.zeros(2)}
    torch.save({"epoch": 0, "global_step": 1, "state_dict": state, "callbacks": RunsCode(marker)},
               path)
    assert not marker.exists()
    return path


def crafted_pickle(path: Path, marker: Path) -> Path:
    """A bare pickle of the code-running object."""
    path.write_bytes(pickle.dumps({"state": RunsCode(marker)}))
    return path


def test_the_crafted_files_do_run_code_when_unpickled(tmp_path: Path) -> None:
    """The control: loaded without the safeguards, both files create their marker."""
    marker = tmp_path / "ran-torch"
    torch.load(crafted_checkpoint(tmp_path / "a.ckpt", marker), weights_only=False)
    assert marker.exists()
    marker = tmp_path / "ran-pickle"
    with open(crafted_pickle(tmp_path / "b.pkl", marker), "rb") as handle:
        pickle.load(handle)
    assert marker.exists()


# -- python train.py ----------------------------------------------------------------------------
def test_resume_from_a_crafted_checkpoint_is_refused(train_cli: TrainCli, data: Path,
                                                     tmp_path: Path,
                                                     basic_cnn_checkpoint: Path) -> None:
    """``ckpt_path=FILE``: a real checkpoint of this very model, with the object added."""
    marker = tmp_path / "ran"
    state = torch.load(basic_cnn_checkpoint, weights_only=True)["state_dict"]
    crafted = crafted_checkpoint(tmp_path / "evil.ckpt", marker, state)
    result = train_cli(train_args(data, tmp_path, "model=basic_cnn",
                                  f"ckpt_path={crafted}"), tmp_path)
    assert_clear_failure(result, r"ckpt_path=\S*evil\.ckpt: refused: it holds objects such as "
                                 r"\S*open besides tensors and plain values", 2)
    assert not marker.exists()
    assert leftovers(tmp_path / "run") == []


def test_resume_last_from_a_crafted_checkpoint_is_refused(train_cli: TrainCli, data: Path,
                                                          tmp_path: Path) -> None:
    """``ckpt_path=last``: the run folder's ``checkpoints/last.ckpt`` replaced by the file."""
    marker = tmp_path / "ran"
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    crafted_checkpoint(last, marker)
    result = train_cli(train_args(data, tmp_path, "ckpt_path=last"), tmp_path)
    assert_clear_failure(result, r"ckpt_path=\S*run/checkpoints/last\.ckpt: refused: it "
                                 r"holds objects", 2)
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_crafted_weights_are_refused(train_cli: TrainCli, data: Path, tmp_path: Path,
                                     suffix: str) -> None:
    """``model.weights=FILE``: a ``torch.save`` pickle, or a bare pickle named .safetensors."""
    marker = tmp_path / "ran"
    path = tmp_path / f"weights{suffix}"
    if suffix == ".pth":
        crafted_checkpoint(path, marker)
        message = r"could not be read as PyTorch weights"
    else:
        crafted_pickle(path, marker)
        message = r"is not a readable \.safetensors file"
    result = train_cli(train_args(data, tmp_path, f"model.weights={path}"), tmp_path)
    assert_clear_failure(result, rf"model\.weights=\S*weights{re.escape(suffix)} {message}", 2)
    assert not marker.exists()
    assert leftovers(tmp_path / "run") == []


# -- vqc-predict, vqc-export, vqc-score ----------------------------------------------------
@pytest.mark.parametrize("kind", ["pickle", "torch.save"])
def test_predict_refuses_a_crafted_inspector(tmp_path: Path, capsys, kind: str) -> None:
    from vqc.cli import predict

    marker = tmp_path / "ran"
    path = tmp_path / "inspector.safetensors"
    if kind == "pickle":
        crafted_pickle(path, marker)
    else:
        crafted_checkpoint(path, marker)
    (tmp_path / "images").mkdir()
    out = tmp_path / "out" / "submission.csv"
    assert predict.main(["--inspector", str(path), "--images", str(tmp_path / "images"),
                         "--out", str(out)]) == 1
    assert re.search(r"inspector\.safetensors: not a vqc inspector", capsys.readouterr().err)
    assert not marker.exists()
    assert files_in(tmp_path / "out") == []


def test_predict_refuses_a_crafted_onnx_model(tmp_path: Path, capsys) -> None:
    from vqc.cli import predict

    marker = tmp_path / "ran"
    path = crafted_pickle(tmp_path / "inspector.onnx", marker)
    (tmp_path / "images").mkdir()
    out = tmp_path / "out" / "submission.csv"
    assert predict.main(["--onnx", str(path), "--images", str(tmp_path / "images"), "--out",
                         str(out)]) == 1
    assert re.search(r"inspector\.onnx: not a readable ONNX model", capsys.readouterr().err)
    assert not marker.exists()
    assert files_in(tmp_path / "out") == []


def test_export_refuses_a_crafted_inspector(tmp_path: Path, capsys) -> None:
    from vqc.cli import export

    marker = tmp_path / "ran"
    path = crafted_checkpoint(tmp_path / "inspector.safetensors", marker)
    out = tmp_path / "out" / "inspector.onnx"
    assert export.main(["--inspector", str(path), "--out", str(out)]) == 1
    assert re.search(r"inspector\.safetensors: not a vqc inspector", capsys.readouterr().err)
    assert not marker.exists()
    assert files_in(tmp_path / "out") == []


def test_evaluate_refuses_a_pickled_cost_matrix(tmp_path: Path, capsys) -> None:
    from vqc.cli import evaluate

    marker = tmp_path / "ran"
    matrix = np.empty((2, 2), dtype=object)
    matrix[:] = [[0, RunsCode(marker)], [1, 0]]
    np.save(tmp_path / "matrix.npy", matrix, allow_pickle=True)
    for name in ("p.csv", "l.csv"):
        (tmp_path / name).write_text(",filename,window,lib,Label\n0,a.png,2003,Die01,GOOD\n")
    assert evaluate.main(["--predictions", str(tmp_path / "p.csv"), "--labels",
                          str(tmp_path / "l.csv"), "--matrix", str(tmp_path / "matrix.npy"),
                          "--out", str(tmp_path / "report")]) == 1
    assert re.search(r"matrix\.npy: not a readable \.npy array", capsys.readouterr().err)
    assert not marker.exists()
    assert not (tmp_path / "report").exists()


# -- every loader in the package ------------------------------------------------------------
def _calls(tree: ast.AST) -> list[tuple[str, ast.Call]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else ""
            found.append((f"{name}.{node.func.attr}", node))
    return found


def _keyword(call: ast.Call, name: str) -> object:
    for keyword in call.keywords:
        if keyword.arg == name and isinstance(keyword.value, ast.Constant):
            return keyword.value.value
    return None


def test_every_loader_in_vqc_refuses_pickled_objects() -> None:
    """No pickle module; ``torch.load`` with ``weights_only=True``; ``np.load`` with
    ``allow_pickle=False``; Lightning resumes and tests with ``weights_only=True``."""
    problems = []
    for path in sorted((ROOT / "vqc").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                           else [node.module or ""])
                for module in modules:
                    if module.split(".")[0] in {"pickle", "dill", "cloudpickle", "joblib"}:
                        problems.append(f"{where}:{node.lineno}: imports {module}")
        for name, call in _calls(tree):
            line = f"{where}:{call.lineno}: {name}"
            if name == "torch.load" and _keyword(call, "weights_only") is not True:
                problems.append(f"{line} without weights_only=True")
            if name in ("np.load", "numpy.load") and _keyword(call, "allow_pickle") is not False:
                problems.append(f"{line} without allow_pickle=False")
            if name.endswith(".load_from_checkpoint"):
                problems.append(f"{line} (unpickles hyper-parameters)")
            if (name.split(".")[-1] in ("fit", "test", "validate", "predict")
                    and any(k.arg == "ckpt_path" for k in call.keywords)
                    and _keyword(call, "weights_only") is not True):
                problems.append(f"{line} with ckpt_path but without weights_only=True")
    assert problems == []
