"""Partial fine-tuning: exactly the expected parameters train; frozen BatchNorm stays in eval."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vqc.errors import ConfigError
from vqc.models import Classifier, build_model


def residual_blocks(model: Classifier) -> list[nn.Module]:
    """The ResNet's residual blocks, read off the network's stages (not from vqc's listing)."""
    net = model.backbone.net
    return [block for stage in (net.layer1, net.layer2, net.layer3, net.layer4) for block in stage]


def expected_trainable(model: Classifier, n: int) -> set[int]:
    if n == -1:
        return {id(p) for p in model.parameters()}
    params = list(model.head.parameters())
    blocks = residual_blocks(model)
    for block in blocks[len(blocks) - n :]:
        params += list(block.parameters())
    return {id(p) for p in params}


@pytest.mark.parametrize(
    ("fixture", "n_blocks"), [("resnet50_timm", 16), ("resnet101_torchvision", 33)]
)
@pytest.mark.parametrize("n", [0, 1, 4, -1])
def test_unfreeze_trains_head_and_last_n_blocks(
    request: pytest.FixtureRequest, fixture: str, n_blocks: int, n: int
) -> None:
    model: Classifier = request.getfixturevalue(fixture)
    assert len(residual_blocks(model)) == n_blocks
    model.unfreeze(n)
    trainable = [p for p in model.parameters() if p.requires_grad]
    expected = expected_trainable(model, n)
    assert {id(p) for p in trainable} == expected
    head = sum(p.numel() for p in model.head.parameters())
    blocks = residual_blocks(model)
    tail = blocks[len(blocks) - n :] if n > 0 else []
    if n == -1:
        want = sum(p.numel() for p in model.parameters())
    else:
        want = head + sum(p.numel() for b in tail for p in b.parameters())
    assert sum(p.numel() for p in trainable) == want
    model.unfreeze(-1)


def test_unfreeze_beyond_the_block_count_is_rejected(resnet101_torchvision: Classifier) -> None:
    with pytest.raises(ConfigError, match=r"unfreeze=40.*33 residual blocks.*layer3: 23"):
        resnet101_torchvision.unfreeze(40)
    resnet101_torchvision.unfreeze(33)  # every block, stem still frozen
    assert not resnet101_torchvision.backbone.net.conv1.weight.requires_grad
    resnet101_torchvision.unfreeze(-1)


def test_build_model_rejects_too_many_blocks() -> None:
    with pytest.raises(ConfigError, match="unfreeze=9"):
        build_model("resnet18", num_classes=6, unfreeze=9)


def test_frozen_batchnorm_stays_in_eval(resnet50_timm: Classifier) -> None:
    model = resnet50_timm
    model.unfreeze(4)
    model.eval()
    model.train()  # what a training loop does every epoch
    blocks = residual_blocks(model)
    frozen, trained = blocks[:-4], blocks[-4:]
    bns = [m for b in frozen for m in b.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    assert not model.backbone.net.bn1.training
    assert all(m.training for b in trained for m in b.modules() if isinstance(m, nn.BatchNorm2d))
    assert model.head.dropout.training

    stem_mean = model.backbone.net.bn1.running_mean.clone()
    last_mean = blocks[-1].bn1.running_mean.clone()
    model(torch.randn(2, 1, 32, 32))
    assert torch.equal(model.backbone.net.bn1.running_mean, stem_mean)
    assert not torch.equal(blocks[-1].bn1.running_mean, last_mean)

    model.unfreeze(-1)
    assert all(m.training for m in model.modules())


def test_param_groups_give_the_backbone_a_lower_rate(resnet50_timm: Classifier) -> None:
    model = resnet50_timm
    model.unfreeze(1)
    groups = model.param_groups(lr=1e-3, backbone_lr_factor=0.1)
    assert [g["name"] for g in groups] == ["head", "backbone"]
    assert groups[0]["lr"] == pytest.approx(1e-3)
    assert groups[1]["lr"] == pytest.approx(1e-4)
    n_trainable = sum(p.requires_grad for p in model.parameters())
    assert sum(len(g["params"]) for g in groups) == n_trainable
    torch.optim.AdamW(groups)  # accepted as is

    model.unfreeze(0)
    assert [g["name"] for g in model.param_groups(lr=1e-3)] == ["head"]
    with pytest.raises(ConfigError, match="backbone_lr_factor"):
        model.param_groups(lr=1e-3, backbone_lr_factor=0)
    model.unfreeze(-1)


def test_cnn_unfreeze_counts_conv_blocks() -> None:
    model = build_model("cnn", num_classes=6, depth=5, width=8, unfreeze=2)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {
        "head.fc.weight",
        "head.fc.bias",
        *(
            f"backbone.layers.{i}.{part}"
            for i in (3, 4)
            for part in ("conv.weight", "bn.weight", "bn.bias")
        ),
    }
    with pytest.raises(ConfigError, match="5 conv blocks"):
        model.unfreeze(6)


def test_unfreeze_null_is_the_models_own_choice():
    """``unfreeze: null``: EfficientNet-Lite with ImageNet weights trains its last 14 blocks
    (the early stages stay ImageNet's), without weights and from-scratch models train all."""
    from vqc.models import build_model
    from vqc.models.efficientnet import FINE_TUNE_UNFREEZE

    pretrained = build_model("efficientnet_lite0", num_classes=3, unfreeze=None)
    assert pretrained.unfrozen == FINE_TUNE_UNFREEZE == 14
    assert not any(p.requires_grad for p in pretrained.backbone.net.conv_stem.parameters())
    blank = build_model("efficientnet_lite0", num_classes=3, pretrained=False, unfreeze=None)
    assert blank.unfrozen == -1
    assert build_model("cnn", num_classes=3, depth=2, unfreeze=None).unfrozen == -1
    assert build_model("efficientnet_lite0", num_classes=3, unfreeze=3).unfrozen == 3
