"""Pixel masks for class folders: a second folder tree that mirrors the images'.

The mask of ``root/[<split>/]<class>/<sub>/<name>.<ext>`` is
``masks_root/[<split>/]<class>/<sub>/<name><suffix>.<any image extension>``. The split folder
may be left out of the mask tree, as in MVTec AD (``ground_truth/<defect>/000_mask.png`` beside
``train/`` and ``test/``: ``masks_root=ground_truth``, ``suffix=_mask``). An image without a
mask file has none (a GOOD image then counts as clean). Nothing is matched silently wrong: a
mask two files could be is refused, and mask files that match no image are named in a warning,
or refused when none matches at all (a wrong ``suffix`` or folder).
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from pathlib import Path, PurePath

import pandas as pd

from vqc.data.folders import SHOWN, image_extensions, images_under
from vqc.errors import ConfigError, DataError

log = logging.getLogger(__name__)

Key = tuple[str, ...]


#: Folders of ``root`` that ``masks_root: auto`` takes for the masks (MVTec AD's is
#: ``ground_truth``, its files ``<name>_mask.png``).
MASK_FOLDERS = ("masks", "ground_truth")


def find_masks_folder(root: str | os.PathLike[str]) -> tuple[Path, str] | None:
    """``masks_root: auto``: the first of :data:`MASK_FOLDERS` under ``root`` and the suffix
    its files carry (``_mask`` when every mask's name ends so, else none); ``None``."""
    for name in MASK_FOLDERS:
        folder = Path(root) / name
        if folder.is_dir():
            stems = [p.stem for p in images_under(folder, image_extensions(), [], [])]
            suffix = "_mask" if stems and all(s.endswith("_mask") for s in stems) else ""
            return folder, suffix
    return None


def _mask_files(masks_root: Path) -> dict[Key, list[Path]]:
    """Mask files under ``masks_root`` by (folders..., name without extension)."""
    found: dict[Key, list[Path]] = defaultdict(list)
    for path in images_under(masks_root, image_extensions(), hidden=[], other=[]):
        found[(*path.parent.relative_to(masks_root).parts, path.stem)].append(path)
    return found


def _candidates(filename: str, split_folder: bool, suffix: str) -> list[Key]:
    """Where the mask of the image ``filename`` (relative to the data root) may be."""
    relative = PurePath(filename)
    key = (*relative.parent.parts, relative.stem + suffix)
    return [key, key[1:]] if split_folder else [key]


def attach_folder_masks(frame: pd.DataFrame, masks_root: str | os.PathLike[str],
                        suffix: str = "", notes: list[str] | None = None) -> pd.DataFrame:
    """``frame`` (read by ``read_class_folders``) with its ``mask`` column filled from
    ``masks_root``; ``notes`` receives what a user should be told."""
    root = Path(masks_root)
    if not root.is_dir():
        raise ConfigError(f"data.masks_root={str(masks_root)!r}: folder not found")
    inside = root.resolve()
    for path, where in zip(frame["path"], frame["where"], strict=True):
        if inside in Path(path).parents:
            raise ConfigError(f"data.masks_root={str(masks_root)!r} lies in a class folder: its "
                              f"masks would be read as images ({where}); put it beside the "
                              "class (or split) folders, or outside data.root")
    files = _mask_files(root)
    if not files:
        raise DataError(f"{root}: no mask images (data.masks_root)")
    claimed: dict[Key, str] = {}  # mask key -> the image that took it
    masks: list[str | None] = []
    for filename, split, where in zip(frame["filename"], frame["split"], frame["where"],
                                      strict=True):
        keys = [k for k in _candidates(str(filename), isinstance(split, str), suffix)
                if k in files]
        paths = sorted({p for k in keys for p in files[k]})
        if len(paths) > 1:
            shown = ", ".join(str(p.relative_to(root)) for p in paths)
            raise DataError(f"{where}: {len(paths)} mask files could be this image's: {shown}; "
                            "keep one")
        for key in keys:
            if key in claimed:
                raise DataError(
                    f"{where} and {claimed[key]}: both would take the mask "
                    f"{files[key][0].relative_to(root)}; give the masks folder the split "
                    "folders of the images (masks_root/train/<class>/...), or the images "
                    "names of their own")
            claimed[key] = str(where)
        masks.append(str(paths[0].resolve()) if paths else None)
    used = set(claimed)
    unused = sorted(str(p.relative_to(root)) for k, ps in files.items() if k not in used
                    for p in ps)
    if not used:
        first = frame.iloc[0]
        forms = " or ".join(f"{PurePath(*key)}.<ext>" for key in
                            _candidates(str(first["filename"]), isinstance(first["split"], str),
                                        suffix))
        raise DataError(
            f"{root}: none of its {len(unused)} mask file(s) belongs to an image: the mask of "
            f"{first['filename']} would be {forms} under it (data.mask_suffix={suffix!r}); "
            f"found e.g. {', '.join(unused[:SHOWN])}")
    if unused:
        note = (f"{root}: {len(unused)} mask file(s) belong to no image and are not read: "
                f"{', '.join(unused[:SHOWN])}{' ...' if len(unused) > SHOWN else ''}")
        log.warning("%s", note)
        if notes is not None:
            notes.append(note)
    log.info("%s: masks for %d of %d image(s)", root, sum(m is not None for m in masks),
             len(masks))
    return frame.assign(mask=masks)
