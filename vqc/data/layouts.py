"""Data layouts: how a data set's files are laid out, each read by a builder of its own.

The data config's ``layout:`` (``conf/data/*.yaml``) names a builder in ``LAYOUTS``; the
builder takes that layout's keys and returns a ``DataSource``, whose ``tables()`` are the raw
train and test tables (labels as names, columns of ``vqc.data.table.INDEX_COLUMNS``). A new
layout is one registered builder, a class or a function, in a module imported before the data
is built::

    @register_layout("my_parts")
    @dataclass
    class MyParts:
        root: str | None = None

        @property
        def name(self) -> str: ...          # the file or folder named in messages
        def tables(self) -> Tables: ...
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field, is_dataclass
from typing import Any, Protocol, TypeVar

import pandas as pd

from vqc.data.folder_masks import MASK_FOLDERS, attach_folder_masks, find_masks_folder
from vqc.data.folders import read_class_folders
from vqc.data.sources import read_challenge, read_generic_csv
from vqc.errors import ConfigError, DataError
from vqc.io import read_csv
from vqc.options import check_values
from vqc.registry import Registry

#: The value of a mask setting a run resolves from the data (``find_masks``).
AUTO = "auto"
#: The CSV column ``columns.mask: auto`` looks for.
MASK_COLUMN = "mask"

#: Train table, and test table or ``None``.
Tables = tuple[pd.DataFrame, pd.DataFrame | None]


class DataSource(Protocol):
    """Where a data set lives, in one layout."""

    @property
    def name(self) -> str:
        """The file or folder that lists the training images, for messages."""
        ...

    def tables(self) -> Tables:
        """Raw train and test tables (labels as names)."""
        ...


class GivesMasks(Protocol):
    """A layout that can give pixel masks says, from its data config, where they are."""

    @classmethod
    def masks_named(cls, data: Mapping[str, Any]) -> bool:
        """Whether ``data`` names pixel masks."""
        ...

    @classmethod
    def masks_off(cls, data: MutableMapping[str, Any]) -> None:
        """Edit ``data`` so that no mask is read (testing a mask run on any set)."""
        ...

    @classmethod
    def find_masks(cls, data: MutableMapping[str, Any]) -> list[tuple[str, Any, str]]:
        """Resolve its ``auto`` mask settings in ``data``: (key, value, why) for each."""
        ...


Builder = Callable[..., DataSource]
B = TypeVar("B", bound=Builder)

#: Layout name -> builder, filled by ``register_layout`` (and the ``vqc.layouts`` entry points
#: of other installed packages: ``vqc.registry``).
LAYOUTS: Registry[Builder] = Registry("data layout", "data.layout", group="vqc.layouts")


def register_layout(name: str) -> Callable[[B], B]:
    """Decorator: ``builder`` reads data sets of layout ``name``."""

    def register(builder: B) -> B:
        LAYOUTS.add(name, builder)
        return builder

    return register


def layout_builder(layout: str) -> Builder:
    """The builder of ``layout``; a ``ConfigError`` listing the known layouts if none."""
    return LAYOUTS.get(layout)


def gives_masks(layout: str) -> GivesMasks | None:
    """The layout as a giver of pixel masks, or ``None`` when it gives none."""
    builder = layout_builder(layout)
    return builder if hasattr(builder, "masks_named") else None  # type: ignore[return-value]


def layout_keys(layout: str) -> list[str]:
    """The keys the builder of ``layout`` takes (its data config keys)."""
    return list(inspect.signature(layout_builder(layout)).parameters)


def build_source(layout: str, keys: Mapping[str, Any]) -> DataSource:
    """The ``DataSource`` of ``layout`` from its keys; unknown keys are refused by name, and a
    dataclass layout's fields by the rules their types and ranges give (``vqc.options``)."""
    builder = layout_builder(layout)
    known = layout_keys(layout)
    unknown = sorted(set(keys) - set(known))
    if unknown:
        raise ConfigError(f"data: unknown key(s) {unknown} for layout {layout!r}; its keys: "
                          f"{sorted(known)}")
    try:
        source = builder(**keys)
    except TypeError as err:
        raise ConfigError(f"data (layout {layout!r}): {err}") from err
    if is_dataclass(source):
        check_values(source, "data")
    return source


def _required(value: str | None, name: str) -> str:
    if value in (None, "", "???"):
        raise ConfigError(f"data.{name} is not set")
    return str(value)


def _by_split(table: pd.DataFrame, train_split: str, test_split: str, name: str) -> Tables:
    """Train and test rows of one table by its ``split`` column (none: all train, no test).

    Rows of split ``val`` stay in the train table, split ``val``: the data module validates on
    them instead of holding out a share of the training rows."""
    if table["split"].isna().all():
        return table, None
    known = {value.strip().casefold(): value for value in (train_split, test_split, "val")}
    table = table.assign(split=[known.get(str(v).strip().casefold(), v) if pd.notna(v) else v
                                for v in table["split"]])  # "Train" is "train"
    unknown = table[table["split"].notna() & ~table["split"].isin(list(known.values()))]
    if len(unknown):
        first = unknown.iloc[0]
        where = first["where"] if "where" in unknown.columns else name
        raise DataError(f"{where}: unknown split {first['split']!r} ({len(unknown)} such "
                        f"row(s), values {sorted(map(str, set(unknown['split'])))}); expected "
                        f"{train_split!r}, {test_split!r} or 'val' (any case)")
    train = table[table["split"].isin([train_split, "val"])].reset_index(drop=True)
    test = table[table["split"] == test_split].reset_index(drop=True)
    return train, (test if len(test) else None)


@register_layout("challenge")
@dataclass
class ChallengeFiles:
    """The challenge's CSVs beside their folders of PNGs: ``train_csv`` + ``train_images``,
    optionally ``test_csv`` + ``test_images`` (``test_labelled=False``: a test CSV without
    labels, e.g. ``win_and_lib.csv``). ``root`` is the folder the config's paths start from."""

    train_csv: str | None = None
    train_images: str | None = None
    test_csv: str | None = None
    test_images: str | None = None
    test_labelled: bool = True
    root: str | None = None

    @property
    def name(self) -> str:
        return str(self.train_csv or "data")

    def tables(self) -> Tables:
        train = read_challenge(_required(self.train_csv, "train_csv"),
                               _required(self.train_images, "train_images"))
        if not self.test_csv:
            return train, None
        return train, read_challenge(self.test_csv, _required(self.test_images, "test_images"),
                                     require_label=self.test_labelled)


@register_layout("csv")
@dataclass
class CsvList:
    """Any image set listed in a CSV (``image,label[,split][,group]``, column names in
    ``columns``), paths relative to ``root``. Rows whose split is ``train_split`` train, those
    of ``test_split`` test; or a second CSV, ``test_csv``, holds the test images."""

    csv: str | None = None
    root: str | None = None
    columns: Mapping[str, str | None] = field(default_factory=dict)
    train_split: str = "train"
    test_split: str = "test"
    test_csv: str | None = None
    test_labelled: bool = True

    @property
    def name(self) -> str:
        return str(self.csv or "data")

    @classmethod
    def masks_named(cls, data: Mapping[str, Any]) -> bool:
        return bool((data.get("columns") or {}).get("mask"))

    @classmethod
    def masks_off(cls, data: MutableMapping[str, Any]) -> None:
        if (data.get("columns") or {}).get("mask") is not None:
            data["columns"]["mask"] = None

    @classmethod
    def find_masks(cls, data: MutableMapping[str, Any]) -> list[tuple[str, Any, str]]:
        """``columns.mask: auto``: the CSV's ``mask`` column when it has one."""
        if (data.get("columns") or {}).get("mask") != "auto":
            return []
        header = read_csv(data["csv"], nrows=0).columns
        column = MASK_COLUMN if MASK_COLUMN in header else None
        data["columns"]["mask"] = column
        return [("columns.mask", column,
                 f"the CSV {'has a' if column else 'has no'} {MASK_COLUMN!r} column")]

    def tables(self) -> Tables:
        table = read_generic_csv(_required(self.csv, "csv"), self.root, self.columns)
        if not self.test_csv:
            return _by_split(table, self.train_split, self.test_split, str(self.csv))
        test_columns = {k: v for k, v in self.columns.items() if k != "mask"}  # train only
        return table, read_generic_csv(self.test_csv, self.root, test_columns,
                                       require_label=self.test_labelled)


@register_layout("folders")
@dataclass
class ClassFolders:
    """One folder per class under ``root`` (or ``root/<split>/<class>``), optionally a second
    folder of class folders, ``test_root``, for testing, and a tree of pixel masks mirroring
    ``root``'s, ``masks_root`` (``vqc.data.folder_masks``)."""

    root: str | None = None
    test_root: str | None = None
    train_split: str = "train"
    test_split: str = "test"
    masks_root: str | None = None
    mask_suffix: str = ""
    #: False: the masks folder is still no class, but no mask is read (testing a mask run).
    read_masks: bool = True
    #: What reading the folders left out, for the run's summary (filled by ``tables``).
    notes: list[str] = field(default_factory=list, init=False)

    @property
    def name(self) -> str:
        return str(self.root or "data")

    @classmethod
    def masks_named(cls, data: Mapping[str, Any]) -> bool:
        if data.get("masks_root") == AUTO:
            return bool(data.get("root")) and find_masks_folder(data["root"]) is not None
        return bool(data.get("masks_root"))

    @classmethod
    def masks_off(cls, data: MutableMapping[str, Any]) -> None:
        if data.get("masks_root") is not None:
            data["read_masks"] = False  # its folder is still no class

    @classmethod
    def find_masks(cls, data: MutableMapping[str, Any]) -> list[tuple[str, Any, str]]:
        """``masks_root: auto``: ``root/masks`` or ``root/ground_truth`` when there is one."""
        if data.get("masks_root") != AUTO:
            return []
        found = find_masks_folder(data["root"]) if data.get("root") else None
        data["masks_root"] = str(found[0]) if found else None
        chosen = [("masks_root", data["masks_root"],
                   f"{found[0].name}/ under data.root" + (
                       f", files named *{found[1]}" if found[1] else "") if found else
                   f"no {' or '.join(f'{n}/' for n in MASK_FOLDERS)} under data.root")]
        if found and found[1] and not data.get("mask_suffix"):
            data["mask_suffix"] = found[1]
        return chosen

    def tables(self) -> Tables:
        self.notes = []
        root = _required(self.root, "root")
        masks_root, suffix = self.masks_root, self.mask_suffix or ""
        if masks_root == AUTO:  # a run resolves it first (and says so); a bare read here
            found = find_masks_folder(root)
            masks_root, suffix = (str(found[0]), suffix or found[1]) if found else (None, suffix)
        table = read_class_folders(root, notes=self.notes, skip=masks_root)
        if masks_root and self.read_masks:
            table = attach_folder_masks(table, masks_root, suffix, self.notes)
        if self.test_root:
            return table, read_class_folders(self.test_root, notes=self.notes)
        return _by_split(table, self.train_split, self.test_split, str(self.root))


__all__ = [
    "AUTO",
    "LAYOUTS",
    "MASK_COLUMN",
    "ChallengeFiles",
    "ClassFolders",
    "CsvList",
    "DataSource",
    "GivesMasks",
    "Tables",
    "build_source",
    "gives_masks",
    "layout_builder",
    "layout_keys",
    "register_layout",
]
