"""Classification losses selectable in config (pure torch)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from vqc.errors import ConfigError

LOSSES = ("cross_entropy", "weighted_cross_entropy", "cost_matrix")


class ExpectedCostLoss(nn.Module):
    """Mean expected cost ``sum_j p_j C[y, j] / max C`` under the softmax.

    Trains directly for the metric, and can collapse to a constant answer when one class
    dominates the data and its mistakes are cheap (a known failure: "always Missing" at PWA
    0.998 on the challenge). Kept so that collapse can be reproduced and caught.
    """

    def __init__(self, cost: Tensor) -> None:
        super().__init__()
        cost = torch.as_tensor(cost, dtype=torch.float32)
        self.register_buffer("cost", cost / cost.max().clamp_min(1e-12))

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        probs = logits.float().softmax(dim=1)
        return (probs * self.cost[target]).sum(dim=1).mean()


def inverse_frequency_weights(counts: Sequence[int]) -> Tensor:
    """Class weights ``N / (K * n_k)``: 1 for every class when the data are balanced."""
    counts_t = torch.as_tensor(counts, dtype=torch.float32)
    if (counts_t <= 0).any():
        raise ConfigError(f"class-weighted loss: every class needs images, counts={list(counts)}")
    return counts_t.sum() / (len(counts_t) * counts_t)


class EscapePenalty(nn.Module):
    """``base(logits, y) + weight * mean_i [y_i != good] * -log(1 - p_good(x_i))``.

    Cross entropy only asks a defect image to favour its own class; this term also pushes its
    probability of GOOD towards 0, the one mistake that lets a defect through. It is the
    cross entropy of the binary question "defect or not" on defect images alone (GOOD images
    already get that from the base loss).
    """

    def __init__(self, base: nn.Module, good_index: int, weight: float) -> None:
        super().__init__()
        self.base, self.good_index, self.weight = base, good_index, weight

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        loss = self.base(logits, target)
        defect = target != self.good_index
        log_p_good = logits.float().log_softmax(dim=1)[:, self.good_index]
        # log(1 - p) computed as log(-expm1(log p)): exact where p_good is near 1
        escape = -torch.log(-torch.expm1(log_p_good.clamp_max(-1e-7)))
        return loss + self.weight * (escape * defect).sum() / len(target)


def build_loss(name: str, class_counts: Sequence[int], cost: Tensor | None = None,
               label_smoothing: float = 0.0, *, escape_weight: float = 0.0,
               good_index: int | None = None) -> nn.Module:
    """``name`` is one of ``LOSSES``; ``cost`` is the trained-class cost matrix (K x K).

    ``escape_weight`` > 0 adds ``EscapePenalty`` (``good_index``: GOOD's trained index).
    """
    base = _base_loss(name, class_counts, cost, label_smoothing)
    if escape_weight <= 0:
        return base
    if good_index is None:
        raise ConfigError(f"module.escape_weight={escape_weight}: the classes have no GOOD class "
                          "to keep defects from; set it to 0")
    return EscapePenalty(base, good_index, escape_weight)


def _base_loss(name: str, class_counts: Sequence[int], cost: Tensor | None,
               label_smoothing: float) -> nn.Module:
    if name == "cross_entropy":
        return nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    if name == "weighted_cross_entropy":
        return nn.CrossEntropyLoss(weight=inverse_frequency_weights(class_counts),
                                   label_smoothing=label_smoothing)
    if name == "cost_matrix":
        if cost is None:
            raise ConfigError("loss=cost_matrix needs a cost matrix")
        return ExpectedCostLoss(cost)
    raise ConfigError(f"module.loss={name!r}: expected one of {list(LOSSES)}")


