"""Several processes (Lightning's DDP): exact evaluation, and everything else on rank 0.

- Training batches are sharded by Lightning's ``DistributedSampler``, which wraps the data
  module's own (class-balanced) sampler: its draw of an epoch is seeded alike in every process,
  so the processes take disjoint parts of one common draw.
- Lightning's sampler pads the last shard by repeating images when their number is not a multiple
  of the process count, so a metric summed over processes would count some images twice.
  ``ExactEvalDDPStrategy`` gives validation and test loaders an unpadded sampler instead: every
  image is seen exactly once (shards differ by at most one image), and the validation figures,
  whose state is a confusion matrix summed over processes, equal a one-process run's.
  Lightning's epoch means divide a sum by the summed batch sizes, both averaged over processes;
  the strategy keeps the average of those integer sizes from being truncated.
- After ``fit``, the task tests, fits the inspector and writes its files on rank 0 alone, with a
  one-process trainer (``rank_zero_tester``): the other processes stop there. The module's test
  outputs beside the summed confusion matrix (both decision rules, pictures) are those of the
  process that makes them, so testing in one process keeps them whole.
- ``prepare_data`` runs on each machine's local rank 0 only. Lightning's own launcher starts the
  other processes once rank 0 has prepared the data; with torchrun or SLURM, which start them
  all at once, the others prepare what they need themselves (cache writes are atomic).
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities.data import _update_dataloader
from torch import Tensor
from torch.distributed import ReduceOp
from torch.utils.data import DataLoader, DistributedSampler

from vqc.errors import ConfigError

log = logging.getLogger(__name__)


def local_rank() -> int:
    """This process's rank on its machine, from the launcher's environment (0 when alone)."""
    for name in ("LOCAL_RANK", "SLURM_LOCALID", "JSM_NAMESPACE_LOCAL_RANK"):
        value = os.environ.get(name)
        if value is not None and value.strip().isdigit():
            return int(value)
    return 0


class ExactEvalDDPStrategy(DDPStrategy):
    """DDP whose validation and test loaders see every image exactly once across processes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The validation and test figures come from metrics that sum their confusion matrix
        # over processes before computing: the same value in every process, nothing to sync.
        warnings.filterwarnings("ignore", message=r"It is recommended to use `self\.log\('"
                                r"(val|test)/")

    def process_dataloader(self, dataloader: object) -> object:
        dataloader = super().process_dataloader(dataloader)
        if not isinstance(dataloader, DataLoader):
            return dataloader
        sampler = dataloader.sampler
        # Lightning gives evaluation loaders exactly this (not shuffled); training loaders get a
        # shuffled one, or a DistributedSamplerWrapper around the balanced sampler.
        if type(sampler) is not DistributedSampler or sampler.shuffle:
            return dataloader
        if len(sampler.dataset) < sampler.num_replicas:
            log.warning("%d evaluation images for %d processes: Lightning's padded sampler kept "
                        "(some images count twice)", len(sampler.dataset), sampler.num_replicas)
            return dataloader
        exact = UnrepeatedDistributedSampler(sampler.dataset, num_replicas=sampler.num_replicas,
                                             rank=sampler.rank, shuffle=False)
        return _update_dataloader(dataloader, exact)

    def reduce(self, tensor: Any, group: Any | None = None,
               reduce_op: ReduceOp | str | None = "mean") -> Any:
        # Lightning's epoch means divide a summed value by the summed batch sizes, both reduced
        # by "mean"; that of the integer batch sizes is truncated in place (9 images as 5 + 4 over
        # two processes -> 4), harmless with equal shards but not with the shards above.
        if isinstance(tensor, Tensor) and not tensor.is_floating_point() and _is_mean(reduce_op):
            tensor = tensor.to(torch.float64)
        return super().reduce(tensor, group, reduce_op)


def _is_mean(reduce_op: ReduceOp | str | None) -> bool:
    if isinstance(reduce_op, str):
        return reduce_op.lower() in ("mean", "avg")
    return reduce_op == ReduceOp.AVG


def check_launch(trainer: Any) -> None:
    """Refuse Lightning's process launcher inside a Hydra multirun.

    That launcher starts the extra processes by running the command line again, which in a
    multirun would start the whole sweep again in each of them.
    """
    if trainer.world_size < 2:
        return
    launcher = getattr(trainer.strategy, "launcher", None)
    environment = getattr(launcher, "cluster_environment", None)
    if environment is None or environment.creates_processes_externally:
        return
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        raise ConfigError(
            f"trainer: {trainer.world_size} processes started by Lightning cannot run inside a "
            "multirun (each would run the whole sweep again); run each configuration on its own, "
            "or start the processes with torchrun or SLURM")


def rank_zero_tester(trainer: Any, trainer_cfg: Any, loggers: list[Any]) -> Any | None:
    """After a distributed ``fit``: a one-process trainer on rank 0, ``None`` on other ranks.

    Every process waits for the others, then the process group is closed, so that nothing done
    afterwards on rank 0 (testing, the inspector) waits for processes that have stopped.
    """
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    trainer.strategy.barrier("vqc:fit-done")
    rank = trainer.global_rank
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    if rank != 0:
        log.info("rank %d: training done; rank 0 tests and writes the results", rank)
        return None
    from lightning.pytorch.callbacks import ModelCheckpoint

    from vqc.training.callbacks import RunFigures

    spec = OmegaConf.to_container(trainer_cfg, resolve=True)
    # The checkpoint callbacks come along: those whose state the tested checkpoint holds;
    # and the pictures, which draw the test's.
    checkpoints = [c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]
    pictures = [c for c in trainer.callbacks if isinstance(c, RunFigures)]
    spec.update(strategy="auto", devices=1, num_nodes=1, sync_batchnorm=False,
                enable_model_summary=False, logger=loggers or False,
                callbacks=checkpoints + pictures,
                enable_checkpointing=bool(checkpoints))
    log.info("testing on rank 0 in one process (each test image exactly once)")
    return instantiate(spec)


__all__ = ["ExactEvalDDPStrategy", "check_launch", "local_rank", "rank_zero_tester"]

