"""Build the data module from the ``data`` section of the config.

The section holds the loader's keys (``LOADER_KEYS``, defaults in ``conf/data/base/``) and
those of one data layout, named by ``layout`` (see ``vqc.data.layouts``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from vqc.classes import ClassSet
from vqc.data.datamodule import VqcDataModule
from vqc.data.layouts import DataSource, build_source, gives_masks
from vqc.data.preprocess import Preprocessor
from vqc.errors import ConfigError

log = logging.getLogger(__name__)

#: Keys of the ``data`` config read by the loader; the others, but ``layout``, are the layout's.
LOADER_KEYS = frozenset({"classes", "preprocess", "val_fraction", "group_by", "balanced",
                         "batch_size", "num_workers", "pin_memory", "cache_workers", "augment",
                         "mean", "std", "on_bad_image", "generate"})


def _plain(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


def build_classes(cfg: Mapping[str, Any]) -> ClassSet | None:
    """The configured classes, or ``None`` when they are to be inferred from the data."""
    names = cfg.get("names")
    if names is None:
        return None
    return ClassSet.from_config(names, open_set=cfg.get("open_set"), good=cfg.get("good"),
                                aliases=cfg.get("aliases"))


def build_preprocessor(cfg: Mapping[str, Any]) -> Preprocessor:
    known = {"size", "mode", "max_pixels", "rotate_crop", "resize", "auto_side", "bit_depth"}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ConfigError(f"data.preprocess: unknown key(s) {unknown}; known: {sorted(known)}")
    if cfg["size"] == "auto":
        raise ConfigError("data.preprocess.size=auto is chosen when a run starts "
                          "(vqc.training.recipe.resolve_data_choices); give [height, width] here")
    return Preprocessor(size=tuple(cfg["size"]), mode=cfg.get("mode", "L"),
                        rotate_crop=cfg.get("rotate_crop") or {},
                        max_pixels=int(cfg.get("max_pixels", 50_000_000)),
                        resize=cfg.get("resize", "stretch"), bit_depth=cfg.get("bit_depth"))


def build_data_source(cfg: Mapping[str, Any]) -> DataSource:
    """The data source of a plain ``data`` config: its ``layout``'s builder, given its keys."""
    keys = {k: v for k, v in cfg.items() if k not in LOADER_KEYS and k != "layout"}
    return build_source(cfg.get("layout"), keys)  # type: ignore[arg-type]


def group_by(cfg: Mapping[str, Any]) -> str | None:
    """``data.group_by``; unset, a CSV's group column (``data.columns.group``) is enough to
    keep each group on one side of the split."""
    chosen = cfg.get("group_by")
    if chosen is None and (cfg.get("columns") or {}).get("group"):
        log.info("grouping the validation split by the CSV's %r column (data.columns.group)",
                 cfg["columns"]["group"])
        return "group"
    return chosen


def synthetic_preparer(root: str, generate: Mapping[str, Any]) -> Callable[[], Any]:
    from vqc.data.synthetic import ensure_generated

    return partial(ensure_generated, root, **generate)


def names_masks(cfg: Mapping[str, Any]) -> bool:
    """Whether the ``data`` config names pixel masks (its layout says how: ``GivesMasks``)."""
    layout = gives_masks(str(cfg.get("layout")))
    return layout is not None and layout.masks_named(cfg)


def build_datamodule(data: DictConfig | Mapping[str, Any], cache_dir: str,
                     seed: int = 0, masks: bool = False) -> VqcDataModule:
    """A ``VqcDataModule`` for the ``data`` config group (see ``conf/data/``); ``masks``:
    training batches carry pixel masks (``module.mask_weight`` > 0)."""
    augment = [instantiate(step) for step in (data.get("augment") or [])]
    cfg = _plain(data)
    if masks and not names_masks(cfg):
        raise ConfigError("module.mask_weight > 0 trains with pixel masks, which a CSV's mask "
                          "column (data=csv data.columns.mask=COLUMN) or a folder of masks "
                          "(data=folders data.masks_root=FOLDER) gives; or set "
                          f"module.mask_weight=0 (data.layout={cfg.get('layout')!r})")
    source = build_data_source(cfg)
    classes_cfg = cfg.get("classes") or {}
    generate = cfg.get("generate")
    prepare = synthetic_preparer(str(cfg["root"]), generate) if generate else None
    return VqcDataModule(
        source=source,
        preprocess=build_preprocessor(cfg["preprocess"]),
        cache_dir=cache_dir,
        classes=build_classes(classes_cfg),
        good=classes_cfg.get("good"),
        open_set=classes_cfg.get("open_set"),
        val_fraction=float(cfg.get("val_fraction", 0.2)),
        group_by=group_by(cfg),
        balanced=cfg.get("balanced", True),
        batch_size=int(cfg.get("batch_size", 32)),
        num_workers=int(cfg.get("num_workers", 0)),
        pin_memory=bool(cfg.get("pin_memory", False)),
        cache_workers=cfg.get("cache_workers"),
        augment=augment,
        mean=cfg.get("mean"),
        std=cfg.get("std"),
        on_bad_image=cfg.get("on_bad_image", "error"),
        seed=seed,
        prepare=prepare,
        masks=masks,
    )
