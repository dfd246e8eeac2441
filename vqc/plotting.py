"""Matplotlib helpers shared by the training and the inspection pictures.

Figures are drawn off-screen (the ``Agg`` backend), saved as PNGs and sent to every logger
that takes images (W&B as images, TensorBoard as figures). Lightning is not imported: loggers
are told apart by their class name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from torch import Tensor

from vqc.classes import ClassSet

log = logging.getLogger(__name__)

#: Resolution of every saved picture.
DPI = 110


def unit_range(values: np.ndarray) -> np.ndarray:
    """``values`` scaled to [0, 1] (a flat image stays at 0 instead of dividing by zero)."""
    low, span = float(values.min()), float(np.ptp(values))
    return (values - low) / max(span, 1e-6)


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


def save_figure(fig: plt.Figure, path: str | Path, loggers: Iterable[Any] = (),
                key: str = "", step: int = 0) -> Path:
    """Save ``fig`` as a PNG at ``path`` (its folder made if needed), send it to ``loggers``
    under ``key`` (see ``send_figure``), then close it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI)
        for logger in loggers:
            send_figure(logger, key, fig, path, step)
    finally:
        plt.close(fig)
    return path


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


__all__ = ["DPI", "save_figure", "send_figure", "tsne_figure", "unit_range"]
