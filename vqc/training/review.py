"""A W&B run that is the review: what a reviewer finds in it besides the per-epoch curves.

- best-epoch summaries: ``val/pwa`` and its kin keep their best epoch's value (``max`` or
  ``min``), not the last one's;
- the whole inspection's figures (``inspection/pwa``, its floor, drift AUROC, false-drift rate,
  drift caught...) in the history and the summary;
- Tables: every test image with its thumbnail, true and predicted class, probabilities, drift
  score and reason; one row per class (recall, precision, example images); an interactive
  confusion matrix;
- artifacts, offline too (``wandb sync`` uploads them later): the best checkpoint, the
  inspector, the ONNX model when the run exported one, the test predictions and the reports;
- the reports' text (``report/test``, ``report/inspection``).

Only a ``WandbLogger`` gets any of it; with other loggers these functions return at once.
"""

from __future__ import annotations

import html
import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from vqc.errors import ConfigError

log = logging.getLogger(__name__)

#: Validation figures whose best epoch is their largest value.
BEST_MAX = ("pwa", "pwa_lift", "macro_recall", "macro_f1", "accuracy")
#: Validation figures whose best epoch is their smallest value.
BEST_MIN = ("loss", "cost_ratio", "escapes", "escape_rate", "false_alarms")
#: Lightning's step axis of a ``WandbLogger`` run.
STEP = "trainer/global_step"
#: Reports of a run folder, logged as text under ``report/NAME``.
REPORTS = {"test": "test_report.md", "inspection": "inspection_report.md"}
PREDICTIONS_CSV = "test_predictions.csv"


@dataclass(frozen=True)
class ReviewSettings:
    """``logger.wandb.review``: sizes of the Tables and whether artifacts are logged."""

    thumbnail: int = 64          # px, the longest side of a table image
    max_images: int = 500        # rows of the predictions table with an image (errors first)
    examples: int = 8            # images per class in the per-class table
    artifacts: bool = True

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None) -> ReviewSettings:
        """The settings, refused with a message naming the setting when one is wrong."""
        if not spec:
            return cls()
        where = "logger.wandb.review"
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(spec) - set(allowed))
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown setting (expected one of "
                              f"{', '.join(allowed)})")
        values: dict[str, Any] = {}
        for name in ("thumbnail", "max_images", "examples"):
            if name in spec:
                value = spec[name]
                least = 8 if name == "thumbnail" else 0
                if isinstance(value, bool) or not isinstance(value, int) or value < least:
                    raise ConfigError(f"{where}.{name}={value!r}: expected a whole number "
                                      f"of at least {least}")
                values[name] = value
        if "artifacts" in spec:
            if not isinstance(spec["artifacts"], bool):
                raise ConfigError(f"{where}.artifacts={spec['artifacts']!r}: expected true or "
                                  "false")
            values["artifacts"] = spec["artifacts"]
        return cls(**values)

    @classmethod
    def from_config(cls, cfg: DictConfig | None) -> ReviewSettings:
        spec = OmegaConf.select(cfg, "logger.wandb.review") if cfg is not None else None
        return cls.from_spec(OmegaConf.to_container(spec, resolve=True) if spec else None)


def wandb_run(loggers: Iterable[Any]) -> Any | None:
    """The W&B run of the first ``WandbLogger`` (``None`` without one, or off rank 0)."""
    for logger in loggers:
        if type(logger).__name__ == "WandbLogger":
            run = logger.experiment
            # other ranks of a distributed run get Lightning's DummyExperiment
            return None if type(run).__name__ == "DummyExperiment" else run
    return None


@contextmanager
def staged_in_run_folder(run: Any) -> Iterator[None]:
    """Offline, W&B copies a table's JSON and images, and an artifact's copied files, to a
    staging folder that ``wandb sync`` uploads from: by default in the user's home. Here it is
    the run folder's ``wandb/data/`` (unless ``WANDB_DATA_DIR`` is set), with the rest of the
    run, where it is kept or deleted with it."""
    if not getattr(run, "offline", False) or os.environ.get("WANDB_DATA_DIR"):
        yield
        return
    os.environ["WANDB_DATA_DIR"] = str(Path(run.dir).parents[1] / "data")
    try:
        yield
    finally:
        os.environ.pop("WANDB_DATA_DIR", None)


def define_best_metrics(loggers: Iterable[Any]) -> None:
    """Summaries that keep the best epoch: ``val/pwa`` its max, ``val/loss`` its min..."""
    run = wandb_run(loggers)
    if run is None:
        return
    for names, summary in ((BEST_MAX, "max"), (BEST_MIN, "min")):
        for name in names:
            run.define_metric(f"val/{name}", summary=summary, step_metric=STEP, step_sync=True)


def known_macro_recall(report: Any) -> float:
    """Mean recall of the known classes present in the labels (the open-set class left out)."""
    recalls = [r for i, (r, n) in enumerate(zip(report.recall, report.support, strict=True))
               if n and i != report.open_set_code]
    return float(np.mean(recalls)) if recalls else math.nan


def inspection_figures(result: Any) -> dict[str, float]:
    """The whole inspection's headline figures, as ``inspection/NAME`` (finite ones only)."""
    report = result.report
    figures = {
        "pwa": report.pwa, "pwa_floor": report.floor.pwa, "pwa_lift": report.pwa_lift,
        "cost_ratio": report.cost_ratio, "escapes": report.escapes,
        "escape_rate": report.escape_rate, "good_flagged": report.false_alarms,
        "good_flagged_rate": report.false_alarm_rate,
        "known_macro_recall": known_macro_recall(report), "accuracy": report.accuracy,
        "classifier_only_pwa": result.classifier_only.pwa,
        "drift_auroc": result.drift_auroc, "false_drift_rate": result.false_drift_rate,
        "drift_caught": result.drift_recall,
    }
    return {f"inspection/{k}": float(v) for k, v in figures.items()
            if v is not None and math.isfinite(float(v))}


def _thumbnail(array: np.ndarray, size: int) -> Image.Image:
    """A preprocessed ``(C, H, W)`` uint8 array as a picture at most ``size`` px wide or high."""
    picture = array[0] if array.shape[0] == 1 else np.ascontiguousarray(
        array[:3].transpose(1, 2, 0))
    image = Image.fromarray(picture.astype(np.uint8))
    image.thumbnail((size, size))
    return image


def _montage(images: list[Image.Image]) -> Image.Image | None:
    """Pictures side by side (``None`` for none)."""
    if not images:
        return None
    mode = "RGB" if any(i.mode != "L" for i in images) else "L"
    width = sum(i.width for i in images) + 2 * (len(images) - 1)
    canvas = Image.new(mode, (width, max(i.height for i in images)), 255 if mode == "L" else
                       (255, 255, 255))
    x = 0
    for image in images:
        canvas.paste(image.convert(mode), (x, 0))
        x += image.width + 2
    return canvas


class _Thumbnails:
    """Thumbnails of a test table's rows, read from the image cache once each."""

    def __init__(self, frame: pd.DataFrame, cache: Any, size: int) -> None:
        self.paths = frame["path"].tolist()
        self.libs = frame["lib"].tolist() if "lib" in frame else [None] * len(frame)
        self.cache, self.size = cache, size
        self._done: dict[int, Image.Image | None] = {}

    def __call__(self, i: int) -> Image.Image | None:
        if i not in self._done:
            try:
                self._done[i] = _thumbnail(self.cache.get(self.paths[i], self.libs[i]),
                                           self.size)
            except Exception as err:  # a picture missing from a table is no failure
                log.debug("no thumbnail for %s: %s", self.paths[i], err)
                self._done[i] = None
        return self._done[i]


def predictions_table(predictions: pd.DataFrame, names: list[str], pictures: Any,
                      max_images: int) -> Any:
    """One row per test image: thumbnail, true and predicted class, ``p_*``, drift, reason.

    Images go to the ``max_images`` first rows in this order: wrong decisions, then the rest.
    """
    import wandb

    labels = predictions["label"].to_numpy()
    decisions = predictions["decision"].to_numpy()
    order = np.argsort(labels == decisions, kind="stable")
    with_image = set(order[:max(0, max_images)].tolist())
    probabilities = [c for c in predictions.columns if c.startswith("p_")]
    columns = ["image", "filename", "true", "predicted", *probabilities, "drift_score", "reason"]
    table = wandb.Table(columns=columns)
    for i, row in enumerate(predictions.to_dict("records")):
        picture = pictures(i) if i in with_image else None
        table.add_data(
            None if picture is None else wandb.Image(picture),
            str(row["filename"]), names[int(row["label"])], names[int(row["decision"])],
            *[_finite(row[c]) for c in probabilities], _finite(row.get("drift_score")),
            str(row["reason"]),
        )
    return table


def per_class_table(report: Any, predictions: pd.DataFrame, pictures: Any,
                    examples: int) -> Any:
    """One row per class: images, predicted, recall, precision, F1, examples and mistakes."""
    import wandb

    labels = predictions["label"].to_numpy()
    decisions = predictions["decision"].to_numpy()
    table = wandb.Table(columns=["class", "images", "predicted", "recall", "precision", "f1",
                                 "examples", "mistakes"])

    def strip(rows: np.ndarray) -> Any:
        images = [p for p in (pictures(int(i)) for i in rows[:examples]) if p is not None]
        montage = _montage(images)
        return None if montage is None else wandb.Image(montage)

    for code, name in enumerate(report.class_names):
        right = np.flatnonzero((labels == code) & (decisions == code))
        wrong = np.flatnonzero((labels == code) & (decisions != code))
        table.add_data(name, int(report.support[code]), int(report.predicted[code]),
                       _finite(report.recall[code]), _finite(report.precision[code]),
                       _finite(report.f1[code]), strip(right), strip(wrong))
    return table


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def log_inspection(loggers: Iterable[Any], result: Any, frame: pd.DataFrame, cache: Any,
                   step: int, cfg: DictConfig | None = None) -> None:
    """The whole inspection on test into the W&B run: figures (history and summary), the
    predictions and per-class Tables, the interactive confusion matrix."""
    run = wandb_run(loggers)
    if run is None:
        return
    import wandb

    settings = ReviewSettings.from_config(cfg)
    figures = inspection_figures(result)
    run.log({**figures, STEP: step})
    run.summary.update(figures)
    predictions = result.predictions
    names = list(result.report.class_names)
    pictures = _Thumbnails(frame.reset_index(drop=True), cache, settings.thumbnail)
    # Everything is on disk already (reports, predictions CSV): a table that cannot be made
    # is a warning, not the failure of a finished run.
    with _warn_on_failure("the inspection tables"), staged_in_run_folder(run):
        tables: dict[str, Any] = {
            "inspection/predictions": predictions_table(predictions, names, pictures,
                                                        settings.max_images),
            "inspection/per_class": per_class_table(result.report, predictions, pictures,
                                                    settings.examples),
            "inspection/confusion_matrix": wandb.plot.confusion_matrix(
                y_true=predictions["label"].astype(int).tolist(),
                preds=predictions["decision"].astype(int).tolist(),
                class_names=names, title="Test: the whole inspection"),
        }
        run.log({**tables, STEP: step})


@contextmanager
def _warn_on_failure(what: str) -> Iterator[None]:
    try:
        yield
    except Exception as err:
        log.warning("W&B: %s not logged: %s: %s", what, type(err).__name__, err)


def markdown_html(text: str) -> str:
    """Markdown as an HTML page (tables rendered); preformatted text if it cannot be parsed."""
    try:
        from markdown_it import MarkdownIt

        body = MarkdownIt("commonmark").enable("table").render(text)
    except Exception:  # pragma: no cover - markdown-it comes with rich
        body = f"<pre>{html.escape(text)}</pre>"
    style = ("<style>body{font-family:sans-serif}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style>")
    return f"<html><head><meta charset='utf-8'>{style}</head><body>{body}</body></html>"


def _artifact(run: Any, kind: str, files: Mapping[str, Path], metadata: dict[str, Any],
              copy: bool, aliases: list[str] | None = None) -> None:
    """Log one artifact ``KIND-RUNID`` of ``files`` (name in it -> file).

    ``copy=False`` (large files: checkpoint, inspector, ONNX) references the run folder's file,
    read when ``wandb sync`` uploads it: keep the run folder until then.
    """
    import wandb

    artifact = wandb.Artifact(f"{kind}-{run.id}", type=kind,
                              metadata={k: v for k, v in metadata.items() if v is not None})
    for name, path in files.items():
        artifact.add_file(str(path), name=name, policy="mutable" if copy else "immutable")
    run.log_artifact(artifact, aliases=aliases or ["latest"])


def log_run_files(loggers: Iterable[Any], run_dir: str | Path, summary: Mapping[str, Any],
                  cfg: DictConfig | None = None) -> None:
    """The reports' text and the run's files as artifacts, before the W&B run is closed."""
    run = wandb_run(loggers)
    if run is None:
        return
    import wandb

    run_dir = Path(run_dir)
    texts = {name: (run_dir / file).read_text() for name, file in REPORTS.items()
             if (run_dir / file).is_file()}
    if texts:
        run.log({f"report/{name}": wandb.Html(markdown_html(text), inject=False,
                                                       data_is_not_path=True)
                 for name, text in texts.items()})
    if ReviewSettings.from_config(cfg).artifacts:
        with _warn_on_failure("the artifacts"), staged_in_run_folder(run):
            _log_artifacts(run, run_dir, summary)


def _log_artifacts(run: Any, run_dir: Path, summary: Mapping[str, Any]) -> None:
    """The best checkpoint, the inspector, the ONNX model, the predictions and the reports."""
    meta = {"optimized_metric": summary.get("optimized_metric"), "metric": summary.get("metric"),
            "epochs": summary.get("epochs"), "run_dir": str(run_dir)}
    best = summary.get("best_checkpoint")
    if best and Path(best).is_file():
        record = summary.get("best") or {}
        chosen_by = {"monitor": record.get("monitor", summary.get("best_monitor")),
                     "best_score": record.get("score", summary.get("best_score")),
                     "best_epoch": record.get("epoch")}
        _artifact(run, "model", {Path(best).name: Path(best)}, {**meta, **chosen_by},
                  copy=False, aliases=["latest", "best"])
    inspector = summary.get("inspector")
    if inspector and Path(inspector).is_file():
        _artifact(run, "inspector", {Path(inspector).name: Path(inspector)}, meta, copy=False)
    onnx = sorted(run_dir.glob("*.onnx")) + sorted(run_dir.glob("export/*.onnx"))
    if summary.get("onnx") and Path(summary["onnx"]).is_file():
        onnx = [Path(summary["onnx"])]
    if onnx:
        _artifact(run, "onnx", {p.name: p for p in onnx}, meta, copy=False)
    if (run_dir / PREDICTIONS_CSV).is_file():
        _artifact(run, "predictions", {PREDICTIONS_CSV: run_dir / PREDICTIONS_CSV}, meta,
                  copy=True)
    reports = {file: run_dir / file for file in (*REPORTS.values(), "summary.json")
               if (run_dir / file).is_file()}
    if reports:
        _artifact(run, "report", reports, meta, copy=True)


__all__ = ["ReviewSettings", "define_best_metrics", "inspection_figures", "log_inspection",
           "log_run_files", "wandb_run"]
