"""``train.py`` refuses a bad command line in one line, before Hydra starts, before any heavy
library is imported; a sweep can be listed without running it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = os.environ | {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}


def _train(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *argv,
                           f"paths.output_dir={tmp_path / 'out'}"], env=ENV, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("argv", "lines"), [
    (["trainer.max_epoch=1"],
     ["train.py: error: trainer.max_epoch: no such setting; did you mean trainer.max_epochs? "
      "(+trainer.max_epoch=... adds it as a new one)"]),
    (["+trainer.max_epoch=1"],
     ["train.py: error: +trainer.max_epoch: adds a setting nothing reads beside "
      "trainer.max_epochs; did you mean trainer.max_epochs=1? (++trainer.max_epoch=... adds "
      "it anyway)"]),
    (["unfreeze=abc"], ["train.py: error: unfreeze=abc: must be an integer >= -1 (or null)"]),
    (["dropout=1.5"], ["train.py: error: dropout=1.5: must be a number >= 0 and < 1"]),
    (["lr=-1", "seed=x"], ["train.py: error: seed=x: must be an integer >= 0",
                           "lr=-1: must be a number > 0"]),
    (["data.balanced=half"],
     ["train.py: error: data.balanced=half: must be true or false (or sqrt)"]),
], ids=["misspelt", "misspelt_added", "unfreeze", "dropout", "two", "balanced"])
def test_a_bad_setting_is_one_line_per_problem(tmp_path, argv, lines) -> None:
    result = _train(tmp_path, *argv)
    assert result.returncode == 2
    assert result.stderr.splitlines() == lines and result.stdout == ""
    assert not (tmp_path / "out").exists()  # nothing made


def test_the_check_runs_before_torch_is_imported() -> None:
    code = ("import sys; from vqc.cli.precheck import early_errors; "
            "print(early_errors(['unfreeze=abc'])); print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], env=ENV, cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.stdout.splitlines() == ["unfreeze=abc: must be an integer >= -1 (or null)",
                                          "False"]


@pytest.mark.parametrize("argv", [
    ["model=cnn", "trainer.max_epochs=3", "+trainer.profiler=simple"],
    ["+trainer.min_epochs=5", "+trainer.gradient_clip_algorithm=value"],  # near, not one edit
    ["data=valeo", "data.root=/tmp", "+data.preprocess.rotate_crop.Die05={angle:10,box:[0,0,9,9]}"],
    ["++trainer.max_epoch=1"],  # ++ adds it anyway
    ["-m", "model=cnn,basic_cnn", "model.width=16"],  # a key of the swept groups
    ["-m", "seed=range(1,3)", "experiment=magnetic_tile"],
    ["data.balanced=sqrt"],
], ids=["plain", "new_trainer_keys", "new_die", "forced", "swept_group", "range", "sqrt"])
def test_a_good_command_line_passes_the_check(argv) -> None:
    from vqc.cli.precheck import early_errors

    assert early_errors(argv) is None


def test_a_sweep_is_listed_without_running_it(tmp_path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "train.py"), "-m", "seed=1,2",
                             "model=cnn,basic_cnn", "--cfg", "job",
                             f"paths.output_dir={tmp_path / 'out'}"],
                            env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = [line for line in result.stdout.splitlines() if line.startswith("# job")]
    assert jobs == ["# job 0: seed=1 model=cnn", "# job 1: seed=1 model=basic_cnn",
                    "# job 2: seed=2 model=cnn", "# job 3: seed=2 model=basic_cnn"]
    assert result.stdout.count("\nseed: 2\n") == 2
    assert not (tmp_path / "out").exists() and not (tmp_path / "multirun").exists()


def test_a_sweep_that_cannot_be_listed_says_why_in_one_line(tmp_path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "train.py"), "-m", "--cfg", "job",
                             "modle=cnn"], env=ENV, cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("train.py: error: cannot list this sweep's jobs: ")
