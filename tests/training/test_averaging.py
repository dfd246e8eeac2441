"""``EmaWeights``: an EMA of the weights from a given epoch on, checkpointed and left in the
model, computed by hand on a parameter that grows by one each step."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from vqc.errors import ConfigError
from vqc.training.averaging import EmaWeights


class Counter(L.LightningModule):
    """One weight; SGD at rate 1 on the loss ``-w`` adds 1 to it every step."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[float] = []

    def training_step(self, batch, batch_idx):
        return -self.w + 0 * batch[0].sum()

    def validation_step(self, batch, batch_idx):
        self.seen.append(float(self.w))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1.0)


def loader(batch_size: int = 1) -> DataLoader:
    return DataLoader(TensorDataset(torch.zeros(2, 1)), batch_size=batch_size)


def fit(tmp_path, callback: EmaWeights, epochs: int = 3) -> Counter:
    module = Counter()
    trainer = L.Trainer(max_epochs=epochs, callbacks=[callback], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0,
                        default_root_dir=tmp_path, accelerator="cpu")
    trainer.fit(module, loader(), loader(2))  # 2 steps, 1 validation step
    return module


def test_the_average_starts_at_its_epoch_and_ends_in_the_model(tmp_path) -> None:
    d = 0.5
    module = fit(tmp_path, EmaWeights(decay=d, start_epoch=1))
    # steps of epoch 0 leave w at 1, 2 (not averaged); epoch 1: 3 (first: copied), 4; epoch 2: 5, 6
    expected = 3.0
    for w in (4.0, 5.0, 6.0):
        expected = d * expected + (1 - d) * w
    assert module.w.item() == pytest.approx(expected)
    # validation sees the model itself until something is averaged, then the average so far
    assert module.seen[0] == pytest.approx(2.0)
    assert module.seen[1] == pytest.approx(d * 3.0 + (1 - d) * 4.0)
    assert module.seen[2] == pytest.approx(expected)


def test_a_run_that_ends_before_the_start_keeps_its_training(tmp_path) -> None:
    module = fit(tmp_path, EmaWeights(decay=0.5, start_epoch=5), epochs=2)
    assert module.w.item() == pytest.approx(4.0)  # 4 steps, nothing averaged, nothing undone
    assert module.seen == [pytest.approx(2.0), pytest.approx(4.0)]


def test_weights_only_checkpoints_hold_the_average(tmp_path) -> None:
    best = ModelCheckpoint(dirpath=tmp_path, filename="best", monitor=None,
                           save_weights_only=True)
    module = Counter()
    trainer = L.Trainer(max_epochs=1, callbacks=[EmaWeights(decay=0.5), best], logger=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, default_root_dir=tmp_path, accelerator="cpu")
    trainer.fit(module, loader(), loader(2))
    saved = torch.load(tmp_path / "best.ckpt", weights_only=True)
    assert saved["state_dict"]["w"].item() == pytest.approx(0.5 * 1 + 0.5 * 2)  # the average
    assert saved["current_model_state"]["w"].item() == pytest.approx(2.0)  # and the weights


@pytest.mark.parametrize(("options", "name"), [({"decay": 1.0}, "decay"),
                                              ({"decay": 0.0}, "decay"),
                                              ({"start_epoch": -1}, "start_epoch")])
def test_bad_settings_are_named(options, name) -> None:
    with pytest.raises(ConfigError, match=f"weight_averaging.{name}"):
        EmaWeights(**options)
