"""``vqc-predict``: images -> a submission CSV in the challenge's format, plus details.

Input is a folder of images, or the challenge's test index CSV (``filename``, ``window``,
``lib``, e.g. ``win_and_lib.csv``) beside the folder. The submission has the challenge's
``Y_random`` columns: an unnamed index, ``filename``, ``window``, ``lib`` and an integer
``Label``; the details CSV adds the probabilities, the drift score and the decision's reason.

The model is an inspector artifact (``--inspector``, PyTorch) or the same inspector exported
by ``vqc-export`` (``--onnx``, run by ONNX Runtime); both give the same submission.

Rows are appended to ``OUT.partial.csv`` batch by batch; a killed run, started again with the
same command, continues after the last complete batch. The final files are written atomically
and the partial file removed, so every input appears exactly once.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from rich.console import Console
from rich.progress import Progress

from vqc.data.csvio import read_csv
from vqc.data.sources import IMAGE_EXTENSIONS
from vqc.errors import DataError, VqcError
from vqc.io import folder_problem, write_csv_atomic

if TYPE_CHECKING:
    from vqc.export.runtime import OnnxInspector
    from vqc.inspection.inspector import Inspector

PROG = "vqc-predict"
console = Console(stderr=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--inspector", type=Path, default=None,
                       help="inspector.safetensors written by training")
    model.add_argument("--onnx", type=Path, default=None,
                       help="model.onnx written by vqc-export (run by ONNX Runtime)")
    parser.add_argument("--images", required=True, type=Path, help="folder of the images")
    parser.add_argument("--index", type=Path, default=None,
                        help="CSV listing filename, window, lib (default: every image in the "
                             "folder, sorted)")
    parser.add_argument("--out", required=True, type=Path, help="submission CSV to write")
    parser.add_argument("--details", type=Path, default=None,
                        help="details CSV (default: OUT with _details before the suffix)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--on-bad-image", choices=("error", "drift"), default="error",
                        help="an unreadable image stops the run (error) or is answered with the "
                             "open-set class (drift)")
    return parser


def read_index(images: Path, index: Path | None) -> pd.DataFrame:
    """Rows to predict, in output order: orig_index, filename, window, lib, path."""
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
        names = sorted(p.name for p in images.iterdir()
                       if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                       and not p.name.startswith("."))  # hidden files, macOS "._x.png"
        if not names:
            raise DataError(f"{images}: no images ({', '.join(IMAGE_EXTENSIONS[:12])} ...)")
        frame = pd.DataFrame({"orig_index": range(len(names)), "filename": names,
                              "window": "", "lib": ""})
    dupes = frame["filename"][frame["filename"].duplicated()].unique().tolist()
    if dupes:
        raise DataError(f"{index}: duplicate filename(s) {dupes[:10]}")
    frame["path"] = [str(images / name) for name in frame["filename"]]
    return frame


def _cut_torn_line(partial: Path) -> None:
    """A kill during a write can leave a last line cut short: drop it so the rerun redoes it."""
    data = partial.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(partial, "r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


def _partial_rows(partial: Path, columns: list[str]) -> pd.DataFrame:
    if not partial.is_file() or partial.stat().st_size == 0:
        return pd.DataFrame(columns=columns)
    _cut_torn_line(partial)
    try:
        done = pd.read_csv(partial, dtype={"filename": str, "lib": str})
    except (pd.errors.ParserError, UnicodeDecodeError):
        return pd.DataFrame(columns=columns)  # unreadable: start over
    done = done[pd.to_numeric(done.get("Label"), errors="coerce").notna()]
    return done.drop_duplicates("filename", keep="last")


def _append(partial: Path, rows: pd.DataFrame) -> None:
    header = not partial.is_file() or partial.stat().st_size == 0
    with open(partial, "a", encoding="utf-8") as handle:
        rows.to_csv(handle, header=header, index=False)
        handle.flush()
        os.fsync(handle.fileno())


def load_model(inspector_path: Path | None = None,
               onnx_path: Path | None = None) -> Inspector | OnnxInspector:
    """An ``Inspector`` from an artifact, or an ``OnnxInspector`` from an exported model."""
    if (inspector_path is None) == (onnx_path is None):
        raise DataError("give either an inspector artifact or an ONNX model")
    if onnx_path is not None:
        from vqc.export.runtime import OnnxInspector

        return OnnxInspector(onnx_path)
    from vqc.inspection.inspector import Inspector

    return Inspector.load(inspector_path)


def predict(inspector_path: Path | None, images: Path, index: Path | None, out: Path,
            details: Path | None = None, batch_size: int = 32,
            on_bad_image: str = "error", onnx_path: Path | None = None) -> pd.DataFrame:
    """Write the submission and details CSVs; returns the details.

    The model is the inspector artifact at ``inspector_path`` or, instead, the exported ONNX
    model at ``onnx_path``.
    """
    details = details or out.with_name(f"{out.stem}_details{out.suffix or '.csv'}")
    problem = folder_problem(out.parent)
    if problem:
        raise DataError(f"--out {out}: cannot create its folder: {problem}")
    out.parent.mkdir(parents=True, exist_ok=True)
    inspector = load_model(inspector_path, onnx_path)
    classes = inspector.classes
    rows = read_index(images, index)
    if inspector.preprocessor.rotate_crop:
        for row in rows.itertuples():
            inspector.preprocessor.check_lib(row.lib or None, f"{index or images}: {row.filename}")
    partial = out.with_name(f"{out.name}.partial.csv")
    prob_columns = [f"p_{name}" for name in classes.trained_names]
    columns = ["orig_index", "filename", "window", "lib", "Label", "decision", "reason",
               "drift_score", *prob_columns]
    done = _partial_rows(partial, columns)
    todo = rows[~rows["filename"].isin(set(done["filename"]))]
    if len(done):
        console.print(f"resuming: {len(done)} of {len(rows)} rows already predicted")
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("inspecting", total=len(rows), completed=len(done))
        for start in range(0, len(todo), batch_size):
            batch = todo.iloc[start:start + batch_size]
            _append(partial, _predict_batch(inspector, batch, on_bad_image, prob_columns))
            progress.advance(task, len(batch))
    done = _partial_rows(partial, columns).set_index("filename")
    missing = [f for f in rows["filename"] if f not in done.index]
    if missing:
        raise DataError(f"{partial}: {len(missing)} row(s) missing after prediction, e.g. "
                        f"{missing[:5]}")
    result = done.loc[rows["filename"]].reset_index()
    submission = pd.DataFrame({"filename": result["filename"].values,
                               "window": rows["window"].values, "lib": rows["lib"].values,
                               "Label": result["Label"].astype(int).values},
                              index=pd.Index(rows["orig_index"].values, name=None))
    write_csv_atomic(result[columns], details, index=False)
    write_csv_atomic(submission, out)
    partial.unlink(missing_ok=True)
    return result


def _predict_batch(inspector, batch: pd.DataFrame, on_bad_image: str,
                   prob_columns: list[str]) -> pd.DataFrame:
    classes = inspector.classes
    libs = [lib or None for lib in batch["lib"]]
    good, bad = [], []
    arrays = []
    for i, (path, lib) in enumerate(zip(batch["path"], libs, strict=True)):
        try:
            arrays.append(inspector.preprocessor(path, lib))
            good.append(i)
        except DataError as err:
            if on_bad_image == "error":
                raise
            bad.append((i, str(err)))
    out = batch[["orig_index", "filename", "window", "lib"]].copy()
    out["Label"], out["decision"], out["reason"], out["drift_score"] = -1, "", "", float("nan")
    for column in prob_columns:
        out[column] = float("nan")
    if good:
        import numpy as np
        import torch

        images = inspector.normalise(torch.from_numpy(np.stack(arrays)))
        result = inspector(images, [libs[i] for i in good] if any(libs) else None)
        reasons = result.reasons(classes)
        rows = out.index[good]
        out.loc[rows, "Label"] = result.decision.numpy()
        out.loc[rows, "reason"] = reasons
        if result.drift_score is not None:
            out.loc[rows, "drift_score"] = result.drift_score.numpy()
        for j, column in enumerate(prob_columns):
            out.loc[rows, column] = result.probabilities[:, j].numpy()
    for i, message in bad:
        out.loc[out.index[i], "Label"] = classes.open_set_code
        out.loc[out.index[i], "reason"] = f"unreadable image: {message}"
    out["decision"] = [classes.names[int(c)] for c in out["Label"]]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if (args.on_bad_image == "drift"
                and load_model(args.inspector, args.onnx).classes.open_set_code is None):
            raise DataError("--on-bad-image drift needs an inspector with an open-set class")
        result = predict(args.inspector, args.images, args.index, args.out, args.details,
                         args.batch_size, args.on_bad_image, onnx_path=args.onnx)
    except VqcError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    counts = result["decision"].value_counts().to_dict()
    console.print(f"{len(result)} images -> {args.out}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
