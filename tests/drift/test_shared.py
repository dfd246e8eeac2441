"""One forward pass of the classifier gives its logits and the drift detector's maps."""

from __future__ import annotations

import pytest
import torch

from tests.drift.conftest import anomalous_images, batches, normal_images
from vqc.drift import ClassifierFeatures, PadimDetector, forward_outputs, forward_with_maps
from vqc.models import Classifier, build_model

CASES = [("resnet18", ("layer1", "layer2", "layer3")), ("cnn", ("block1", "block2", "block3")),
         ("basic_cnn", ("block1", "block2"))]
#: Each family's size options (a family refuses the others').
SIZES = {"resnet18": {}, "cnn": {"depth": 3, "width": 8}, "basic_cnn": {"width": 8}}


def _twin(model: Classifier, name: str) -> Classifier:
    """A separately built network with the same weights."""
    twin = build_model(name, num_classes=model.num_classes, in_channels=model.in_channels,
                       **SIZES[name])
    twin.load_state_dict(model.state_dict())
    return twin.eval()


@pytest.mark.parametrize(("name", "layers"), CASES, ids=[c[0] for c in CASES])
def test_shared_maps_equal_a_separate_pass(name: str, layers: tuple[str, ...]) -> None:
    torch.manual_seed(0)
    model = build_model(name, num_classes=4, dropout=0.5, **SIZES[name]).eval()
    x = torch.rand(3, 1, 32, 24)
    logits, maps = forward_with_maps(model, x, layers)
    assert list(maps) == list(layers)
    assert list(forward_with_maps(model, x)[1]) == list(model.backbone.default_feature_layers)
    with torch.no_grad():
        assert torch.equal(logits, model(x))
        separate = ClassifierFeatures(_twin(model, name), layers)(x)
    for layer in layers:
        assert torch.equal(maps[layer], separate[layer]), layer


def test_gradients_flow_through_the_shared_pass() -> None:
    torch.manual_seed(0)
    model = build_model("cnn", num_classes=3, depth=3, width=8).train()
    logits, maps = forward_with_maps(model, torch.rand(2, 1, 16, 16), ("block1",))
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert maps["block1"].requires_grad


@pytest.mark.timeout(60)
def test_shared_detector_scores_equal_separate_backbone_scores(resnet18) -> None:
    layers = ("layer1", "layer2", "layer3")
    g = torch.Generator().manual_seed(0)
    train = normal_images(48, g)
    shared = PadimDetector(ClassifierFeatures(resnet18, layers), n_features=50)
    shared.fit(batches(train, [48]))
    separate = PadimDetector(ClassifierFeatures(_twin(resnet18, "resnet18"), layers),
                             n_features=50)
    separate.fit(batches(train, [30, 18]))
    probe = anomalous_images(4, g)
    with torch.no_grad():
        logits, maps = forward_with_maps(resnet18, probe, layers)
    torch.testing.assert_close(shared.score(maps), separate.score(probe), rtol=1e-4, atol=1e-4)
    assert logits.shape == (4, 3)


def test_forward_outputs_of_a_backbone_with_a_head_convolution() -> None:
    """EfficientNet pools after a 1x1 convolution: pooled features and logits still equal
    ``embed`` and ``forward``."""
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", num_classes=3, in_channels=1,
                        pretrained=False).eval()
    x = torch.rand(2, 1, 64, 32)
    outputs = forward_outputs(model, x, model.backbone.default_feature_layers)
    with torch.no_grad():
        torch.testing.assert_close(outputs.pooled, model.embed(x))
        torch.testing.assert_close(outputs.logits, model(x))
    assert list(outputs.maps) == list(model.backbone.default_feature_layers)
