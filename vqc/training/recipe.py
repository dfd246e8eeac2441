"""Choices that follow the data: the config's ``auto`` values, resolved as a run starts.

- ``data.preprocess.size: auto``: the images' median aspect within the network's own pixel
  budget (``vqc.data.image_sizes``);
- ``data.columns.mask: auto``: a CSV's ``mask`` column when it has one;
- ``module.mask_weight: auto``: learn from pixel masks when the data gives them;
- ``trainer.max_epochs: auto``: about ``TARGET_STEPS`` optimiser steps, whatever the set's size;
- ``drift.target_rate: auto``: as low a false-drift rate as the calibration images bound;

and what is only reported: each class's share of the training draws, and validation too small
to bound the false-drift rate. Each choice is logged, saved in ``choices.json`` and the run's
summary. A value set by hand is kept as it is.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from vqc.data.build import build_data_source, names_masks
from vqc.data.dataset import class_shares
from vqc.data.image_sizes import choose_size, crop_sizes, read_sizes
from vqc.data.layouts import gives_masks
from vqc.drift.config import drift_settings
from vqc.drift.threshold import min_normal_count

log = logging.getLogger(__name__)

AUTO = "auto"
#: The pixel budget's side of each model (its ImageNet input); others: ``DEFAULT_SIDE``.
NATIVE_SIDE = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260,
               "cnn": 128, "basic_cnn": 128}
DEFAULT_SIDE = 224
#: Optimiser steps a fine-tuning run aims for: the magnetic tiles' validation loss levels off
#: after about 16 epochs of 27 batches.
TARGET_STEPS = 450
MIN_EPOCHS, MAX_EPOCHS = 4, 30
#: ``module.mask_weight`` when the data gives masks.
MASK_WEIGHT = 1.0
#: ``drift.target_rate: auto`` lies between these false-drift rates.
LOWEST_RATE, HIGHEST_RATE = 0.001, 0.005


@dataclass(frozen=True)
class Choice:
    """A setting the run chose (or was given), and why."""

    key: str
    value: Any
    why: str


def _set(cfg: DictConfig, key: str, value: Any) -> None:
    with open_dict(cfg):
        OmegaConf.update(cfg, key, value, force_add=True)


def _is_auto(cfg: DictConfig, key: str) -> bool:
    return OmegaConf.select(cfg, key, default=None) == AUTO


def native_side(model: str) -> int:
    return NATIVE_SIDE.get(str(model).lower(), DEFAULT_SIDE)


# -- before the data is read -------------------------------------------------------------------
def resolve_data_choices(cfg: DictConfig) -> list[Choice]:
    """Resolve the ``auto`` values the data module is built with (masks, input size)."""
    return [*_mask_choices(cfg), *_size_choice(cfg)]


def _mask_choices(cfg: DictConfig) -> list[Choice]:
    choices = []
    layout = gives_masks(str(cfg.data.get("layout")))
    if layout is not None:
        with open_dict(cfg):
            found = layout.find_masks(cfg.data)  # the layout's own "auto" mask settings
        choices += [Choice(f"data.{key}", value, why) for key, value, why in found]
    if _is_auto(cfg, "module.mask_weight"):
        data = OmegaConf.to_container(cfg.data, resolve=True)
        has = names_masks(data) and data.get("read_masks", True) is not False  # type: ignore[union-attr,arg-type]
        _set(cfg, "module.mask_weight", MASK_WEIGHT if has else 0.0)
        choices.append(Choice("module.mask_weight", MASK_WEIGHT if has else 0.0,
                              "the data gives pixel masks" if has else "the data has no masks"))
    return choices


def _size_choice(cfg: DictConfig) -> list[Choice]:
    if not _is_auto(cfg, "data.preprocess.size"):
        return []
    preprocess = OmegaConf.to_container(cfg.data.preprocess, resolve=True)
    side = int(preprocess.get("auto_side") or native_side(cfg.model.name))  # type: ignore[union-attr]
    rotate_crop = preprocess.get("rotate_crop") or {}  # type: ignore[union-attr]
    if rotate_crop:
        sizes, seen = crop_sizes(rotate_crop), "the rotate_crop boxes"
    else:
        data = OmegaConf.to_container(cfg.data, resolve=True)
        train, _ = build_data_source(data).tables()  # type: ignore[arg-type]
        sizes = read_sizes(list(train["path"]))
        seen = f"{len(sizes)} training images"
    height, width = choose_size(sizes, side)
    _set(cfg, "data.preprocess.size", [height, width])
    middle = sorted(sizes)[len(sizes) // 2]
    return [Choice("data.preprocess.size", [height, width],
                   f"median aspect of {seen} (about {middle[0]}x{middle[1]}) within "
                   f"{side}x{side} pixels")]


#: Choices a resumed or tested run takes from the run it continues, where they are ``auto``.
KEPT_ON_RESUME = ("data.preprocess.size", "data.columns.mask", "data.masks_root",
                  "module.mask_weight",
                  "trainer.max_epochs", "trainer.limit_train_batches")


def run_choices(checkpoint: str | Path) -> tuple[Path | None, dict[str, Any]]:
    """The ``choices.json`` of the run a checkpoint belongs to (its folder or one of the three
    above: ``RUN/checkpoints/x.ckpt``, ``RUN/members/1/checkpoints/x.ckpt``) and its values."""
    import json

    for folder in list(Path(checkpoint).resolve().parents)[:4]:
        saved = folder / "choices.json"
        if saved.is_file():
            return saved, {c["key"]: c["value"] for c in json.loads(saved.read_text())}
    return None, {}


def reuse_run_choices(cfg: DictConfig, checkpoint: str | Path) -> list[Choice]:
    """Resuming or testing ``checkpoint``: the ``auto`` values its run chose, so that the
    network sees the size it learnt at and a resumed run keeps its plan, not values chosen
    anew from today's images. Without a ``choices.json`` they are chosen again, with a
    warning when the input size is among them."""
    saved, values = run_choices(checkpoint)
    reused = []
    for key in KEPT_ON_RESUME:
        current = OmegaConf.select(cfg, key, default=None)
        wanted = current == AUTO or (key == "trainer.limit_train_batches" and current is None)
        if wanted and key in values:
            _set(cfg, key, values[key])
            reused.append(Choice(key, values[key], f"as {saved} chose"))
    if saved is None and _is_auto(cfg, "data.preprocess.size"):
        log.warning("WARNING: data.preprocess.size=auto and no choices.json beside %s's run: "
                    "the size is chosen from this data set's images; give the training run's "
                    "data.preprocess.size if it differs", checkpoint)
    return reused


def resume_choices(cfg: DictConfig, run_dir: Path) -> list[Choice]:
    """``ckpt_path`` set: the ``auto`` values of the run it resumes (``choices.json``)."""
    ckpt = cfg.get("ckpt_path")
    if not ckpt:
        return []
    return reuse_run_choices(cfg, run_dir / "checkpoints" / "last.ckpt" if ckpt == "last"
                             else ckpt)


# -- once the data is split --------------------------------------------------------------------
def resolve_training_choices(cfg: DictConfig, datamodule: Any) -> list[Choice]:
    """The epochs (before the module and trainer are built) and the class weights."""
    return [*_epoch_choices(cfg, len(datamodule.train_frame)), _class_weights(cfg, datamodule)]


def resolve_drift_choices(cfg: DictConfig, datamodule: Any) -> tuple[list[Choice], list[str]]:
    """Once the drift layers are checked (which may turn cross-fitting off): the false-drift
    rate and the warnings on too few calibration images."""
    return _rate_choice(cfg, datamodule), calibration_warnings(cfg, datamodule)


def plan_epochs(train_images: int, batch_size: int) -> tuple[int, int | None]:
    """``(epochs, batches per epoch or None for all)`` for about ``TARGET_STEPS`` steps: a
    small set gets more epochs, a large one ``MIN_EPOCHS`` of fewer batches (the balanced
    sampler draws new images every epoch)."""
    batches = max(1, math.ceil(train_images / batch_size))
    epochs = min(max(round(TARGET_STEPS / batches), MIN_EPOCHS), MAX_EPOCHS)
    if epochs == MIN_EPOCHS and batches * epochs > 1.5 * TARGET_STEPS:
        return epochs, math.ceil(TARGET_STEPS / epochs)
    return epochs, None


def _epoch_choices(cfg: DictConfig, train_images: int) -> list[Choice]:
    if not _is_auto(cfg, "trainer.max_epochs"):
        return []
    batch_size = int(cfg.data.batch_size)
    epochs, limit = plan_epochs(train_images, batch_size)
    _set(cfg, "trainer.max_epochs", epochs)
    choices = [Choice("trainer.max_epochs", epochs,
                      f"about {TARGET_STEPS} steps of {batch_size} images for "
                      f"{train_images} training images"
                      + (f"; trainer.max_time={cfg.trainer.max_time} ends it sooner if slower"
                         if cfg.trainer.get("max_time") else ""))]
    if limit is not None and cfg.trainer.get("limit_train_batches") is None:
        _set(cfg, "trainer.limit_train_batches", limit)
        choices.append(Choice("trainer.limit_train_batches", limit,
                              f"{limit} batches an epoch: a large set is sampled, not swept"))
    return choices


def _class_weights(cfg: DictConfig, datamodule: Any) -> Choice:
    """Each trained class's share of the training draws (what the sampler weighs it by)."""
    counts = datamodule.class_counts()["train"]
    trained = {name: int(counts[name]) for name in counts.index if counts[name] > 0}
    balanced = cfg.data.get("balanced", True)
    shares = {name: round(share, 4) for name, share in class_shares(trained, balanced).items()}
    why = {True: "data.balanced: each class drawn alike, an image weighted 1/its class's count",
           "sqrt": "data.balanced=sqrt: a class drawn as the square root of its count",
           False: "data.balanced=false: classes drawn as often as they occur"}[balanced]
    return Choice("class_shares", shares, f"{why}; training images {trained}")


def calibration_count(cfg: DictConfig, datamodule: Any) -> tuple[int, str]:
    """Known-class images whose scores set the drift threshold, and where they come from:
    training and validation when cross-fitted, else validation."""
    counts = datamodule.class_counts()
    known = [n for n in counts.index if n != datamodule.classes.open_set]
    val = int(counts.loc[known, "val"].sum())
    cross_fit = cfg.drift.get("cross_fit") or 0
    if cross_fit:
        labelled = val + int(counts.loc[known, "train"].sum())
        return labelled, f"{cross_fit}-fold cross-fit of training and validation"
    return val, "validation"


def plan_target_rate(scores: int) -> float:
    """``drift.target_rate: auto``: as low a false-drift rate as ``scores`` calibration scores
    bound (``1 / (n + 1)``: the threshold is then their largest), from ``LOWEST_RATE`` to
    ``HIGHEST_RATE``. A GOOD part called drift costs as much as an escape, so the budget is
    spent only where too few scores leave no lower one."""
    return min(max(1 / (scores + 1), LOWEST_RATE), HIGHEST_RATE)


def _rate_choice(cfg: DictConfig, datamodule: Any) -> list[Choice]:
    if not drift_fitted(cfg) or not _is_auto(cfg, "drift.target_rate"):
        return []
    scores, where = calibration_count(cfg, datamodule)
    rate = plan_target_rate(scores)
    _set(cfg, "drift.target_rate", rate)
    return [Choice("drift.target_rate", rate, f"{scores} calibration scores ({where}) bound "
                   f"{rate:.3g} at best, within {LOWEST_RATE:g}..{HIGHEST_RATE:g}")]


def drift_fitted(cfg: DictConfig) -> bool:
    """Whether an inspector with drift will be fitted: training's ``inspector: true|false``,
    or evaluation's ``fit_inspector`` (there ``inspector`` is a file to score, or null)."""
    drift = cfg.get("drift")
    inspector = cfg.get("inspector", True)
    fitted = (inspector if isinstance(inspector, bool) else True) \
        and bool(cfg.get("fit_inspector", True))
    return bool(fitted and drift and drift.get("enabled", False))


def calibration_warnings(cfg: DictConfig, datamodule: Any) -> list[str]:
    """Warnings, before training, when the images the drift threshold and the defect gate are
    calibrated on are too few to bound their rates (``vqc.drift.threshold``)."""
    if not drift_fitted(cfg):
        return []
    drift = cfg.drift
    settings = drift_settings(OmegaConf.to_container(drift, resolve=True))  # type: ignore[arg-type]
    counts = datamodule.class_counts()
    scores, where = calibration_count(cfg, datamodule)
    warnings = []
    need = min_normal_count(settings.target_rate)
    if scores < need:
        warnings.append(
            f"drift calibration: {scores} images ({where}) cannot bound a false-drift rate "
            f"of {settings.target_rate:g} (at least {need} are needed): expect about "
            f"{1 / (scores + 1):.2%} of known images called drift; add images"
            + (" or raise drift.target_rate" if settings.cross_fit else
               ", raise drift.target_rate or set drift.cross_fit=5 (a frozen drift layer)"))
    roles = settings.roles or {}
    if "defect" in roles.values():
        good = int(counts.loc[datamodule.classes.good, "val"])
        need = min_normal_count(settings.gate_rate)
        if good < need:
            warnings.append(
                f"defect gate: {good} validation GOOD images cannot bound the share of GOOD "
                f"the gate flags at {settings.gate_rate:g} (at least {need} are needed): "
                "expect more GOOD parts flagged; add GOOD images, raise data.val_fraction "
                "or drift.gate_rate")
    good_name = datamodule.classes.good
    if settings.rate_by_cost and good_name in counts.index:
        columns = ["train", "val"] if settings.cross_fit else ["val"]
        good = int(counts.loc[good_name, columns].sum())
        need = min_normal_count(settings.target_rate)
        if good < need:
            warnings.append(
                f"drift.rate_by_cost: {good} GOOD calibration images ({where}) cannot bound "
                f"a GOOD part's false-drift rate at {settings.target_rate:g} (at least {need} "
                f"are needed): expect about {1 / (good + 1):.2%} of GOOD parts called drift; "
                "add GOOD images or set drift.rate_by_cost=false")
    return warnings


def report_choices(choices: list[Choice], run_dir: Path | None = None) -> list[dict[str, Any]]:
    """Log each choice; with ``run_dir``, also write ``choices.json``; returns them as dicts."""
    import json

    from vqc.io import write_atomic

    rows = [asdict(choice) for choice in choices]
    for choice in choices:
        log.info("chosen: %s=%s (%s)", choice.key, choice.value, choice.why)
    if run_dir is not None and rows:
        write_atomic(Path(run_dir) / "choices.json", json.dumps(rows, indent=2, default=str))
    return rows
