"""``vqc-predict``: images -> a submission CSV in the challenge's format, plus details.

Input is a folder of images, or the challenge's test index CSV (``filename``, ``window``,
``lib``, e.g. ``win_and_lib.csv``) beside the folder. The submission has the challenge's
``Y_random`` columns: an unnamed index, ``filename``, ``window``, ``lib`` and an integer
``Label``; the details CSV adds the probabilities, the drift score and the decision's reason.

The model is an inspector artifact (``--inspector``, PyTorch) or the same inspector exported
by ``vqc-export`` (``--onnx``, run by ONNX Runtime); both give the same submission.

Rows are appended to ``OUT.partial.csv`` batch by batch; a killed run, started again with the
same command, continues after the last complete batch. ``OUT.partial.json`` records what the
rows were made from (the model file's SHA-256, the images, the options that change the rows:
see ``vqc.provenance``); a run with other inputs refuses to continue them unless given
``--restart``. The final files are written atomically, with ``OUT.meta.json`` recording the
same, and the partial files removed, so every input appears exactly once. ``OUT.lock`` keeps a
second run on the same ``--out`` from starting while one is running.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from rich.console import Console

from vqc.cli.predict_files import (
    check_no_image_overwrite,
    check_no_overwrite,
    details_owner,
    output_paths,
    read_index,
)
from vqc.errors import DataError, VqcError
from vqc.interrupts import Interrupted, handle_signals, interruptible
from vqc.io import folder_problem, write_atomic, write_csv_atomic
from vqc.lock import OutputLock
from vqc.progress import lines_on_stderr, phase
from vqc.provenance import Fingerprint, file_sha256

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
    parser.add_argument("--batch-size", type=_positive_int, default=32,
                        help="images per batch (does not change the results)")
    parser.add_argument("--on-bad-image", choices=("error", "drift"), default="error",
                        help="an unreadable image stops the run (error) or is answered with the "
                             "open-set class (drift)")
    parser.add_argument("--recursive", action="store_true",
                        help="also read the images of sub-folders (filename: their path under "
                             "--images); by default sub-folders are named and left out")
    parser.add_argument("--restart", action="store_true",
                        help="discard the rows of an interrupted run (OUT.partial.csv) and "
                             "predict every image again")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


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


@contextmanager
def _space_errors(path: Path, partial: Path) -> Iterator[None]:
    """A full disk or quota while writing ``path``: one line, and the partial rows kept."""
    try:
        yield
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        reason = "no space left on the device" if err.errno == errno.ENOSPC else (
            "disk quota exceeded")
        kept = (f"the rows predicted so far are kept in {partial} and the same command "
                "continues from them once there is room") if partial.is_file() else (
            "no rows were kept")
        raise DataError(f"{path}: cannot write: {reason}; {kept}") from err


def _resume_check(partial: Path, record: Path, now: Fingerprint, restart: bool) -> None:
    """Keep the partial rows only if they were made from the same model, images and options."""
    if restart:
        partial.unlink(missing_ok=True)
        record.unlink(missing_ok=True)
        return
    if not partial.is_file() or partial.stat().st_size == 0:
        record.unlink(missing_ok=True)  # a record without rows: nothing to keep
        return
    how = f"run again with --restart to start over (or delete {partial} and {record.name})"
    if not record.is_file():
        raise DataError(f"{partial}: no record of the model, images and options its rows were "
                        f"made from ({record.name} is missing); {how}")
    try:
        differences = Fingerprint.read(record).differences(now)
    except DataError as err:
        raise DataError(f"{err}; {how}") from err
    if differences:
        raise DataError(f"{partial}: its rows were made from other inputs: this run has "
                        f"{'; '.join(differences)}; {how}")


def predict(inspector_path: Path | None, images: Path, index: Path | None, out: Path,
            details: Path | None = None, batch_size: int = 32,
            on_bad_image: str = "error", onnx_path: Path | None = None,
            restart: bool = False, recursive: bool = False) -> pd.DataFrame:
    """Write the submission and details CSVs; returns the details.

    The model is the inspector artifact at ``inspector_path`` or, instead, the exported ONNX
    model at ``onnx_path``. ``restart`` discards the rows of an interrupted run instead of
    continuing them; ``recursive`` reads the images of sub-folders too. What a folder holds
    besides the images read is named on stderr.
    """
    if batch_size < 1:
        raise DataError(f"batch size {batch_size}: must be a positive integer")
    details = details or out.with_name(f"{out.stem}_details{out.suffix or '.csv'}")
    model_path = Path(onnx_path if onnx_path is not None else inspector_path)
    paths = output_paths(out, details)
    inputs = {"model": model_path, "--index": index} if index is not None else {
        "model": model_path}
    check_no_overwrite(paths, inputs)
    owner = details_owner(details, out) if details.exists() else None
    if owner is not None:
        raise DataError(f"--details {details} holds the details of another prediction "
                        f"({owner.name}); writing it would leave that record's checksum "
                        "stale: give another --details")
    problem = folder_problem(out.parent)
    if problem:
        raise DataError(f"--out {out}: cannot create its folder: {problem}")
    out.parent.mkdir(parents=True, exist_ok=True)
    inspector = load_model(inspector_path, onnx_path)
    left_out: list[str] = []
    rows = read_index(images, index, recursive, left_out)
    for note in left_out:
        print(f"{PROG}: left out of {images}: {note}", file=sys.stderr)  # one line each
    check_no_image_overwrite(paths, images, set(rows["filename"]))
    if inspector.preprocessor.rotate_crop:
        for row in rows.itertuples():
            inspector.preprocessor.check_lib(row.lib or None, f"{index or images}: {row.filename}")
    with OutputLock(out, what=PROG):
        return _predict_locked(inspector, model_path, images, index, rows, paths, batch_size,
                               on_bad_image, restart)


def _predict_locked(inspector: Inspector | OnnxInspector, model_path: Path, images: Path,
                    index: Path | None, rows: pd.DataFrame, paths: dict[str, Path],
                    batch_size: int, on_bad_image: str, restart: bool) -> pd.DataFrame:
    """The part of :func:`predict` run while holding the output's lock."""
    import vqc

    classes = inspector.classes
    out, details = paths["--out"], paths["--details"]
    partial, record = paths["partial file"], paths["partial record"]
    fingerprint = Fingerprint.of(
        model_path, images, index,
        zip(rows["filename"], rows["lib"].astype(str), rows["window"].astype(str), strict=True),
        {"on_bad_image": on_bad_image, "vqc": vqc.__version__})
    _resume_check(partial, record, fingerprint, restart)
    prob_columns = [f"p_{name}" for name in classes.trained_names]
    columns = ["orig_index", "filename", "window", "lib", "Label", "decision", "reason",
               "drift_score", *prob_columns]
    done = _partial_rows(partial, columns)
    todo = rows[~rows["filename"].isin(set(done["filename"]))]
    if len(done):
        console.print(f"resuming: {len(done)} of {len(rows)} rows already predicted "
                      f"(same model, images and options; see {record.name})")
    with interruptible("prediction"), phase("predict", total=len(todo)) as progress:
        for start in range(0, len(todo), batch_size):
            batch = todo.iloc[start:start + batch_size]
            predicted = _predict_batch(inspector, batch, on_bad_image, prob_columns)
            if not record.is_file():  # the record first: rows never exist without it
                with _space_errors(record, partial):
                    write_atomic(record, fingerprint.to_json())
            with _space_errors(partial, partial):
                _append(partial, predicted)
            progress.advance(len(batch))
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
    with _space_errors(details, partial):
        write_csv_atomic(result[columns], details, index=False)
    with _space_errors(out, partial):
        write_csv_atomic(submission, out)
    final = Fingerprint(fingerprint.model, fingerprint.images, fingerprint.options,
                        outputs={name: {"path": str(path.resolve()), "sha256": file_sha256(path)}
                                 for name, path in (("submission", out), ("details", details))})
    with _space_errors(paths["record"], partial):
        write_atomic(paths["record"], final.to_json())
    partial.unlink(missing_ok=True)
    record.unlink(missing_ok=True)
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
    with handle_signals(), lines_on_stderr():  # the phase line: predict: N images in T s
        try:
            return _run(args)
        except Interrupted as stop:
            partial = Path(args.out).with_name(f"{Path(args.out).name}.partial.csv")
            kept = (f"the rows predicted so far are kept in {partial}; " if partial.is_file()
                    else "")
            print(f"{PROG}: {stop}; {kept}the same command continues where it stopped",
                  file=sys.stderr)
            return stop.exit_code


def _run(args: argparse.Namespace) -> int:
    try:
        if (args.on_bad_image == "drift"
                and load_model(args.inspector, args.onnx).classes.open_set_code is None):
            raise DataError("--on-bad-image drift needs an inspector with an open-set class")
        result = predict(args.inspector, args.images, args.index, args.out, args.details,
                         args.batch_size, args.on_bad_image, onnx_path=args.onnx,
                         restart=args.restart, recursive=args.recursive)
    except VqcError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    counts = result["decision"].value_counts().to_dict()
    console.print(f"{len(result)} images -> {args.out}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
