"""Pictures of an inspection on a labelled table: where drift was seen, and how scores spread.

* ``drift_overlays.png``: each image flagged as drift in gray, its anomaly map on top as a
  semi-transparent heat map (highest drift scores first);
* ``drift_histogram.png``: drift scores per true class, with the threshold(s);
* ``test_tsne_with_drift.png``: t-SNE of the classifier's embeddings, open-set images included.

Saved as PNGs and sent to the run's loggers (W&B as images, TensorBoard as figures).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.ticker import MaxNLocator
from torch import Tensor

from vqc.classes import ClassSet
from vqc.data.cache import ImageCache
from vqc.data.dataset import frame_batches
from vqc.drift.features import forward_with_maps
from vqc.drift.smoothing import resize_bilinear
from vqc.inspection.evaluate import InspectionReport
from vqc.inspection.inspector import Inspector
from vqc.plotting import save_figure, send_figure, tsne_figure, unit_range
from vqc.progress import Phase, phase

log = logging.getLogger(__name__)

OVERLAYS = "drift_overlays"
HISTOGRAM = "drift_histogram"
TSNE = "test_tsne_with_drift"
#: Label of the global threshold line in the histogram (per-lib lines: ``lib threshold``).
THRESHOLD_LABEL = "threshold"
#: Above this ratio of largest to smallest positive score, bins are log-spaced.
WIDE_RANGE = 50.0


def _gray(image: Tensor) -> np.ndarray:
    """One ``(C, H, W)`` image, normalised or raw, as a 2-D array scaled to [0, 1]."""
    picture = image.detach().float().cpu()
    picture = picture.mean(dim=0) if picture.dim() == 3 else picture
    return unit_range(picture.numpy())


def anomaly_overlay_figure(images: Tensor, maps: Tensor, titles: Sequence[str],
                           scores: Sequence[float] | None = None, max_images: int = 16,
                           title: str = "images flagged as drift: anomaly maps",
                           ) -> plt.Figure:
    """A grid of images ``(N, C, H, W)`` in gray, each with its anomaly map ``(N, H', W')``.

    Maps are resized to the image and drawn on one colour scale, so panels compare. With
    ``scores``, the ``max_images`` highest come first; otherwise the first ``max_images``.
    """
    n = len(images)
    if len(maps) != n or len(titles) != n:
        raise ValueError(f"{n} images, {len(maps)} maps and {len(titles)} titles")
    if n == 0:
        raise ValueError("no images to draw")
    order = (np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
             if scores is not None else np.arange(n))[:max_images]
    size = tuple(images.shape[-2:])
    heat = resize_bilinear(maps[torch.as_tensor(order)].detach().float().cpu(), size).numpy()
    low, high = float(heat.min()), float(heat.max())
    high = high if high > low else low + 1e-6
    cols = min(4, len(order))
    rows = (len(order) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols + 1.0, 2.6 * rows + 0.4),
                             squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    shown = None
    for ax, i, layer in zip(axes.flat, order, heat, strict=False):
        ax.imshow(_gray(images[i]), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        shown = ax.imshow(layer, cmap="inferno", alpha=0.45, vmin=low, vmax=high,
                          interpolation="bilinear")
        ax.set_title(titles[i], fontsize=7)
    if shown is not None:
        bar = fig.colorbar(shown, ax=axes, shrink=0.8)
        bar.solids.set_alpha(1.0)
        bar.set_label("anomaly map (Mahalanobis distance)", fontsize=8)
    fig.suptitle(title, fontsize=9)
    return fig


def _rate(flags: np.ndarray) -> float | None:
    return float(flags.mean()) if len(flags) else None


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def drift_histogram_figure(scores: Sequence[float] | np.ndarray | Tensor,
                           codes: Sequence[int] | np.ndarray | Tensor, classes: ClassSet,
                           threshold: float | None,
                           lib_thresholds: Mapping[str, float] | None = None,
                           false_drift_rate: float | None = None,
                           drift_recall: float | None = None, bins: int = 40) -> plt.Figure:
    """Drift scores per true class, one row each, with the threshold(s) as vertical lines.

    The global threshold is a dashed red line (label ``threshold``), per-lib thresholds faint
    gray ones. Bins are log-spaced when the scores span a wide range. Without the two rates,
    they are computed from the global threshold (scores strictly above it are drift).
    """
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(codes, dtype=np.int64).reshape(-1)
    if len(values) != len(labels):
        raise ValueError(f"{len(values)} scores but {len(labels)} codes")
    finite = np.isfinite(values)
    values, labels = values[finite], labels[finite]
    open_code = classes.open_set_code
    if threshold is not None and open_code is not None:
        flagged = values > threshold
        if false_drift_rate is None:
            false_drift_rate = _rate(flagged[labels != open_code])
        if drift_recall is None:
            drift_recall = _rate(flagged[labels == open_code])
    lines = [] if threshold is None else [float(threshold)]
    lines += [float(v) for v in (lib_thresholds or {}).values()]
    edges = _bin_edges(np.concatenate([values, np.asarray(lines)]), bins)
    present = sorted(set(labels.tolist())) or [-1]
    fig, axes = plt.subplots(len(present), 1, figsize=(7.0, 1.2 * len(present) + 1.3),
                             sharex=True, squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, code in zip(axes[:, 0], present, strict=True):
        mine = values[labels == code]
        name = classes.names[code] if 0 <= code < len(classes) else "no scores"
        ax.hist(mine, bins=edges, color=cmap(code % 10), alpha=0.75)
        ax.set_ylabel(f"{name[:20]}\n(n={len(mine)})", fontsize=7, rotation=0, ha="right",
                      va="center")
        ax.tick_params(labelsize=7)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        for lib, value in (lib_thresholds or {}).items():
            ax.axvline(float(value), color="gray", alpha=0.35, lw=0.8, label=f"{lib} threshold")
        if threshold is not None:
            ax.axvline(float(threshold), color="red", ls="--", lw=1.2, label=THRESHOLD_LABEL)
    if edges[0] > 0 and edges[-1] / edges[0] > WIDE_RANGE:
        axes[-1, 0].set_xscale("log")
    axes[-1, 0].set_xlabel("drift score (max of the anomaly map)", fontsize=8)
    handles, texts = [], []
    if threshold is not None:
        handles.append(axes[0, 0].get_lines()[-1])  # drawn last: the global threshold
        texts.append(f"threshold {threshold:.4g}")
    if lib_thresholds:
        handles.append(axes[0, 0].get_lines()[0])
        texts.append(f"per-lib thresholds ({len(lib_thresholds)})")
    if handles:
        axes[0, 0].legend(handles, texts, fontsize=7, loc="upper right")
    fig.suptitle(f"drift scores by true class: false-drift rate {_percent(false_drift_rate)}, "
                 f"drift recall {_percent(drift_recall)}", fontsize=9)
    fig.tight_layout()
    return fig


def _bin_edges(values: np.ndarray, bins: int) -> np.ndarray:
    if len(values) == 0:
        return np.linspace(0.0, 1.0, bins + 1)
    low, high = float(values.min()), float(values.max())
    if low > 0 and high / low > WIDE_RANGE:
        return np.geomspace(low, high, bins + 1)
    if high <= low:
        low, high = low - 0.5, high + 0.5
    return np.linspace(low, high, bins + 1)


def _title(filename: str, true: str, decision: str, score: float) -> str:
    name = filename if len(filename) <= 24 else "..." + filename[-21:]
    return f"{name}\ntrue {true[:14]} -> {decision[:14]}\nscore {score:.4g}"


@torch.no_grad()
def _maps(inspector: Inspector, images: Tensor, libs: Sequence[str | None]) -> Tensor:
    """Anomaly maps ``(B, H', W')`` of normalised images, as the inspector scores them."""
    drift = inspector.drift
    device = next(inspector.classifier.parameters()).device
    images = images.to(device)
    size = tuple(images.shape[-2:])
    if inspector.shared_backbone:
        _, features = forward_with_maps(inspector.classifier, images, drift.config.layers)
        return drift.anomaly_map(features, libs, image_size=size).float().cpu()
    return drift.anomaly_map(images, libs, image_size=size).float().cpu()


def _identity(image: Tensor) -> Tensor:
    return image


def _drift_scores(inspector: Inspector, predictions: pd.DataFrame) -> np.ndarray | None:
    """The drift score of each row, or ``None`` without a detector or any score."""
    if inspector.drift is None or "drift_score" not in predictions:
        return None
    scores = pd.to_numeric(predictions["drift_score"], errors="coerce").to_numpy(float)
    return None if np.isnan(scores).all() else scores


def _flagged(predictions: pd.DataFrame, classes: ClassSet) -> np.ndarray:
    """Rows decided as the open-set class (flagged as drift)."""
    if classes.open_set_code is None:
        return np.array([], dtype=np.int64)
    return np.flatnonzero(predictions["decision"].to_numpy() == classes.open_set_code)


def _highest(rows: np.ndarray, scores: np.ndarray, n: int) -> list[int]:
    """The ``n`` of ``rows`` with the highest scores, highest first (ties in table order)."""
    return rows[np.argsort(-scores[rows], kind="stable")][:n].tolist()


@dataclass
class _Pass:
    """What one pass over the table gathers: embeddings, and raw images with their anomaly
    maps for the overlay rows."""

    embeddings: list[Tensor] = field(default_factory=list)
    codes: list[Tensor] = field(default_factory=list)
    pictures: dict[int, Tensor] = field(default_factory=dict)
    maps: dict[int, Tensor] = field(default_factory=dict)


def _gather(inspector: Inspector, frame: pd.DataFrame, cache: ImageCache, wanted: set[int],
            embed: bool, batch_size: int, step: Phase | None = None) -> _Pass:
    found = _Pass()
    if not (embed or wanted):
        return found
    device = next(inspector.classifier.parameters()).device
    start = 0
    for raw, batch_codes, libs in frame_batches(frame, cache, _identity, batch_size):
        rows = [r for r in range(start, start + len(raw)) if r in wanted]
        images = inspector.normalise(raw)
        if embed:
            with torch.no_grad():
                found.embeddings.append(inspector.classifier.embed(images.to(device)).float().cpu())
            found.codes.append(batch_codes)
        if rows:
            local = [r - start for r in rows]
            batch_maps = _maps(inspector, images[local], [libs[i] for i in local])
            for row, i, layer in zip(rows, local, batch_maps, strict=True):
                found.pictures[row], found.maps[row] = raw[i], layer
        start += len(raw)
        if step is not None:
            step.advance(len(raw))
    return found


def _overlays(predictions: pd.DataFrame, classes: ClassSet, scores: np.ndarray,
              rows: list[int], found: _Pass, total: int, max_overlays: int) -> plt.Figure:
    names = classes.names
    labels = predictions["label"].to_numpy()
    decisions = predictions["decision"].to_numpy()
    titles = [_title(str(predictions["filename"][r]), names[int(labels[r])],
                     names[int(decisions[r])], float(scores[r])) for r in rows]
    return anomaly_overlay_figure(
        torch.stack([found.pictures[r] for r in rows]),
        torch.stack([found.maps[r] for r in rows]), titles,
        scores=[float(scores[r]) for r in rows], max_images=max_overlays,
        title=f"flagged as drift: {len(rows)} of {total} (highest scores), anomaly maps")


def _histogram(inspector: Inspector, report: InspectionReport, predictions: pd.DataFrame,
               scores: np.ndarray) -> plt.Figure:
    threshold = inspector.drift.threshold
    return drift_histogram_figure(
        scores, predictions["label"].to_numpy(), inspector.classes,
        None if threshold is None else threshold.threshold,
        None if threshold is None else threshold.per_lib,
        report.false_drift_rate, report.drift_recall)


def inspection_figures(inspector: Inspector, report: InspectionReport, frame: pd.DataFrame,
                       cache: ImageCache, out_dir: str | Path, max_overlays: int = 16,
                       batch_size: int = 64, tsne_max_points: int = 2000) -> dict[str, Path]:
    """Make and save the inspection's pictures; returns their names and paths.

    ``frame`` (columns ``path``, ``lib``, ``code``, ``filename``) is the table ``report`` was
    made from, in the same order. One pass over it gives the embeddings and, for the images
    flagged as drift with the highest scores (at most ``max_overlays``), the anomaly maps.
    Without a drift detector only the t-SNE is made; with fewer than 5 images, no t-SNE.
    """
    with phase("figures", len(frame)) as step:
        return _figures(inspector, report, frame, cache, Path(out_dir), max_overlays,
                        batch_size, tsne_max_points, step)


def _figures(inspector: Inspector, report: InspectionReport, frame: pd.DataFrame,
             cache: ImageCache, out_dir: Path, max_overlays: int, batch_size: int,
             tsne_max_points: int, step: Phase) -> dict[str, Path]:
    classes = inspector.classes
    predictions = report.predictions.reset_index(drop=True)
    if len(predictions) != len(frame):
        raise ValueError(f"{len(frame)} table rows but {len(predictions)} predictions")
    scores = _drift_scores(inspector, predictions)
    flagged = _flagged(predictions, classes) if scores is not None else np.array([], int)
    overlay_rows = _highest(flagged, scores, max_overlays) if len(flagged) else []
    want_tsne = len(frame) >= 5
    found = _gather(inspector, frame, cache, set(overlay_rows), want_tsne, batch_size,
                    step)
    paths: dict[str, Path] = {}
    if overlay_rows:
        fig = _overlays(predictions, classes, scores, overlay_rows, found, len(flagged),
                        max_overlays)
        paths[OVERLAYS] = save_figure(fig, out_dir / f"{OVERLAYS}.png")
    elif scores is not None:
        log.info("no image flagged as drift: no %s.png", OVERLAYS)
    if scores is not None:
        fig = _histogram(inspector, report, predictions, scores)
        paths[HISTOGRAM] = save_figure(fig, out_dir / f"{HISTOGRAM}.png")
    if want_tsne and found.embeddings:
        try:
            fig = tsne_figure(torch.cat(found.embeddings), torch.cat(found.codes), classes,
                              "test embeddings, drift included (t-SNE)", tsne_max_points)
        except ValueError as err:  # degenerate embeddings, e.g. all identical
            log.warning("t-SNE skipped: %s", err)
        else:
            paths[TSNE] = save_figure(fig, out_dir / f"{TSNE}.png")
    elif not want_tsne:
        log.info("%d test images: too few for a t-SNE", len(frame))
    return paths


def send_figures(loggers: Iterable[Any], figures: Mapping[str, Path], step: int,
                 prefix: str = "inspection") -> None:
    """Send saved pictures to every logger that takes images, under ``prefix/name``."""
    for logger in loggers:
        for name, path in figures.items():
            send_figure(logger, f"{prefix}/{name}", path, path, step)


__all__ = ["anomaly_overlay_figure", "drift_histogram_figure", "inspection_figures",
           "send_figures"]
