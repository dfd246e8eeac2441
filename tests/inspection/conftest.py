"""A small inspector built without training: random CNN weights, drift fitted on tiny images."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vqc.drift import DriftThreshold
from vqc.inspection.inspector import Inspector, InspectorSpec, shared_drift_detector
from vqc.metrics import official_cost_matrix
from vqc.models import Classifier, build_model

CLASSES = ["GOOD", "Boucle plate", "Lift-off blanc", "Lift-off noir", "Missing",
           "Short circuit MOS", "Drift"]


def normal_image(rng: np.random.Generator, size: int = 24) -> np.ndarray:
    return rng.normal(100, 10, (size, size)).clip(0, 255).astype(np.uint8)


def anomalous_image(rng: np.random.Generator, size: int = 24) -> np.ndarray:
    image = normal_image(rng, size)
    image[4:14, 4:14] = 255
    return image


def tiny_model_and_spec(seed: int, **spec: object) -> tuple[Classifier, InspectorSpec]:
    """A random-init 3-block CNN over 24x24 gray images and its spec (``spec`` overrides)."""
    torch.manual_seed(seed)
    model = build_model("cnn", num_classes=6, in_channels=1, depth=3, width=8).eval()
    fields = {
        "class_names": CLASSES, "open_set": "Drift", "good": "GOOD",
        "model": {"name": "cnn", "num_classes": 6, "in_channels": 1, "dropout": 0.0, "depth": 3,
                  "width": 8, "source": "timm"},
        "preprocess": {"size": [24, 24], "mode": "L", "rotate_crop": {}},
        "decision": "bayes", "cost_matrix": official_cost_matrix().tolist(),
    }
    return model, InspectorSpec(**(fields | spec))


def make_inspector(seed: int = 0) -> Inspector:
    model, spec = tiny_model_and_spec(seed, temperature=1.5)
    drift = shared_drift_detector(model, layers=("block1", "block2"), n_features=12)
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(np.stack([normal_image(rng) for _ in range(64)]))[:, None]
    images = images.float() / 255
    drift.fit([(images[:32], torch.zeros(32, dtype=torch.long)),
               (images[32:], torch.zeros(32, dtype=torch.long))])
    scores = drift.score(images)
    drift.threshold = DriftThreshold(threshold=float(scores.max()) * 1.05)
    return Inspector(model, spec, drift)


@pytest.fixture(scope="module")
def inspector() -> Inspector:
    return make_inspector()


def write_images(folder: Path, n_normal: int, n_drift: int, seed: int = 1) -> list[str]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n_normal + n_drift):
        array = normal_image(rng) if i < n_normal else anomalous_image(rng)
        name = f"img_{i:03d}.png"
        Image.fromarray(array, mode="L").save(folder / name)
        names.append(name)
    return names


def interrupt_prediction(argv: list[str], monkeypatch: pytest.MonkeyPatch, at_batch: int = 2
                         ) -> None:
    """Run ``vqc-predict`` and stop it as a kill would when batch ``at_batch`` starts."""
    from vqc.cli import predict as predict_cli

    real = predict_cli._predict_batch
    calls = {"n": 0}

    def dies(*a, **k):
        calls["n"] += 1
        if calls["n"] == at_batch:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(predict_cli, "_predict_batch", dies)
    with pytest.raises(KeyboardInterrupt):
        predict_cli.main(argv)
    monkeypatch.setattr(predict_cli, "_predict_batch", real)
