"""Numerical faults: a NaN or Inf loss stops training with a clear message or skips the batch,
and a diverged epoch never becomes the best checkpoint.

Faults are forced two ways: a learning rate of 1e30 (the first step throws the weights so far
that the next batch's loss is NaN), or a monkeypatched loss / model output that is NaN exactly
where a test wants it.
"""

import logging
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import open_dict
from torch import nn

from tests.training.conftest import fast_overrides, write_tiny_csv_set
from vqc.config import compose
from vqc.training import task as task_module
from vqc.training.callbacks import FiniteModelCheckpoint
from vqc.training.module import ClassifierModule
from vqc.training.task import train

# The tiny set: 24 training images (3 classes), 6 held out for validation, 18 left in batches of
# 8: 3 training batches and 1 validation batch per epoch.
TRAIN_BATCHES = 3


@pytest.fixture(scope="module")
def data_set(tmp_path_factory) -> Path:
    return write_tiny_csv_set(tmp_path_factory.mktemp("numerical") / "set")


def _cfg(data: Path, tmp: Path, *extra: str):
    GlobalHydra.instance().clear()
    cfg = compose("train", fast_overrides(data, tmp, "depth=2", "figures.enabled=false",
                                          "inspector=false", *extra))
    with open_dict(cfg):
        cfg.paths.run_dir = str(tmp / "run")
    return cfg


def _metrics(run: Path) -> pd.DataFrame:
    return pd.concat(pd.read_csv(p) for p in sorted((run / "csv").glob("version_*/metrics.csv")))


def _per_epoch(run: Path, key: str) -> list[float]:
    """The last logged ``key`` of each epoch, a logged NaN kept apart from a missing value."""
    frame = pd.concat(pd.read_csv(p, keep_default_na=False, dtype=str)
                      for p in sorted((run / "csv").glob("version_*/metrics.csv")))
    frame = frame[frame[key] != ""]
    return frame.groupby(frame["epoch"].astype(int))[key].last().astype(float).tolist()


def _best_files(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").glob("best-*.ckpt"))


class _BadLossOn(nn.Module):
    """The real loss, times ``bad`` (NaN or Inf) on the given 1-based training calls (``None``:
    every one). Validation runs without gradients and is never touched."""

    def __init__(self, loss: nn.Module, calls: set[int] | None, bad: float) -> None:
        super().__init__()
        self.loss, self.calls, self.bad, self.n = loss, calls, bad, 0

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out = self.loss(logits, target)
        if not torch.is_grad_enabled():
            return out
        self.n += 1
        return out * self.bad if self.calls is None or self.n in self.calls else out


def _nan_loss_on(monkeypatch, calls: set[int] | None, bad: float = math.nan) -> None:
    real = task_module.build_loss
    monkeypatch.setattr(task_module, "build_loss",
                        lambda *a, **k: _BadLossOn(real(*a, **k), calls, bad))


def _nan_validation_on(monkeypatch, epochs: set[int]) -> None:
    """Validation logits (not training, not test) are NaN in the given epochs."""
    real = ClassifierModule._logits_and_embeddings

    def logits_and_embeddings(self, images):
        logits, features = real(self, images)
        if self.trainer.validating and self.current_epoch in epochs:
            logits = torch.full_like(logits, math.nan)
        return logits, features

    monkeypatch.setattr(ClassifierModule, "_logits_and_embeddings", logits_and_embeddings)


def _record_saves(monkeypatch) -> list[str]:
    saved: list[str] = []
    real = FiniteModelCheckpoint._save_checkpoint  # the checkpoints of conf/callbacks

    def save(self, trainer, filepath):
        saved.append(Path(filepath).name)
        real(self, trainer, filepath)

    monkeypatch.setattr(FiniteModelCheckpoint, "_save_checkpoint", save)
    return saved


def test_nan_loss_stops_training_naming_epoch_and_batch(data_set, tmp_path):
    """lr=1e30: the first batch is finite, its step sends the weights to ~1e30, the second's
    loss is NaN. Messages count epochs and batches from 1, as the progress lines do."""
    with pytest.raises(FloatingPointError, match=r"non-finite training loss \(nan\) at epoch 1, "
                                                 r"batch 2; .*module\.nan_policy=skip"):
        train(_cfg(data_set, tmp_path, "lr=1e30"))
    assert _best_files(tmp_path / "run") == []


def test_an_inf_loss_stops_training_too(data_set, tmp_path, monkeypatch):
    _nan_loss_on(monkeypatch, {2}, math.inf)
    with pytest.raises(FloatingPointError, match=r"loss \(inf\) at epoch 1, batch 2;"):
        train(_cfg(data_set, tmp_path))


def test_nan_in_an_accumulated_batch_stops_before_the_step(data_set, tmp_path, monkeypatch):
    """Gradients of the first two batches are summed; the first one's NaN is found before the
    step."""
    _nan_loss_on(monkeypatch, {1})
    with pytest.raises(FloatingPointError, match=r"loss \(nan\) at epoch 1, batch 1;"):
        train(_cfg(data_set, tmp_path, "+trainer.accumulate_grad_batches=2"))
    assert _best_files(tmp_path / "run") == []


def test_skip_policy_skips_nan_batches_and_finishes(data_set, tmp_path, monkeypatch, caplog):
    """Training calls 2 and 5 (the second batch of the first two epochs) are NaN: skipped,
    named, counted."""
    _nan_loss_on(monkeypatch, {2, 5})
    with caplog.at_level(logging.WARNING, logger="vqc.training.module"):
        summary = train(_cfg(data_set, tmp_path, "module.nan_policy=skip"))
    skipped = [r.getMessage() for r in caplog.records if "batch skipped" in r.getMessage()]
    assert [m.split(") at ")[1].split(":")[0] for m in skipped] == ["epoch 1, batch 2",
                                                                     "epoch 2, batch 2"]
    assert summary["epochs"] == 2                    # training finished
    metrics = _metrics(tmp_path / "run")
    per_epoch = metrics.dropna(subset=["train/skipped_batches"])
    assert per_epoch["train/skipped_batches"].tolist() == [1.0, 1.0]
    assert math.isfinite(summary["best_score"]) and Path(summary["best_checkpoint"]).is_file()
    assert summary["test"]["pwa"] is not None        # the best checkpoint was tested


def test_a_skipped_batch_does_not_move_the_weights(data_set, tmp_path, monkeypatch):
    """Every training loss NaN: two epochs later the parameters are those the run started with.

    (BatchNorm running statistics are buffers updated by the forward pass, not parameters.)
    """
    _nan_loss_on(monkeypatch, None)
    initial = {}
    real_build = task_module.build_module

    def build_module(*args, **kwargs):
        module = real_build(*args, **kwargs)
        initial.update({k: v.detach().clone() for k, v in module.named_parameters()})
        return module

    monkeypatch.setattr(task_module, "build_module", build_module)
    train(_cfg(data_set, tmp_path, "module.nan_policy=skip", "test=false"))
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt",
                       weights_only=True)["state_dict"]
    assert initial and all(torch.equal(state[k], v) for k, v in initial.items())
    metrics = _metrics(tmp_path / "run").dropna(subset=["train/skipped_batches"])
    assert metrics["train/skipped_batches"].tolist() == [TRAIN_BATCHES] * 2


def test_nan_validation_stops_training_under_the_stop_policy(data_set, tmp_path, monkeypatch):
    _nan_validation_on(monkeypatch, {1})
    with pytest.raises(FloatingPointError,
                       match=r"non-finite validation loss or output \(nan\) at epoch 2, batch 1"):
        train(_cfg(data_set, tmp_path, "trainer.max_epochs=3"))
    assert [f for f in _best_files(tmp_path / "run") if "epoch001" in f] == []


def test_a_diverged_epoch_never_becomes_the_best_checkpoint(data_set, tmp_path, monkeypatch):
    """Epochs 0 and 2 validate to NaN, epoch 1 is finite: epoch 1 is the only best ever saved.

    Without the guard, Lightning saves epoch 0 as the first best (NaN read as -inf).
    """
    _nan_validation_on(monkeypatch, {0, 2})
    saved = _record_saves(monkeypatch)
    summary = train(_cfg(data_set, tmp_path, "module.nan_policy=skip", "trainer.max_epochs=3"))
    run = tmp_path / "run"
    assert [f for f in saved if f.startswith("best-")] == ["best-epoch001.ckpt"]
    assert _best_files(run) == ["best-epoch001.ckpt"]
    assert Path(summary["best_checkpoint"]).name == "best-epoch001.ckpt"
    assert math.isfinite(summary["best_score"])
    for name in ("last.ckpt",):  # the best checkpoint holds the weights only
        callbacks = torch.load(run / "checkpoints" / name, weights_only=True)["callbacks"]
        scores = [s["best_model_score"] for k, s in callbacks.items()
                  if "val/pwa" in k and s.get("best_model_score") is not None]
        assert scores and all(torch.isfinite(torch.as_tensor(s)) for s in scores)
    assert [math.isnan(v) for v in _per_epoch(run, "val/pwa")] == [True, False, True]


def test_a_run_that_never_validates_finite_has_no_best_and_says_why(data_set, tmp_path):
    """lr=1e30 with skip: every epoch diverged, training finishes, no best checkpoint is
    written, and testing stops with a clear message instead of calibrating on NaN."""
    with pytest.raises(FloatingPointError, match="not finite: its weights have diverged"):
        train(_cfg(data_set, tmp_path, "lr=1e30", "module.nan_policy=skip"))
    run = tmp_path / "run"
    assert _best_files(run) == []
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1
    pwa = _per_epoch(run, "val/pwa")
    assert len(pwa) == 2 and all(math.isnan(v) for v in pwa)


@pytest.mark.parametrize("mode, bad", [("max", math.nan), ("max", -math.inf),
                                       ("min", math.nan), ("min", math.inf)])
def test_checkpoint_guard_refuses_non_finite_scores(tmp_path, mode, bad):
    checkpoint = FiniteModelCheckpoint(dirpath=tmp_path, monitor="val/pwa", mode=mode)
    # No checkpoint yet: Lightning alone would accept anything, NaN included.
    assert ModelCheckpoint(dirpath=tmp_path, monitor="val/pwa",
                           mode=mode).check_monitor_top_k(None, torch.tensor(bad)) is True
    assert checkpoint.check_monitor_top_k(None, torch.tensor(bad)) is False
    assert checkpoint.check_monitor_top_k(None, torch.tensor(0.5)) is True
    assert checkpoint.check_monitor_top_k(None, None) is False


def test_checkpoint_guard_keeps_the_state_key_of_lightnings_checkpoint(tmp_path):
    """Checkpoints written with either class resume with their best score."""
    settings = {"dirpath": tmp_path, "monitor": "val/pwa", "mode": "max"}
    key = FiniteModelCheckpoint(**settings).state_key
    assert key == ModelCheckpoint(**settings).state_key
    assert key.startswith("ModelCheckpoint{") and "val/pwa" in key
