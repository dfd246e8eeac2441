"""``ensemble=N``: N-1 more networks trained like the run's own, from other seeds.

Member 0 is the run itself (its checkpoints, logs and W&B run). Member ``k`` trains in the run
folder's ``members/k/`` with seed ``seed + 1000 k`` on the run's own split: the data module is
shared, only its sampler and augmentation seed change, so every member validates on the images
the temperature and the drift thresholds are calibrated on. Members log to the run's log file
and their curves to ``members/k/metrics.csv``, not to W&B. A member that finished (its
``member.json``) is reused when the run is resumed (``ckpt_path=last``), and its ``last.ckpt``
removed unless ``keep_last_checkpoint=true``; one that was interrupted resumes from its own
``last.ckpt``.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, open_dict

from vqc.config_checks import rule_problem
from vqc.errors import ConfigError
from vqc.interrupts import interruptible
from vqc.io import write_atomic
from vqc.models import Classifier, ensemble_of
from vqc.training.callbacks import configured_callbacks
from vqc.training.progress import log_progress

log = logging.getLogger(__name__)

#: Member ``k`` trains with seed ``seed + MEMBER_SEED_STEP * k``: far from the seeds of a sweep.
MEMBER_SEED_STEP = 1000


def ensemble_size(cfg: DictConfig) -> int:
    """``cfg.ensemble`` checked by its config rule: how many networks the run trains (1
    without the key)."""
    problem = rule_problem(cfg, "ensemble")
    if problem:
        raise ConfigError(problem)
    return int(cfg.get("ensemble", 1))


def member_seed(seed: int, member: int) -> int:
    return int(seed) + MEMBER_SEED_STEP * member


def train_member(cfg: DictConfig, datamodule: Any, run_dir: Path, member: int,
                 build: Callable[[DictConfig, Any], L.LightningModule]) -> dict[str, Any]:
    """Train member ``member`` (or reuse it, when resuming); returns its ``member.json``."""
    member_dir = run_dir / "members" / str(member)
    record_path = member_dir / "member.json"
    resuming = bool(cfg.get("ckpt_path"))
    if resuming and record_path.is_file():
        record = json.loads(record_path.read_text())
        if Path(record["best_checkpoint"]).is_file():
            log.info("ensemble member %d: trained already (%s)", member,
                     record["best_checkpoint"])
            return record
    seed = member_seed(int(cfg.seed), member)
    member_cfg = _member_config(cfg, member_dir, seed)
    L.seed_everything(seed, workers=True, verbose=False)
    data = copy.copy(datamodule)  # the same split and cache; its own sampler seed
    data.seed = seed
    module = build(member_cfg, data)
    callbacks = configured_callbacks(member_cfg, None)
    progress = log_progress(int(member_cfg.trainer.get("log_every_n_steps") or 0))
    callbacks += [progress] if progress else []
    logger = CSVLogger(member_dir, name="", version="")  # its curves: members/k/metrics.csv
    trainer: L.Trainer = instantiate(member_cfg.trainer, logger=logger, callbacks=callbacks)
    last = member_dir / "checkpoints" / "last.ckpt"
    resume = str(last) if resuming and last.is_file() else None
    log.info("ensemble member %d of %d: seed %d, in %s%s", member, ensemble_size(cfg), seed,
             member_dir, f", resuming from {last}" if resume else "")
    with interruptible(f"training network {member + 1}", lightning=True):
        trainer.fit(module, datamodule=data, ckpt_path=resume, weights_only=True)
    checkpoint = trainer.checkpoint_callback
    best = getattr(checkpoint, "best_model_path", "") if checkpoint else ""
    if not best:  # no checkpoint callback: the final weights are the member
        best = str(member_dir / "checkpoints" / "final.ckpt")
        trainer.save_checkpoint(best, weights_only=True)
    score = getattr(checkpoint, "best_model_score", None) if checkpoint else None
    record = {"member": member, "seed": seed, "best_checkpoint": best,
              "best_score": None if score is None else float(score),
              "epochs": trainer.current_epoch}
    write_atomic(record_path, json.dumps(record, indent=2))
    if not cfg.get("keep_last_checkpoint") and last.is_file():
        last.unlink()  # a finished member is reused from its best checkpoint
    return record


def load_member(cfg: DictConfig, datamodule: Any, checkpoint: str,
                build: Callable[[DictConfig, Any], L.LightningModule]) -> Classifier:
    """The network of a member's ``checkpoint`` (weights only), in eval mode on the CPU."""
    module = build(cfg, datamodule)
    try:
        module.load_checkpoint_weights(checkpoint)
    except RuntimeError as err:
        raise ConfigError(f"{checkpoint}: not a member of this run's model "
                          f"(model={cfg.model.name}): {err}") from err
    return module.network.cpu().eval()


def join_members(cfg: DictConfig, module: L.LightningModule, datamodule: Any, best: str,
                 members: list[dict[str, Any]],
                 build: Callable[[DictConfig, Any], L.LightningModule]) -> None:
    """Member 0's best weights (the module's own checkpoint) and the other members', as one
    classifier in ``module``."""
    if best:
        module.load_checkpoint_weights(best)
    others = [load_member(cfg, datamodule, m["best_checkpoint"], build) for m in members]
    module.model = ensemble_of([module.network.cpu(), *others])
    log.info("ensemble of %d networks: member 0 is this run's %s, then %s", len(others) + 1,
             best or "final weights", ", ".join(m["best_checkpoint"] for m in members))


def _member_config(cfg: DictConfig, member_dir: Path, seed: int) -> DictConfig:
    """The run's config with the member's folder (its checkpoints) and seed."""
    member_cfg = copy.deepcopy(cfg)
    with open_dict(member_cfg):
        member_cfg.paths.run_dir = str(member_dir)
        member_cfg.seed = seed
    return member_cfg
