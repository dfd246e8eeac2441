import copy
import json

import numpy as np
import onnx
import pytest
import torch

from tests.export.conftest import LIBS, bright_image
from tests.inspection.conftest import anomalous_image, normal_image
from vqc.drift import GLOBAL, ClassifierFeatures, PadimDetector, build_ensemble, forward_outputs
from vqc.errors import ConfigError, DataError
from vqc.export import OnnxInspector, check_parity, export_onnx
from vqc.export import onnx as export_module
from vqc.inspection.inspector import Inspector
from vqc.models import build_model


def _batch(n_normal: int, n_drift: int, n_bright: int = 0, seed: int = 7) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    arrays = [normal_image(rng) for _ in range(n_normal)]
    arrays += [anomalous_image(rng) for _ in range(n_drift)]
    arrays += [bright_image(rng) for _ in range(n_bright)]
    return torch.from_numpy(np.stack(arrays))[:, None]


def _fit_and_calibrate(drift, model, fit: int, calibrate: int, seed: int) -> None:
    """Fit ``drift`` on ``fit`` normal GOOD strips and calibrate it on ``calibrate`` more."""
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(np.stack([normal_image(rng) for _ in range(fit + calibrate)]))
    images = images[:, None].float() / 255
    codes = torch.zeros(fit + calibrate, dtype=torch.long)
    drift.fit([(forward_outputs(model, images[:fit], drift.layers), codes[:fit], None)])
    drift.calibrate([(forward_outputs(model, images[fit:], drift.layers), codes[fit:], None)],
                    good_code=0)


def test_graph_has_a_dynamic_batch_and_the_spec_in_its_metadata(inspector, exported):
    model = onnx.load(str(exported))
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["vqc.format"] == "vqc-inspector-onnx"
    assert meta["vqc.exporter"] == "dynamo"
    assert json.loads(meta["vqc.gaussians"]) == [GLOBAL]
    assert json.loads(meta["vqc.spec"])["class_names"] == inspector.spec.class_names
    assert json.loads(meta["vqc.input_shape"]) == [1, 24, 24]
    (images,) = model.graph.input
    assert images.name == "images" and images.type.tensor_type.shape.dim[0].dim_param
    assert [o.name for o in model.graph.output] == ["logits", "drift_scores"]
    assert not list(exported.parent.glob(".*.tmp"))


@pytest.mark.parametrize("n_normal,n_drift", [(4, 3), (1, 0)])  # exported with a batch of 2
def test_onnx_runtime_matches_pytorch(inspector, exported, n_normal, n_drift):
    images = inspector.normalise(_batch(n_normal, n_drift))
    report = check_parity(inspector, exported, images)
    assert report["images"] == n_normal + n_drift and report["decisions_differ"] == 0
    assert report["logits_max_abs"] < 1e-4 and report["drift_scores_max_rel"] < 1e-4
    result = OnnxInspector(exported)(images)
    assert result.is_drift[n_normal:].all() and not result.is_drift[:n_normal].any()


def test_per_lib_gaussians_and_thresholds_match(per_lib_inspector, per_lib_exported):
    runtime = OnnxInspector(per_lib_exported)
    assert runtime.gaussian_keys == [GLOBAL, *LIBS] and runtime.per_lib
    images = per_lib_inspector.normalise(_batch(3, 2, 3))
    libs = ["Die01", "Die02", "Die09", "Die01", "Die02", "Die02", "Die01", None]
    report = check_parity(per_lib_inspector, per_lib_exported, images, libs)
    assert report["gaussians"] == [GLOBAL, *LIBS] and report["drift_scores_max_rel"] < 1e-4
    ours, theirs = runtime(images, libs), per_lib_inspector(images, libs)
    assert torch.equal(ours.decision, theirs.decision)
    torch.testing.assert_close(ours.drift_threshold, theirs.drift_threshold)
    # a bright image is normal for Die02 but drift for Die01: the lib picks the Gaussian
    assert not ours.is_drift[5] and ours.is_drift[6]
    assert check_parity(per_lib_inspector, per_lib_exported, images)["decisions_differ"] == 0


def test_torchscript_exporter_is_the_fallback(inspector, tmp_path, monkeypatch, caplog):
    def fails(*args, **kwargs):
        raise RuntimeError("no ONNX form for this operation")

    monkeypatch.setattr(export_module, "_export_dynamo", fails)
    path = export_onnx(inspector, tmp_path / "ts.onnx")
    assert "no ONNX form" in caplog.text
    assert OnnxInspector(path).exporter == "torchscript"
    report = check_parity(inspector, path, inspector.normalise(_batch(3, 2)))
    assert report["decisions_differ"] == 0

    monkeypatch.setattr(export_module, "_export_torchscript", fails)
    with pytest.raises(ConfigError, match=r"cannot be exported to ONNX.*no ONNX form"):
        export_onnx(inspector, tmp_path / "none.onnx")
    assert not (tmp_path / "none.onnx").exists()


def test_a_mismatch_is_reported(inspector, exported):
    changed = copy.deepcopy(inspector)
    with torch.no_grad():
        changed.classifier.head.fc.bias[0] += 0.01
    with pytest.raises(DataError, match=r"does not match PyTorch: logits: \d+ value"):
        check_parity(changed, exported, changed.normalise(_batch(2, 1)))
    unchecked = check_parity(changed, exported, changed.normalise(_batch(2, 1)), atol=0.02)
    assert unchecked["logits_max_abs"] == pytest.approx(0.01, rel=1e-3)


def test_unexportable_inspectors_are_refused(inspector, tmp_path, monkeypatch):
    separate = build_model("cnn", num_classes=2, in_channels=1, depth=3, width=8).eval()
    detector = PadimDetector(ClassifierFeatures(separate, ("block1", "block2")), n_features=12)
    with pytest.raises(ConfigError, match="shared backbone"):
        Inspector(inspector.classifier, inspector.spec, detector)
    monkeypatch.setattr(export_module, "MAX_BYTES", 1000)
    with pytest.raises(ConfigError, match="2 GiB"):
        export_onnx(inspector, tmp_path / "b.onnx")
    assert not list(tmp_path.iterdir())


def test_runtime_refuses_other_files(inspector, exported, tmp_path):
    (tmp_path / "x.onnx").write_text("not a model")
    with pytest.raises(DataError, match="not a readable ONNX model"):
        OnnxInspector(tmp_path / "x.onnx")
    with pytest.raises(DataError, match="ONNX model file not found"):
        OnnxInspector(tmp_path / "missing.onnx")
    plain = onnx.load(str(exported))
    del plain.metadata_props[:]
    onnx.save(plain, str(tmp_path / "plain.onnx"))
    with pytest.raises(DataError, match="not an exported vqc inspector"):
        OnnxInspector(tmp_path / "plain.onnx")
    with pytest.raises(DataError, match="this model takes"):
        OnnxInspector(exported)(torch.zeros(2, 1, 20, 24))


def test_two_detectors_export_and_decide_alike(two_detector_inspector, tmp_path):
    inspector = two_detector_inspector
    path = export_onnx(inspector, tmp_path / "two.onnx")
    runtime = OnnxInspector(path)
    assert runtime.column_detectors == ["padim", "padim", "padim", "pooled"]
    assert runtime.gaussian_keys == [GLOBAL, *LIBS, GLOBAL]
    images = inspector.normalise(_batch(4, 3, 3, seed=11))
    libs = ["Die01", "Die02", "Die09", None, "Die01", "Die02", "Die01", "Die02", "Die01", None]
    report = check_parity(inspector, path, images, libs)
    assert report["decisions_differ"] == 0 and report["drift_scores_max_rel"] < 1e-4
    ours, theirs = runtime(images, libs), inspector(images, libs)
    torch.testing.assert_close(ours.drift_score, theirs.drift_score, rtol=1e-4, atol=1e-5)
    assert ours.drift_detector == theirs.drift_detector
    assert theirs.is_drift[4:7].all()  # the bright squares
    reasons = theirs.reasons(inspector.classes)
    assert all(reasons[i].endswith(("(padim)", "(pooled)")) for i in range(4, 7))
    # the combined score is the larger of the two normalised scores
    drift = inspector.drift
    raw = drift.raw_scores(inspector.outputs(images), libs)
    scales = torch.stack([d.scale for d in drift])
    torch.testing.assert_close(theirs.drift_score, (raw / scales).amax(dim=1))


def test_the_defect_gate_exports_and_decides_alike(tmp_path):
    from tests.export.conftest import make_two_detector_inspector

    inspector = make_two_detector_inspector(gate=True)
    assert inspector.drift.gate_names == ["good_gate"]
    path = export_onnx(inspector, tmp_path / "gated.onnx")
    runtime = OnnxInspector(path)
    images = inspector.normalise(_batch(6, 3, 1, seed=12))
    libs = ["Die01", "Die02"] * 5
    report = check_parity(inspector, path, images, libs)
    assert report["decisions_differ"] == 0
    ours, theirs = runtime(images, libs), inspector(images, libs)
    assert ours.gated_by == theirs.gated_by
    assert torch.equal(ours.decision, theirs.decision)
    # the gate's threshold came from the GOOD validation images, at the gate rate
    assert inspector.drift.detectors["good_gate"].threshold.target_rate == 0.1


def test_the_image_quality_detector_exports_and_decides_alike(tmp_path):
    from tests.export.conftest import make_two_detector_inspector

    inspector = make_two_detector_inspector(quality=True)
    path = export_onnx(inspector, tmp_path / "quality.onnx")
    runtime = OnnxInspector(path)
    assert runtime.column_detectors[-1] == "quality"
    images = inspector.normalise(_batch(6, 3, 1, seed=13))
    images[:2] = images[:2] * 0.2  # a dimmed lamp: the whole image darker and flatter
    libs = ["Die01", "Die02"] * 5
    report = check_parity(inspector, path, images, libs)
    assert report["decisions_differ"] == 0 and report["drift_scores_max_rel"] < 1e-4
    ours, theirs = runtime(images, libs), inspector(images, libs)
    torch.testing.assert_close(ours.drift_score, theirs.drift_score, rtol=1e-4, atol=1e-5)
    assert theirs.is_drift[:2].all()
    assert theirs.drift_detector[:2] == ["quality", "quality"]


@pytest.mark.parametrize("pool", [2, 5])  # 5: the 12x12 map has partial edge blocks
def test_pooled_padim_positions_export_and_decide_alike(tmp_path, pool):
    """Fewer PaDiM positions (``drift.pool``): the file shrinks, the ONNX graph decides alike,
    the saved inspector reads back bit for bit."""
    from tests.export.conftest import make_two_detector_inspector

    full = make_two_detector_inspector(gate=True)
    inspector = make_two_detector_inspector(gate=True, pool=pool)
    padim = inspector.drift.detectors["padim"]
    blocks = -(-12 // pool)  # block1 of a 24x24 input is 12x12
    assert padim.mean.shape[-1] == blocks * blocks
    path = export_onnx(inspector, tmp_path / "pooled.onnx")
    images = inspector.normalise(_batch(6, 3, 1, seed=12))
    libs = ["Die01", "Die02"] * 5
    report = check_parity(inspector, path, images, libs)
    assert report["decisions_differ"] == 0 and report["drift_scores_max_rel"] < 1e-4
    assert path.stat().st_size < export_onnx(full, tmp_path / "full.onnx").stat().st_size
    saved = inspector.save(tmp_path / "pooled.safetensors")
    loaded = Inspector.load(saved)
    a, b = inspector(images, libs), loaded(images, libs)
    assert torch.equal(a.drift_score, b.drift_score) and torch.equal(a.decision, b.decision)
    assert saved.stat().st_size < full.save(tmp_path / "full.safetensors").stat().st_size


def test_an_ensemble_inspector_saves_loads_and_exports_alike(tmp_path):
    """Two networks answering as one: saved with ``members`` in its spec, read back bit for
    bit, and the ONNX graph runs both (the logits the mean of their probabilities)."""
    from dataclasses import replace

    from tests.inspection.conftest import tiny_model_and_spec
    from vqc.models import EnsembleClassifier, member_count

    first, spec = tiny_model_and_spec(21, temperature=1.3)
    second, _ = tiny_model_and_spec(22)
    ensemble = EnsembleClassifier([first, second]).eval()
    spec = replace(spec, model={**spec.model, "members": 2})
    drift = build_ensemble({"pooled": ("pooled", {})}, ensemble, target_rate=0.1)
    _fit_and_calibrate(drift, ensemble, fit=40, calibrate=20, seed=21)
    inspector = Inspector(ensemble, spec, drift)
    loaded = Inspector.load(inspector.save(tmp_path / "ensemble.safetensors"))
    assert member_count(loaded.classifier) == 2
    batch = inspector.normalise(_batch(4, 2, 2, seed=21))
    ours, theirs = inspector(batch), loaded(batch)
    assert torch.equal(ours.probabilities, theirs.probabilities)
    assert torch.equal(ours.decision, theirs.decision)
    expected = (first(batch).softmax(dim=1) + second(batch).softmax(dim=1)) / 2
    torch.testing.assert_close(inspector.outputs(batch).logits.softmax(dim=1), expected)
    path = export_onnx(inspector, tmp_path / "ensemble.onnx")
    report = check_parity(inspector, path, batch, None)
    assert report["decisions_differ"] == 0 and report["drift_scores_max_rel"] < 1e-4
    torch.testing.assert_close(OnnxInspector(path)(batch).probabilities, ours.probabilities,
                               rtol=1e-4, atol=1e-6)


def test_a_pooled_detector_on_a_layer_saves_loads_and_exports_alike(tmp_path):
    """Drift from a feature map's channel statistics (``layer``) beside a GOOD-only gate on the
    embedding: the graph gives both detectors' scores and decides as PyTorch does."""
    from tests.inspection.conftest import tiny_model_and_spec

    model, spec = tiny_model_and_spec(31, temperature=1.2)
    drift = build_ensemble({"stats": ("pooled", {"layer": "block1"}),
                            "gate": ("pooled", {"fit_on": "good"})}, model, target_rate=0.1,
                           roles={"stats": "drift", "gate": "defect"})
    _fit_and_calibrate(drift, model, fit=50, calibrate=30, seed=31)
    inspector = Inspector(model, spec, drift)
    batch = inspector.normalise(_batch(4, 3, seed=31))
    ours = inspector(batch)
    assert ours.is_drift[4:].all() and not ours.is_drift[:4].any()
    loaded = Inspector.load(inspector.save(tmp_path / "stats.safetensors"))
    assert loaded.drift.detectors["stats"].config.layer == "block1"
    assert torch.equal(loaded(batch).drift_score, ours.drift_score)
    path = export_onnx(inspector, tmp_path / "stats.onnx")
    report = check_parity(inspector, path, batch, None)
    assert report["decisions_differ"] == 0 and report["drift_scores_max_rel"] < 1e-4
    assert OnnxInspector(path).column_detectors == ["stats", "gate"]
