"""Penalty Weighted Accuracy: ``PWA = 1 - sum_n C[y_n, yhat_n] / (N * max C)``.

PWA is a function of the confusion matrix, so the metric keeps exactly the state of
torchmetrics' ``MulticlassConfusionMatrix`` (a count matrix reduced by sum): under DDP the
gathered counts, and hence the PWA, equal those of one process seeing all the data.

A PWA figure alone misleads (a constant answer can score 0.99): read it beside the floor and
lift that ``vqc.metrics.scoring.ScoringMetrics`` reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix

from vqc.errors import ConfigError, DataError
from vqc.metrics.cost import CostSpec, load_cost_matrix, validate_cost_matrix


def check_score_codes(score_codes: Sequence[int] | None, num_classes: int) -> list[int] | None:
    """Validate the codes that the columns of a score tensor stand for."""
    if score_codes is None:
        return None
    codes = [int(c) for c in score_codes]
    if not codes:
        raise ConfigError("score_codes: empty")
    bad = [c for c in codes if not 0 <= c < num_classes]
    if bad:
        raise ConfigError(f"score_codes: {bad} out of range 0..{num_classes - 1}")
    if len(set(codes)) != len(codes):
        raise ConfigError(f"score_codes: repeated codes in {codes}")
    return codes


def to_codes(
    preds: Tensor,
    target: Tensor,
    num_classes: int,
    score_codes: Sequence[int] | None = None,
    validate: bool = True,
) -> tuple[Tensor, Tensor]:
    """Predicted and true class codes, both 1-D ``long`` tensors.

    ``preds`` is either ``(N,)`` integer codes in ``0..num_classes-1``, or ``(N, K)`` floating
    scores (logits or probabilities) whose argmax column ``k`` means code ``score_codes[k]``
    (default ``k``). ``K`` may be smaller than ``num_classes``: a classifier over the trained
    classes scored on a matrix that also has the open-set class.
    """
    if not isinstance(preds, Tensor) or not isinstance(target, Tensor):
        raise DataError("preds and target must be tensors")
    if validate:
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise DataError(f"target must hold integer class codes, got dtype {target.dtype}")
        if target.ndim != 1:
            raise DataError(f"target must be 1-D (N,), got shape {tuple(target.shape)}")
    if preds.is_floating_point():
        if validate and preds.ndim != 2:
            raise DataError("floating-point preds must be (N, K) scores, got shape "
                            f"{tuple(preds.shape)}; pass decided classes as an integer tensor")
        width = preds.shape[1]
        codes = list(range(width)) if score_codes is None else list(score_codes)
        if validate and width != len(codes):
            raise DataError(f"preds has {width} score columns but score_codes lists {len(codes)} "
                            f"classes {codes}")
        if validate and (width == 0 or max(codes) >= num_classes):
            raise DataError(f"preds has {width} score columns, more than the cost matrix's "
                            f"{num_classes} classes")
        index = preds.argmax(dim=1)
        if score_codes is not None:
            index = torch.as_tensor(codes, device=preds.device, dtype=torch.long)[index]
        preds = index
    elif validate:
        if preds.is_complex() or preds.dtype == torch.bool:
            raise DataError(f"preds must be class codes or float scores, got dtype {preds.dtype}")
        if preds.ndim != 1:
            raise DataError(f"integer preds must be 1-D (N,), got shape {tuple(preds.shape)}")
    if validate:
        if preds.shape[0] != target.shape[0]:
            raise DataError(f"preds and target differ in length: {preds.shape[0]} vs "
                            f"{target.shape[0]}")
        for what, values in (("preds", preds), ("target", target)):
            if values.numel() and (values.min() < 0 or values.max() >= num_classes):
                bad = sorted({int(v) for v in values[(values < 0) | (values >= num_classes)]})
                raise DataError(f"{what} has class codes {bad[:10]} outside 0..{num_classes - 1} "
                                f"(the cost matrix is {num_classes}x{num_classes})")
    return preds.long(), target.long()


def confusion_counts(preds: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """``(M, M)`` counts, rows true class, columns predicted, from 1-D code tensors."""
    flat = target.long() * num_classes + preds.long()
    return torch.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def total_cost(confmat: Tensor, cost: Tensor) -> Tensor:
    """``sum_ij confmat[i, j] * C[i, j]`` in float64."""
    return (confmat.to(torch.float64) * cost.to(device=confmat.device, dtype=torch.float64)).sum()


def pwa_from_confusion(confmat: Tensor, cost: Tensor) -> Tensor:
    """PWA of a count matrix; ``nan`` when it holds no image."""
    n = confmat.sum().to(torch.float64)
    if n == 0:
        return torch.tensor(float("nan"), dtype=torch.float64, device=confmat.device)
    return 1.0 - total_cost(confmat, cost) / (n * cost.max().to(torch.float64))


def penalty_weighted_accuracy(
    preds: Tensor,
    target: Tensor,
    cost_matrix: CostSpec = None,
    score_codes: Sequence[int] | None = None,
) -> Tensor:
    """Functional PWA; ``preds`` and ``score_codes`` as in ``to_codes``."""
    cost = load_cost_matrix(cost_matrix)
    size = cost.shape[0]
    codes, target = to_codes(preds, target, size, check_score_codes(score_codes, size))
    return pwa_from_confusion(confusion_counts(codes, target, size), cost)


class PenaltyWeightedAccuracy(MulticlassConfusionMatrix):
    """PWA as a ``torchmetrics.Metric``; the state is ``MulticlassConfusionMatrix``'s ``confmat``.

    Args:
        cost_matrix: see ``load_cost_matrix``: ``"official"`` (default), ``"page"``, a file path
            or an ``M x M`` matrix. ``M`` is the number of classes scored.
        score_codes: codes of the columns when ``update`` gets ``(N, K)`` scores (default
            ``0..K-1``). Integer predictions are taken as codes as they are.
        validate_args: check shapes, dtypes and code ranges on every update.
    """

    is_differentiable: bool = False
    higher_is_better: bool = True
    full_state_update: bool = False
    plot_lower_bound: float = 0.0
    plot_upper_bound: float = 1.0

    cost: Tensor

    def __init__(
        self,
        cost_matrix: CostSpec = None,
        score_codes: Sequence[int] | None = None,
        validate_args: bool = True,
        **kwargs: Any,
    ) -> None:
        cost = load_cost_matrix(cost_matrix)
        size = cost.shape[0]
        super().__init__(num_classes=size, validate_args=False, **kwargs)
        self.check_inputs = validate_args
        self.score_codes = check_score_codes(score_codes, size)
        self.register_buffer("cost", validate_cost_matrix(cost), persistent=False)

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch: ``preds`` are codes ``(N,)`` or scores ``(N, K)``, ``target`` codes."""
        codes, target = to_codes(preds, target, self.num_classes, self.score_codes,
                                 validate=self.check_inputs)
        self.confmat += confusion_counts(codes, target, self.num_classes)

    def compute(self) -> Tensor:
        """PWA over everything seen since the last reset (``nan`` if nothing)."""
        return pwa_from_confusion(self.confmat, self.cost)

    def plot(  # type: ignore[override]
        self, val: Tensor | Sequence[Tensor] | None = None, ax: Any = None
    ) -> tuple[Any, Any]:
        """Plot one PWA value, or a sequence of them (e.g. one per epoch)."""
        return self._plot(val, ax)
