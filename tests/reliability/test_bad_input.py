"""Bad input through the real entry points.

Every case runs a command as a user would: ``python train.py`` with tiny overrides, or the
``main(argv)`` of ``vqc-predict``, ``vqc-score`` and ``vqc-export``. Each one must

* exit non-zero,
* print a message that names the culprit (the file, the row or the setting), not a traceback,
* leave no output behind: no checkpoint, summary, report, submission, scores or model; a run
  folder holds at most the record of the command (``.hydra/``, ``train.log``, and once the
  config passed its checks ``config_tree.txt`` and ``config.yaml``).

16-bit, RGBA and palette images are not errors: they are converted, and the predictions must
equal those of the same picture saved as 8-bit grayscale.

``python train.py`` is started by a fork server (``TrainCli``): one Python process imports vqc
and its libraries once, then forks a fresh child for each command, which runs ``train.py`` as
``__main__`` with its own ``sys.argv`` and exits with the script's exit status. The child is the
command line minus the import time; ``test_fork_server_matches_a_plain_subprocess`` checks that
a plain ``python train.py`` gives the same exit status and message.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.inspection.conftest import make_inspector, write_images
from tests.training.conftest import fast_overrides, write_tiny_csv_set

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "train.py"
ENV = {"WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg",
       "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
#: Folders given by the environment would override the ones the cases set.
UNSET = ("VQC_DATA_DIR", "VQC_CACHE_DIR", "VQC_OUTPUT_DIR")


def child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in UNSET} | ENV
#: What Hydra itself writes into a run folder before the task starts; nothing else may remain.
HYDRA_RECORD = {".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", "train.log",
                "config_tree.txt", "config.yaml"}

# -- running python train.py ------------------------------------------------------------------
FORK_SERVER = r"""
import json, os, runpy, sys, traceback
import vqc.cli.report, vqc.cli.train, vqc.training.task  # the slow imports, done once
print("ready", flush=True)
for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        log = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.chdir(job["cwd"])
        sys.argv = [job["script"], *job["args"]]
        code = 0
        try:
            runpy.run_path(job["script"], run_name="__main__")
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status), flush=True)
"""


@dataclass
class Result:
    code: int
    output: str  # stdout and stderr together


class TrainCli:
    """``python train.py ARGS`` in a fresh process forked from one that imported vqc once."""

    _shared: TrainCli | None = None

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.process = subprocess.Popen(
            [sys.executable, "-c", FORK_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, cwd=ROOT, env=child_env())
        assert self.process.stdout is not None
        ready = self.process.stdout.readline().strip()
        assert ready == "ready", f"fork server did not start: {ready!r}"

    @classmethod
    def shared(cls) -> TrainCli:
        if cls._shared is None or cls._shared.process.poll() is not None:
            cls._shared = cls()
            atexit.register(cls._shared.close)
        return cls._shared

    def __call__(self, args: list[str], cwd: Path) -> Result:
        cwd.mkdir(parents=True, exist_ok=True)
        log = cwd / f"train-{os.getpid()}-{len(list(cwd.glob('train-*.out')))}.out"
        job = {"script": str(TRAIN), "args": args, "cwd": str(cwd), "log": str(log)}
        with self.lock:
            assert self.process.stdin is not None and self.process.stdout is not None
            self.process.stdin.write(json.dumps(job) + "\n")
            self.process.stdin.flush()
            reply = self.process.stdout.readline().strip()
        assert reply, "the fork server died"
        return Result(int(reply), log.read_text(errors="replace"))

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait(timeout=30)


def plain_train(args: list[str], cwd: Path) -> Result:
    """``python train.py ARGS`` as a plain subprocess (slower: every import again)."""
    cwd.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, str(TRAIN), *args], cwd=cwd, env=child_env(),
                          capture_output=True, text=True, timeout=300)
    return Result(done.returncode, done.stdout + done.stderr)


@pytest.fixture(scope="module")
def train_cli() -> TrainCli:
    return TrainCli.shared()


def train_args(data: Path, case: Path, *extra: str, run_dir: bool = True) -> list[str]:
    """The tiny-run overrides, the run folder ``case/run`` (unless ``run_dir`` is false: then
    Hydra's default under ``paths.output_dir``), then ``extra``, which wins."""
    base = [*fast_overrides(data, case), *([f"hydra.run.dir={case / 'run'}"] if run_dir else [])]
    keys = {arg.split("=", 1)[0].lstrip("+~") for arg in extra}
    return [arg for arg in base if arg.split("=", 1)[0] not in keys] + list(extra)


def leftovers(folder: Path) -> list[str]:
    """Files in a run folder beyond Hydra's record of the command."""
    if not folder.exists():
        return []
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    return sorted(files - HYDRA_RECORD)


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def assert_clear_failure(result: Result, match: str, code: int | None = None) -> None:
    assert result.code != 0, result.output[-3000:]
    if code is not None:
        assert result.code == code, result.output[-3000:]
    assert re.search(match, result.output), f"{match!r} not in:\n{result.output[-3000:]}"
    assert "Traceback" not in result.output, result.output[-3000:]


# -- the shared tiny data set -----------------------------------------------------------------
@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """good / dent / scratch (8 train, 3 test each) and test-only drift, 16x16, labels.csv."""
    return write_tiny_csv_set(tmp_path_factory.mktemp("set"))


def labels(data: Path) -> pd.DataFrame:
    return pd.read_csv(data / "labels.csv", dtype=str)


def with_image(case: Path, data: Path, make: Callable[[Path], None], name: str) -> list[str]:
    """A copy of the labels with one more training image, written by ``make``."""
    path = case / "bad" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    make(path)
    frame = labels(data)
    frame.loc[len(frame)] = {"image": str(path), "label": "good", "split": "train"}
    frame.to_csv(case / "list.csv", index=False)
    return [f"data.csv={case / 'list.csv'}"]


def edited(case: Path, data: Path, edit: Callable[[pd.DataFrame], pd.DataFrame],
           encoding: str = "utf-8") -> str:
    frame = edit(labels(data))
    (case / "list.csv").write_bytes(frame.to_csv(index=False).encode(encoding))
    return f"data.csv={case / 'list.csv'}"


def truncated(path: Path) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8), mode="L").save(path)
    path.write_bytes(path.read_bytes()[:60])


def with_label(row: int, label: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[row, "label"] = label
        return frame
    return edit


def with_libs(frame: pd.DataFrame) -> pd.DataFrame:
    frame["lib"] = ["Die77" if i == 5 else "DieA" for i in range(len(frame))]
    return frame


def a_file(case: Path) -> Path:
    """A regular file: no folder can be created under it (even by root)."""
    case.mkdir(parents=True, exist_ok=True)
    (case / "file.txt").write_text("a file, not a folder\n")
    return case / "file.txt"


def train_basic_cnn(train_cli: TrainCli, data: Path, case: Path) -> Path:
    """``last.ckpt`` of one epoch of ``model=basic_cnn`` on the tiny set."""
    result = train_cli(train_args(data, case, "model=basic_cnn", "callbacks=default",
                                  "~callbacks.progress_bar", "~callbacks.lr_monitor",
                                  "trainer.max_epochs=1", "test=false", "inspector=false",
                                  "figures.enabled=false"), case)
    assert result.code == 0, result.output[-3000:]
    return case / "run" / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def basic_cnn_checkpoint(train_cli: TrainCli, data: Path,
                         tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_basic_cnn(train_cli, data, tmp_path_factory.mktemp("basic_cnn"))


@dataclass
class TrainCase:
    """``setup(case, data) -> extra overrides``; ``match``: the message; ``code``: the exit
    status (2: vqc refused the input or setting, 1: Hydra refused the command line)."""

    id: str
    setup: Callable[[Path, Path], list[str]]
    match: str
    code: int = 2
    run_dir: bool = True  # False: the run folder is Hydra's default, under paths.output_dir


TRAIN_CASES = [
    TrainCase("zero_byte_image",
              lambda c, d: with_image(c, d, lambda p: p.write_bytes(b""), "zero.png"),
              r"zero\.png: image file is empty \(0 bytes\)"),
    TrainCase("truncated_png", lambda c, d: with_image(c, d, truncated, "cut.png"),
              r"cut\.png: cannot decode image .*truncated"),
    TrainCase("text_file_named_png",
              lambda c, d: with_image(c, d, lambda p: p.write_text("hello\n"), "notes.png"),
              r"notes\.png: not a readable image file"),
    TrainCase("missing_file",
              lambda c, d: with_image(c, d, lambda p: None, "absent.png"),
              r"not found: \S*absent\.png \(\S*list\.csv row 38\)"),
    TrainCase("csv_without_label_column",
              lambda c, d: [edited(c, d, lambda f: f.drop(columns="label"))],
              r"list\.csv: missing column\(s\) \['label'\]"),
    TrainCase("csv_not_utf8",
              lambda c, d: [edited(c, d, with_label(0, "défaut"), encoding="latin-1")],
              r"list\.csv: not UTF-8 text"),
    TrainCase("unknown_label",
              lambda c, d: [edited(c, d, with_label(4, "bent")),
                            "data.classes.names=[good,dent,scratch,drift]"],
              r"list\.csv row 6: unknown label 'bent'"),
    TrainCase("unknown_lib",
              lambda c, d: [edited(c, d, with_libs), "data.columns.lib=lib",
                            "+data.preprocess.rotate_crop.DieA={angle:0,box:[0,0,8,8]}"],
              r"list\.csv row 7: unknown lib 'Die77'"),
    TrainCase("no_validation_images", lambda c, d: ["data.val_fraction=0"],
              r"data\.val_fraction=0 leaves no validation images and the data has no val "
              r"split: validation chooses the best checkpoint"),
    TrainCase("unknown_split_value",
              lambda c, d: [edited(c, d, lambda f: f.assign(
                  split=["tset" if i == 9 else s for i, s in enumerate(f["split"])]))],
              r"list\.csv row 11: unknown split 'tset' \(1 such row\(s\), values \['tset'\]\); "
              r"expected 'train', 'test' or 'val' \(any case\)"),
    TrainCase("duplicate_filenames",
              lambda c, d: [edited(c, d, lambda f: pd.concat([f, f.iloc[[2]]]))],
              r"list\.csv: 1 duplicate path\(s\): '\S*train_good_2\.png' \(\S*list\.csv row 4\)"),
    TrainCase("image_smaller_than_crop_box",
              lambda c, d: ["+data.preprocess.rotate_crop.DieA={angle:0,box:[0,0,40,40]}",
                            "data.columns.lib=lib", edited(c, d, lambda f: f.assign(lib="DieA"))],
              r"train_good_0\.png: image of 16x16 px is too small for the crop box "
              r"\(0, 0, 40, 40\) of lib 'DieA'"),
    TrainCase("decompression_bomb", lambda c, d: ["data.preprocess.max_pixels=200"],
              r"train_good_0\.png: 16x16 = 256 pixels exceeds the limit of 200 \(possible "
              r"decompression bomb"),
    TrainCase("empty_data_set", lambda c, d: [edited(c, d, lambda f: f.iloc[:0])],
              r"list\.csv: the training set is empty"),
    TrainCase("class_without_training_images",
              lambda c, d: ["data.classes.names=[good,dent,scratch,bent,drift]"],
              r"labels\.csv: class\(es\) \['bent'\] have no training images"),
    TrainCase("cost_matrix_nan",
              lambda c, d: ["module.cost_matrix=[[0,1,1,1],[1,0,nan,1],[1,1,0,1],[1,1,1,0]]"],
              r"cost matrix: non-finite values at \(row, column\) \[\(1, 2\)\]"),
    TrainCase("cost_matrix_not_square",
              lambda c, d: ["module.cost_matrix=[[0,1,1],[1,0,1]]"],
              r"cost matrix: must be a square matrix, got shape \(2, 3\)"),
    TrainCase("cost_matrix_negative",
              lambda c, d: ["module.cost_matrix=[[0,1,1,1],[1,0,1,1],[1,-5,0,1],[1,1,1,0]]"],
              r"cost matrix: negative costs at \(row, column\) \[\(2, 1\)\]"),
    TrainCase("unfreeze_beyond_the_model", lambda c, d: ["model=basic_cnn", "unfreeze=5"],
              r"unfreeze=5 is out of range for basic_cnn: it has 2 conv blocks"),
    TrainCase("checkpoint_not_found",
              lambda c, d: [f"ckpt_path={c / 'nowhere.ckpt'}"],
              r"ckpt_path=\S*nowhere\.ckpt: file not found"),
    TrainCase("checkpoint_not_a_checkpoint",
              lambda c, d: [f"ckpt_path={d / 'labels.csv'}"],
              r"ckpt_path=\S*labels\.csv: not a checkpoint \(a file written by torch\.save\)"),
    TrainCase("unknown_config_group_value", lambda c, d: ["model=resnet9000"],
              r"Could not find 'model/resnet9000'", code=1),
    TrainCase("output_dir_under_a_file",
              lambda c, d: [f"paths.output_dir={a_file(c) / 'out'}"],
              r"hydra\.run\.dir=\S*file\.txt/out/runs/\S+: cannot create this folder: "
              r"\S*file\.txt is a file, not a folder", run_dir=False),
    TrainCase("run_dir_under_a_file", lambda c, d: [f"hydra.run.dir={a_file(c) / 'run'}"],
              r"hydra\.run\.dir=\S*file\.txt/run: cannot create this folder: \S*file\.txt is "
              r"a file"),
    TrainCase("cache_dir_under_a_file", lambda c, d: [f"paths.data_dir={a_file(c) / 'data'}"],
              r"paths\.cache_dir=\S*file\.txt/data/cache: cannot create this folder"),
]


@pytest.mark.parametrize("case", TRAIN_CASES, ids=[c.id for c in TRAIN_CASES])
def test_train_refuses_bad_input(case: TrainCase, train_cli: TrainCli, data: Path,
                                 tmp_path: Path) -> None:
    args = train_args(data, tmp_path, *case.setup(tmp_path, data), run_dir=case.run_dir)
    result = train_cli(args, tmp_path)
    assert_clear_failure(result, case.match, case.code)
    assert leftovers(tmp_path / "run") == []
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("summary.json"))
    assert not list(tmp_path.rglob("inspector.safetensors"))


def test_checkpoint_of_another_model(train_cli: TrainCli, data: Path, tmp_path: Path,
                                     basic_cnn_checkpoint: Path) -> None:
    """Resuming a ``model=basic_cnn`` checkpoint as ``model=cnn``: the file is named and the
    differing weights listed, before anything is trained or written."""
    result = train_cli(train_args(data, tmp_path, "model=cnn", "depth=2",
                                  f"ckpt_path={basic_cnn_checkpoint}"), tmp_path)
    assert_clear_failure(result, rf"ckpt_path={re.escape(str(basic_cnn_checkpoint))}: a "
                                 r"checkpoint of another model or data set than this run's "
                                 r"\(model=cnn, 3 trained classes\): missing keys \(", 2)
    assert leftovers(tmp_path / "run") == []


def test_checkpoint_of_another_class_count(train_cli: TrainCli, data: Path, tmp_path: Path,
                                           basic_cnn_checkpoint: Path) -> None:
    """The same model with one class fewer: the head's shapes differ, and are named."""
    frame = labels(data)
    frame = frame[frame["label"] != "scratch"]
    frame.to_csv(tmp_path / "two.csv", index=False)
    result = train_cli(train_args(data, tmp_path, "model=basic_cnn", f"data.csv={tmp_path}/two.csv",
                                  f"ckpt_path={basic_cnn_checkpoint}"), tmp_path)
    assert_clear_failure(result, r"\(model=basic_cnn, 2 trained classes\): other shapes "
                                 r"\(model\.head\.fc\.bias \(3,\) in the file, \(2,\) here", 2)
    assert leftovers(tmp_path / "run") == []


@pytest.mark.slow
def test_fork_server_matches_a_plain_subprocess(train_cli: TrainCli, data: Path,
                                                tmp_path: Path) -> None:
    """The same command, forked and plain: same exit status, same message."""
    cases = {c.id: c for c in TRAIN_CASES}
    for case in (cases["decompression_bomb"], cases["unknown_config_group_value"]):
        folder = tmp_path / case.id
        args = train_args(data, folder, *case.setup(folder, data))
        for run in (train_cli, plain_train):
            assert_clear_failure(run(args, folder), case.match, case.code)


# -- vqc-predict -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small inspector (random CNN, drift fitted on 24x24 images) saved as an artifact."""
    return make_inspector().save(tmp_path_factory.mktemp("artifact") / "inspector.safetensors")


def predict(argv: list[str]) -> int:
    from vqc.cli import predict as predict_cli

    return predict_cli.main(argv)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: p.write_bytes(b""), r"img_001\.png: image file is empty"),
        (truncated, r"img_001\.png: cannot decode image .*truncated"),
        (lambda p: p.write_text("not a png"), r"img_001\.png: not a readable image file"),
        (lambda p: p.unlink(), r"img_001\.png: image file not found"),
    ],
    ids=["zero_byte", "truncated", "text_named_png", "missing"],
)
def test_predict_refuses_an_unreadable_image(artifact: Path, tmp_path: Path, capsys,
                                             make: Callable[[Path], None], match: str) -> None:
    names = write_images(tmp_path / "images", 3, 0)
    pd.DataFrame({"filename": names, "window": 2003, "lib": "Die01"}).to_csv(tmp_path / "i.csv")
    make(tmp_path / "images" / names[1])
    out = tmp_path / "out" / "submission.csv"
    assert predict(["--inspector", str(artifact), "--images", str(tmp_path / "images"),
                    "--index", str(tmp_path / "i.csv"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert re.search(match, err), err
    assert files_in(tmp_path / "out") == []


def test_predict_refuses_duplicate_filenames(artifact: Path, tmp_path: Path, capsys) -> None:
    names = write_images(tmp_path / "images", 3, 0)
    index = pd.DataFrame({"filename": [*names, names[0]], "window": 2003, "lib": "Die01"})
    index.to_csv(tmp_path / "index.csv")
    out = tmp_path / "out" / "submission.csv"
    assert predict(["--inspector", str(artifact), "--images", str(tmp_path / "images"),
                    "--index", str(tmp_path / "index.csv"), "--out", str(out)]) == 1
    assert re.search(r"index\.csv: duplicate filename\(s\) \['img_000\.png'\]",
                     capsys.readouterr().err)
    assert files_in(tmp_path / "out") == []


def test_predict_refuses_an_unwritable_out(artifact: Path, tmp_path: Path, capsys) -> None:
    write_images(tmp_path / "images", 2, 0)
    out = a_file(tmp_path) / "sub" / "submission.csv"
    assert predict(["--inspector", str(artifact), "--images", str(tmp_path / "images"),
                    "--out", str(out)]) == 1
    assert re.search(r"file\.txt", capsys.readouterr().err)


def _gray(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(100, 30, (24, 24)).clip(0, 255).astype(np.uint8)


def test_predict_converts_16_bit_rgba_and_palette(artifact: Path, tmp_path: Path) -> None:
    """Each converted image is predicted exactly like its 8-bit grayscale equivalent."""
    rng = np.random.default_rng(3)
    folder = tmp_path / "images"
    folder.mkdir()
    pairs = {}
    # 16 bits, full range: scaled by 255/65535 and rounded
    wide = rng.integers(0, 65536, (24, 24)).astype(np.uint16)
    Image.fromarray(wide).save(folder / "b16.png")
    assert Image.open(folder / "b16.png").mode.startswith("I")
    pairs["b16.png"] = np.rint(wide * (255 / 65535)).astype(np.uint8)
    # RGBA, gray and opaque, with a fully transparent band: composited on black
    gray = _gray(rng)
    alpha = np.full((24, 24), 255, np.uint8)
    alpha[:, :6] = 0
    Image.fromarray(np.dstack([gray, gray, gray, alpha]), mode="RGBA").save(folder / "rgba.png")
    pairs["rgba.png"] = np.where(alpha == 0, 0, gray).astype(np.uint8)
    # palette: index i is the gray level i
    gray = _gray(rng)
    palette = Image.fromarray(gray, mode="P")
    palette.putpalette([v for i in range(256) for v in (i, i, i)])
    palette.save(folder / "pal.png")
    assert Image.open(folder / "pal.png").mode == "P"
    pairs["pal.png"] = gray
    for name, expected in pairs.items():
        Image.fromarray(expected, mode="L").save(folder / f"ref_{name}")

    out = tmp_path / "out" / "submission.csv"
    assert predict(["--inspector", str(artifact), "--images", str(folder), "--out",
                    str(out)]) == 0
    details = pd.read_csv(tmp_path / "out" / "submission_details.csv").set_index("filename")
    assert len(details) == 6 and details["reason"].notna().all()
    numbers = [c for c in details.columns if c.startswith("p_")] + ["drift_score"]
    for name in pairs:
        assert details.loc[name, "Label"] == details.loc[f"ref_{name}", "Label"], name
        np.testing.assert_allclose(details.loc[name, numbers].to_numpy(float),
                                   details.loc[f"ref_{name}", numbers].to_numpy(float),
                                   rtol=1e-6, atol=1e-6, err_msg=name)


# -- vqc-score ------------------------------------------------------------------------------
CHALLENGE = ["GOOD", "Boucle plate", "Lift-off blanc", "Lift-off noir", "Missing",
             "Short circuit MOS", "Drift"]


@pytest.fixture
def scored_pair(tmp_path: Path) -> tuple[Path, Path]:
    files = [f"img_{i}.png" for i in range(7)]
    frame = pd.DataFrame({"filename": files, "window": 2003, "lib": "Die01", "Label": CHALLENGE})
    frame.to_csv(tmp_path / "labels.csv")
    frame.assign(Label=[0, 1, 2, 3, 4, 5, 4]).to_csv(tmp_path / "submission.csv")
    return tmp_path / "submission.csv", tmp_path / "labels.csv"


def _matrix_csv(path: Path, cell: tuple[int, int], value: str) -> Path:
    rows = [["0" if i == j else "1" for j in range(7)] for i in range(7)]
    rows[cell[0]][cell[1]] = value
    path.write_text("".join(",".join(row) + "\n" for row in rows))
    return path


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _npy(path: Path, cell: tuple[int, int], value: float) -> Path:
    matrix = 1.0 - np.eye(7)
    matrix[cell] = value
    np.save(path, matrix)
    return path


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda d: _matrix_csv(d / "nan.csv", (2, 3), "nan"),
         r"cost matrix \S*nan\.csv: non-finite values at \(row, column\) \[\(2, 3\)\]"),
        (lambda d: _npy(d / "nan.npy", (2, 3), float("nan")),
         r"cost matrix \S*nan\.npy: non-finite values at \(row, column\) \[\(2, 3\)\]"),
        (lambda d: _text(d / "wide.csv", "0,1,1\n1,0,1\n"),
         r"cost matrix \S*wide\.csv: must be a square matrix, got shape \(2, 3\)"),
        (lambda d: _matrix_csv(d / "neg.csv", (4, 1), "-3"),
         r"cost matrix \S*neg\.csv: negative costs at \(row, column\) \[\(4, 1\)\]"),
    ],
    ids=["nan_csv", "nan_npy", "not_square", "negative"],
)
def test_evaluate_refuses_a_bad_cost_matrix(scored_pair: tuple[Path, Path], tmp_path: Path,
                                            capsys, make: Callable[[Path], Path],
                                            match: str) -> None:
    from vqc.cli.evaluate import main

    preds, truth = scored_pair
    matrix = make(tmp_path)
    assert main(["--predictions", str(preds), "--labels", str(truth), "--matrix", str(matrix),
                 "--out", str(tmp_path / "report")]) == 1
    err = capsys.readouterr().err
    assert re.search(match, err), err
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda p: p.write_bytes(p.read_text().replace("GOOD", "Défaut").encode("latin-1")),
         r"labels\.csv: not UTF-8 text"),
        (lambda p: pd.read_csv(p, index_col=0).drop(columns="Label").to_csv(p),
         r"labels\.csv: missing column\(s\) \['Label'\]"),
        (lambda p: p.write_text(p.read_text().replace("Missing", "Bent")),
         r"labels\.csv, line 6 \(img_4\.png\): unknown label 'Bent'"),
        (lambda p: p.unlink(), r"labels\.csv: CSV file not found"),
    ],
    ids=["not_utf8", "no_label_column", "unknown_label", "missing_file"],
)
def test_evaluate_refuses_a_bad_labels_file(scored_pair: tuple[Path, Path], tmp_path: Path,
                                            capsys, edit: Callable[[Path], None],
                                            match: str) -> None:
    from vqc.cli.evaluate import main

    preds, truth = scored_pair
    edit(truth)
    assert main(["--predictions", str(preds), "--labels", str(truth), "--out",
                 str(tmp_path / "report")]) == 1
    err = capsys.readouterr().err
    assert re.search(match, err), err
    assert not (tmp_path / "report").exists()


def test_evaluate_refuses_an_unwritable_out(scored_pair: tuple[Path, Path], tmp_path: Path,
                                            capsys) -> None:
    from vqc.cli.evaluate import main

    preds, truth = scored_pair
    out = a_file(tmp_path) / "report"
    assert main(["--predictions", str(preds), "--labels", str(truth), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert re.search(r"--out \S*file\.txt/report: cannot create this folder: \S*file\.txt is "
                     r"a file, not a folder", captured.err), captured.err
    assert "PWA" not in captured.out  # refused before scoring


# -- vqc-export --------------------------------------------------------------------------------
def export(argv: list[str]) -> int:
    from vqc.cli import export as export_cli

    return export_cli.main(argv)


def test_export_refuses_an_unwritable_out(artifact: Path, tmp_path: Path, capsys) -> None:
    out = a_file(tmp_path) / "sub" / "inspector.onnx"
    assert export(["--inspector", str(artifact), "--out", str(out)]) == 1
    assert re.search(r"--out \S*file\.txt/sub/inspector\.onnx: cannot create its folder: "
                     r"\S*file\.txt is a file", capsys.readouterr().err)


def test_export_with_a_bad_check_image_writes_no_model(artifact: Path, tmp_path: Path,
                                                       capsys) -> None:
    names = write_images(tmp_path / "images", 3, 0)
    pd.DataFrame({"filename": names, "window": 2003, "lib": "Die01"}).to_csv(tmp_path / "i.csv")
    truncated(tmp_path / "images" / names[2])
    out = tmp_path / "out" / "inspector.onnx"
    assert export(["--inspector", str(artifact), "--out", str(out), "--check-images",
                   str(tmp_path / "images"), "--check-index", str(tmp_path / "i.csv")]) == 1
    assert re.search(r"img_002\.png: cannot decode image .*truncated", capsys.readouterr().err)
    assert files_in(tmp_path / "out") == []


def test_export_refuses_a_file_that_is_not_an_inspector(tmp_path: Path, capsys) -> None:
    bogus = tmp_path / "inspector.safetensors"
    bogus.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    out = tmp_path / "out" / "inspector.onnx"
    assert export(["--inspector", str(bogus), "--out", str(out)]) == 1
    assert re.search(r"inspector\.safetensors: not a vqc inspector", capsys.readouterr().err)
    assert files_in(tmp_path / "out") == []
