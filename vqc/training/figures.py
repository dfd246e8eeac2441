"""Pictures of a training run drawn here; the shared ones (t-SNE) come from ``vqc.plotting``.

``RunFigures`` (``vqc.training.callbacks``) decides when they are made and where they go.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from torch import Tensor

from vqc.classes import ClassSet
from vqc.plotting import send_figure, tsne_figure, unit_range


def misclassified_figure(items: list[tuple[Tensor, int, int]], classes: ClassSet,
                         title: str) -> plt.Figure:
    """A grid of images titled ``true -> predicted``."""
    cols = min(8, len(items))
    rows = (len(items) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (image, true, pred) in zip(axes.flat, items, strict=False):
        picture = unit_range(image.numpy())
        ax.imshow(picture[0] if picture.shape[0] == 1 else picture.transpose(1, 2, 0),
                  cmap="gray")
        ax.set_title(f"{classes.names[true][:12]}\n-> {classes.names[pred][:12]}", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


__all__ = ["misclassified_figure", "send_figure", "tsne_figure"]
