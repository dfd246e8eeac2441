import pickle

import numpy as np
import pytest
import torch

from tests.inspection.conftest import anomalous_image, normal_image
from vqc.classes import ClassSet
from vqc.errors import DataError
from vqc.inspection.base import Inspection
from vqc.inspection.inspector import Inspector
from vqc.metrics import official_cost_matrix


def _batch(n_normal: int, n_drift: int, seed: int = 5) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    arrays = [normal_image(rng) for _ in range(n_normal)]
    arrays += [anomalous_image(rng) for _ in range(n_drift)]
    return torch.from_numpy(np.stack(arrays))[:, None]


def test_drift_over_threshold_decides_the_open_set_class(inspector):
    result = inspector(inspector.normalise(_batch(6, 4)))
    assert result.is_drift[6:].all()
    assert (result.decision[6:] == 6).all()
    assert (result.decision[:6] < 6).all()
    reasons = result.reasons(inspector.classes)
    assert reasons[7].startswith("drift score") and "least expected cost" in reasons[0]


def test_decision_is_the_least_expected_cost_class(inspector):
    result = inspector(inspector.normalise(_batch(8, 0)))
    trained = official_cost_matrix()[:6, :6]
    expected = result.probabilities.double() @ trained
    assert torch.equal(result.decision, expected.argmin(dim=1))
    assert torch.allclose(result.probabilities.sum(dim=1), torch.ones(8), atol=1e-5)


def test_artifact_round_trip_gives_the_same_decisions(inspector, tmp_path):
    path = inspector.save(tmp_path / "inspector.safetensors")
    loaded = Inspector.load(path)
    images = inspector.normalise(_batch(5, 3))
    a, b = inspector(images), loaded(images)
    assert torch.equal(a.decision, b.decision)
    torch.testing.assert_close(a.drift_score, b.drift_score)
    torch.testing.assert_close(a.probabilities, b.probabilities)
    assert loaded.spec.versions["format"] == "3"
    assert not list(tmp_path.glob(".*.tmp"))


def test_preprocessing_travels_with_the_artifact(inspector, tmp_path):
    from PIL import Image

    Image.fromarray(np.full((48, 30), 200, np.uint8), mode="L").save(tmp_path / "a.png")
    images = Inspector.load(inspector.save(tmp_path / "i.safetensors")).load_images(
        [tmp_path / "a.png"])
    assert images.shape == (1, 1, 24, 24)
    assert images.max().item() == pytest.approx(200 / 255)


def test_a_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "inspector.safetensors"
    path.write_bytes(pickle.dumps({"state": Exploit()}))
    with pytest.raises(DataError, match="not a vqc inspector"):
        Inspector.load(path)
    assert not marker.exists()


def test_other_safetensors_file_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(DataError, match="not a vqc inspector file"):
        Inspector.load(path)


def test_a_first_format_artifact_still_loads_and_decides_alike(inspector, tmp_path):
    """Artifacts of the single-PaDiM format (version 1) load as an ensemble of one."""
    import json
    from dataclasses import asdict

    from safetensors.torch import save_file

    padim = inspector.drift.detectors["padim"]
    tensors = {f"classifier.{k}": v.contiguous() for k, v in
               inspector.classifier.state_dict().items()}
    tensors["drift.idx"] = padim.embedding.idx
    for key, stats in padim.gaussians.items():
        tensors[f"drift.gaussian/{key}/mean"] = stats.mean.contiguous()
        tensors[f"drift.gaussian/{key}/inv_covariance"] = stats.inv_covariance.contiguous()
        tensors[f"drift.gaussian/{key}/count"] = torch.tensor(stats.count)
    spec = asdict(inspector.spec)
    spec["drift"] = {**asdict(padim.config), "layers": list(padim.config.layers)}
    spec["drift_threshold"] = padim.threshold.to_dict()
    spec["versions"] = {"format": "1"}
    path = tmp_path / "v1.safetensors"
    save_file(tensors, str(path), metadata={"format": "vqc-inspector", "spec": json.dumps(spec)})
    loaded = Inspector.load(path)
    images = inspector.normalise(_batch(5, 3))
    a, b = inspector(images), loaded(images)
    assert torch.equal(a.decision, b.decision) and torch.equal(a.drift_score, b.drift_score)
    spec["drift"] = {"detectors": [{"name": "padim", "type": "padim", "options": {}}]}
    spec["versions"] = {"format": "2"}
    broken = tmp_path / "broken.safetensors"
    save_file(tensors, str(broken), metadata={"format": "vqc-inspector",
                                              "spec": json.dumps(spec)})
    with pytest.raises(DataError, match=r"write the artifact again.*vqc-export"):
        Inspector.load(broken)


def test_a_reason_names_the_rule_that_decided():
    # classes good, scratch, then the open set "drift"; drift is not a trained column
    classes = ClassSet(("good", "scratch", "drift"), open_set="drift", good="good")
    probs = torch.tensor([[0.7, 0.3], [0.4, 0.6], [0.9, 0.1]])
    expected = torch.tensor([[30.0, 0.7], [60.0, 0.4], [10.0, 0.9]])  # expected cost per answer
    decided = torch.tensor([0, 1, 1])  # the third: GOOD ruled out by the gate
    common = dict(probabilities=probs, drift_score=None, drift_threshold=None,
                  is_drift=torch.zeros(3, dtype=torch.bool), decision=decided,
                  expected_cost=expected, gated_by=[None, None, "pooled"])
    assert Inspection(**common, rule="argmax").reasons(classes) == [
        "good: most probable, p 0.7", "scratch: most probable, p 0.6",
        "scratch: most probable defect, p 0.1; GOOD ruled out by the defect gate (pooled)"]
    assert Inspection(**common, rule="bayes").reasons(classes)[:2] == [
        "good: least expected cost 30", "scratch: least expected cost 0.4"]
