"""Everything PWA hides, computed from one confusion matrix.

PWA alone misleads: with GOOD rare, answering one defect class for every image scores about
0.99, and on one real set a from-scratch CNN and the constant answer "always blowhole" both
scored 0.9929. So every PWA here comes with its *floor*, the PWA of the best constant
predictor on the same labels (a constant predictor answers one class for every image; its cost
is ``sum_i n_i C[i, j]`` for answer ``j``), and the *lift* over it:

- ``pwa_lift = pwa - floor_pwa``: above 0 means better than any constant answer;
- ``cost_ratio = cost / floor_cost``: the share of the best constant answer's cost that the
  predictions still pay (0 is perfect, 1 no better than a constant, above 1 worse). Unlike PWA
  differences, which are squeezed near 1 by the ``N * max C`` normaliser, the ratio keeps its
  scale: 0.5 halves the cost whatever the floor.

Beside them: accuracy, macro recall (the mean recall of the classes present in the labels;
``known_macro_recall`` leaves the open-set class out, ``drift_recall`` is its own recall),
per-class recall, precision and F1, macro F1, the confusion matrix (counts and row-normalised),
defect escapes (a true defect predicted GOOD), false alarms (a true GOOD predicted anything else),
the mean cost per image, and a collapse warning when one class takes more than a set share of
the predictions.

Showing a report (terminal, Markdown, figure) is ``vqc.metrics.render``'s job; the torchmetrics
wrapper that fills one from batches is ``vqc.metrics.scoring.ScoringMetrics``.
"""


from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from vqc.classes import ClassSet
from vqc.errors import ConfigError, DataError
from vqc.metrics import render
from vqc.metrics.cost import CostSpec, load_cost_matrix
from vqc.metrics.counts import (
    ConstantPredictor,
    class_figures,
    cost_figures,
    good_figures,
    ratio,
    top_figures,
    whole_counts,
)

#: Default share of the predictions above which one class counts as a collapse.
DEFAULT_COLLAPSE_SHARE = 0.95


def classes_for_matrix(classes: ClassSet | None, size: int) -> ClassSet:
    """The classes a ``size x size`` cost matrix scores.

    Without ``classes``, a 7x7 matrix is the challenge's and a 6x6 one its part without Drift.
    A class set with an open-set class and one class more than the matrix is cut to its trained
    classes (codes are then positions among the trained classes).
    """
    if classes is None:
        challenge = ClassSet.challenge()
        if size == len(challenge):
            return challenge
        if size == len(challenge.trained_codes):
            return ClassSet(tuple(challenge.trained_names), good=challenge.good)
        return ClassSet(tuple(str(i) for i in range(size)))
    if len(classes) == size:
        return classes
    if classes.open_set is not None and len(classes.trained_codes) == size:
        names = tuple(classes.trained_names)
        aliases = {a: t for a, t in classes.aliases.items() if t in names}
        good = classes.good if classes.good in names else None
        return ClassSet(names, good=good, aliases=aliases)
    raise ConfigError(f"the cost matrix is {size}x{size} but there are {len(classes)} classes "
                      f"{list(classes.names)}")


def check_collapse_share(collapse_share: float) -> float:
    """``collapse_share`` as a float, refused outside (0, 1]."""
    if not 0 < collapse_share <= 1:
        raise ConfigError(f"collapse_share must be in (0, 1], got {collapse_share}")
    return float(collapse_share)


def _none_to_nan(value: Any) -> Any:
    if value is None:
        return math.nan
    if isinstance(value, list):
        return [_none_to_nan(v) for v in value]
    return value


def _constant(data: Mapping[str, Any]) -> ConstantPredictor:
    return ConstantPredictor(int(data["code"]), str(data["name"]), _none_to_nan(data["cost"]),
                             _none_to_nan(data["pwa"]))


@dataclass
class ScoreReport:
    """All figures for one confusion matrix; ``nan`` where a figure is undefined."""

    class_names: list[str]
    good_code: int | None
    open_set_code: int | None
    cost_matrix: list[list[float]]
    confusion: list[list[int]]
    n: int
    total_cost: float
    max_cost: float
    pwa: float
    cost_per_image: float
    constants: list[ConstantPredictor]
    floor: ConstantPredictor
    pwa_lift: float
    cost_ratio: float
    accuracy: float
    macro_recall: float
    macro_f1: float
    support: list[int]
    predicted: list[int]
    recall: list[float]
    precision: list[float]
    f1: list[float]
    confusion_normalised: list[list[float]]
    escapes: int
    defect_images: int
    escape_rate: float
    false_alarms: int
    good_images: int
    false_alarm_rate: float
    top_code: int
    top_share: float
    top_label_share: float
    collapse_share: float
    collapsed: bool
    cost_name: str = ""
    warnings: list[str] = field(default_factory=list)

    # ----------------------------------------------------------------------------- building
    @classmethod
    def from_confusion(
        cls,
        confmat: Tensor | np.ndarray | Sequence[Sequence[int]],
        cost_matrix: CostSpec | Tensor,
        classes: ClassSet | None = None,
        collapse_share: float = DEFAULT_COLLAPSE_SHARE,
        cost_name: str = "",
    ) -> ScoreReport:
        """The report of a count matrix (rows true, columns predicted) under ``cost_matrix``."""
        cost = load_cost_matrix(cost_matrix).numpy()
        collapse_share = check_collapse_share(collapse_share)
        counts = whole_counts(confmat, cost.shape[0])
        classes = classes_for_matrix(classes, cost.shape[0])
        names = list(classes.names)
        report = cls(
            class_names=names,
            good_code=classes.good_code,
            open_set_code=classes.open_set_code,
            cost_matrix=cost.tolist(),
            confusion=counts.tolist(),
            collapse_share=collapse_share,
            cost_name=cost_name,
            **cost_figures(counts, cost, names),
            **class_figures(counts),
            **good_figures(counts, classes.good_code, classes.open_set_code),
            **top_figures(counts, collapse_share),
        )
        report.warnings = report._warnings()
        return report

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreReport:
        """The report back from ``to_dict`` (e.g. a run's ``summary.json``), to show it again.

        ``None`` figures come back as ``nan`` (an infinite cost ratio too: JSON has no ``inf``).
        """
        names = [f.name for f in fields(cls)]
        missing = [k for k in names if k not in data and k not in ("cost_name", "warnings")]
        if missing:
            raise DataError(f"not a score report: missing {missing}")
        values = {k: _none_to_nan(data[k]) for k in names if k in data}
        values["good_code"], values["open_set_code"] = data["good_code"], data["open_set_code"]
        values["constants"] = [_constant(c) for c in data["constants"]]
        values["floor"] = _constant(data["floor"])
        return cls(**values)

    def _warnings(self) -> list[str]:
        out = []
        if self.n == 0:
            return ["no images scored"]
        names = self.class_names
        if self.collapsed:
            out.append(
                f"collapse: {self.top_share:.1%} of the predictions are "
                f"{names[self.top_code]!r} ({self.top_label_share:.1%} of the labels), above the "
                f"collapse share {self.collapse_share:.0%}"
            )
        if self.cost_ratio >= 1:
            out.append(
                f"no lift: the predictions cost {self.cost_ratio:.2f} times what always "
                f"answering {self.floor.name!r} costs (PWA {self.pwa:.4f} vs floor "
                f"{self.floor.pwa:.4f})"
            )
        missed = [names[i] for i in range(len(names)) if self.support[i] and not self.predicted[i]]
        if missed:
            out.append(f"never predicted, though present in the labels: {missed}")
        return out

    @property
    def floor_cost_per_image(self) -> float:
        return ratio(self.floor.cost, self.n)

    @property
    def known_macro_recall(self) -> float:
        """Mean recall of the known classes present in the labels: the open-set class (drift)
        left out, which :attr:`macro_recall` averages in."""
        known = [self.recall[i] for i, n in enumerate(self.support)
                 if n and i != self.open_set_code]
        return float(np.mean(known)) if known else math.nan

    @property
    def drift_recall(self) -> float:
        """Recall of the open-set class: its images decided open-set (``nan`` without one)."""
        code = self.open_set_code
        return math.nan if code is None else float(self.recall[code])

    # ----------------------------------------------------------------------------- outputs
    def scalars(self, prefix: str = "") -> dict[str, float]:
        """Flat ``name -> number`` figures for a logger (per-class ones as ``recall/NAME``)."""
        out = {
            "pwa": self.pwa,
            "pwa_floor": self.floor.pwa,
            "pwa_lift": self.pwa_lift,
            "cost_ratio": self.cost_ratio,
            "cost_per_image": self.cost_per_image,
            "floor_cost_per_image": self.floor_cost_per_image,
            "accuracy": self.accuracy,
            "macro_recall": self.macro_recall,
            "known_macro_recall": self.known_macro_recall,
            "drift_recall": self.drift_recall,
            "macro_f1": self.macro_f1,
            "escapes": float(self.escapes),
            "escape_rate": self.escape_rate,
            "false_alarms": float(self.false_alarms),
            "false_alarm_rate": self.false_alarm_rate,
            "top_share": self.top_share,
            "collapsed": float(self.collapsed),
        }
        for name, rec, prec, f in zip(self.class_names, self.recall, self.precision, self.f1,
                                      strict=True):
            out[f"recall/{name}"] = rec
            out[f"precision/{name}"] = prec
            out[f"f1/{name}"] = f
        return {f"{prefix}{k}": float(v) for k, v in out.items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``nan`` becomes ``None``)."""
        data = asdict(self)
        data["floor"]["pwa_lift"] = self.pwa_lift
        data["known_macro_recall"] = self.known_macro_recall
        data["drift_recall"] = self.drift_recall
        data["per_class"] = [
            {
                "code": i,
                "name": name,
                "images": self.support[i],
                "predicted": self.predicted[i],
                "recall": self.recall[i],
                "precision": self.precision[i],
                "f1": self.f1[i],
                "constant_pwa": self.constants[i].pwa,
            }
            for i, name in enumerate(self.class_names)
        ]
        return _nan_to_none(data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    def to_markdown(self, title: str = "Scores") -> str:
        """The report as Markdown (see ``vqc.metrics.render.report_markdown``)."""
        return render.report_markdown(self, title)

    def confusion_figure(self, title: str = "") -> Any:
        """Counts and row-normalised confusion matrices (see ``render.confusion_figure``)."""
        return render.confusion_figure(self, title)

    def save_confusion_png(self, path: str | Path, title: str = "") -> Path:
        """Write ``confusion_figure`` as a PNG, atomically."""
        return render.save_confusion_png(self, path, title)


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_none(v) for v in value]
    return value


__all__ = [
    "DEFAULT_COLLAPSE_SHARE",
    "ConstantPredictor",
    "ScoreReport",
    "check_collapse_share",
    "classes_for_matrix",
]
