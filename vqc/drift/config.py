"""The ``drift`` config group (a plain mapping) -> detectors and calibration settings.

Two shapes, both in ``conf/drift/``:

- one detector, its options at the top (``conf/drift/padim.yaml``: ``type: padim``,
  ``layers``, ``n_features``...; ``drift.n_features=50`` overrides one);
- several, under ``detectors`` by name (``conf/drift/padim_pooled.yaml``;
  ``drift.detectors.padim.n_features=50`` overrides one).

Keys about the whole decision, in both: ``enabled``, ``target_rate``, ``per_lib_thresholds``,
``gate_rate``, ``cross_fit``, ``rate_by_cost``.
Other keys beside ``detectors`` are defaults for every detector that has such an option (an
experiment setting ``drift.layers`` sets PaDiM's layers in either shape).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from vqc.errors import ConfigError
from vqc.options import check_values, field_names, option, rules_of

DEFAULT_TYPE = "padim"
#: Default share of validation GOOD images a defect gate may flag.
DEFAULT_GATE_RATE = 0.01
#: Default share of known images the drift threshold may call drift.
DEFAULT_TARGET_RATE = 0.005
#: ``rate_by_cost``: the most a class's false-drift rate may exceed ``target_rate``.
MAX_RATE_FACTOR = 10.0


@dataclass(frozen=True)
class DriftDecision:
    """The keys of the ``drift`` group about the whole decision, not about one detector."""

    enabled: bool = option(True, doc="false: no drift detection")
    target_rate: float | Literal["auto"] = option(
        DEFAULT_TARGET_RATE, low=0, high=1, open_low=True, open_high=True,
        doc="share of known images called drift; auto: as low as the calibration bounds")
    per_lib_thresholds: bool = option(False, doc="one threshold per lib")
    gate_rate: float = option(DEFAULT_GATE_RATE, low=0, high=1, open_low=True, open_high=True,
                              doc="share of validation GOOD images a defect gate may flag")
    cross_fit: int | None = option(0, low=0, doc="0 or null: calibrate on validation; K >= 2: "
                                                 "on the out-of-fold scores of K fits")
    rate_by_cost: bool = option(False, doc="each known class's false-drift rate scaled by what "
                                           "calling it drift costs (a GOOD part: target_rate)")

    def __post_init__(self) -> None:
        check_values(self, "drift")
        if self.cross_fit == 1:
            raise ConfigError("drift.cross_fit=1: 0 (calibrate on validation) or a number of "
                              "folds >= 2")
        if self.rate_by_cost and self.target_rate != "auto" \
                and self.target_rate * MAX_RATE_FACTOR >= 1:
            raise ConfigError(
                f"drift.rate_by_cost=true with drift.target_rate={self.target_rate:g}: a "
                f"defect's budget, up to {MAX_RATE_FACTOR:g} times it, would reach 1; lower "
                f"drift.target_rate below {1 / MAX_RATE_FACTOR:g} or set "
                "drift.rate_by_cost=false")


#: Keys of the whole decision, not of a detector.
DECISION_KEYS = field_names(DriftDecision)


@dataclass(frozen=True)
class DetectorEntry:
    """What the drift group says of a detector besides its options."""

    type: str | None = option(None, doc="the detector's registered name; null: the entry's "
                                        "name (or padim, alone)")
    role: Literal["drift", "defect"] | None = option(
        None, doc="drift (null too): its score calls an image drift; defect: a gate that "
                  "rules out GOOD")


#: Keys of a detector's entry, not of its options.
ENTRY_KEYS = field_names(DetectorEntry)


def detector_entries(drift: Mapping[str, Any]) -> dict[str, tuple[str, Mapping[str, Any]]]:
    """``{config key of the entry: (detector type, its mapping)}`` of the drift group's one
    detector (``drift``) or several (``drift.detectors.<name>``)."""
    entries = drift.get("detectors")
    if isinstance(entries, Mapping):
        return {f"drift.detectors.{name}": (str((entry or {}).get("type") or name), entry or {})
                for name, entry in entries.items()}
    return {"drift": (str(drift.get("type") or DEFAULT_TYPE), drift)}


@dataclass(frozen=True)
class DriftSettings:
    """The detectors ``{name: (type, options)}`` and the calibration of the decision."""

    detectors: dict[str, tuple[str, dict[str, Any]]]
    enabled: bool = True
    target_rate: float = DEFAULT_TARGET_RATE
    per_lib_thresholds: bool = False
    roles: dict[str, str] | None = None
    gate_rate: float = DEFAULT_GATE_RATE
    #: 0: drift detectors fitted on training images, calibrated on validation; K >= 2: fitted
    #: on both, calibrated on their out-of-fold scores (``vqc.inspection.cross_fit``).
    cross_fit: int = 0
    #: Each known class's false-drift rate scaled by what calling it drift costs
    #: (``vqc.inspection.drift_rates``); false: every known image alike.
    rate_by_cost: bool = False


def _role(key: str, options: dict[str, Any]) -> str:
    role = options.pop("role", None)
    problem = rules_of(DetectorEntry, key)["role"].problem(role)
    if problem:
        raise ConfigError(problem)
    return str(role or "drift")


def _entry(name: str, options: Mapping[str, Any], good_code: int | None
           ) -> tuple[str, dict[str, Any]]:
    options = dict(options)
    kind = str(options.pop("type", None) or name)
    if good_code is not None:
        options.setdefault("good_code", good_code)
    return kind, options


def _share(shared: Mapping[str, Any], detectors: dict[str, tuple[str, dict[str, Any]]]) -> None:
    """Options beside ``detectors`` are defaults for every detector that has them (an
    experiment's ``drift.layers`` reaches PaDiM in a combined config too)."""
    from vqc.drift.registry import detector_class

    if shared.get("layer") is not None:
        raise ConfigError(f"drift.layer={shared['layer']!r} beside detectors: a pooled "
                          "detector's layer is its own (null reads the pooled embedding); set "
                          f"drift.detectors.<name>.layer, one of {sorted(detectors)}")
    used: set[str] = set()
    for kind, options in detectors.values():
        known = field_names(detector_class(kind).config_type)
        for key, value in shared.items():
            if key in known:
                if options.get(key) is None:  # a detector's own null is "not set"
                    options[key] = value
                used.add(key)
    unused = sorted(set(shared) - used)
    if unused:
        raise ConfigError(f"drift: key(s) {unused} beside detectors are options of none of "
                          f"them ({', '.join(kind for kind, _ in detectors.values())})")


def _check_cross_fit(folds: int, detectors: Mapping[str, tuple[str, dict[str, Any]]],
                     roles: Mapping[str, str]) -> None:
    """Refuse cross-fitting a drift detector that reads the pooled embedding: the training
    learns it, so its scores of training images are not those of new ones
    (``vqc.inspection.cross_fit``)."""
    from vqc.drift.registry import detector_class

    for name, (kind, options) in detectors.items():
        if roles[name] == "drift" and detector_class(kind).reads_trained_features(options):
            raise ConfigError(
                f"drift.cross_fit={folds}: drift.detectors.{name} reads the pooled "
                "embedding, which the training learns, so its scores of training images are not "
                "those of new ones; give it a frozen layer (drift=stats_gate) or set "
                "drift.cross_fit=0")


def drift_settings(cfg: Mapping[str, Any], good_code: int | None = None) -> DriftSettings:
    """Parse the ``drift`` group; ``good_code``: the data set's GOOD class (the detectors'
    ``good_code`` unless they set one)."""
    cfg = dict(cfg)
    decision = {k: cfg.pop(k) for k in DECISION_KEYS if k in cfg}
    several = "detectors" in cfg
    if several:
        entries = cfg.pop("detectors") or {}
        if not isinstance(entries, Mapping) or not entries:
            raise ConfigError("drift.detectors must name at least one detector, e.g. "
                              "{padim: {type: padim}, pooled: {type: pooled}}")
        detectors = {}
        for name, options in entries.items():
            if options is None:
                options = {}
            if not isinstance(options, Mapping):
                raise ConfigError(f"drift.detectors.{name} must be a mapping of options")
            detectors[str(name)] = _entry(str(name), options, good_code)
        _share(cfg, detectors)
    else:
        kind = str(cfg.get("type") or DEFAULT_TYPE)
        detectors = {kind: _entry(kind, cfg, good_code)}
    settings = DriftDecision(**decision)
    # "auto" is chosen when a run starts (vqc.training.recipe); parsed before that, the largest
    rate = float(DEFAULT_TARGET_RATE if settings.target_rate == "auto" else settings.target_rate)
    cross_fit = settings.cross_fit or 0
    roles = {name: _role(f"drift.detectors.{name}" if several else "drift", options)
             for name, (_, options) in detectors.items()}
    if cross_fit:
        _check_cross_fit(cross_fit, detectors, roles)
    if all(role == "defect" for role in roles.values()):
        raise ConfigError("drift: every detector has role defect; at least one must detect "
                          "drift (role: drift), or use drift=none")
    return DriftSettings(detectors, settings.enabled, rate, settings.per_lib_thresholds, roles,
                         settings.gate_rate, cross_fit, settings.rate_by_cost)
