"""Tiny normal and anomalous images and small random-init networks for the drift tests."""

from __future__ import annotations

import pytest
import torch

from vqc.models import Classifier, build_model

SIZE = 32


def normal_images(n: int, generator: torch.Generator, size: int = SIZE) -> torch.Tensor:
    """Gray noise around 0.5."""
    return (0.5 + 0.1 * torch.randn(n, 1, size, size, generator=generator)).clamp(0, 1)


def anomalous_images(n: int, generator: torch.Generator, size: int = SIZE) -> torch.Tensor:
    """Normal images with an 8x8 patch made white (odd rows) or inverted and darkened (even)."""
    images = normal_images(n, generator, size)
    for i in range(n):
        r, c = torch.randint(0, size - 8, (2,), generator=generator).tolist()
        patch = images[i, :, r : r + 8, c : c + 8]
        images[i, :, r : r + 8, c : c + 8] = 1.0 if i % 2 else (0.6 - patch).clamp(0, 1)
    return images


def batches(images: torch.Tensor, sizes: list[int], codes: torch.Tensor | None = None,
            libs: list[str] | None = None) -> list[tuple]:
    """Split into batches of uneven ``sizes`` as ``(images, codes[, libs])``."""
    codes = torch.zeros(len(images), dtype=torch.int64) if codes is None else codes
    out, start = [], 0
    for size in sizes:
        end = start + size
        item = (images[start:end], codes[start:end])
        out.append(item if libs is None else (*item, libs[start:end]))
        start = end
    assert start == len(images)
    return out


@pytest.fixture(scope="session")
def cnn() -> Classifier:
    torch.manual_seed(0)
    return build_model("cnn", num_classes=3, depth=3, width=8).eval()


@pytest.fixture(scope="session")
def resnet18() -> Classifier:
    torch.manual_seed(0)
    return build_model("resnet18", num_classes=3, in_channels=1).eval()
