"""Weights from local files, and a fast, clear failure when pretrained weights are unreachable."""

from __future__ import annotations

import time
from pathlib import Path

import huggingface_hub.constants
import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file

from vqc.errors import ConfigError
from vqc.models import Classifier, build_model, load_weights
from vqc.models import pretrained as pretrained_mod


def assert_same_weights(model: Classifier, reference: dict[str, torch.Tensor]) -> None:
    """``reference`` is a timm/torchvision state dict with a head of the model's size."""
    ours = model.state_dict()
    for key, value in reference.items():
        if key.endswith("num_batches_tracked"):
            continue
        mine = ours["head." + key] if key.startswith("fc.") else ours["backbone.net." + key]
        assert torch.equal(mine, value), key


def differs(model: Classifier, reference: dict[str, torch.Tensor]) -> bool:
    return not torch.equal(model.backbone.net.conv1.weight, reference["conv1.weight"])


def test_torchvision_pth_changes_the_weights(tmp_path: Path) -> None:
    torch.manual_seed(1)
    reference = torchvision.models.resnet18(num_classes=6).state_dict()
    path = tmp_path / "resnet18.pth"
    torch.save(reference, path)
    fresh = build_model("resnet18", 6, in_channels=3, source="torchvision")
    assert differs(fresh, reference)
    model = build_model("resnet18", 6, in_channels=3, source="torchvision", weights=str(path))
    assert_same_weights(model, reference)
    assert model.load_report is not None and model.load_report.head_loaded


def test_timm_safetensors_changes_the_weights(tmp_path: Path) -> None:
    torch.manual_seed(2)
    reference = timm.create_model("resnet18", num_classes=6).state_dict()
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in reference.items()}, str(path))
    fresh = build_model("resnet18", 6, in_channels=3)
    assert differs(fresh, reference)
    model = build_model("resnet18", 6, in_channels=3, pretrained=True, weights=path)
    assert_same_weights(model, reference)


def test_rgb_weights_into_a_gray_model_sum_the_first_conv(tmp_path: Path) -> None:
    torch.manual_seed(3)
    reference = torchvision.models.resnet18().state_dict()  # ImageNet-shaped: 1000 classes
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(reference, path)
    model = build_model("resnet18", 6, in_channels=1, source="torchvision")
    head_before = model.head.fc.weight.detach().clone()
    report = load_weights(model, path)
    conv = model.backbone.net.conv1.weight
    assert conv.shape == (64, 1, 7, 7)
    torch.testing.assert_close(conv, reference["conv1.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(
        model.backbone.net.layer4[1].conv2.weight, reference["layer4.1.conv2.weight"]
    )
    assert not report.head_loaded
    assert torch.equal(model.head.fc.weight, head_before)
    assert any("1000 classes" in note for note in report.notes)
    assert any("summed over RGB" in note for note in report.notes)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_own_state_dict_round_trips(tmp_path: Path, suffix: str) -> None:
    torch.manual_seed(4)
    trained = build_model("cnn", 6, depth=3, width=8)
    path = tmp_path / f"cnn{suffix}"
    if suffix == ".safetensors":
        save_file(trained.state_dict(), str(path))
    else:
        torch.save({"epoch": 3, "state_dict": trained.state_dict()}, path)  # checkpoint-like
    torch.manual_seed(5)
    model = build_model("cnn", 6, depth=3, width=8, weights=path)
    for key, value in trained.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_another_architecture_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(ConfigError) as info:
        build_model("resnet50", 6, in_channels=3, source="torchvision", weights=path)
    message = str(info.value)
    assert str(path) in message
    assert "missing keys" in message and "layer1.0.conv3.weight" in message
    assert "another architecture" in message


def test_gray_weights_into_an_rgb_model_name_the_channels(tmp_path: Path) -> None:
    path = tmp_path / "gray.pt"
    torch.save(build_model("resnet18", 6, in_channels=1).state_dict(), path)
    with pytest.raises(ConfigError, match=r"conv1.weight \(64, 1, 7, 7\).*in_channels"):
        build_model("resnet18", 6, in_channels=3, weights=path)


def test_cnn_of_another_depth_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "cnn3.pt"
    torch.save(build_model("cnn", 6, depth=3, width=8).state_dict(), path)
    with pytest.raises(ConfigError, match=r"missing keys \(backbone\.layers\.3"):
        build_model("cnn", 6, depth=4, width=8, weights=path)


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("notes.pth", b"these are not weights\n", "could not be read as PyTorch weights"),
        ("broken.safetensors", b"\x00\x01garbage", "not a readable .safetensors"),
        ("weights.txt", b"x", "unknown weights format"),
    ],
)
def test_a_non_weights_file_is_a_clear_error(
    tmp_path: Path, name: str, content: bytes, match: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=match):
        build_model("resnet18", 6, weights=path)


def test_a_pickle_without_tensors_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "meta.pth"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(ConfigError, match="holds no state dict"):
        build_model("resnet18", 6, weights=path)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        build_model("resnet18", 6, weights=tmp_path / "absent.pth")


@pytest.fixture
def empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the timm (Hugging Face) and torchvision (torch.hub) caches at empty folders."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


@pytest.mark.parametrize(("name", "source"), [("resnet50", "timm"), ("resnet50", "torchvision")])
def test_offline_pretrained_without_weights_fails_fast(
    empty_caches: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(ConfigError) as info:
        build_model(name, 6, pretrained=True, source=source)
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "model.weights=" in message and "HF_HUB_OFFLINE" in message


def test_unreachable_hub_fails_fast(empty_caches: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in pretrained_mod.OFFLINE_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(pretrained_mod, "host_reachable", lambda host, *a, **k: False)
    with pytest.raises(ConfigError, match=r"(?s)huggingface\.co is unreachable.*model\.weights="):
        build_model("resnet18", 6, pretrained=True)


def test_host_probe_answers_within_its_timeout() -> None:
    start = time.monotonic()
    assert not pretrained_mod.host_reachable("127.0.0.1", port=9, timeout=1.0)
    assert time.monotonic() - start < 2


def test_pretrained_comes_from_the_local_cache(
    empty_caches: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(6)
    reference = torchvision.models.resnet18().state_dict()
    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    cached = empty_caches / "torch" / "hub" / "checkpoints" / url.rsplit("/", 1)[-1]
    cached.parent.mkdir(parents=True)
    torch.save(reference, cached)
    model = build_model("resnet18", 6, in_channels=3, pretrained=True, source="torchvision")
    assert torch.equal(model.backbone.net.conv1.weight, reference["conv1.weight"])
