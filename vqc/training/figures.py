"""Pictures of a run: confusion matrix, t-SNE of embeddings, misclassified images.

Saved as PNGs in the run folder and sent to every logger that takes images (W&B, TensorBoard).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from torch import Tensor

from vqc.data.classes import ClassSet

log = logging.getLogger(__name__)


def tsne_figure(features: Tensor, codes: Tensor, classes: ClassSet, title: str,
                max_points: int = 2000, seed: int = 0) -> plt.Figure:
    """2-D t-SNE of ``features`` coloured by class (a random subset above ``max_points``)."""
    from sklearn.manifold import TSNE

    features_np = features.float().numpy()
    codes_np = codes.numpy()
    if len(features_np) > max_points:
        keep = np.random.default_rng(seed).choice(len(features_np), max_points, replace=False)
        features_np, codes_np = features_np[keep], codes_np[keep]
    perplexity = float(min(30, max(2, (len(features_np) - 1) // 3)))
    points = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                  max_iter=500).fit_transform(features_np)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    cmap = plt.get_cmap("tab10")
    for code in sorted(set(codes_np.tolist())):
        mask = codes_np == code
        name = classes.names[code] if 0 <= code < len(classes) else f"code {code}"
        ax.scatter(points[mask, 0], points[mask, 1], s=9, color=cmap(code % 10), label=name,
                   marker="x" if code == classes.open_set_code else "o")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, markerscale=1.5, loc="best")
    fig.tight_layout()
    return fig


def misclassified_figure(items: list[tuple[Tensor, int, int]], classes: ClassSet,
                         title: str) -> plt.Figure:
    """A grid of images titled ``true -> predicted``."""
    cols = min(8, len(items))
    rows = (len(items) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (image, true, pred) in zip(axes.flat, items, strict=False):
        picture = image.numpy()
        picture = (picture - picture.min()) / max(float(np.ptp(picture)), 1e-6)
        ax.imshow(picture[0] if picture.shape[0] == 1 else picture.transpose(1, 2, 0),
                  cmap="gray")
        ax.set_title(f"{classes.names[true][:12]}\n-> {classes.names[pred][:12]}", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


@dataclass
class FigureSink:
    """Where and how often pictures are made; ``out_dir=None`` makes none."""

    out_dir: str | None = None
    every_n_epochs: int = 0          # 0: only after the last epoch
    tsne: bool = True
    tsne_max_points: int = 2000
    max_misclassified: int = 32

    def due(self, epoch: int, max_epochs: int | None) -> bool:
        if self.out_dir is None:
            return False
        last = max_epochs is not None and max_epochs > 0 and epoch == max_epochs - 1
        periodic = self.every_n_epochs > 0 and (epoch + 1) % self.every_n_epochs == 0
        return last or periodic

    def _save(self, module: Any, fig: plt.Figure, key: str, name: str) -> Path | None:
        if self.out_dir is None:
            plt.close(fig)
            return None
        path = Path(self.out_dir) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        for logger in getattr(module, "loggers", []):
            send_figure(logger, key, fig, path, module.current_epoch)
        plt.close(fig)
        return path

    def epoch_figures(self, module: Any, stage: str, report: Any, features: Tensor,
                      codes: Tensor, classes: ClassSet) -> None:
        if self.out_dir is None:
            return
        epoch = module.current_epoch
        suffix = "" if stage == "test" else f"_epoch{epoch:03d}"
        fig = report.confusion_figure(title=f"{stage} confusion matrix")
        self._save(module, fig, f"{stage}/confusion_matrix", f"{stage}_confusion{suffix}.png")
        if self.tsne and len(features) >= 5:
            try:
                fig = tsne_figure(features, codes, classes, f"{stage} embeddings (t-SNE)",
                                  self.tsne_max_points)
            except ValueError as err:  # degenerate embeddings, e.g. all identical
                log.warning("t-SNE skipped: %s", err)
            else:
                self._save(module, fig, f"{stage}/tsne", f"{stage}_tsne{suffix}.png")

    def misclassified_grid(self, module: Any, stage: str, items: list[tuple[Tensor, int, int]],
                           classes: ClassSet) -> None:
        if self.out_dir is None or not items:
            return
        fig = misclassified_figure(items, classes, f"{stage}: misclassified (true -> predicted)")
        self._save(module, fig, f"{stage}/misclassified", f"{stage}_misclassified.png")


def send_figure(logger: Any, key: str, fig_or_path: plt.Figure | str | Path, path: str | Path,
                step: int) -> None:
    """Log one picture to a W&B (the PNG at ``path``) or TensorBoard logger (the figure, or
    the PNG when given a path); other loggers keep only the PNG."""
    name = type(logger).__name__
    try:
        if name == "WandbLogger":
            logger.log_image(key=key, images=[str(path)])
        elif name == "TensorBoardLogger":
            if isinstance(fig_or_path, str | Path):
                image = plt.imread(str(fig_or_path))
                logger.experiment.add_image(key, image[..., :3], global_step=step,
                                            dataformats="HWC")
            else:
                logger.experiment.add_figure(key, fig_or_path, global_step=step, close=False)
    except Exception as err:  # a logging failure must not end training
        log.warning("could not log %s to %s: %s", key, name, err)


__all__ = ["FigureSink", "misclassified_figure", "send_figure", "tsne_figure"]
