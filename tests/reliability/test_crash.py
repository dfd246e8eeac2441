"""Crash safety: a process killed outright (SIGKILL, ``kill -9``) loses only its unfinished work.

- Training resumed with ``ckpt_path=last`` ends where an uninterrupted run of the same command
  ends: same epochs, same test figures, same final validation loss and weights.
- ``vqc-predict`` run again continues after its last complete batch and writes the same CSV as
  an uninterrupted run, every image exactly once.
- The preprocessing cache holds only complete entries, whenever its builder is killed.

What a resumed run gets back: Lightning restores weights, optimiser and scheduler state, the
loop counters and the checkpoint callbacks' best scores from ``last.ckpt``. The random state is
not in the checkpoint; it does not need to be: the training sampler draws epoch ``e``'s order
and each image's augmentation seed from ``(seed, e)`` alone (``EpochSampler``), each training
epoch reseeds the global generators (dropout) from ``(seed, e, rank)``, and the loaders draw
their workers' seeds from generators of their own, never from the global one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict
from PIL import Image
from torchvision.transforms import v2

from tests.inspection.conftest import make_inspector, write_images
from tests.training.conftest import fast_overrides, write_tiny_csv_set
from vqc.cli import predict as predict_cli
from vqc.config import compose
from vqc.data.cache import ImageCache
from vqc.data.dataset import (
    EpochSampler,
    ImageDataset,
    balanced_weights,
    build_transform,
    warm_cache,
)
from vqc.data.preprocess import Preprocessor
from vqc.training.module import ClassifierModule
from vqc.training.task import train

ROOT = Path(__file__).resolve().parents[2]
ENV = os.environ | {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "MPLBACKEND": "Agg"}

#: Relative tolerance on the validation loss and the weights of a resumed run against an
#: uninterrupted one (the figures computed from decisions must be equal). See
#: ``test_resumed_training_matches_an_uninterrupted_run``.
RTOL = 1e-6

#: Runs of 4 epochs on the tiny CSV set, reproducible kernels, no worker processes; dropout, so
#: that the global generator's state matters too.
RUN_ARGS = ("depth=2", "dropout=0.3", "trainer.max_epochs=4", "seed=5",
            "trainer.deterministic=true", "data.num_workers=0", "figures.enabled=false")


# -- helpers ------------------------------------------------------------------------------------
def _per_epoch(run: Path, key: str) -> dict[int, float]:
    """The last logged ``key`` of each epoch over all the run's CSV logs (one per process)."""
    frames = [pd.read_csv(p, keep_default_na=False, dtype=str)
              for p in sorted((run / "csv").glob("version_*/metrics.csv"))]
    frame = pd.concat(frames)
    frame = frame[frame[key] != ""]
    return frame.groupby(frame["epoch"].astype(int))[key].last().astype(float).to_dict()


def _checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _assert_same_run(resumed: Path, reference: Path, from_epoch: int = 0) -> None:
    """``resumed`` ended as ``reference`` did (see ``RTOL``)."""
    a, b = (json.loads((run / "summary.json").read_text()) for run in (resumed, reference))
    assert a["epochs"] == b["epochs"] == 4
    assert _checkpoint(resumed / "checkpoints" / "last.ckpt")["epoch"] == 3
    for key in ("pwa", "macro_recall", "escapes"):
        assert a["test"][key] == b["test"][key], key
    assert Path(a["best_checkpoint"]).name == Path(b["best_checkpoint"]).name
    assert a["best_score"] == b["best_score"]
    losses_a, losses_b = _per_epoch(resumed, "val/loss"), _per_epoch(reference, "val/loss")
    assert sorted(losses_b) == [0, 1, 2, 3]
    assert set(range(from_epoch, 4)) <= set(losses_a)
    for epoch, loss in losses_a.items():
        assert loss == pytest.approx(losses_b[epoch], rel=RTOL, abs=0), f"epoch {epoch}"
    weights_a = _checkpoint(resumed / "checkpoints" / "last.ckpt")["state_dict"]
    weights_b = _checkpoint(reference / "checkpoints" / "last.ckpt")["state_dict"]
    assert weights_a.keys() == weights_b.keys()
    for key, value in weights_a.items():
        torch.testing.assert_close(value, weights_b[key], rtol=RTOL, atol=1e-7, msg=key)


def _tail(log: Path, n: int = 3000) -> str:
    return log.read_text(errors="replace")[-n:] if log.is_file() else ""


def _kill_when(process: subprocess.Popen, ready: Callable[[], bool], what: str, log: Path,
               timeout: float = 300) -> None:
    """SIGKILL ``process`` as soon as ``ready()``; fail if it ends or times out first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            pytest.fail(f"ended (exit {process.returncode}) before {what}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            pytest.fail(f"no {what} within {timeout} s:\n{_tail(log)}")
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL


def _start(command: list[str], log: Path, cwd: Path) -> subprocess.Popen:
    with open(log, "wb") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=cwd,
                                env=ENV)


def _finish(process: subprocess.Popen, log: Path, timeout: float = 600) -> None:
    assert process.wait(timeout=timeout) == 0, _tail(log)


# -- the training sampler ---------------------------------------------------------------------
def test_epoch_sampler_draws_depend_on_seed_and_epoch_only():
    codes = np.array([0] * 12 + [1] * 3 + [2] * 5)
    weights = balanced_weights(codes)
    running = EpochSampler(len(codes), seed=3, weights=weights, seeds=True)
    passes = [list(running) for _ in range(3)]         # no set_epoch: each pass is the next
    assert passes[0] != passes[1] != passes[2]
    # A sampler made for epoch 2 (a resumed run) draws what the running one drew there.
    assert list(EpochSampler(len(codes), 3, weights, epoch=2, seeds=True)) == passes[2]
    running.set_epoch(1)
    assert list(running) == passes[1]
    assert list(EpochSampler(len(codes), 4, weights, seeds=True)) != passes[0]
    # Each draw is (index, augmentation seed); without weights an epoch is a permutation.
    assert all(isinstance(i, int) and isinstance(s, int) for i, s in passes[0])
    order = [i for i, _ in EpochSampler(len(codes), 3, epoch=5, seeds=True)]
    assert sorted(order) == list(range(len(codes)))
    assert list(EpochSampler(len(codes), 3, epoch=5)) == order


def test_seeded_augmentation_depends_on_the_draw_only(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 24), np.uint8)).save(path)
    frame = pd.DataFrame({"path": [str(path)], "lib": [None], "code": [0]})
    cache = ImageCache(tmp_path / "cache", Preprocessor(size=(24, 24)))
    augment = [v2.RandomAffine(degrees=20, translate=(0.2, 0.2)), v2.ColorJitter(0.5, 0.5)]
    dataset = ImageDataset(frame, cache, build_transform(augment))
    first = dataset[(0, 1234)][0]
    torch.rand(100)                                    # whatever ran before in this process
    assert torch.equal(dataset[(0, 1234)][0], first)
    assert not torch.equal(dataset[(0, 1235)][0], first)
    state = torch.get_rng_state()
    dataset[(0, 99)]
    assert torch.equal(torch.get_rng_state(), state)  # the process's random state is untouched


# -- training -----------------------------------------------------------------------------------
def _cfg(data: Path, tmp: Path, run: Path, *extra: str):
    GlobalHydra.instance().clear()
    cfg = compose("train", fast_overrides(data, tmp, *RUN_ARGS, "inspector=false", *extra))
    with open_dict(cfg):
        cfg.paths.run_dir = str(run)
    return cfg


@pytest.mark.parametrize("workers", [0, 2])
def test_resumed_training_matches_an_uninterrupted_run(tmp_path, monkeypatch, workers):
    """A run that dies in epoch 2 (an exception at its second batch), resumed with
    ``ckpt_path=last``, ends exactly as the same run never stopped.

    Tolerance: the figures computed from decisions (test PWA, macro recall, escapes, best epoch
    and best val PWA) must be equal; the validation loss of every epoch and the final weights
    within ``RTOL`` = 1e-6 relative. Nothing else is allowed to differ: with the weights,
    optimiser, scheduler and loop state restored and the random draws of an epoch a function of
    ``(seed, epoch)``, the resumed run computes the same float operations on the same numbers
    (on CPU with ``trainer.deterministic=true`` the results agree to the last bit). The margin
    covers only a float32 sum split differently between threads; the faults it guards against
    (sampler, augmentations or dropout restarted from the state of the run's start) move the
    validation loss by 1e-4 relative or more on this set. With worker processes (``workers=2``)
    each image's augmentations still come from its draw, so the result is the same.
    """
    data = write_tiny_csv_set(tmp_path / "set")
    loaders = f"data.num_workers={workers}"
    train(_cfg(data, tmp_path, tmp_path / "reference", loaders))
    real = ClassifierModule.training_step

    def dies_in_epoch_2(self, batch, batch_idx):
        if self.current_epoch == 2 and batch_idx == 1:
            raise RuntimeError("killed")
        return real(self, batch, batch_idx)

    monkeypatch.setattr(ClassifierModule, "training_step", dies_in_epoch_2)
    with pytest.raises(RuntimeError, match="killed"):
        train(_cfg(data, tmp_path, tmp_path / "run", loaders))
    assert _checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["epoch"] == 1
    monkeypatch.setattr(ClassifierModule, "training_step", real)
    train(_cfg(data, tmp_path, tmp_path / "run", loaders, "ckpt_path=last"))
    _assert_same_run(tmp_path / "run", tmp_path / "reference")


@pytest.mark.slow
def test_kill_9_during_training_then_resume(tmp_path):
    """``python train.py`` killed with SIGKILL once ``last.ckpt`` holds epoch 1 or later, then
    the same command with ``ckpt_path=last``: it ends as an uninterrupted run of the same
    command in another folder (``_assert_same_run``; tolerance and its reason in
    ``test_resumed_training_matches_an_uninterrupted_run``)."""
    # Three times the images at 128x128: epochs long enough (about 0.5 s on an idle machine)
    # that the kill lands well before the last one ends.
    data = write_tiny_csv_set(tmp_path / "set", per_class=24)
    run, reference = tmp_path / "run", tmp_path / "reference"

    def command(folder: Path, *extra: str) -> list[str]:
        return [sys.executable, str(ROOT / "train.py"), *fast_overrides(data, tmp_path),
                *RUN_ARGS, "data.preprocess.size=[128,128]", f"hydra.run.dir={folder}", *extra]

    # The reference runs beside the run that is killed, to save time.
    uninterrupted = _start(command(reference), tmp_path / "reference.log", tmp_path)
    victim = _start(command(run), tmp_path / "killed.log", tmp_path)
    last = run / "checkpoints" / "last.ckpt"

    def last_epoch() -> int:
        try:
            return int(_checkpoint(last)["epoch"])
        except (FileNotFoundError, EOFError, RuntimeError, OSError):
            return -1

    try:
        _kill_when(victim, lambda: last_epoch() >= 1, "a last.ckpt of epoch 1",
                   tmp_path / "killed.log")
    finally:
        if victim.poll() is None:
            victim.kill()
    killed_at = last_epoch()
    assert 1 <= killed_at < 3, "killed after its last epoch: nothing left to resume"
    assert not (run / "summary.json").exists()
    resumed = _start(command(run, "ckpt_path=last"), tmp_path / "resumed.log", tmp_path)
    _finish(resumed, tmp_path / "resumed.log")
    _finish(uninterrupted, tmp_path / "reference.log")
    assert f"resuming from {last}" in _tail(tmp_path / "resumed.log", 100_000)
    _assert_same_run(run, reference, from_epoch=killed_at + 1)


# -- prediction ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_kill_9_during_prediction_then_rerun(tmp_path):
    """``vqc-predict`` killed with SIGKILL after some batches, then run again: the CSVs are
    complete, every image once, and equal (byte for byte) to an uninterrupted run's."""
    artifact = make_inspector().save(tmp_path / "inspector.safetensors")
    names = write_images(tmp_path / "images", 160, 40)  # 100 batches: time to kill it midway
    args = ["--inspector", str(artifact), "--images", str(tmp_path / "images"),
            "--batch-size", "2"]
    out = tmp_path / "out" / "submission.csv"
    partial = out.with_name(f"{out.name}.partial.csv")

    def rows_done() -> int:
        return partial.read_bytes().count(b"\n") - 1 if partial.is_file() else 0

    process = _start([sys.executable, "-m", "vqc.cli.predict", *args, "--out", str(out)],
                     tmp_path / "predict.log", ROOT)
    try:
        _kill_when(process, lambda: rows_done() >= 6, "6 predicted rows",
                   tmp_path / "predict.log")
    finally:
        if process.poll() is None:
            process.kill()
    done = rows_done()
    assert 6 <= done < len(names), "finished before it was killed"
    assert done % 2 == 0                                # complete batches only
    assert not out.exists()

    assert predict_cli.main([*args, "--out", str(out)]) == 0
    reference = tmp_path / "reference" / "submission.csv"
    assert predict_cli.main([*args, "--out", str(reference)]) == 0
    submission = pd.read_csv(out, index_col=0)
    assert submission["filename"].tolist() == sorted(names)   # each once, in order
    assert out.read_bytes() == reference.read_bytes()
    details = out.with_name("submission_details.csv")
    assert details.read_bytes() == reference.with_name("submission_details.csv").read_bytes()
    assert not partial.exists()


# -- the preprocessing cache --------------------------------------------------------------------
_FILL_CACHE = """
import itertools, sys
from pathlib import Path
import pandas as pd
from vqc.data.cache import ImageCache
from vqc.data.dataset import warm_cache
from vqc.data.preprocess import Preprocessor

images, root = Path(sys.argv[1]), Path(sys.argv[2])
paths = sorted(str(p) for p in images.glob("*.png"))
frame = pd.DataFrame({"path": paths, "lib": [None] * len(paths)})
for n in itertools.count():  # fill a fresh cache again and again until killed
    warm_cache(ImageCache(root / f"round{n}", Preprocessor(size=(160, 160))), frame, 1)
"""


def test_kill_9_during_cache_build_leaves_only_complete_entries(tmp_path):
    """A process filling caches is killed with SIGKILL: every entry present loads and equals a
    fresh preprocess of its image, and the next build completes the cache."""
    write_images(tmp_path / "images", 40, 0)
    images = sorted((tmp_path / "images").glob("*.png"))
    root = tmp_path / "caches"
    preprocessor = Preprocessor(size=(160, 160))

    def entries() -> int:
        return sum(1 for _ in root.rglob("*.npy")) if root.is_dir() else 0

    process = _start([sys.executable, "-c", _FILL_CACHE, str(tmp_path / "images"), str(root)],
                     tmp_path / "cache.log", ROOT)
    try:
        _kill_when(process, lambda: entries() >= 100, "100 cache entries", tmp_path / "cache.log")
    finally:
        if process.poll() is None:
            process.kill()
    expected = {path: preprocessor(path, None) for path in images}
    checked = 0
    for round_dir in sorted(root.iterdir()):
        cache = ImageCache(round_dir, preprocessor)
        for path in images:
            entry = cache.entry_path(path)
            if entry.is_file():
                np.testing.assert_array_equal(np.load(entry, allow_pickle=False),
                                              expected[path], err_msg=str(entry))
                checked += 1
    assert checked == entries() >= 100                  # nothing else under an entry's name
    # At most the one entry being written at the kill is left, as a hidden temporary file.
    assert len([p for p in root.rglob(".*.tmp")]) <= 1
    last = ImageCache(max(root.iterdir(), key=lambda p: int(p.name[5:])), preprocessor)
    frame = pd.DataFrame({"path": [str(p) for p in images], "lib": [None] * len(images)})
    assert warm_cache(last, frame, 1) == []
    for path in images:
        np.testing.assert_array_equal(last.get(path), expected[path])
    assert last.stats.hits == len(images)


def test_an_empty_cache_entry_is_rebuilt(tmp_path):
    """An entry emptied by a crash of the whole machine (renamed before its data reached the
    disk) is rebuilt, not an error."""
    write_images(tmp_path / "images", 1, 0)
    path = next((tmp_path / "images").glob("*.png"))
    cache = ImageCache(tmp_path / "cache", Preprocessor(size=(24, 24)))
    expected = cache.get(path)
    cache.entry_path(path).write_bytes(b"")
    np.testing.assert_array_equal(cache.get(path), expected)
    assert cache.stats.decoded == 2
    np.testing.assert_array_equal(np.load(cache.entry_path(path)), expected)
