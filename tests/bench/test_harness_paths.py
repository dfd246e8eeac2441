"""The inspection and training benchmarks' building blocks, on tiny models and images."""

import copy
from pathlib import Path

import torch

from bench.inspection import InspectorCase, build_inspector, contenders
from bench.training import lightning_step_times, plain_step_times, random_batches, step_rate
from vqc.models import build_model

TINY = InspectorCase("tiny", {"name": "cnn", "depth": 2, "width": 4}, ("block1", "block2"),
                     n_features=6)


def test_inspector_case_decides_and_flags_drift() -> None:
    inspector = build_inspector(TINY, size=(32, 16), fit_images=8)
    inside = torch.rand(4, 1, 32, 16)
    result = inspector(inside)
    assert result.decision.shape == (4,) and result.drift_score.shape == (4,)
    outside = torch.full((4, 1, 32, 16), 40.0)  # far from the random images it was fitted on
    assert bool(inspector(outside).is_drift.all())
    assert (inspector(outside).decision == inspector.classes.open_set_code).all()


def test_contenders_agree_with_onnx(tmp_path: Path) -> None:
    batch = torch.randint(0, 256, (3, 1, 224, 64), dtype=torch.uint8)
    fns = contenders(TINY, batch, "cpu", tmp_path)
    assert set(fns) == {"bare", "inspector", "onnx"}
    assert fns["bare"]().shape == (3, 6)
    eager, onnx = fns["inspector"](), fns["onnx"]()
    assert torch.equal(eager.decision, onnx.decision)
    torch.testing.assert_close(eager.drift_score, onnx.drift_score, rtol=1e-4, atol=1e-4)


def test_an_ensemble_case_runs_both_networks_and_agrees_with_onnx(tmp_path: Path) -> None:
    from dataclasses import replace

    from vqc.models import member_count

    case = replace(TINY, drift_layers=(), pooled_and_gate=True, pooled_only=True, members=2)
    inspector = build_inspector(case, size=(32, 16), fit_images=8)
    assert member_count(inspector.classifier) == 2
    assert inspector.drift.names == ["pooled", "good_gate"]
    batch = torch.randint(0, 256, (3, 1, 224, 64), dtype=torch.uint8)
    fns = contenders(case, batch, "cpu", tmp_path)
    eager, onnx = fns["inspector"](), fns["onnx"]()
    assert torch.equal(eager.decision, onnx.decision)
    torch.testing.assert_close(eager.probabilities, onnx.probabilities, rtol=1e-4, atol=1e-6)


def test_plain_and_lightning_loops_take_the_same_steps() -> None:
    batches = random_batches(4, 2, (16, 16))
    torch.manual_seed(0)
    model = build_model("cnn", num_classes=6, in_channels=1, depth=2, width=4)
    plain_model, lightning_model = copy.deepcopy(model), copy.deepcopy(model)
    assert len(plain_step_times(plain_model, batches, "cpu")) == 3
    assert len(lightning_step_times(lightning_model, batches, "cpu")) == 3
    for a, b in zip(plain_model.parameters(), lightning_model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # same updates, same weights


def test_step_rate_runs_after_warm_up() -> None:
    model = build_model("cnn", num_classes=6, in_channels=1, depth=2, width=4)
    seconds = step_rate(model, random_batches(1, 2, (16, 16))[0], "cpu", channels_last=True,
                        bf16=True, steps=2, repeats=3)
    assert len(seconds["runs"]) == 3 and seconds["min"] > 0
