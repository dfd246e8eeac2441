"""The run's callbacks: pictures drawn at the right moments, checkpoints configured by name."""

from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import open_dict

from tests.training.conftest import fast_overrides
from vqc.classes import ClassSet
from vqc.config import compose
from vqc.training.callbacks import FiniteModelCheckpoint, RunFigures
from vqc.training.module import EpochOutputs
from vqc.training.task import train

CLASSES = ClassSet(("good", "dent", "scratch"), good="good")


class _Report:
    def confusion_figure(self, title: str) -> plt.Figure:
        fig, ax = plt.subplots()
        ax.set_title(title)
        return fig


def _trainer(epoch: int = 0, rank_zero: bool = True, sanity: bool = False) -> SimpleNamespace:
    return SimpleNamespace(current_epoch=epoch, max_epochs=3, is_global_zero=rank_zero,
                           sanity_checking=sanity, loggers=[])


def _module(stage: str) -> SimpleNamespace:
    outputs = EpochOutputs(_Report(), torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))
    return SimpleNamespace(classes=CLASSES, epoch_outputs={stage: outputs})


@pytest.mark.parametrize("every, drawn", [(0, [2]), (2, [1, 2])])
def test_validation_pictures_after_the_last_epoch_and_every_n(tmp_path, every, drawn):
    figures = RunFigures(tmp_path, every_n_epochs=every, tsne=False)
    for epoch in range(3):
        figures.on_validation_end(_trainer(epoch), _module("val"))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"val_confusion_epoch{e:03d}.png" for e in drawn]


@pytest.mark.parametrize("trainer", [_trainer(2, sanity=True), _trainer(2, rank_zero=False)])
def test_no_pictures_in_the_sanity_check_or_off_rank_zero(tmp_path, trainer):
    figures = RunFigures(tmp_path)
    figures.on_validation_end(trainer, _module("val"))
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_test_pictures_keep_at_most_max_misclassified(tmp_path):
    figures = RunFigures(tmp_path, tsne=False, max_misclassified=3)
    trainer, module = _trainer(), _module("test")
    figures.on_test_epoch_start(trainer, module)
    images, target = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    for _ in range(2):  # 2 wrong per batch: the second batch fills the last place
        figures.on_test_batch_end(trainer, module, torch.tensor([1, 1, 0, 0]),
                                  (images, target), 0)
    assert [(true, pred) for _, true, pred in figures._misclassified] == [(0, 1), (2, 0), (0, 1)]
    figures.on_test_end(trainer, module)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test_confusion.png",
                                                         "test_misclassified.png"]
    assert figures._misclassified == []


def test_a_run_draws_validation_and_test_pictures(tiny_csv_set, tmp_path):
    GlobalHydra.instance().clear()
    cfg = compose("train", fast_overrides(tiny_csv_set, tmp_path, "depth=2", "inspector=false",
                                          "figures.every_n_epochs=1"))
    with open_dict(cfg):
        cfg.paths.run_dir = str(tmp_path / "run")
    train(cfg)
    names = {p.name for p in (Path(cfg.paths.run_dir) / "figures").iterdir()}
    assert {"val_confusion_epoch000.png", "val_confusion_epoch001.png",
            "test_confusion.png"} <= names


def test_configured_checkpoints_are_the_finite_ones(tmp_path):
    for group in ("default", "none"):
        GlobalHydra.instance().clear()
        cfg = compose("train", [f"callbacks={group}"])
        with open_dict(cfg):
            cfg.paths.run_dir = str(tmp_path)
        for name in ("model_checkpoint", "last_checkpoint"):
            assert isinstance(instantiate(cfg.callbacks[name]), FiniteModelCheckpoint)


def test_the_progress_bar_counts_epochs_from_one_as_the_log_does() -> None:
    from types import SimpleNamespace

    from vqc.training.callbacks import EpochProgressBar

    bar = EpochProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=3)
    assert bar._get_train_description(2).strip() == "Epoch 3/3"  # the last of three
    assert bar._get_train_description(0).strip() == "Epoch 1/3"
