"""Shared ResNet fixtures (built once per test session: ResNet-101 takes a while on CPU)."""

from __future__ import annotations

import pytest

from vqc.models import Classifier, build_model


@pytest.fixture(scope="session")
def resnet50_timm() -> Classifier:
    return build_model("resnet50", num_classes=6, in_channels=1, source="timm")


@pytest.fixture(scope="session")
def resnet101_torchvision() -> Classifier:
    return build_model("resnet101", num_classes=6, in_channels=1, source="torchvision")
