"""The defect gate: a GOOD-only detector whose score over its threshold rules the answer GOOD
out; calibrated on the validation GOOD images to ``gate_rate``; no part of the drift score."""

from __future__ import annotations

import math

import pytest
import torch

from tests.drift.conftest import anomalous_images, normal_images
from tests.drift.test_family import LAYERS, _batches
from vqc.classes import ClassSet
from vqc.drift import DriftEnsemble, PadimDetector, PooledGaussian, drift_settings
from vqc.drift.ensemble import Combination
from vqc.drift.threshold import DriftThreshold
from vqc.errors import ConfigError
from vqc.inspection.base import InspectorSpec, decide_from

CLASSES = ["good", "scratch", "dent", "drift"]


def test_settings_read_roles_and_the_gate_rate() -> None:
    settings = drift_settings({"gate_rate": 0.02, "detectors": {
        "pooled": {"type": "pooled"}, "good_gate": {"type": "pooled", "fit_on": "good",
                                                   "role": "defect"}}}, good_code=0)
    assert settings.roles == {"pooled": "drift", "good_gate": "defect"}
    assert settings.gate_rate == 0.02
    assert "role" not in settings.detectors["good_gate"][1]
    with pytest.raises(ConfigError, match=r"drift\.detectors\.p\.role=veto: must be one of "):
        drift_settings({"detectors": {"p": {"type": "pooled", "role": "veto"}}})
    with pytest.raises(ConfigError, match="at least one must detect drift"):
        drift_settings({"detectors": {"p": {"type": "pooled", "role": "defect"}}})


def test_combination_leaves_defect_detectors_out_of_the_drift_score() -> None:
    rule = Combination(["a", "gate", "b"], torch.tensor([2.0, 1.0, 4.0]),
                       DriftThreshold(threshold=1.0), ["drift", "defect", "drift"],
                       torch.tensor([float("nan"), 3.0, float("nan")]))
    raw = torch.tensor([[1.0, 100.0, 2.0],   # gate fires; drift max(1/2, 2/4) = 0.5
                        [6.0, 1.0, 2.0]])    # drift 3.0 from "a"; gate quiet
    score, which = rule.combine(raw)
    torch.testing.assert_close(score, torch.tensor([0.5, 3.0]))
    assert which.tolist()[1] == 0
    ruled_out, gate = rule.gate(raw)
    assert ruled_out.tolist() == [True, False] and gate.tolist() == [1, -1]


def _spec(rule: str) -> InspectorSpec:
    cost = [[0, 100, 100, 10000], [10000, 0, 1, 1000], [10000, 1, 0, 1000], [1, 1, 1, 0]]
    return InspectorSpec(class_names=CLASSES, open_set="drift", good="good",
                         model={"name": "cnn"}, preprocess={"size": [8, 8]}, decision=rule,
                         cost_matrix=cost)


@pytest.mark.parametrize("rule", ["argmax", "bayes"])
def test_gate_turns_good_into_the_best_defect(rule: str) -> None:
    rule_of = Combination(["pooled", "gate"], torch.tensor([1.0, 1.0]),
                          DriftThreshold(threshold=10.0), ["drift", "defect"],
                          torch.tensor([float("nan"), 5.0]))
    # very sure of good; among the defects "dent" is more probable and cheaper
    logits = torch.log(torch.tensor([[0.9990, 0.0002, 0.0008], [0.9990, 0.0002, 0.0008]]))
    raw = torch.tensor([[1.0, 6.0], [1.0, 4.0]])  # the gate fires on the first image only
    inspection = decide_from(logits, raw, None, _spec(rule), rule_of)
    assert inspection.decision.tolist() == [2, 0]
    assert inspection.gated_by == ["gate", None]
    reasons = inspection.reasons(ClassSet(tuple(CLASSES), open_set="drift", good="good"))
    assert "ruled out by the defect gate (gate)" in reasons[0]
    assert "defect gate" not in reasons[1]


def test_gate_calibrates_on_good_images_only(cnn) -> None:
    g = torch.Generator().manual_seed(3)
    ensemble = DriftEnsemble({"padim": PadimDetector(layers=LAYERS, n_features=10),
                              "gate": PooledGaussian(fit_on="good")},
                             roles={"gate": "defect"}, gate_rate=0.1)
    train = normal_images(60, g)
    ensemble.fit(_batches(cnn, train, torch.zeros(60, dtype=torch.long)))
    good, odd = normal_images(60, g), anomalous_images(20, g)
    codes = torch.cat([torch.zeros(60, dtype=torch.long), torch.ones(20, dtype=torch.long)])
    val = _batches(cnn, torch.cat([good, odd]), codes)
    ensemble.calibrate(val, target_rate=0.1, good_code=0)
    gate = ensemble.detectors["gate"]
    good_scores = torch.cat([gate.score(o)[c == 0] for o, c, _ in val]).double().sort().values
    k = math.ceil(0.9 * (len(good_scores) + 1))
    assert gate.threshold.threshold == pytest.approx(float(good_scores[k - 1]), rel=1e-6)
    # the drift threshold is PaDiM's own: the gate takes no part in the drift score
    assert ensemble.threshold == ensemble.detectors["padim"].threshold
    restored = DriftEnsemble.restore(ensemble.describe(), None, ensemble.tensors())
    assert restored.roles == {"padim": "drift", "gate": "defect"}
    assert restored.gate_rate == 0.1
    with pytest.raises(ConfigError, match="needs a good class"):
        ensemble.calibrate(val, target_rate=0.1)
