import dataclasses

import pytest
import torch

from vqc.drift import DriftThreshold
from vqc.export import check_parity, export_onnx
from vqc.inspection.inspector import Inspector, shared_drift_detector
from vqc.models import build_model


@pytest.mark.timeout(120)
def test_resnet18_inspector_exports_and_matches(inspector, tmp_path):
    """The product's main backbone: layer1..3 maps for drift, one pass, tall 64x32 crops."""
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=6, in_channels=1).eval()
    spec = dataclasses.replace(
        inspector.spec, model={"name": "resnet18", "num_classes": 6, "in_channels": 1},
        preprocess={"size": [64, 32], "mode": "L", "rotate_crop": {}})
    drift = shared_drift_detector(model, n_features=40)
    g = torch.Generator().manual_seed(0)
    images = 0.5 + 0.1 * torch.randn(10, 1, 64, 32, generator=g)
    drift.fit([(images[:8], torch.zeros(8, dtype=torch.long))])
    drift.threshold = DriftThreshold(float(drift.score(images[:8]).max()) * 1.05)
    resnet = Inspector(model, spec, drift)
    path = export_onnx(resnet, tmp_path / "resnet18.onnx")
    images[8:, :, 10:30, 5:20] = 3.0                    # two images with a bright patch
    report = check_parity(resnet, path, images)
    assert report["decisions_differ"] == 0 and report["drift_scores_max_rel"] < 1e-4
    assert resnet(images).is_drift[8:].all()
