"""What the PyTorch inspector and the ONNX runtime share: the spec, the preprocessing, the
normalisation, and the decision from logits and each drift detector's raw score.

Both compute logits ``(B, K)`` and raw drift scores ``(B, D)`` (one per detector, each image
under its lib's variant) their own way, then call :meth:`InspectorBase.decide`, so they decide
alike.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vqc.classes import ClassSet
from vqc.data.preprocess import Preprocessor
from vqc.drift import Combination
from vqc.metrics import decide, sub_matrix


@dataclass
class InspectorSpec:
    """Everything but the tensors: JSON in the artifact's metadata."""

    class_names: list[str]
    open_set: str | None
    good: str | None
    model: dict[str, Any]                 # build_model keyword arguments
    preprocess: dict[str, Any]            # Preprocessor settings
    mean: list[float] | None = None
    std: list[float] | None = None
    decision: str = "bayes"
    cost_matrix: list[list[float]] = field(default_factory=list)
    temperature: float = 1.0
    drift: dict[str, Any] | None = None   # DriftEnsemble.describe(): detectors, scales
    drift_threshold: dict[str, Any] | None = None  # the combined score's threshold
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def classes(self) -> ClassSet:
        return ClassSet(tuple(self.class_names), open_set=self.open_set, good=self.good)


@dataclass
class Inspection:
    """Decisions for a batch, with what they were made from."""

    probabilities: Tensor        # (B, K) calibrated, over the trained classes
    drift_score: Tensor | None   # (B,) the combined drift score
    drift_threshold: Tensor | None
    is_drift: Tensor             # (B,) bool
    decision: Tensor             # (B,) class codes (the open-set code for drift)
    expected_cost: Tensor        # (B, K) expected cost of answering each trained class
    drift_detector: list[str] | None = None  # (B,) the detector with the largest score
    gated_by: list[str | None] | None = None  # (B,) the defect detector that ruled GOOD out
    rule: str = "bayes"          # how the decision was taken: "bayes" or "argmax"

    def reasons(self, classes: ClassSet) -> list[str]:
        """One line an image: the drift score over its threshold, or the decided class with
        what decided it (its expected cost under ``bayes``, its probability under ``argmax``)."""
        trained = list(classes.trained_codes)
        out = []
        for i in range(len(self.decision)):
            if bool(self.is_drift[i]):
                which = "" if self.drift_detector is None else f" ({self.drift_detector[i]})"
                out.append(f"drift score {float(self.drift_score[i]):.4g} > threshold "
                           f"{float(self.drift_threshold[i]):.4g}{which}")
            else:
                code = int(self.decision[i])
                gate = None if self.gated_by is None else self.gated_by[i]
                note = "" if gate is None else f"; GOOD ruled out by the defect gate ({gate})"
                column = trained.index(code)
                if self.rule == "argmax":
                    which = "most probable" if gate is None else "most probable defect"
                    why = f"{which}, p {float(self.probabilities[i, column]):.4g}"
                else:
                    why = f"least expected cost {float(self.expected_cost[i, column]):.4g}"
                out.append(f"{classes.names[code]}: {why}{note}")
        return out


def build_preprocessor(spec: InspectorSpec) -> Preprocessor:
    """The preprocessing the inspector was trained with (decode, rotate/crop by lib, resize)."""
    return Preprocessor(size=tuple(spec.preprocess["size"]),
                        mode=spec.preprocess.get("mode", "L"),
                        rotate_crop=spec.preprocess.get("rotate_crop") or {},
                        max_pixels=int(spec.preprocess.get("max_pixels", 50_000_000)),
                        resize=spec.preprocess.get("resize", "stretch"),
                        bit_depth=spec.preprocess.get("bit_depth"))


def normalise_images(images: Tensor, spec: InspectorSpec) -> Tensor:
    """uint8 ``(B, C, H, W)`` -> float in [0, 1], then the spec's training normalisation."""
    images = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    if spec.mean is not None and spec.std is not None:
        mean = torch.tensor(spec.mean).view(1, -1, 1, 1)
        std = torch.tensor(spec.std).view(1, -1, 1, 1)
        images = (images - mean) / std
    return images


def trained_cost_of(spec: InspectorSpec) -> Tensor:
    """The cost matrix among the trained classes (float64), as the decision rule uses it."""
    cost = torch.tensor(spec.cost_matrix, dtype=torch.float64)
    return sub_matrix(cost, spec.classes.trained_codes)


def decide_from(logits: Tensor, raw_scores: Tensor | None, libs: Sequence[str | None] | None,
                spec: InspectorSpec, combination: Combination | None = None,
                trained_cost: Tensor | None = None) -> Inspection:
    """Decisions from logits ``(B, K)`` and each drift detector's raw score ``(B, D)`` (or
    ``None``).

    Calibrated probabilities (``softmax(logits / temperature)`` in float64), the expected cost
    of each trained class, drift where the combined score is strictly above the image's
    threshold (per lib when the threshold has one), then the spec's decision rule.
    """
    classes = spec.classes
    cost = trained_cost_of(spec) if trained_cost is None else trained_cost
    probs = (logits.double() / spec.temperature).softmax(dim=1)
    cost = cost.to(probs.device)
    expected = probs @ cost
    n = len(logits)
    score = limits = names = None
    if raw_scores is not None and combination is not None:
        score, which, limits, is_drift = combination.decide(raw_scores, libs)
        names = [combination.names[int(i)] for i in which]
    else:
        is_drift = torch.zeros(n, dtype=torch.bool, device=probs.device)
    decision = decide(probs, spec.decision, cost, None, is_drift.to(probs.device),
                      classes.open_set_code)
    gated_by = None
    if raw_scores is not None and combination is not None and classes.good_code is not None:
        ruled_out, gate = combination.gate(raw_scores)
        decision, ruled_out = rule_good_out(decision, ruled_out.to(decision.device), probs,
                                            expected, spec.decision, classes)
        gated_by = [combination.names[int(g)] if bool(r) else None
                    for g, r in zip(gate.tolist(), ruled_out.tolist(), strict=True)]
    return Inspection(probs.float().cpu(), None if score is None else score.float().cpu(),
                      None if limits is None else limits.float().cpu(),
                      is_drift.cpu(), decision.cpu(), expected.float().cpu(), names, gated_by,
                      spec.decision)


def rule_good_out(decision: Tensor, ruled_out: Tensor, probs: Tensor, expected: Tensor,
                  rule: str, classes: ClassSet) -> tuple[Tensor, Tensor]:
    """Where the defect gate rules GOOD out and GOOD was decided: the best defect instead (the
    least expected cost for ``bayes``, the most probable for ``argmax``). Returns the decisions
    and where they changed."""
    trained = list(classes.trained_codes)
    good_column = trained.index(int(classes.good_code))
    changed = ruled_out & (decision == int(classes.good_code))
    if not bool(changed.any()):
        return decision, changed
    others = [c for c in range(len(trained)) if c != good_column]
    index = torch.tensor(others, dtype=torch.long, device=probs.device)
    pick = (expected[:, index].argmin(dim=1) if rule == "bayes"
            else probs[:, index].argmax(dim=1))
    codes = torch.tensor(trained, dtype=decision.dtype, device=decision.device)[index][pick]
    return torch.where(changed, codes.to(decision.device), decision), changed


class InspectorBase:
    """The spec, the preprocessing and the decision rule; subclasses give logits and raw drift
    scores (``Inspector``: PyTorch, ``OnnxInspector``: ONNX Runtime)."""

    spec: InspectorSpec

    def _setup(self, spec: InspectorSpec) -> None:
        self.spec = spec
        self.classes = spec.classes
        self.preprocessor = build_preprocessor(spec)
        # The decision is taken on the CPU: a handful of (B, K) operations cost less there than
        # their kernel launches and transfers on an accelerator.
        self.trained_cost = trained_cost_of(spec)

    def normalise(self, images: Tensor) -> Tensor:
        """uint8 ``(B, C, H, W)`` -> float in [0, 1], then the training normalisation."""
        return normalise_images(images, self.spec)

    def load_images(self, paths: Sequence[str | os.PathLike[str]],
                    libs: Sequence[str | None] | None = None) -> Tensor:
        """Preprocessed, normalised float images ``(B, C, H, W)`` for files."""
        libs = list(libs) if libs is not None else [None] * len(paths)
        arrays = [self.preprocessor(path, lib) for path, lib in zip(paths, libs, strict=True)]
        return self.normalise(torch.from_numpy(np.stack(arrays)))

    def decide(self, logits: Tensor, raw_scores: Tensor | None,
               libs: Sequence[str | None] | None, combination: Combination | None
               ) -> Inspection:
        """Decisions from logits ``(B, K)`` and raw drift scores ``(B, D)`` (CPU tensors)."""
        return decide_from(logits, raw_scores, libs, self.spec, combination, self.trained_cost)
