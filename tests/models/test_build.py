"""Every model family builds, runs forward and takes one optimizer step, in gray and RGB."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vqc.errors import ConfigError
from vqc.models import Classifier, build_model

FAMILIES = [
    ("basic_cnn", "timm"),
    ("cnn", "timm"),
    ("resnet18", "timm"),
    ("resnet50", "timm"),
    ("resnet101", "timm"),
    ("resnest50d", "timm"),
    ("resnet18", "torchvision"),
    ("resnet50", "torchvision"),
    ("resnet101", "torchvision"),
]
#: Blocks ``unfreeze`` counts: stage sizes of each ResNet, conv blocks of the CNNs.
EXPECTED_BLOCKS = {
    "basic_cnn": 2,
    "cnn": 5,
    "resnet18": 2 + 2 + 2 + 2,
    "resnet50": 3 + 4 + 6 + 3,
    "resnet101": 3 + 4 + 23 + 3,
    "resnest50d": 3 + 4 + 6 + 3,
    "wide_resnet50_2": 3 + 4 + 6 + 3,
}


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize(("name", "source"), FAMILIES, ids=[f"{n}-{s}" for n, s in FAMILIES])
def test_forward_backward_step(name: str, source: str, in_channels: int) -> None:
    torch.manual_seed(0)
    options = {} if name in ("basic_cnn", "cnn") else {"source": source}
    model = build_model(name, num_classes=6, in_channels=in_channels, dropout=0.3, **options)
    assert isinstance(model, Classifier)
    assert model.num_blocks == EXPECTED_BLOCKS[name]
    x = torch.randn(2, in_channels, 32, 32)
    y = torch.tensor([0, 5])
    model.train()
    optimizer = torch.optim.SGD(model.param_groups(lr=0.1, backbone_lr_factor=0.1))
    before = model.head.fc.weight.detach().clone()
    logits = model(x)
    assert logits.shape == (2, 6)
    loss = nn.functional.cross_entropy(logits, y)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    optimizer.step()
    assert not torch.equal(before, model.head.fc.weight)
    model.eval()
    with torch.no_grad():
        embedding = model.embed(x)
        maps = model.feature_maps(x)
    assert embedding.shape == (2, model.num_features)
    assert list(maps) == list(model.backbone.default_feature_layers)
    assert all(m.shape[0] == 2 and m.ndim == 4 for m in maps.values())


def test_wide_resnet_for_drift_features() -> None:
    model = build_model("wide_resnet50_2", num_classes=6, in_channels=1, unfreeze=0).eval()
    assert model.num_blocks == EXPECTED_BLOCKS["wide_resnet50_2"]
    with torch.no_grad():
        maps = model.feature_maps(torch.randn(1, 1, 32, 32))
    assert sum(m.shape[1] for m in maps.values()) == 1792  # PaDiM's layer1..3 channels


def test_resnet_feature_maps_are_layer1_to_3(resnet50_timm: Classifier) -> None:
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        maps = resnet50_timm.eval().feature_maps(x)
        last = resnet50_timm.feature_maps(x, layers=["layer4"])
    assert {k: tuple(v.shape) for k, v in maps.items()} == {
        "layer1": (2, 256, 16, 16),
        "layer2": (2, 512, 8, 8),
        "layer3": (2, 1024, 4, 4),
    }
    assert tuple(last["layer4"].shape) == (2, 2048, 2, 2)
    with pytest.raises(ConfigError, match="layer9"):
        resnet50_timm.feature_maps(x, layers=["layer9"])


@pytest.mark.parametrize("depth", [1, 5, 8])
def test_cnn_depth_on_a_tall_strip(depth: int) -> None:
    model = build_model("cnn", num_classes=6, depth=depth, width=8).eval()
    assert model.num_blocks == depth
    x = torch.randn(2, 1, 224, 64)
    with torch.no_grad():
        assert model(x).shape == (2, 6)
        maps = model.feature_maps(x)
    assert list(maps) == [f"block{i + 1}" for i in range(depth)]
    assert all(m.shape[-2] >= 2 and m.shape[-1] >= 2 for m in maps.values())
    if depth == 8:  # the narrow side stops shrinking; the long one goes on
        assert tuple(maps["block8"].shape[-2:]) == (3, 2)
    assert model.num_features == min(8 * 2 ** (depth - 1), 512)


def test_cnn_width_doubles_up_to_a_cap() -> None:
    model = build_model("cnn", num_classes=2, depth=8, width=32)
    widths = [block.conv.out_channels for block in model.backbone.layers]
    assert widths == [32, 64, 128, 256, 512, 512, 512, 512]


def test_channels_last_gives_the_same_logits() -> None:
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=6, in_channels=1).eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        expected = model(x)
        model = model.to(memory_format=torch.channels_last)
        got = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "vgg16"}, "unknown"),
        ({"name": "resnest50d", "source": "torchvision"}, "only in timm"),
        ({"name": "resnet50", "source": "keras"}, "source"),
        ({"name": "cnn", "depth": 0}, "depth"),
        ({"name": "cnn", "depth": 9}, "depth"),
        ({"name": "cnn", "width": 0}, "width"),
        ({"name": "cnn", "dropout": 1.0}, "dropout"),
        ({"name": "basic_cnn", "num_classes": 0}, "num_classes"),
        ({"name": "basic_cnn", "unfreeze": -2}, "unfreeze"),
        ({"name": "cnn", "pretrained": True}, "no pretrained weights"),
    ],
)
def test_bad_config_is_a_config_error(kwargs: dict, match: str) -> None:
    kwargs = {"num_classes": 6, **kwargs}
    with pytest.raises(ConfigError, match=match):
        build_model(**kwargs)
