"""An ensemble of networks answering as one classifier: its probabilities, its features."""

import math

import pytest
import torch

from vqc.drift import forward_outputs
from vqc.errors import ConfigError
from vqc.models import EnsembleClassifier, build_model, ensemble_of, member_count


def _cnn(seed: int, num_classes: int = 3) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("cnn", num_classes=num_classes, in_channels=1, depth=2, width=4).eval()


def _constant(model: torch.nn.Module, biases: list[float]) -> torch.nn.Module:
    """``model`` answering ``biases`` as its logits, whatever the image."""
    with torch.no_grad():
        model.head.fc.weight.zero_()
        model.head.fc.bias.copy_(torch.tensor(biases))
    return model


def test_the_probabilities_are_the_members_mean():
    # member 0: p = (1/4, 3/4); member 1: p = (1/2, 1/2); mean (3/8, 5/8)
    first = _constant(_cnn(0, 2), [0.0, math.log(3.0)])
    second = _constant(_cnn(1, 2), [0.0, 0.0])
    ensemble = EnsembleClassifier([first, second]).eval()
    probs = ensemble(torch.rand(4, 1, 16, 16)).softmax(dim=1)
    torch.testing.assert_close(probs, torch.tensor([[0.375, 0.625]]).expand(4, 2))
    # three members: the third's (0, 1) moves the mean to (1/4 + 1/2 + 0, 3/4 + 1/2 + 1) / 3
    third = _constant(_cnn(2, 2), [0.0, 50.0])
    probs = EnsembleClassifier([first, second, third]).eval()(torch.rand(2, 1, 16, 16))
    torch.testing.assert_close(probs.softmax(dim=1), torch.tensor([[0.25, 0.75]]).expand(2, 2))


def test_random_members_agree_with_their_own_forward_passes():
    members = [_cnn(seed) for seed in (0, 1)]
    images = torch.rand(5, 1, 16, 16)
    ensemble = ensemble_of(members)
    expected = sum(m(images).softmax(dim=1) for m in members) / 2
    torch.testing.assert_close(ensemble(images).softmax(dim=1), expected)
    # one pass of member 0 gives the drift detectors' pooled features and maps; the logits
    # are the ensemble's
    outputs = forward_outputs(ensemble, images, ("block1",))
    torch.testing.assert_close(outputs.logits, ensemble(images))
    torch.testing.assert_close(outputs.pooled, members[0].embed(images))
    torch.testing.assert_close(outputs.maps["block1"],
                               members[0].feature_maps(images, ["block1"])["block1"])


def test_member_zero_keeps_its_state_dict_keys():
    first, second = _cnn(0), _cnn(1)
    ensemble = EnsembleClassifier([first, second])
    keys = set(ensemble.state_dict())
    assert set(first.state_dict()) <= keys
    assert keys - set(first.state_dict()) == {f"others.0.{k}" for k in second.state_dict()}
    assert member_count(ensemble) == 2 and member_count(first) == 1
    assert ensemble_of([first]) is first


def test_members_of_other_architectures_are_refused():
    with pytest.raises(ConfigError, match=r"member 1 .* is not member 0.s architecture"):
        EnsembleClassifier([_cnn(0, 3), _cnn(1, 4)])
    with pytest.raises(ConfigError, match=r"at least 2 members"):
        EnsembleClassifier([_cnn(0)])
