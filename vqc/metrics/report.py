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

Beside them: accuracy, macro recall (the mean recall of the classes present in the labels),
per-class recall, precision and F1, macro F1, the confusion matrix (counts and row-normalised),
defect escapes (a true defect predicted GOOD), false alarms (a true GOOD predicted anything else),
the mean cost per image, and a collapse warning when one class takes more than a set share of
the predictions.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from vqc.data.classes import ClassSet
from vqc.data.csvio import write_atomic
from vqc.errors import ConfigError, DataError
from vqc.metrics.cost import CostSpec, load_cost_matrix
from vqc.metrics.decision import decide
from vqc.metrics.pwa import PenaltyWeightedAccuracy, confusion_counts, to_codes

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


@dataclass(frozen=True)
class ConstantPredictor:
    """Answer ``code`` for every image: its total cost and PWA on the same labels."""

    code: int
    name: str
    cost: float
    pwa: float


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


def _cost_ratio(cost: float, floor_cost: float) -> float:
    """``cost / floor_cost``; when the floor is free (one class only), ``inf`` unless free too."""
    if floor_cost:
        return cost / floor_cost
    return math.inf if cost else math.nan


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
        size = cost.shape[0]
        if not 0 < collapse_share <= 1:
            raise ConfigError(f"collapse_share must be in (0, 1], got {collapse_share}")
        counts = np.asarray(
            confmat.detach().cpu().numpy() if isinstance(confmat, Tensor) else confmat
        )
        if counts.shape != (size, size):
            raise DataError(f"confusion matrix shape {counts.shape} does not match the "
                            f"{size}x{size} cost matrix")
        if (counts < 0).any() or not np.equal(np.mod(counts, 1), 0).all():
            raise DataError("confusion matrix must hold non-negative whole counts")
        counts = counts.astype(np.int64)
        classes = classes_for_matrix(classes, size)
        names = list(classes.names)
        n = int(counts.sum())
        max_cost = float(cost.max())
        total = float((counts * cost).sum())
        pwa = 1.0 - total / (n * max_cost) if n else math.nan

        support = counts.sum(axis=1)
        predicted = counts.sum(axis=0)
        tp = np.diag(counts)
        constant_costs = support @ cost  # cost of answering j for everything
        constants = [
            ConstantPredictor(j, names[j], float(c), 1.0 - float(c) / (n * max_cost) if n
                              else math.nan)
            for j, c in enumerate(constant_costs)
        ]
        floor = min(constants, key=lambda p: (p.cost, p.code))

        recall = [_ratio(float(tp[i]), float(support[i])) for i in range(size)]
        precision = [_ratio(float(tp[i]), float(predicted[i])) for i in range(size)]
        f1 = []
        for i in range(size):
            if support[i] + predicted[i] == 0:
                f1.append(math.nan)
            else:  # 2 TP / (2 TP + FP + FN), 0 for a class present but never right
                f1.append(2.0 * tp[i] / (support[i] + predicted[i]))
        present = [i for i in range(size) if support[i] > 0]
        involved = [i for i in range(size) if support[i] + predicted[i] > 0]
        macro_recall = float(np.mean([recall[i] for i in present])) if present else math.nan
        macro_f1 = float(np.mean([f1[i] for i in involved])) if involved else math.nan
        normalised = [
            [float(v) / support[i] if support[i] else math.nan for v in counts[i]]
            for i in range(size)
        ]

        good, open_set = classes.good_code, classes.open_set_code
        if good is not None:
            defects = [i for i in range(size) if i not in (good, open_set)]
            escapes = int(counts[defects, good].sum())
            defect_images = int(support[defects].sum())
            false_alarms = int(support[good] - counts[good, good])
            good_images = int(support[good])
        else:
            escapes = defect_images = false_alarms = good_images = 0
        top = int(np.argmax(predicted))
        report = cls(
            class_names=names,
            good_code=good,
            open_set_code=open_set,
            cost_matrix=cost.tolist(),
            confusion=counts.tolist(),
            n=n,
            total_cost=total,
            max_cost=max_cost,
            pwa=pwa,
            cost_per_image=_ratio(total, n),
            constants=constants,
            floor=floor,
            pwa_lift=pwa - floor.pwa,
            cost_ratio=_cost_ratio(total, floor.cost),
            accuracy=_ratio(float(tp.sum()), n),
            macro_recall=macro_recall,
            macro_f1=macro_f1,
            support=support.tolist(),
            predicted=predicted.tolist(),
            recall=recall,
            precision=precision,
            f1=f1,
            confusion_normalised=normalised,
            escapes=escapes,
            defect_images=defect_images,
            escape_rate=_ratio(escapes, defect_images) if good is not None else math.nan,
            false_alarms=false_alarms,
            good_images=good_images,
            false_alarm_rate=_ratio(false_alarms, good_images) if good is not None else math.nan,
            top_code=top,
            top_share=_ratio(float(predicted[top]), n),
            top_label_share=_ratio(float(support[top]), n),
            collapse_share=float(collapse_share),
            collapsed=bool(n and predicted[top] / n > collapse_share),
            cost_name=cost_name,
        )
        report.warnings = report._warnings()
        return report

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

    # ----------------------------------------------------------------------------- outputs
    def scalars(self, prefix: str = "") -> dict[str, float]:
        """Flat ``name -> number`` figures for a logger (per-class ones as ``recall/NAME``)."""
        out = {
            "pwa": self.pwa,
            "pwa_floor": self.floor.pwa,
            "pwa_lift": self.pwa_lift,
            "cost_ratio": self.cost_ratio,
            "cost_per_image": self.cost_per_image,
            "floor_cost_per_image": _ratio(self.floor.cost, self.n),
            "accuracy": self.accuracy,
            "macro_recall": self.macro_recall,
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

    def summary_rows(self) -> list[tuple[str, str]]:
        """(figure, value) pairs shared by the Markdown and console tables."""
        names = self.class_names
        matrix = f" ({self.cost_name})" if self.cost_name else ""
        rows = [
            ("images", str(self.n)),
            (f"PWA{matrix}", _num(self.pwa)),
            ("floor: best constant predictor",
             f"always {names[self.floor.code]!r}: PWA {_num(self.floor.pwa)}"),
            ("lift over the floor",
             f"{_signed(self.pwa_lift)} PWA, cost ratio {_num(self.cost_ratio, 3)}"),
            ("cost per image",
             f"{_num(self.cost_per_image, 2)} (floor {_num(_ratio(self.floor.cost, self.n), 2)})"),
            ("accuracy", _num(self.accuracy)),
            ("macro recall", _num(self.macro_recall)),
            ("macro F1", _num(self.macro_f1)),
        ]
        if self.good_code is not None:
            good = names[self.good_code]
            rows += [
                (f"defect escapes (defect predicted {good})",
                 f"{self.escapes} / {self.defect_images} ({_pct(self.escape_rate)})"),
                (f"false alarms ({good} predicted otherwise)",
                 f"{self.false_alarms} / {self.good_images} ({_pct(self.false_alarm_rate)})"),
            ]
        rows.append(("most predicted class",
                     f"{names[self.top_code]!r}: {_pct(self.top_share)} of predictions, "
                     f"{_pct(self.top_label_share)} of labels"))
        return rows

    def class_rows(self) -> list[list[str]]:
        """One row per class: code, name, images, predicted, recall, precision, F1, constant PWA."""
        return [
            [str(i), name, str(self.support[i]), str(self.predicted[i]), _num(self.recall[i], 3),
             _num(self.precision[i], 3), _num(self.f1[i], 3), _num(self.constants[i].pwa)]
            for i, name in enumerate(self.class_names)
        ]

    CLASS_HEADER: ClassVar[tuple[str, ...]] = ("code", "class", "images", "predicted", "recall",
                                     "precision", "F1", "PWA if always this class")

    def to_markdown(self, title: str = "Scores") -> str:
        """The report as Markdown: summary, per class, confusion matrices, warnings."""
        lines = [f"## {title}", "", "| figure | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in self.summary_rows()]
        lines += ["", "### Per class", "", _md_row(self.CLASS_HEADER),
                  _md_row(["---"] * len(self.CLASS_HEADER))]
        lines += [_md_row(row) for row in self.class_rows()]
        head = ["true \\ predicted", *self.class_names]
        lines += ["", "### Confusion matrix (rows: true class, columns: predicted)", "",
                  _md_row(head), _md_row(["---"] * len(head))]
        lines += [_md_row([name, *map(str, row)])
                  for name, row in zip(self.class_names, self.confusion, strict=True)]
        lines += ["", "### Confusion matrix, row-normalised (share of each true class)", "",
                  _md_row(head), _md_row(["---"] * len(head))]
        lines += [_md_row([name, *(_pct(v, 0) for v in row)])
                  for name, row in zip(self.class_names, self.confusion_normalised, strict=True)]
        if self.warnings:
            lines += ["", "### Warnings", ""] + [f"- {w}" for w in self.warnings]
        return "\n".join(lines) + "\n"

    def confusion_figure(self, title: str = "") -> Any:
        """A matplotlib ``Figure``: counts and row-normalised confusion matrices side by side.

        Drawn on an Agg canvas without pyplot, so it never changes the caller's backend.
        """
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from torchmetrics.utilities.plot import plot_confusion_matrix

        size = len(self.class_names)
        side = max(5.0, 0.9 * size + 2.5)
        fig = Figure(figsize=(2 * side, side), layout="constrained")
        FigureCanvasAgg(fig)
        left, right = fig.subplots(1, 2)
        labels: list[int | str] = [f"{i} {n}" if len(n) <= 14 else f"{i} {n[:13]}…"
                                   for i, n in enumerate(self.class_names)]
        counts = torch.tensor(self.confusion)
        shares = torch.tensor(self.confusion_normalised).nan_to_num(0.0)
        plot_confusion_matrix(counts, ax=left, labels=labels, cmap="Blues")
        plot_confusion_matrix(shares, ax=right, labels=labels, cmap="Blues")
        left.set_title("counts")
        right.set_title("share of each true class")
        fig.suptitle(title or f"PWA {_num(self.pwa)} | floor {_num(self.floor.pwa)} "
                     f"(always {self.floor.name}) | cost ratio {_num(self.cost_ratio, 3)}")
        return fig

    def save_confusion_png(self, path: str | Path, title: str = "") -> Path:
        """Write ``confusion_figure`` as a PNG, atomically."""
        buffer = io.BytesIO()
        self.confusion_figure(title).savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return write_atomic(path, buffer.getvalue())


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_none(v) for v in value]
    return value


def _num(value: float, digits: int = 4) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _signed(value: float, digits: int = 4) -> str:
    return "–" if not math.isfinite(value) else f"{value:+.{digits}f}"


def _pct(value: float, digits: int = 1) -> str:
    return "–" if not math.isfinite(value) else f"{100 * value:.{digits}f}%"


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


class ScoringMetrics(PenaltyWeightedAccuracy):
    """PWA and everything it hides, as one ``torchmetrics.Metric`` over a confusion matrix.

    ``compute()`` returns a flat dict of scalar tensors (ready for ``LightningModule.log_dict``):
    ``pwa``, ``pwa_floor``, ``pwa_lift``, ``cost_ratio``, escapes, false alarms, accuracy, macro
    recall and F1, ``recall/NAME``... ``report()`` returns the full ``ScoreReport`` (confusion
    matrices, warnings, Markdown, PNG). Both are exact under DDP: the only state is the summed
    confusion matrix.

    Args:
        cost_matrix: as ``PenaltyWeightedAccuracy``.
        classes: the scored classes (default: the challenge's, see ``classes_for_matrix``).
        score_codes: codes of the columns of ``(N, K)`` scores; by default the trained classes
            when ``K`` is their number, else ``0..K-1``.
        collapse_share: warn when one class takes more than this share of the predictions.
        prefix: put in front of every key of ``compute()``, e.g. ``"val/"``.
    """

    def __init__(
        self,
        cost_matrix: CostSpec = None,
        classes: ClassSet | None = None,
        score_codes: Sequence[int] | None = None,
        collapse_share: float = DEFAULT_COLLAPSE_SHARE,
        prefix: str = "",
        validate_args: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(cost_matrix, score_codes, validate_args, **kwargs)
        self.classes = classes_for_matrix(classes, self.num_classes)
        if not 0 < collapse_share <= 1:
            raise ConfigError(f"collapse_share must be in (0, 1], got {collapse_share}")
        self.collapse_share = float(collapse_share)
        self.prefix = prefix
        if cost_matrix is None:
            self.cost_name = "official"
        elif isinstance(cost_matrix, str | os.PathLike):
            self.cost_name = str(cost_matrix)
        else:
            self.cost_name = ""

    def update(self, preds: Tensor, target: Tensor) -> None:
        codes = self.score_codes
        trained = self.classes.trained_codes
        if codes is None and preds.is_floating_point() and preds.ndim == 2 \
                and preds.shape[1] == len(trained) < self.num_classes:
            codes = trained
        preds, target = to_codes(preds, target, self.num_classes, codes,
                                 validate=self.check_inputs)
        self.confmat += confusion_counts(preds, target, self.num_classes)

    def compute(self) -> dict[str, Tensor]:  # type: ignore[override]
        report = self._report_of(self.confmat)
        return {k: torch.tensor(v, dtype=torch.float64) for k, v in
                report.scalars(self.prefix).items()}

    def report(self) -> ScoreReport:
        """The full report, with the confusion matrix summed over all processes."""
        with self.sync_context(dist_sync_fn=self.dist_sync_fn, should_sync=self._to_sync,
                               should_unsync=self._should_unsync):
            confmat = self.confmat.detach().clone()
        return self._report_of(confmat)

    def _report_of(self, confmat: Tensor) -> ScoreReport:
        return ScoreReport.from_confusion(confmat, self.cost, self.classes, self.collapse_share,
                                          self.cost_name)

    def plot(  # type: ignore[override]
        self, val: Any = None, ax: Any = None
    ) -> tuple[Any, Any]:
        """Plot the confusion matrices (``val``/``ax`` are ignored: the figure has two panels)."""
        fig = self.report().confusion_figure()
        return fig, fig.axes


def score_predictions(
    preds: Tensor,
    target: Tensor,
    cost_matrix: CostSpec = None,
    classes: ClassSet | None = None,
    collapse_share: float = DEFAULT_COLLAPSE_SHARE,
) -> ScoreReport:
    """``ScoreReport`` of decided codes (or scores) against true codes, in one call."""
    metric = ScoringMetrics(cost_matrix, classes, collapse_share=collapse_share)
    metric.update(preds, target)
    return metric.report()


def compare_decisions(
    probs: Tensor,
    target: Tensor,
    cost_matrix: CostSpec = None,
    classes: ClassSet | None = None,
    codes: Sequence[int] | None = None,
    drift: Tensor | None = None,
    collapse_share: float = DEFAULT_COLLAPSE_SHARE,
) -> dict[str, ScoreReport]:
    """Reports of the argmax and the Bayes-rule decisions on the same probabilities.

    ``probs`` ``(N, K)`` cover the trained classes ``codes`` (default: those of ``classes``
    that the matrix scores); where ``drift`` is true both decisions answer the open-set class.
    Calibrate ``probs`` first (``TemperatureScaler``) for the Bayes rule to mean anything.
    """
    metric = ScoringMetrics(cost_matrix, classes, collapse_share=collapse_share)
    scored = metric.classes
    if codes is None:
        codes = scored.trained_codes if probs.shape[1] == len(scored.trained_codes) \
            else list(range(probs.shape[1]))
    out = {}
    for rule in ("argmax", "bayes"):
        decided = decide(probs, rule, metric.cost, codes, drift, scored.open_set_code)
        one = ScoringMetrics(cost_matrix, classes, collapse_share=collapse_share)
        one.update(decided, target)
        out[rule] = one.report()
    return out


def decisions_markdown(reports: Mapping[str, ScoreReport]) -> str:
    """A Markdown table comparing decision rules on the headline figures."""
    head = ["decision", "PWA", "floor", "lift", "cost ratio", "escapes", "false alarms",
            "macro recall"]
    lines = ["## Decision rules", "", _md_row(head), _md_row(["---"] * len(head))]
    for rule, r in reports.items():
        lines.append(_md_row([rule, _num(r.pwa), _num(r.floor.pwa), _signed(r.pwa_lift),
                              _num(r.cost_ratio, 3), str(r.escapes), str(r.false_alarms),
                              _num(r.macro_recall)]))
    return "\n".join(lines) + "\n"


__all__ = [
    "DEFAULT_COLLAPSE_SHARE",
    "ConstantPredictor",
    "ScoreReport",
    "ScoringMetrics",
    "classes_for_matrix",
    "compare_decisions",
    "decisions_markdown",
    "score_predictions",
]
