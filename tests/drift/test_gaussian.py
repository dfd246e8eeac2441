"""The streaming Gaussian equals the batch computation; the distance equals its definition."""

from __future__ import annotations

import pytest
import torch

from vqc.drift.gaussian import (
    StreamingGaussian,
    cholesky_inverse,
    limit_threads,
    mahalanobis,
)


def _embeddings(n: int = 37, channels: int = 6, h: int = 3, w: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    mixing = torch.randn(channels, channels, generator=g)
    x = torch.randn(n, h, w, channels, generator=g) @ mixing  # correlated channels
    return (x.permute(0, 3, 1, 2) + 5.0).contiguous()  # an offset to test the centring


def _stacked_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (P, C) and torch.cov per position (P, C, C) over all stacked embeddings."""
    n, c = x.shape[:2]
    vectors = x.reshape(n, c, -1).double()
    mean = vectors.mean(dim=0).t()
    cov = torch.stack([torch.cov(vectors[:, :, p].t()) for p in range(vectors.shape[-1])])
    return mean, cov


@pytest.mark.timeout(60)
def test_streaming_equals_stacked_with_uneven_batches() -> None:
    x = _embeddings()
    gaussian = StreamingGaussian()
    start = 0
    for size in (3, 7, 1, 5, 0, 21):
        gaussian.update(x[start : start + size])
        start += size
    assert start == len(x) and gaussian.count == len(x)
    mean, cov = _stacked_stats(x)
    torch.testing.assert_close(gaussian.mean, mean, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(gaussian.covariance(), cov, rtol=1e-6, atol=1e-9)


@pytest.mark.timeout(60)
def test_merge_equals_one_pass() -> None:
    x = _embeddings()
    one, left, right = StreamingGaussian(), StreamingGaussian(), StreamingGaussian()
    one.update(x)
    left.update(x[:10])
    right.update(x[10:20])
    right.update(x[20:])
    merged = StreamingGaussian()
    merged.merge(left)
    merged.merge(right)
    assert merged.count == one.count
    torch.testing.assert_close(merged.mean, one.mean, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(merged.scatter, one.scatter, rtol=1e-9, atol=1e-9)


@pytest.mark.timeout(60)
def test_finalize_inverts_the_regularised_covariance() -> None:
    x = _embeddings()
    gaussian = StreamingGaussian()
    gaussian.update(x)
    stats = gaussian.finalize(eps=0.01)
    channels, positions = x.shape[1], x.shape[2] * x.shape[3]
    assert stats.mean.shape == (channels, positions)
    assert stats.inv_covariance.shape == (positions, channels, channels)
    assert stats.mean.dtype == stats.inv_covariance.dtype == torch.float32
    regularised = gaussian.covariance() + 0.01 * torch.eye(channels, dtype=torch.float64)
    product = stats.inv_covariance.double() @ regularised
    torch.testing.assert_close(product, torch.eye(channels, dtype=torch.float64).expand_as(product),
                               atol=1e-4, rtol=0)
    chunked = gaussian.finalize(eps=0.01, chunk_bytes=1)  # one position at a time
    torch.testing.assert_close(chunked.inv_covariance, stats.inv_covariance)


def test_cholesky_inverse_matches_inverse() -> None:
    g = torch.Generator().manual_seed(1)
    a = torch.randn(5, 8, 12, generator=g, dtype=torch.float64)
    spd = a @ a.mT / 12 + 0.1 * torch.eye(8, dtype=torch.float64)
    with limit_threads(1):
        expected = torch.linalg.inv(spd)
    torch.testing.assert_close(cholesky_inverse(spd), expected)


def test_limit_threads_restores() -> None:
    before = torch.get_num_threads()
    with limit_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_mahalanobis_matches_definition() -> None:
    g = torch.Generator().manual_seed(2)
    embedding = torch.randn(3, 4, 2, 5, generator=g)
    mean = torch.randn(4, 10, generator=g)
    a = torch.randn(10, 4, 4, generator=g)
    inv_cov = a @ a.mT + torch.eye(4)
    distances = mahalanobis(embedding, mean, inv_cov)
    assert distances.shape == (3, 2, 5)
    vectors = embedding.reshape(3, 4, 10)
    for b in range(3):
        for p in range(10):
            d = vectors[b, :, p] - mean[:, p]
            expected = torch.sqrt(d @ inv_cov[p] @ d)
            torch.testing.assert_close(distances[b].reshape(-1)[p], expected, rtol=1e-5, atol=1e-5)


def test_mahalanobis_rejects_other_shapes() -> None:
    with pytest.raises(ValueError, match="does not match"):
        mahalanobis(torch.zeros(1, 4, 2, 2), torch.zeros(4, 9), torch.zeros(9, 4, 4))


def test_state_round_trip_resumes() -> None:
    x = _embeddings()
    whole, part = StreamingGaussian(), StreamingGaussian()
    whole.update(x)
    part.update(x[:20])
    resumed = StreamingGaussian.from_state_dict(part.state_dict())
    resumed.update(x[20:])
    torch.testing.assert_close(resumed.covariance(), whole.covariance())
    assert StreamingGaussian.from_state_dict(StreamingGaussian().state_dict()).count == 0


def test_needs_two_images() -> None:
    gaussian = StreamingGaussian()
    gaussian.update(_embeddings(n=1))
    with pytest.raises(ValueError, match="at least 2"):
        gaussian.covariance()
