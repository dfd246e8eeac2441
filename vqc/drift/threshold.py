"""Drift thresholds: a bound on the false-drift rate from in-distribution scores, or best F1.

An image is drift when its score is **strictly above** the threshold.

Rate calibration (:func:`calibrate_threshold`) uses the conformal-prediction order statistic:
with ``n`` in-distribution validation scores and target rate ``a``, the threshold is the
``k``-th smallest score, ``k = ceil((1 - a) * (n + 1))``. For a new in-distribution image
exchangeable with the validation ones (same process, no ties), the probability that it is
flagged is ``(n + 1 - k) / (n + 1)``: at most ``a`` and at least ``a - 1 / (n + 1)``. This
needs ``n >= (1 - a) / a`` scores (199 for 0.5%); with fewer the largest score is returned and
a warning says the rate cannot be bounded (it is then about ``1 / (n + 1)``).

A detector combined with others also gets a scale (:func:`detector_scale`), what its scores are
divided by before the combined score takes their largest.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from vqc.drift.config import DEFAULT_TARGET_RATE
from vqc.errors import ConfigError, DataError

Method = Literal["rate", "f1", "auto"]


def _as_1d(scores: torch.Tensor | Sequence[float]) -> torch.Tensor:
    values = torch.as_tensor(scores, dtype=torch.float64).detach().cpu().reshape(-1)
    if values.numel() == 0:
        raise ConfigError("cannot calibrate a drift threshold on no scores")
    if not torch.isfinite(values).all():
        raise ConfigError("drift scores contain NaN or infinite values")
    return values


def min_normal_count(target_rate: float) -> int:
    """Fewest in-distribution scores for which the rate bound holds: ``ceil((1 - a) / a)``."""
    return math.ceil((1.0 - target_rate) / target_rate - 1e-9)


def calibrate_threshold(
    normal_scores: torch.Tensor | Sequence[float], target_rate: float = DEFAULT_TARGET_RATE
) -> float:
    """Threshold whose false-drift rate on new in-distribution images is at most ``target_rate``."""
    if not 0.0 < target_rate < 1.0:
        raise ConfigError(f"drift.target_rate must be in (0, 1), got {target_rate!r}")
    values = _as_1d(normal_scores).sort().values
    n = values.numel()
    k = math.ceil((1.0 - target_rate) * (n + 1) - 1e-9)
    if k > n:
        warnings.warn(
            f"{n} in-distribution scores cannot bound a false-drift rate of {target_rate:g} "
            f"(at least {min_normal_count(target_rate)} are needed); using the largest score, "
            f"a rate of about {1 / (n + 1):.3g}",
            stacklevel=2,
        )
        k = n
    return float(values[k - 1])


def f1_threshold(
    scores: torch.Tensor | Sequence[float], is_drift: torch.Tensor | Sequence[bool]
) -> float:
    """Threshold maximising F1 of "drift" on labelled scores (midway between two scores)."""
    values = _as_1d(scores)
    labels = torch.as_tensor(is_drift, dtype=torch.bool).reshape(-1)
    if labels.numel() != values.numel():
        raise ConfigError(f"{values.numel()} scores but {labels.numel()} drift labels")
    positives = int(labels.sum())
    if positives == 0 or positives == labels.numel():
        raise ConfigError("an F1 threshold needs both drift and in-distribution examples")
    order = torch.argsort(values, descending=True)
    ordered, hits = values[order], labels[order].to(torch.float64)
    true_pos = hits.cumsum(0)  # flagging the top k: k = 1..n
    flagged = torch.arange(1, len(values) + 1, dtype=torch.float64)
    f1 = 2 * true_pos / (flagged + positives)
    # A cut is only possible where the next score is strictly lower.
    cuttable = torch.ones_like(hits, dtype=torch.bool)
    cuttable[:-1] = ordered[:-1] > ordered[1:]
    f1[~cuttable] = -1.0
    best = int(torch.argmax(f1))
    if best == len(values) - 1:
        return float(torch.nextafter(ordered[-1], torch.tensor(-math.inf, dtype=torch.float64)))
    return float((ordered[best] + ordered[best + 1]) / 2)


def class_rate_threshold(scores: torch.Tensor | Sequence[float],
                         codes: torch.Tensor | Sequence[int],
                         rates: Mapping[int, float]) -> float:
    """The smallest threshold that bounds each class's false-drift rate at its own rate
    (``rates[code]``): the largest of :func:`calibrate_threshold` over the classes with one
    rate, each on its own scores. Classes sharing a rate are calibrated together."""
    values = _as_1d(scores)
    labels = torch.as_tensor(codes, dtype=torch.long).reshape(-1)
    if labels.numel() != values.numel():
        raise ConfigError(f"{values.numel()} scores but {labels.numel()} class codes")
    missing = sorted(set(labels.tolist()) - set(rates))
    if missing:
        raise ConfigError(f"no false-drift rate for class code(s) {missing}")
    limits = []
    for rate in sorted(set(rates.values())):
        members = [c for c, r in rates.items() if r == rate]
        mask = torch.isin(labels, torch.tensor(members, dtype=torch.long))
        if bool(mask.any()):
            limits.append(calibrate_threshold(values[mask], rate))
    if not limits:
        raise ConfigError("cannot calibrate a drift threshold on no scores")
    return max(limits)


@dataclass
class DriftThreshold:
    """A global threshold and optional per-lib ones (a lib without its own uses the global)."""

    threshold: float
    per_lib: dict[str, float] = field(default_factory=dict)
    method: str = "rate"
    target_rate: float | None = DEFAULT_TARGET_RATE
    #: With ``drift.rate_by_cost``: each known class's own rate, by class code (as text).
    class_rates: dict[str, float] = field(default_factory=dict)

    def for_libs(self, libs: Sequence[str] | None, n: int) -> torch.Tensor:
        """The threshold of each of ``n`` images, ``(n,)`` float64."""
        if libs is None:
            return torch.full((n,), self.threshold, dtype=torch.float64)
        if len(libs) != n:
            raise ConfigError(f"{n} scores but {len(libs)} libs")
        return torch.tensor([self.per_lib.get(str(lib), self.threshold) for lib in libs],
                            dtype=torch.float64)

    def is_drift(self, scores: torch.Tensor, libs: Sequence[str] | None = None) -> torch.Tensor:
        """Boolean ``(B,)``: score strictly above the image's threshold."""
        flat = scores.detach().reshape(-1)
        limits = self.for_libs(libs, flat.numel()).to(flat.device)
        return flat.to(torch.float64) > limits

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "per_lib": dict(self.per_lib),
            "method": self.method,
            "target_rate": self.target_rate,
            "class_rates": dict(self.class_rates),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftThreshold:
        return cls(
            threshold=float(data["threshold"]),
            per_lib={str(k): float(v) for k, v in dict(data.get("per_lib", {})).items()},
            method=str(data.get("method", "rate")),
            target_rate=None if data.get("target_rate") is None else float(data["target_rate"]),
            class_rates={str(k): float(v)
                         for k, v in dict(data.get("class_rates") or {}).items()},
        )


def fit_threshold(
    scores: torch.Tensor | Sequence[float],
    libs: Sequence[str] | None = None,
    is_drift: torch.Tensor | Sequence[bool] | None = None,
    target_rate: float = DEFAULT_TARGET_RATE,
    per_lib: bool = False,
    method: Method = "auto",
) -> DriftThreshold:
    """Calibrate on validation scores.

    ``method="rate"`` bounds the false-drift rate at ``target_rate`` using the in-distribution
    scores (those not marked in ``is_drift``); ``"f1"`` maximises F1 against ``is_drift``;
    ``"auto"`` uses F1 when ``is_drift`` holds both kinds, else the rate. With ``per_lib``, each
    lib gets its own threshold when it has enough examples (``min_normal_count`` in-distribution
    scores for the rate; both kinds for F1); the others fall back to the global threshold.
    """
    values = _as_1d(scores)
    n = values.numel()
    labels = (torch.zeros(n, dtype=torch.bool) if is_drift is None
              else torch.as_tensor(is_drift, dtype=torch.bool).reshape(-1))
    if labels.numel() != n:
        raise ConfigError(f"{n} scores but {labels.numel()} drift labels")
    both = bool(labels.any()) and not bool(labels.all())
    if method == "auto":
        method = "f1" if both else "rate"
    if method not in ("rate", "f1"):
        raise ConfigError(f"drift.threshold_method={method!r} is not one of rate, f1, auto")
    if method == "f1" and not both:
        raise ConfigError("drift.threshold_method=f1 needs drift and in-distribution examples")

    def one(mask: torch.Tensor) -> float | None:
        if method == "f1":
            sub = labels[mask]
            if not sub.any() or sub.all():
                return None
            return f1_threshold(values[mask], sub)
        normal = values[mask & ~labels]
        if normal.numel() < min_normal_count(target_rate):
            return None
        return calibrate_threshold(normal, target_rate)

    everything = torch.ones(n, dtype=torch.bool)
    threshold = one(everything)
    if threshold is None:  # too few in-distribution scores: warn and use the largest
        threshold = calibrate_threshold(values[~labels], target_rate)
    result = DriftThreshold(threshold, method=method,
                            target_rate=target_rate if method == "rate" else None)
    if per_lib:
        if libs is None or len(libs) != n:
            raise ConfigError("per-lib drift thresholds need one lib per score")
        lib_names = [str(lib) for lib in libs]
        for lib in sorted(set(lib_names)):
            mask = torch.tensor([name == lib for name in lib_names])
            value = one(mask)
            if value is not None:
                result.per_lib[lib] = value
    return result


#: The quantile of a detector's in-distribution validation scores that its scale is: in the
#: tail, so that detectors with light and with heavy tails weigh alike in a combination, yet
#: with a tenth of the scores above it, so that no single validation image sets it.
SCALE_QUANTILE = 0.9


def detector_scale(normal_scores: torch.Tensor) -> float:
    """A detector's scale: its in-distribution validation scores' :data:`SCALE_QUANTILE`.

    Not their quantile at ``1 - target_rate``: with a few hundred validation images that is
    their largest, so every detector's normalised validation scores would top out at exactly
    1, the combined score's threshold would be 1, and each detector would spend the whole
    false-drift budget on new images on its own (the union, ``D`` times the budget). From a
    quantile with many scores above it, the combined threshold is calibrated on a combined
    score whose tail is the union's.
    """
    values = normal_scores.detach().to(torch.float64).reshape(-1)
    if values.numel() == 0:
        raise DataError("a drift detector's scale needs in-distribution validation scores")
    return max(float(torch.quantile(values, SCALE_QUANTILE)), torch.finfo(torch.float32).tiny)
