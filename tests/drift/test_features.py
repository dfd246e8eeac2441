"""Channel selection and the select-then-expand embedding equal the straightforward way."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from vqc.drift.features import ClassifierFeatures, PadimEmbedding, select_channels, upsample_nearest
from vqc.errors import ConfigError


@pytest.mark.parametrize(("source", "target"), [((4, 4), (16, 16)), ((2, 3), (8, 6)),
                                                ((5, 5), (5, 5)), ((3, 3), (8, 8))])
def test_upsample_equals_nearest_interpolate(source: tuple[int, int],
                                             target: tuple[int, int]) -> None:
    x = torch.randn(2, 3, *source)
    assert torch.equal(upsample_nearest(x, target), F.interpolate(x, size=target, mode="nearest"))


def test_select_channels_is_seeded_sorted_and_reproducible() -> None:
    a = select_channels(448, 100, seed=7)
    assert torch.equal(a, select_channels(448, 100, seed=7))
    assert not torch.equal(a, select_channels(448, 100, seed=8))
    assert len(a) == 100 and len(set(a.tolist())) == 100
    assert torch.equal(a, a.sort().values) and a.min() >= 0 and a.max() < 448
    expected = torch.randperm(448, generator=torch.Generator().manual_seed(7))[:100].sort().values
    assert torch.equal(a, expected)


def test_python_sampler_gives_the_baseline_subset() -> None:
    random.seed(1024)
    baseline = sorted(random.sample(range(1792), 550))  # the challenge baseline's draw
    assert select_channels(1792, 550, seed=1024, sampler="python").tolist() == baseline


def test_bad_n_features() -> None:
    with pytest.raises(ConfigError, match="n_features"):
        select_channels(10, 11, seed=0)


def test_embedding_equals_upsample_all_then_select() -> None:
    g = torch.Generator().manual_seed(0)
    maps = {"a": torch.randn(2, 5, 8, 8, generator=g), "b": torch.randn(2, 7, 4, 4, generator=g),
            "c": torch.randn(2, 9, 2, 2, generator=g)}
    embedding = PadimEmbedding(("a", "b", "c"), n_features=10, seed=3)
    out = embedding(maps)
    full = torch.cat([F.interpolate(m, size=(8, 8), mode="nearest") for m in maps.values()], 1)
    assert embedding.idx is not None
    assert torch.equal(out, torch.index_select(full, 1, embedding.idx))
    assert out.shape == (2, 10, 8, 8)


def test_embedding_checks_layers_and_channels() -> None:
    embedding = PadimEmbedding(("a", "b"), n_features=3, seed=0)
    with pytest.raises(ConfigError, match="lack"):
        embedding({"a": torch.zeros(1, 2, 4, 4)})
    embedding({"a": torch.zeros(1, 2, 4, 4), "b": torch.zeros(1, 2, 2, 2)})
    with pytest.raises(ConfigError, match="channels"):
        embedding({"a": torch.zeros(1, 3, 4, 4), "b": torch.zeros(1, 2, 2, 2)})


def test_classifier_features_default_layers(cnn, resnet18) -> None:
    assert ClassifierFeatures(cnn).layers == ("block1", "block2", "block3")
    assert ClassifierFeatures(resnet18).layers == ("layer1", "layer2", "layer3")


def test_classifier_features_checks_layer_names(cnn) -> None:
    with pytest.raises(ConfigError, match="not layers"):
        ClassifierFeatures(cnn, ("layer1",))
    maps = ClassifierFeatures(cnn, ("block1", "block3"))(torch.rand(2, 1, 32, 32))
    assert list(maps) == ["block1", "block3"]
    assert not maps["block1"].requires_grad
