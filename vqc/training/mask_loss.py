"""Training with pixel masks: a per-position defect logit read from the last feature map.

Cross entropy only says that an image shows a defect; on a few hundred images a network may
learn the class from anything that goes with it. Where the data set marks the defect's pixels,
a 1x1 convolution on the backbone's last feature map (the map the pooled embedding averages)
predicts, for every cell, whether the defect reaches into it. Its loss pulls the features the
classifier pools towards the defect itself. The convolution is used in training only: the
exported network and its decisions do not include it.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from vqc.data.masks import MASK_UNKNOWN
from vqc.errors import ConfigError


def cell_targets(masks: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Per-cell targets of ``masks`` ``(B, H, W)`` on a ``size`` grid: 1 where any pixel of
    the cell is defect, and whether the cell is known (no ``MASK_UNKNOWN`` pixel in it)."""
    defect = (masks == 1).float().unsqueeze(1)
    unknown = (masks == MASK_UNKNOWN).float().unsqueeze(1)
    target = F.adaptive_max_pool2d(defect, size)[:, 0]
    known = F.adaptive_max_pool2d(unknown, size)[:, 0] == 0
    return target, known


def balanced_bce(logits: Tensor, target: Tensor, known: Tensor) -> Tensor:
    """Binary cross entropy over the known cells, defect and clean cells weighted half each
    (a small defect covers a cell or two of dozens); 0 when no cell is known. Masked sums
    only: nothing waits for the device."""
    losses = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none")
    defect = (known & (target > 0.5)).float()
    clean = (known & (target <= 0.5)).float()
    means, present = [], []
    for part in (defect, clean):
        count = part.sum()
        means.append((losses * part).sum() / count.clamp_min(1.0))
        present.append((count > 0).float())
    return (means[0] + means[1]) / (present[0] + present[1]).clamp_min(1.0)


class MaskSupervision(nn.Module):
    """``weight`` times ``balanced_bce`` of a 1x1 convolution over ``channels``-deep maps."""

    def __init__(self, channels: int, weight: float) -> None:
        super().__init__()
        if not weight > 0:
            raise ConfigError(f"module.mask_weight={weight}: expected > 0 for mask training")
        self.weight = float(weight)
        self.conv = nn.Conv2d(channels, 1, kernel_size=1)

    def forward(self, feature_map: Tensor, masks: Tensor) -> Tensor:
        target, known = cell_targets(masks, tuple(feature_map.shape[-2:]))  # type: ignore[arg-type]
        logits = self.conv(feature_map)[:, 0]
        return self.weight * balanced_bce(logits, target, known)

    def extra_repr(self) -> str:
        return f"weight={self.weight}"
