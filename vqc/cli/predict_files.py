"""What ``vqc-predict`` reads and writes: the images of a folder or an index (and what a folder
holds besides), the files a run writes, and the checks that keep an output from overwriting an
input, another output or another prediction's details."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from vqc.data.folders import images_under
from vqc.data.sources import IMAGE_EXTENSIONS
from vqc.errors import DataError
from vqc.io import read_csv


def folder_images(images: Path, recursive: bool = False) -> tuple[list[str], list[str]]:
    """The images of folder ``images`` (paths relative to it, sorted) and, one phrase each,
    what is left out: sub-folders (unless ``recursive``), other files, special files (FIFOs,
    sockets, broken links). Hidden files (``.x``, macOS ``._x.png``) are passed over."""
    if recursive:
        other: list[Path] = []
        found = images_under(images, IMAGE_EXTENSIONS, hidden=[], other=other)
        names = sorted(str(p.relative_to(images)) for p in found)
        return names, ([_listed("file(s) that are not images", [
            str(p.relative_to(images)) for p in other])] if other else [])
    names, folders, others, special = [], [], [], []
    for path in sorted(images.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            folders.append(path.name + "/")
        elif not path.is_file():
            special.append(path.name)
        elif path.suffix.lower() in IMAGE_EXTENSIONS:
            names.append(path.name)
        else:
            others.append(path.name)
    left = [_listed(what, items) for what, items in (
        ("sub-folder(s) (--recursive reads them)", folders),
        ("file(s) that are not images", others),
        ("special file(s) (FIFOs, sockets, broken links)", special)) if items]
    return names, left


def _listed(what: str, items: list[str], shown: int = 5) -> str:
    more = f", ... ({len(items)} in all)" if len(items) > shown else ""
    return f"{len(items)} {what}: {', '.join(items[:shown])}{more}"


def read_index(images: Path, index: Path | None, recursive: bool = False,
               left_out: list[str] | None = None) -> pd.DataFrame:
    """Rows to predict, in output order: orig_index, filename, window, lib, path.
    ``left_out`` receives what a folder holds besides the images read."""
    if index is not None:
        raw = read_csv(index, required=["filename"], dtype={"filename": str, "lib": str})
        first = raw.columns[0]
        frame = pd.DataFrame({
            "orig_index": raw[first] if first.startswith("Unnamed") else range(len(raw)),
            "filename": raw["filename"].astype(str).str.strip(),
            "window": raw["window"] if "window" in raw.columns else "",
            "lib": raw["lib"].astype(str).str.strip() if "lib" in raw.columns else "",
        })
    else:
        if not images.is_dir():
            raise DataError(f"{images}: image folder not found")
        names, left = folder_images(images, recursive)
        if left_out is not None:
            left_out.extend(left)
        if not names:
            raise DataError(f"{images}: no images ({', '.join(IMAGE_EXTENSIONS[:12])} ...)")
        frame = pd.DataFrame({"orig_index": range(len(names)), "filename": names,
                              "window": "", "lib": ""})
    dupes = frame["filename"][frame["filename"].duplicated()].unique().tolist()
    if dupes:
        raise DataError(f"{index}: duplicate filename(s) {dupes[:10]}")
    frame["path"] = [str(images / name) for name in frame["filename"]]
    return frame


def output_paths(out: Path, details: Path) -> dict[str, Path]:
    """Every file a run writes, by the name a message gives it."""
    return {"--out": out, "--details": details,
            "partial file": out.with_name(f"{out.name}.partial.csv"),
            "partial record": out.with_name(f"{out.name}.partial.json"),
            "record": out.with_name(f"{out.name}.meta.json"),
            "lock": out.with_name(f"{out.name}.lock")}


def option_of(name: str) -> str:
    """The option that sets an output (the partial, record and lock files follow ``--out``)."""
    return name if name.startswith("--") else "--out"


def same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_no_overwrite(outputs: dict[str, Path], inputs: dict[str, Path]) -> None:
    """Refuse outputs that are an input (``--out`` given as the ``--index``...) or each other."""
    names = list(outputs)
    for i, name in enumerate(names):
        for other in names[:i]:
            if same_file(outputs[name], outputs[other]):
                raise DataError(f"{name} {outputs[name]} is the same file as the {other}; "
                                f"give another {option_of(name)}")
        for input_name, path in inputs.items():
            if same_file(outputs[name], path):
                raise DataError(f"{name} {outputs[name]} is the {input_name}: writing it would "
                                f"overwrite an input; give another {option_of(name)}")


def details_owner(details: Path, out: Path) -> Path | None:
    """The record (``OTHER.meta.json``) of another prediction whose details file is
    ``details``: writing it again would leave that record's checksum stale."""
    target = str(details.resolve())
    for folder in dict.fromkeys((out.parent.resolve(), details.parent.resolve())):
        for record in sorted(folder.glob("*.meta.json")) if folder.is_dir() else []:
            if record.resolve() == out.resolve().with_name(f"{out.name}.meta.json"):
                continue  # this prediction's own: a rerun rewrites both
            try:
                outputs = json.loads(record.read_text()).get("outputs", {})
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(outputs, dict) and (outputs.get("details") or {}).get("path") == target:
                return record
    return None


def check_no_image_overwrite(outputs: dict[str, Path], images: Path,
                              filenames: set[str]) -> None:
    """Refuse an output that is one of the images to predict."""
    folder = images.resolve()
    for name, path in outputs.items():
        target = path.resolve()
        if target.is_relative_to(folder) and str(target.relative_to(folder)) in filenames:
            raise DataError(f"{name} {path} is one of the images to predict: writing it would "
                            f"overwrite an input; give another {option_of(name)}")


__all__ = ["check_no_image_overwrite", "check_no_overwrite", "details_owner", "folder_images",
           "option_of", "output_paths", "read_index", "same_file"]
