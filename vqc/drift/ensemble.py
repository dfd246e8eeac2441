"""Several drift detectors, one decision.

Each detector's raw score is divided by its own validation scale (its in-distribution
validation scores' 90% quantile, :func:`vqc.drift.threshold.detector_scale`); the combined drift
score is the largest of these normalised scores, and one threshold, calibrated on validation for
the combined score at the target rate, decides. The detector with the largest normalised score
is the one that "fired". With a single detector nothing is divided: the combined score is its
raw score and the threshold its own, exactly one detector's behaviour.

:class:`Combination` is the rule alone (names, scales, threshold), shared by the PyTorch
inspector and the ONNX runtime so both decide alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from vqc.drift.base import GLOBAL, DriftDetector, ForwardOutputs, libs_of, score_loader
from vqc.drift.config import DEFAULT_GATE_RATE
from vqc.drift.registry import build_detector, detector_class
from vqc.drift.threshold import (
    DEFAULT_TARGET_RATE,
    DriftThreshold,
    Method,
    class_rate_threshold,
    fit_threshold,
)
from vqc.errors import ConfigError, DataError


@dataclass
class Combination:
    """The combination rule: per-detector ``scales`` ``(D,)``, the combined ``threshold``, and
    each detector's ``role``: ``drift`` detectors make the drift score, ``defect`` detectors
    (the defect gate) rule GOOD out where their score is over their own ``gate_limits``."""

    names: list[str]
    scales: Tensor
    threshold: DriftThreshold | None
    roles: list[str] | None = None
    gate_limits: Tensor | None = None  # (D,) a defect detector's threshold; nan for the others

    def _columns(self, role: str) -> list[int]:
        roles = self.roles or ["drift"] * len(self.names)
        return [i for i, r in enumerate(roles) if r == role]

    def combine(self, raw: Tensor) -> tuple[Tensor, Tensor]:
        """Raw scores ``(B, D)`` -> combined drift score ``(B,)`` and the detector that fired
        ``(B,)`` (index into :attr:`names`); defect detectors take no part."""
        if raw.shape[1] != len(self.names):
            raise DataError(f"{raw.shape[1]} drift scores per image for {len(self.names)} "
                            "detectors")
        columns = self._columns("drift")
        if len(columns) == 1:
            return raw[:, columns[0]], torch.full((len(raw),), columns[0], dtype=torch.long,
                                                  device=raw.device)
        index = torch.tensor(columns, dtype=torch.long, device=raw.device)
        normalised = raw[:, index] / self.scales.to(raw.device, raw.dtype)[index]
        score, which = normalised.max(dim=1)
        return score, index[which]

    def gate(self, raw: Tensor) -> tuple[Tensor, Tensor]:
        """Where a defect detector rules GOOD out ``(B,)`` bool, and which one (index into
        :attr:`names`, -1 where none does)."""
        columns = self._columns("defect")
        none = torch.full((len(raw),), -1, dtype=torch.long, device=raw.device)
        if not columns or self.gate_limits is None:
            return torch.zeros(len(raw), dtype=torch.bool, device=raw.device), none
        index = torch.tensor(columns, dtype=torch.long, device=raw.device)
        limits = self.gate_limits.to(raw.device, raw.dtype)[index]
        scores = raw[:, index]
        ruled_out = (scores > limits).any(dim=1)
        which = (scores / limits).argmax(dim=1)  # the detector furthest over its threshold
        return ruled_out, torch.where(ruled_out, index[which], none)

    def decide(self, raw: Tensor, libs: Sequence[str | None] | None
               ) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
        """Combined score, detector that fired, each image's threshold (``None`` without a
        threshold) and the drift flags (strictly above the threshold)."""
        score, which = self.combine(raw)
        if self.threshold is None:
            return score, which, None, torch.zeros(len(raw), dtype=torch.bool,
                                                  device=raw.device)
        limits = self.threshold.for_libs(libs, len(raw)).to(score.device)
        return score, which, limits, score > limits


class DriftEnsemble(nn.Module):
    """Named detectors reading one forward pass, combined into one drift score."""

    def __init__(self, detectors: Mapping[str, DriftDetector] | Sequence[DriftDetector],
                 threshold: DriftThreshold | None = None,
                 target_rate: float = DEFAULT_TARGET_RATE,
                 roles: Mapping[str, str] | None = None,
                 gate_rate: float = DEFAULT_GATE_RATE) -> None:
        super().__init__()
        if not isinstance(detectors, Mapping):
            named: dict[str, DriftDetector] = {}
            for detector in detectors:
                name = detector.type_name
                if name in named:
                    raise ConfigError(f"two {name} drift detectors: give them names")
                named[name] = detector
            detectors = named
        if not detectors:
            raise ConfigError("a drift ensemble needs at least one detector")
        self.detectors = nn.ModuleDict(dict(detectors))
        self._threshold = threshold
        self.target_rate = float(target_rate)
        self.roles = {name: (roles or {}).get(name, "drift") for name in self.detectors}
        unknown = sorted(set(roles or {}) - set(self.detectors))
        if unknown:
            raise ConfigError(f"drift roles for unknown detectors {unknown}")
        if not self.drift_names:
            raise ConfigError("a drift ensemble needs at least one detector of role drift")
        self.gate_rate = float(gate_rate)

    # -- what it reads -----------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self.detectors.keys())

    def __iter__(self) -> Iterator[DriftDetector]:
        return iter(self.detectors.values())

    def __len__(self) -> int:
        return len(self.detectors)

    @property
    def drift_names(self) -> list[str]:
        """The detectors whose scores make the drift score."""
        return [name for name in self.detectors if self.roles[name] == "drift"]

    @property
    def gate_names(self) -> list[str]:
        """The defect detectors: their score over their threshold rules GOOD out."""
        return [name for name in self.detectors if self.roles[name] == "defect"]

    @property
    def layers(self) -> tuple[str, ...]:
        """Every feature map the detectors read, in order (one forward pass gives them all)."""
        return tuple(dict.fromkeys(name for d in self for name in d.layers))

    @property
    def config(self) -> EnsembleView:
        """What a caller of a single detector read from its config: the layers."""
        return EnsembleView(self.layers)

    @property
    def threshold(self) -> DriftThreshold | None:
        """The combined score's threshold; for one detector, by default its own."""
        if self._threshold is None and len(self.drift_names) == 1:
            return self.detectors[self.drift_names[0]].threshold
        return self._threshold

    @threshold.setter
    def threshold(self, value: DriftThreshold | None) -> None:
        self._threshold = value

    def combination(self) -> Combination:
        scales = torch.stack([d.scale.detach().float().cpu() for d in self])
        limits = torch.tensor([
            float(d.threshold.threshold) if self.roles[n] == "defect" and d.threshold is not None
            else float("nan") for n, d in self.detectors.items()], dtype=torch.float32)
        return Combination(self.names, scales, self.threshold,
                           [self.roles[n] for n in self.names], limits)

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, batches: Iterable[Sequence[Any]]) -> DriftEnsemble:
        """Fit every detector in one pass over ``(ForwardOutputs, codes[, libs])`` batches."""
        for detector in self:
            detector.begin_fit()
        per_lib = any(d.per_lib for d in self)
        for batch in batches:
            codes = torch.as_tensor(batch[1]).reshape(-1)
            libs = libs_of(batch, len(codes), required=per_lib)
            for detector in self:
                detector.update(batch[0], codes, libs)
        for detector in self:
            detector.end_fit()
        return self

    # -- scoring -----------------------------------------------------------------------------
    def raw_scores(self, outputs: ForwardOutputs, libs: Sequence[str] | None = None) -> Tensor:
        """Each detector's raw score ``(B, D)``, each image under its lib's variant."""
        return torch.stack([d.score(outputs, libs) for d in self], dim=1)

    def score(self, outputs: ForwardOutputs, libs: Sequence[str] | None = None) -> Tensor:
        """The combined drift score ``(B,)``."""
        return self.combination().combine(self.raw_scores(outputs, libs))[0]

    def anomaly_map(self, inputs: Any, libs: Sequence[str] | None = None,
                    image_size: Sequence[int] | None = None) -> Tensor:
        """The map of the first detector that makes one (PaDiM's), for overlays; zeros of the
        image's size when none does."""
        for detector in self:
            if hasattr(detector, "anomaly_map"):
                return detector.anomaly_map(inputs, libs, image_size)
        if image_size is None:
            raise ConfigError("no drift detector makes a map: pass image_size for a blank one")
        if isinstance(inputs, ForwardOutputs | Tensor):
            batch = len(inputs)
        elif inputs:
            batch = int(next(iter(inputs.values())).shape[0])
        elif libs is not None:
            batch = len(libs)
        else:
            raise ConfigError("no drift detector makes a map, and no maps or libs give the "
                              "number of images")
        return torch.zeros(batch, int(image_size[0]), int(image_size[1]))

    # -- calibration -------------------------------------------------------------------------
    def calibrate(self, batches: Iterable[Sequence[Any]],
                  target_rate: float | None = None, per_lib: bool = False,
                  method: Method = "auto", drift_code: int | None = None,
                  good_code: int | None = None,
                  class_rates: Mapping[int, float] | None = None) -> DriftThreshold:
        """From validation ``(ForwardOutputs, codes[, libs])`` batches: each drift detector's
        own threshold and scale, then the combined score's threshold (images of ``drift_code``
        count as drift examples); each defect detector's threshold on the images of
        ``good_code`` at :attr:`gate_rate`. ``class_rates``: each known class's own
        false-drift rate for the global threshold (:func:`class_rate_threshold`) instead of
        ``target_rate`` for all."""
        scores, all_codes, lib_list = score_loader(batches, self.raw_scores)
        return self.calibrate_scores(scores, all_codes, lib_list, target_rate, per_lib, method,
                                     drift_code, good_code, class_rates)

    def calibrate_scores(self, scores: Tensor, all_codes: Tensor, lib_list: list[str] | None,
                         target_rate: float | None = None, per_lib: bool = False,
                         method: Method = "auto", drift_code: int | None = None,
                         good_code: int | None = None,
                         class_rates: Mapping[int, float] | None = None) -> DriftThreshold:
        """:meth:`calibrate` on raw scores ``(N, D)`` already computed (out of fold, say)."""
        rate = self.target_rate if target_rate is None else float(target_rate)
        self.target_rate = rate
        is_drift = None if drift_code is None else all_codes == drift_code
        for d, (name, detector) in enumerate(self.detectors.items()):
            if self.roles[name] == "drift":
                detector.calibrate_scores(scores[:, d], lib_list, is_drift, rate, per_lib,
                                          method)
                continue
            if good_code is None:
                raise ConfigError(f"drift.detectors.{name} (role defect) is calibrated on GOOD "
                                  "images: the data set needs a good class (data.classes.good)")
            good = all_codes == good_code
            if not bool(good.any()):
                raise DataError(f"drift.detectors.{name}: no GOOD validation image to "
                                "calibrate the defect gate on")
            detector.calibrate_scores(scores[good, d], None, None, self.gate_rate, False, "rate")
        drift_columns = [d for d, name in enumerate(self.names) if self.roles[name] == "drift"]
        if len(drift_columns) == 1:
            self._threshold = self.detectors[self.names[drift_columns[0]]].threshold
            combined = scores[:, drift_columns[0]]
        else:
            combined = self.combination().combine(scores)[0]
            self._threshold = fit_threshold(combined, lib_list, is_drift, rate, per_lib, method)
        assert self._threshold is not None
        if class_rates and self._threshold.method == "rate":
            known = torch.ones(len(combined), dtype=torch.bool) if is_drift is None \
                else ~is_drift.to(torch.bool)
            self._threshold = DriftThreshold(
                class_rate_threshold(combined[known], all_codes[known], class_rates),
                per_lib=dict(self._threshold.per_lib), method="rate", target_rate=rate,
                class_rates={str(code): float(r) for code, r in class_rates.items()})
        return self._threshold

    # -- description -------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """JSON of everything but the tensors: per detector its type, options, fitted metadata,
        scale and threshold; the target rate."""
        detectors = []
        for name, detector in self.detectors.items():
            entry = {"name": name, **detector.describe(), "scale": float(detector.scale),
                     "role": self.roles[name]}
            detectors.append(entry)
        return {"detectors": detectors, "target_rate": self.target_rate,
                "gate_rate": self.gate_rate}

    def tensors(self) -> dict[str, Tensor]:
        return {f"{name}.{k}": v for name, detector in self.detectors.items()
                for k, v in detector.tensors().items()}

    @classmethod
    def restore(cls, description: Mapping[str, Any], threshold: Mapping[str, Any] | None,
                tensors: Mapping[str, Tensor]) -> DriftEnsemble:
        """Rebuild from :meth:`describe`, the combined threshold and :meth:`tensors`."""
        detectors: dict[str, DriftDetector] = {}
        roles = {str(e["name"]): str(e.get("role", "drift")) for e in description["detectors"]}
        for entry in description["detectors"]:
            name = entry["name"]
            kind = detector_class(entry["type"])
            detector = kind(config=kind.config_type(**entry["options"]))
            prefix = f"{name}."
            detector.restore(entry, {k[len(prefix):]: v for k, v in tensors.items()
                                     if k.startswith(prefix)})
            detectors[name] = detector
        return cls(detectors, None if threshold is None else DriftThreshold.from_dict(threshold),
                   float(description.get("target_rate", DEFAULT_TARGET_RATE)), roles,
                   float(description.get("gate_rate", DEFAULT_GATE_RATE)))

    def column_names(self) -> tuple[list[str], list[str]]:
        """The exported graph's score columns: detector name and variant key of each."""
        names, keys = [], []
        for name, detector in self.detectors.items():
            for key in detector.column_keys():
                names.append(name)
                keys.append(key)
        return names, keys


@dataclass(frozen=True)
class EnsembleView:
    layers: tuple[str, ...]


def build_ensemble(entries: Mapping[str, tuple[str, Mapping[str, Any]]], model: Any = None,
                   target_rate: float = DEFAULT_TARGET_RATE,
                   roles: Mapping[str, str] | None = None,
                   gate_rate: float = DEFAULT_GATE_RATE) -> DriftEnsemble:
    """Detectors from ``{name: (type, options)}``; ``model``: the classifier they will read."""
    detectors = {name: build_detector(kind, options, model,
                                      where=f"drift.detectors.{name}" if len(entries) > 1
                                      else "drift")
                 for name, (kind, options) in entries.items()}
    return DriftEnsemble(detectors, target_rate=target_rate, roles=roles, gate_rate=gate_rate)


def lib_keys(drift: DriftEnsemble) -> list[str]:
    """The global key, then every lib some detector has a variant of, sorted."""
    keys = {key for d in drift for key in d.column_keys()}
    return [GLOBAL, *sorted(keys - {GLOBAL})]
