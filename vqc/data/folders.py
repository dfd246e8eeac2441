"""Class folders on disk: ``root/<class>/<image>``, or ``root/<split>/<class>/<image>``.

What a folder of a user's own images holds besides images is left out with a word, never
silently: hidden files (``.DS_Store``, macOS ``._x.png`` resource forks) are counted, other
files that are not images Pillow reads are listed. Symlinked class folders and sub-folders
are followed (each real folder once); a file reached twice is read once, and the same file
under two classes or two splits (a link pointing up the tree) is refused, naming both places.
"""

from __future__ import annotations

import logging
import os
from functools import cache
from pathlib import Path

import pandas as pd
from PIL import Image

from vqc.data.table import finish_table
from vqc.errors import DataError

log = logging.getLogger(__name__)

#: Split folder names (any case) -> the split they hold.
SPLIT_FOLDERS = {"train": "train", "training": "train", "val": "val", "valid": "val",
                 "validation": "val", "test": "test", "testing": "test"}
#: Formats Pillow names but cannot decode without more software (stubs, Ghostscript, video).
UNDECODABLE = (".bufr", ".emf", ".eps", ".grib", ".h5", ".hdf", ".mpeg", ".mpg", ".ps", ".wmf")
#: How many skipped files a warning names.
SHOWN = 5


@cache
def image_extensions() -> tuple[str, ...]:
    """Every file extension Pillow opens (``.png``, ``.jpg``, ``.gif``, ``.webp``, ``.tif``...)."""
    Image.init()
    return tuple(sorted(ext for ext, fmt in Image.registered_extensions().items()
                        if fmt in Image.OPEN and ext not in UNDECODABLE))


def _hidden(name: str) -> bool:
    return name.startswith(".")  # also macOS AppleDouble files, "._name"


def images_under(folder: Path, extensions: tuple[str, ...], hidden: list[Path],
                  other: list[Path]) -> list[Path]:
    """Images under ``folder``, symlinks followed, each real folder visited once (a link that
    loops back is not followed twice)."""
    found, seen = [], set()
    for current, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(current)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        hidden.extend(Path(current) / d for d in dirs if _hidden(d))
        dirs[:] = sorted(d for d in dirs if not _hidden(d))
        for name in sorted(files):
            path = Path(current) / name
            if _hidden(name):
                hidden.append(path)
            elif path.suffix.lower() in extensions and path.is_file():
                found.append(path)
            else:
                other.append(path)
    return found


def _first_sighting(image: Path, split: str | None, label: str,
                    owners: dict[str, tuple[str | None, str, Path]], root: Path) -> bool:
    """Whether ``image`` is a file not met before; the same file (by real path) under two
    classes or two splits is a :class:`DataError` naming both places: one image, one label."""
    real = os.path.realpath(image)
    owner = owners.setdefault(real, (split, label, image))
    if owner[2] == image:
        return True
    if owner[:2] == (split, label):
        return False  # a second link to a file of the same class: read once
    first, second = (p.relative_to(root) if p.is_relative_to(root) else p
                     for p in (owner[2], image))
    what, a, b = ("splits", owner[0], split) if owner[0] != split else \
        ("classes", owner[1], label)
    raise DataError(
        f"{root}: {first} and {second} are the same file ({real}), under two {what} ({a}, "
        f"{b}); an image has one label: a symbolic link leads there (remove it, or copy the "
        f"images you mean to use twice)")


def _split_folders(root: Path, subdirs: list[Path], notes: list[str]
                   ) -> list[tuple[str, Path]]:
    """``root``'s split folders (``train``, ``Val``...) as (split, folder); two folders of one
    split refused, other folders beside them noted as not read."""
    splits = [(SPLIT_FOLDERS[p.name.lower()], p) for p in subdirs
              if p.name.lower() in SPLIT_FOLDERS]
    if not splits:
        return []
    beside = [p.name for p in subdirs if p.name.lower() not in SPLIT_FOLDERS]
    if beside:
        notes.append(f"{root}: folder(s) {beside} beside the split folders "
                     f"{[p.name for _, p in splits]} are not read")
    named: dict[str, Path] = {}
    for split, folder in splits:
        if split in named:
            raise DataError(f"{root}: {named[split].name}/ and {folder.name}/ both hold the "
                            f"{split} split; keep one")
        named[split] = folder
    return splits


def _note_left_out(root: Path, hidden: list[Path], other: list[Path], notes: list[str]) -> None:
    if hidden:
        log.info("%s: %d hidden file(s) or folder(s) left out (names starting with '.', such as "
                 "macOS '._' files)", root, len(hidden))
    if other:
        shown = ", ".join(str(p.relative_to(root)) for p in other[:SHOWN])
        notes.append(f"{root}: {len(other)} file(s) left out: not in a class folder or not an "
                     f"image Pillow reads: {shown}{' ...' if len(other) > SHOWN else ''}")


def read_class_folders(root: str | os.PathLike[str], extensions: tuple[str, ...] | None = None,
                       notes: list[str] | None = None,
                       skip: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """``root/<class>/<image>``, or ``root/<split>/<class>/<image>`` where ``root`` holds split
    folders (``train``, ``val``, ``test``, any case; ``val`` rows validate). ``notes``
    receives what a user should be told (files left out and why); ``skip``: a folder of
    ``root`` or of a split folder that holds no class (the masks' folder)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found")
    extensions = image_extensions() if extensions is None else extensions
    notes = [] if notes is None else notes
    first = len(notes)  # a second call (test_root) logs only its own notes
    skipped = os.path.realpath(skip) if skip is not None else None

    def folders_in(folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not _hidden(p.name)
                      and os.path.realpath(p) != skipped)

    splits = _split_folders(root, folders_in(root), notes)
    layout = splits or [(None, root)]
    rows: list[dict[str, object]] = []
    hidden: list[Path] = []
    other: list[Path] = []
    for folder in [root, *(p for _, p in splits)]:  # files beside the class folders
        for path in sorted(folder.iterdir()):
            if _hidden(path.name):
                hidden.append(path)
            elif path.is_file():
                other.append(path)
    owners: dict[str, tuple[str | None, str, Path]] = {}  # real file -> split, class, where
    for split, split_root in layout:
        for class_dir in folders_in(split_root):
            for image in images_under(class_dir, extensions, hidden, other):
                if not _first_sighting(image, split, class_dir.name, owners, root):
                    continue
                rows.append({
                    "path": str(image.resolve()),
                    "filename": str(image.relative_to(root)),
                    "label": class_dir.name,
                    "split": split,
                    "where": str(image),
                })
    _note_left_out(root, hidden, other, notes)
    for note in notes[first:]:
        log.warning("%s", note)
    if not rows:
        raise DataError(f"{root}: no images in class folders (image files: "
                        f"{', '.join(extensions[:12])} ...)")
    frame = pd.DataFrame(rows)
    frame["orig_index"] = range(len(frame))
    return finish_table(frame)
