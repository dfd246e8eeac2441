"""SIGTERM and SIGINT, sent to real processes: one line, a resumable state, exit 143 / 130.

``timeout``, SLURM, ``docker stop`` and a sweep launcher end a process with SIGTERM; Ctrl+C
sends SIGINT. A run so ended says what it was doing and how to take it up again, and exits as
a shell reports a process killed by the signal, never 0.
"""

from __future__ import annotations

import csv
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.inspection.conftest import make_inspector, write_images
from tests.training.conftest import fast_overrides, write_tiny_csv_set
from vqc.cli import predict as predict_cli
from vqc.interrupts import Interrupted, handle_signals, interruptible, received

ROOT = Path(__file__).resolve().parents[2]
ENV = os.environ | {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "MPLBACKEND": "Agg"}
#: Epochs long enough for a signal to land in the middle of training.
RUN = ("depth=2", "trainer.max_epochs=8", "figures.enabled=false", "callbacks=default",
       "callbacks.progress_bar=null", "data.preprocess.size=[96,96]")


def _signal_when(command: list[str], log: Path, text: str, signum: int,
                 timeout: float = 300) -> tuple[int, str]:
    """Run ``command``; send ``signum`` once ``text`` is in its output; its status and output."""
    with open(log, "w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=ENV,
                                   cwd=ROOT)
    deadline = time.monotonic() + timeout
    try:
        while text not in log.read_text(errors="replace"):
            if process.poll() is not None:
                pytest.fail(f"ended ({process.returncode}) before {text!r}:\n"
                            f"{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {text!r} within {timeout} s")
            time.sleep(0.05)
        process.send_signal(signum)
        status = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    return status, log.read_text(errors="replace")


def _train(data: Path, tmp: Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), *fast_overrides(data, tmp, *RUN), *extra]


@pytest.mark.timeout(600)
def test_sigterm_during_training_says_how_to_resume_and_the_command_does(tmp_path) -> None:
    data = write_tiny_csv_set(tmp_path / "set", per_class=24)
    run = tmp_path / "run"
    status, output = _signal_when(_train(data, tmp_path, f"hydra.run.dir={run}"),
                                  tmp_path / "killed.log", "epoch 2/8:", signal.SIGTERM)
    assert status == 143, output[-3000:]
    (line,) = [x for x in output.splitlines() if "interrupted by SIGTERM" in x]
    assert "during training; resume with: " in line and "Traceback" not in output
    assert not (run / "summary.json").exists()
    command = shlex.split(line.split("resume with: ", 1)[1].split("  (", 1)[0])
    assert command[:2] == ["python", str(ROOT / "train.py")]
    assert command[-2:] == ["ckpt_path=last", f"hydra.run.dir='{run}'"]  # quoted for Hydra
    resumed = subprocess.run([sys.executable, *command[1:]], env=ENV, cwd=ROOT,
                             capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {run / 'checkpoints' / 'last.ckpt'}" in resumed.stdout
    assert (run / "summary.json").is_file()


@pytest.mark.timeout(300)
def test_sigint_during_training_exits_130_with_one_line(tmp_path) -> None:
    data = write_tiny_csv_set(tmp_path / "set", per_class=24)
    status, output = _signal_when(_train(data, tmp_path, f"hydra.run.dir={tmp_path / 'run'}"),
                                  tmp_path / "run.log", "epoch 1/8:", signal.SIGINT)
    assert status == 130, output[-3000:]
    assert len([x for x in output.splitlines() if "interrupted by SIGINT during training"
                in x]) == 1
    assert "Traceback" not in output


@pytest.mark.timeout(300)
def test_a_sweep_records_its_interrupted_job(tmp_path) -> None:
    data = write_tiny_csv_set(tmp_path / "set", per_class=24)
    sweep = tmp_path / "sweep"
    command = [*_train(data, tmp_path, f"hydra.sweep.dir={sweep}", "seed=1,2"), "-m"]
    status, output = _signal_when(command, tmp_path / "sweep.log", "epoch 1/8:", signal.SIGTERM)
    assert status == 143, output[-3000:]
    with open(sweep / "sweep_summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["job"], r["status"]) for r in rows] == [("0", "interrupted")]
    assert "Interrupted: interrupted by SIGTERM during training" in rows[0]["error"]
    assert not (sweep / "1").exists()  # the sweep stopped with it


def test_a_signal_outside_lightning_stops_the_phase_at_once() -> None:
    """Drift fitting, scoring, prediction: the real signal raises where the code is."""
    with handle_signals(), pytest.raises(Interrupted) as info, interruptible("fitting drift"):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # not reached: the handler raises first
        pytest.fail("the signal did not stop the phase")
    assert info.value.phase == "fitting drift" and info.value.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers given back


def test_inside_lightning_the_signal_waits_for_the_loop_then_stops_the_phase() -> None:
    """Once Lightning listens (its handler calls the one it found, as Lightning composes them),
    the loop stops at its next batch; until then the signal stops the phase at once."""
    steps = []
    with (handle_signals(), pytest.raises(Interrupted) as info,
          interruptible("training", lightning=True)):
        ours = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, lambda signum, frame: ours(signum, frame))
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            steps.append("the loop went on to its next batch")
            assert received() == signal.SIGTERM
        finally:
            signal.signal(signal.SIGTERM, ours)
    assert steps and info.value.phase == "training"
    with (handle_signals(), pytest.raises(Interrupted) as info,
          interruptible("preparing the data", lightning=True)):
        os.kill(os.getpid(), signal.SIGTERM)  # Lightning not listening yet
        time.sleep(5)
        pytest.fail("the signal waited for a loop that was not running")
    assert info.value.phase == "preparing the data"


def test_a_second_signal_stops_at_once() -> None:
    with (handle_signals(), pytest.raises(Interrupted) as info,
          interruptible("training", lightning=True)):
        ours = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, lambda signum, frame: ours(signum, frame))
        try:
            os.kill(os.getpid(), signal.SIGTERM)  # Lightning will stop at the next batch ...
            os.kill(os.getpid(), signal.SIGTERM)  # ... but a hung loader never gets there
            time.sleep(5)
            pytest.fail("the second signal did not stop the phase")
        finally:
            signal.signal(signal.SIGTERM, ours)
    assert info.value.signum == signal.SIGTERM


def test_sigterm_during_prediction_keeps_the_rows_and_the_same_command_goes_on(
        tmp_path, monkeypatch, capsys) -> None:
    artifact = make_inspector().save(tmp_path / "inspector.safetensors")
    names = write_images(tmp_path / "images", 12, 4)
    out = tmp_path / "out" / "submission.csv"
    args = ["--inspector", str(artifact), "--images", str(tmp_path / "images"),
            "--batch-size", "4", "--out", str(out)]
    real = predict_cli._predict_batch
    calls = {"n": 0}

    def terminated_at_batch_3(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **k)

    monkeypatch.setattr(predict_cli, "_predict_batch", terminated_at_batch_3)
    assert predict_cli.main(args) == 143
    err = capsys.readouterr().err
    assert "vqc-predict: interrupted by SIGTERM during prediction; the rows predicted so far " \
           "are kept in" in err and "the same command continues" in err
    partial = out.with_name("submission.csv.partial.csv")
    assert partial.read_text().count("\n") - 1 == 8  # two whole batches
    monkeypatch.setattr(predict_cli, "_predict_batch", real)
    assert predict_cli.main(args) == 0
    assert sorted(line.split(",")[1] for line in out.read_text().splitlines()[1:]) == \
        sorted(names)
