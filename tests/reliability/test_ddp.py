"""Two CPU processes (``trainer=ddp_cpu``) score exactly like one.

What is compared: a 2-process run trains one epoch; its validation figures (computed by the two
processes over disjoint shards, then summed) must equal a 1-process validation of the same
checkpoint, and its test results (computed on rank 0 after training) must equal those of a
1-process run that tests the same checkpoint. Training itself differs across process counts
(other batches), so only the same weights are compared.
"""

import csv
import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
from omegaconf import open_dict
from torch.utils.data import DataLoader, DistributedSampler

from tests.training.conftest import fast_overrides, write_tiny_csv_set
from vqc.config import compose
from vqc.data.build import build_datamodule
from vqc.errors import ConfigError
from vqc.training.distributed import ExactEvalDDPStrategy, check_launch
from vqc.training.task import build_module

ROOT = Path(__file__).resolve().parents[2]


def _shards(loader_for_rank) -> list[list[int]]:
    return [[int(i) for batch in loader_for_rank(rank) for i in batch] for rank in (0, 1)]


def test_evaluation_loaders_see_every_image_exactly_once():
    strategy = ExactEvalDDPStrategy(process_group_backend="gloo")
    dataset = list(range(7))

    def padded(rank: int) -> DataLoader:  # what Lightning gives an evaluation loader
        sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=False)
        return DataLoader(dataset, batch_size=3, sampler=sampler)

    first, second = _shards(padded)
    assert sorted(first + second) == [0, 0, 1, 2, 3, 4, 5, 6]  # image 0 twice
    exact = _shards(lambda rank: strategy.process_dataloader(padded(rank)))
    assert sorted(exact[0] + exact[1]) == list(range(7))
    assert len(exact[0]) >= 1 and len(exact[1]) >= 1

    def training(rank: int) -> DataLoader:  # shuffled: training batches, left as they are
        sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True)
        return DataLoader(dataset, batch_size=3, sampler=sampler)

    kept = strategy.process_dataloader(training(0))
    assert type(kept.sampler) is DistributedSampler and kept.sampler.shuffle


def test_the_training_draw_is_shared_out_between_processes(tmp_path):
    data = write_tiny_csv_set(tmp_path / "set")
    GlobalHydra.instance().clear()
    cfg = compose("train", fast_overrides(data, tmp_path))

    def sampler():  # each process builds its own data module and training sampler
        datamodule = build_datamodule(cfg.data, cfg.paths.cache_dir, seed=int(cfg.seed))
        datamodule.prepare_data()
        datamodule.setup()
        return datamodule.train_dataloader().sampler

    reference = sampler()
    wrapped = [DistributedSamplerWrapper(sampler(), num_replicas=2, rank=rank, shuffle=True,
                                         seed=42) for rank in (0, 1)]
    assert len(reference) % 2 == 0  # no padding to account for
    for epoch in range(2):  # the same draw in every process, split into disjoint halves
        for wrapper in wrapped:
            wrapper.set_epoch(epoch)
        halves = [list(wrapper) for wrapper in wrapped]
        draw = list(reference)
        assert len(halves[0]) == len(halves[1]) == len(draw) // 2
        assert Counter(map(repr, halves[0] + halves[1])) == Counter(map(repr, draw))


def test_processes_started_by_lightning_are_refused_in_a_multirun(monkeypatch):
    environment = SimpleNamespace(creates_processes_externally=False)
    trainer = SimpleNamespace(world_size=2, strategy=SimpleNamespace(
        launcher=SimpleNamespace(cluster_environment=environment)))
    monkeypatch.setattr(HydraConfig, "initialized", staticmethod(lambda: True))
    monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: SimpleNamespace(
        mode=RunMode.MULTIRUN)))
    with pytest.raises(ConfigError, match="multirun"):
        check_launch(trainer)
    environment.creates_processes_externally = True  # torchrun, SLURM: allowed
    check_launch(trainer)
    monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: SimpleNamespace(
        mode=RunMode.RUN)))
    environment.creates_processes_externally = False
    check_launch(trainer)


def _train(overrides: list[str], tmp: Path) -> None:
    env = os.environ | {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    result = subprocess.run([sys.executable, str(ROOT / "train.py"), *overrides], env=env,
                            cwd=tmp, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-4000:]


def _validation_row(run: Path) -> dict[str, float]:
    (path,) = run.glob("csv/*/metrics.csv")
    with open(path, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("val/pwa")]
    assert len(rows) == 1, rows  # one epoch, one validation
    return {k: float(v) for k, v in rows[0].items() if k.startswith("val/") and v != ""}


def _same(a: float, b: float, rel: float = 0.0) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=rel, abs_tol=rel)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.filterwarnings("ignore:Be aware that when using")  # the bare validation trainer
def test_two_processes_validate_and_test_like_one(tmp_path):
    # 27 training images per class set: 18 for training (9 per process) and 9 for validation,
    # an odd count (5 + 4 per process; Lightning's padded sampler would score 10); 12 test images.
    data = write_tiny_csv_set(tmp_path / "set", per_class=9)
    common = fast_overrides(data, tmp_path, "model=cnn", "depth=2", "data.val_fraction=0.3",
                            "trainer.max_epochs=1")
    ddp, one = tmp_path / "ddp", tmp_path / "one"
    _train([*common, "trainer=ddp_cpu", f"hydra.run.dir={ddp}"], tmp_path)
    assert (ddp / "train_ddp_process_1.log").is_file()  # a second process took part
    assert "rank 1: training done" in (ddp / "train_ddp_process_1.log").read_text()
    two = json.loads((ddp / "summary.json").read_text())
    best = two["best_checkpoint"]
    assert Path(best).is_file()
    # rank 0 alone wrote the results: test, inspector, pictures
    assert (ddp / "inspector.safetensors").is_file() and (ddp / "test_report.md").is_file()
    assert (ddp / "figures" / "test_confusion.png").is_file()

    # Validation: the 2-process figures equal a 1-process validation of the same weights.
    GlobalHydra.instance().clear()
    cfg = compose("train", common)
    with open_dict(cfg):
        cfg.paths.run_dir = str(tmp_path / "validate")
    datamodule = build_datamodule(cfg.data, cfg.paths.cache_dir, seed=int(cfg.seed))
    datamodule.prepare_data()
    datamodule.setup()
    assert len(datamodule.val_frame) == 9
    module = build_module(cfg, datamodule)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False)
    (single,) = trainer.validate(module, datamodule=datamodule, ckpt_path=best,
                                 weights_only=True, verbose=False)
    single = {k: float(torch.as_tensor(v)) for k, v in single.items()}
    parallel = _validation_row(ddp)
    assert set(parallel) == set(single)
    differing = {k: (parallel[k], single[k]) for k in single
                 if not _same(parallel[k], single[k], 1e-5 if k == "val/loss" else 1e-7)}
    assert not differing, differing
    assert _same(two["best_score"], single["val/pwa"], 1e-7)

    # Test: the same checkpoint tested by a 1-process run resumed from the end of training
    # (max_epochs reached: no training; the best checkpoint holds the weights only).
    last = Path(best).parent / "last.ckpt"
    _train([*common, f"ckpt_path={last}", f"hydra.run.dir={one}"], tmp_path)
    alone = json.loads((one / "summary.json").read_text())
    assert not (one / "train_ddp_process_1.log").exists()
    assert two["test"]["confusion"] == alone["test"]["confusion"]
    assert sum(map(sum, two["test"]["confusion"])) == 12  # every test image exactly once
    assert two["test"]["pwa"] == alone["test"]["pwa"]
    assert two["test_decisions"] == alone["test_decisions"]
    assert two["inspection"]["report"]["confusion"] == alone["inspection"]["report"]["confusion"]
