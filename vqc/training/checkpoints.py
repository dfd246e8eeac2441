"""A run's checkpoints: which one to resume, whether a file is one of this model's (read
without unpickling anything), and the ``last.ckpt`` a finished sweep job drops."""

from __future__ import annotations

import logging
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from vqc.errors import ConfigError
from vqc.training.callbacks import BEST_KEY
from vqc.training.module import MASK_HEAD_PREFIX, ClassifierModule, without_mask_head

log = logging.getLogger(__name__)


def resume_path(cfg: DictConfig, run_dir: Path, module: ClassifierModule) -> str | None:
    """The checkpoint to resume from (``ckpt_path``), checked to be one of this very model."""
    ckpt = cfg.get("ckpt_path")
    if not ckpt:
        return None
    if ckpt == "last":
        last = run_dir / "checkpoints" / "last.ckpt"
        if not last.is_file():
            log.info("no %s yet: starting from scratch", last)
            return None
        log.info("resuming from %s", last)
        ckpt = str(last)
    elif not Path(ckpt).is_file():
        raise ConfigError(f"ckpt_path={ckpt}: file not found")
    check_checkpoint(str(ckpt), module, cfg, resume=True)
    return str(ckpt)


def check_checkpoint(path: str, module: ClassifierModule, cfg: DictConfig,
                      resume: bool = False) -> dict[str, Any] | None:
    """Refuse, with a message naming the file, a checkpoint that is unreadable without
    unpickling objects, or whose weights are not those of the configured model; ``resume``:
    also one without the optimizer's state (a best checkpoint holds the weights only).
    Returns what chose the checkpoint (``callbacks.best_record``), when it says."""
    if not zipfile.is_zipfile(path):
        raise ConfigError(f"ckpt_path={path}: not a checkpoint (a file written by torch.save)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        if "Weights only load failed" in str(err):
            found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
            what = f" such as {found.group(1)}" if found else ""
            raise ConfigError(f"ckpt_path={path}: refused: it holds objects{what} besides "
                              "tensors and plain values, and checkpoints are never "
                              "unpickled") from err
        lines = str(err).strip().splitlines()
        reason = f"{type(err).__name__}: {lines[0][:200]}" if lines else type(err).__name__
        raise ConfigError(f"ckpt_path={path}: not a readable checkpoint ({reason})") from err
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ConfigError(f"ckpt_path={path}: not a training checkpoint (no state_dict)")
    if resume and "optimizer_states" not in checkpoint:
        raise ConfigError(f"ckpt_path={path}: holds the weights only (a best checkpoint), "
                          "not the optimizer's state training resumes from: resume from "
                          "checkpoints/last.ckpt (ckpt_path=last), or test these weights with "
                          "eval.py ckpt_path=...")
    ours = module.state_dict()
    mask_trained = any(key.startswith(MASK_HEAD_PREFIX) for key in state)
    if resume and mask_trained != (module.mask_head is not None):
        raise ConfigError(f"ckpt_path={path}: trained {'with' if mask_trained else 'without'} "
                          f"pixel masks, resumed {'without' if mask_trained else 'with'}: set "
                          "module.mask_weight (and data.columns.mask or data.masks_root) as the "
                          "run had them")
    if not resume:  # testing needs the network, not the training-only mask head
        state = without_mask_head(state) if module.mask_head is None else state
    missing = sorted(set(ours) - set(state))
    unexpected = sorted(set(state) - set(ours))
    shapes = [f"{key} {tuple(getattr(state[key], 'shape', ()))} in the file, "
              f"{tuple(ours[key].shape)} here"
              for key in sorted(set(ours) & set(state))
              if tuple(getattr(state[key], "shape", ())) != tuple(ours[key].shape)]
    if missing or unexpected or shapes:
        parts = [f"{what} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
                 for what, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                    ("other shapes", shapes)) if keys]
        raise ConfigError(
            f"ckpt_path={path}: a checkpoint of another model or data set than this run's "
            f"(model={cfg.model.name}, {len(module.classes.trained_codes)} trained classes): "
            + "; ".join(parts)
        )
    record = checkpoint.get(BEST_KEY)
    return record if isinstance(record, dict) else None


def drop_last_checkpoint(cfg: DictConfig, run_dir: Path, sweep_job: bool) -> None:
    """A finished run's ``last.ckpt`` (weights and optimizer state, three times the weights'
    size with Adam) is removed where ``keep_last_checkpoint`` says so; by default from sweep
    jobs, which would otherwise keep gigabytes nobody resumes."""
    keep = cfg.get("keep_last_checkpoint")
    if keep if keep is not None else not sweep_job:
        return
    last = run_dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        size = last.stat().st_size / 2**20
        last.unlink()
        log.info("removed %s (%.0f MB): the run has finished (keep_last_checkpoint=true keeps "
                 "it)", last, size)


__all__ = ["check_checkpoint", "drop_last_checkpoint", "resume_path"]
