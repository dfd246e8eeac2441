"""Per-position multivariate Gaussians of PaDiM embeddings, fitted in one streaming pass.

anomalib's ``PadimModel`` keeps every training embedding (``N x C x H x W`` floats) and fits
the Gaussians at the end. :class:`StreamingGaussian` keeps only the count, the mean and the
centred scatter matrix of each position, merged batch by batch with Chan et al.'s parallel
update, in float64. Its memory is ``H*W * C * (C + 1)`` float64 values whatever the number of
images: 83 MB for 100 channels on a 32x32 map (resnet18, 128 px input), 2.5 GB for 550
channels on the same map (wide_resnet50_2).

The inverse covariance is computed with a Cholesky factorisation and a triangular solve. On
the CPUs this project runs on, batched ``torch.linalg.inv`` (which anomalib's
``MultiVariateGaussian.fit`` calls) hangs with more than one thread for matrices of about
200x200 and larger, and batched ``torch.cholesky_inverse`` is 10-25x slower than the
triangular solve used here.

Layouts follow anomalib's so its ``AnomalyMapGenerator`` can use the results directly:
mean ``(C, H*W)``, inverse covariance ``(H*W, C, C)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

#: Added to the covariance diagonal before inversion (anomalib's PaDiM uses 0.01, then 1e-5).
DEFAULT_EPS = 0.01


@contextmanager
def limit_threads(n: int = 1) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``, restoring the previous value after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass
class GaussianStats:
    """A fitted Gaussian per position: ``mean (C, P)``, ``inv_covariance (P, C, C)``, float32."""

    mean: torch.Tensor
    inv_covariance: torch.Tensor
    count: int

    @property
    def channels(self) -> int:
        return int(self.mean.shape[0])

    @property
    def positions(self) -> int:
        return int(self.mean.shape[1])

    def to(self, device: torch.device | str) -> GaussianStats:
        return GaussianStats(self.mean.to(device), self.inv_covariance.to(device), self.count)

    def nbytes(self) -> int:
        return sum(t.element_size() * t.numel() for t in (self.mean, self.inv_covariance))


def _positions_first(embedding: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``(B, C, H, W)`` -> contiguous ``(H*W, B, C)``: one small matrix per position."""
    batch, channels = embedding.shape[:2]
    return embedding.reshape(batch, channels, -1).permute(2, 0, 1).to(dtype).contiguous()


class StreamingGaussian:
    """Running count, mean and centred scatter of ``(B, C, H, W)`` embeddings, per position.

    ``update`` folds in one batch at a time (any batch size, even 1); ``merge`` combines two
    accumulators (e.g. one per die into a global one). Accumulation is in ``dtype`` (float64
    by default) so the result matches a covariance computed over all stacked embeddings.
    """

    def __init__(self, dtype: torch.dtype = torch.float64) -> None:
        self.dtype = dtype
        self.count = 0
        #: ``(P, C)`` running mean, position-major.
        self.mean: torch.Tensor | None = None
        #: ``(P, C, C)`` sum of centred outer products.
        self.scatter: torch.Tensor | None = None

    @property
    def shape(self) -> tuple[int, int] | None:
        """``(positions, channels)`` once something was added."""
        if self.mean is None:
            return None
        return int(self.mean.shape[0]), int(self.mean.shape[1])

    def nbytes(self) -> int:
        return sum(t.element_size() * t.numel() for t in (self.mean, self.scatter) if t is not None)

    @torch.no_grad()
    def update(self, embedding: torch.Tensor) -> None:
        """Add a batch of embeddings ``(B, C, H, W)``."""
        if embedding.ndim != 4:
            raise ValueError(f"expected an embedding (B, C, H, W), got {tuple(embedding.shape)}")
        n = int(embedding.shape[0])
        if n == 0:
            return
        x = _positions_first(embedding.detach(), self.dtype)  # (P, n, C)
        batch_mean = x.mean(dim=1)  # (P, C)
        centred = x - batch_mean.unsqueeze(1)
        if self.scatter is None or self.mean is None:
            self.count, self.mean = n, batch_mean
            self.scatter = torch.bmm(centred.transpose(1, 2), centred)  # (P, C, C)
            return
        self._check(batch_mean)
        self._shift(n, batch_mean)
        self.scatter.baddbmm_(centred.transpose(1, 2), centred)  # in place: no (P, C, C) copy

    def merge(self, other: StreamingGaussian) -> None:
        """Fold in another accumulator's images (Chan et al.'s pairwise update)."""
        if other.count == 0 or other.mean is None or other.scatter is None:
            return
        if self.mean is None or self.scatter is None:
            self.count = other.count
            self.mean = other.mean.to(self.dtype, copy=True)
            self.scatter = other.scatter.to(self.dtype, copy=True)
            return
        self._check(other.mean)
        self._shift(other.count, other.mean.to(self.dtype))
        self.scatter.add_(other.scatter.to(self.scatter.device, self.dtype))

    def _check(self, mean: torch.Tensor) -> None:
        assert self.mean is not None
        if mean.shape != self.mean.shape:
            raise ValueError(
                f"embedding of {mean.shape[1]} channels at {mean.shape[0]} positions does not "
                f"match the {self.mean.shape[1]} channels at {self.mean.shape[0]} positions "
                "accumulated so far (same layers, channels and input size are needed)"
            )

    def _shift(self, n: int, mean: torch.Tensor) -> None:
        """Move the mean to include ``n`` images of mean ``mean``; add the between-group term
        ``delta delta^T * n_a n_b / (n_a + n_b)`` to the scatter (the caller adds theirs)."""
        assert self.mean is not None and self.scatter is not None
        total = self.count + n
        delta = mean.to(self.mean.device) - self.mean  # (P, C)
        weight = self.count * n / total
        self.mean.add_(delta, alpha=n / total)
        self.scatter.baddbmm_(delta.unsqueeze(2), delta.unsqueeze(1), alpha=weight)
        self.count = total

    def covariance(self) -> torch.Tensor:
        """Unbiased covariance ``(P, C, C)`` (divided by ``count - 1``), in ``dtype``."""
        if self.scatter is None or self.count < 2:
            raise ValueError(f"a covariance needs at least 2 images, got {self.count}")
        return self.scatter / (self.count - 1)

    def finalize(self, eps: float = DEFAULT_EPS, chunk_bytes: int = 16 << 20,
                 out: torch.Tensor | None = None) -> GaussianStats:
        """Mean ``(C, P)`` and inverse of ``covariance + eps * I`` ``(P, C, C)``, as float32.

        Positions are inverted in chunks of about ``chunk_bytes`` so the float64 temporaries
        stay small beside the accumulator. ``out``: a float32 ``(P, C, C)`` tensor to write the
        inverse into (e.g. a slice of a detector's buffer), instead of a new one.
        """
        if self.mean is None or self.scatter is None or self.count < 2:
            raise ValueError(f"a covariance needs at least 2 images, got {self.count}")
        positions, channels = self.mean.shape
        inverse = out if out is not None else torch.empty(
            positions, channels, channels, dtype=torch.float32, device=self.scatter.device)
        step = max(1, chunk_bytes // (channels * channels * self.scatter.element_size()))
        for start in range(0, positions, step):
            covariance = self.scatter[start : start + step] / (self.count - 1)
            covariance.diagonal(dim1=-2, dim2=-1).add_(eps)
            inverse[start : start + step] = symmetric(cholesky_inverse(covariance))
        return GaussianStats(
            mean=self.mean.t().to(torch.float32).contiguous(),
            inv_covariance=inverse,
            count=self.count,
        )

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Plain tensors (safetensors-compatible) to resume accumulating later."""
        if self.mean is None or self.scatter is None:
            return {"count": torch.tensor(0, dtype=torch.int64)}
        return {
            "count": torch.tensor(self.count, dtype=torch.int64),
            "mean": self.mean,
            "scatter": self.scatter,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> StreamingGaussian:
        gaussian = cls()
        gaussian.count = int(state["count"])
        if gaussian.count:
            gaussian.mean = state["mean"].clone()
            gaussian.scatter = state["scatter"].clone()
            gaussian.dtype = gaussian.mean.dtype
        return gaussian


def cholesky_inverse(matrices: torch.Tensor) -> torch.Tensor:
    """Inverse of symmetric positive definite matrices ``(..., C, C)``.

    ``A = L L^T`` gives ``A^-1 = L^-T L^-1``; ``L^-1`` comes from a triangular solve.
    """
    lower = torch.linalg.cholesky(matrices)
    identity = torch.eye(matrices.shape[-1], dtype=matrices.dtype, device=matrices.device)
    lower_inv = torch.linalg.solve_triangular(lower, identity.expand_as(lower), upper=False)
    return lower_inv.transpose(-2, -1) @ lower_inv


def symmetric(matrices: torch.Tensor) -> torch.Tensor:
    """``matrices`` made exactly symmetric: the upper triangle mirrored onto the lower one.

    An inverse computed in floating point is symmetric only to rounding; made exactly so, it
    is stored as its upper triangle (:func:`pack_upper`) and read back bit for bit.
    """
    upper = torch.triu(matrices)
    return upper + torch.triu(matrices, diagonal=1).transpose(-2, -1)


def pack_upper(matrices: torch.Tensor) -> torch.Tensor:
    """The upper triangles ``(..., C*(C+1)/2)`` of ``(..., C, C)`` matrices, row by row."""
    channels = matrices.shape[-1]
    rows, cols = torch.triu_indices(channels, channels, device=matrices.device)
    return matrices[..., rows, cols].contiguous()


def unpack_upper(packed: torch.Tensor) -> torch.Tensor:
    """The symmetric matrices ``(..., C, C)`` whose upper triangles :func:`pack_upper` gave."""
    size = packed.shape[-1]
    channels = round(((8 * size + 1) ** 0.5 - 1) / 2)
    if channels * (channels + 1) // 2 != size:
        raise ValueError(f"{size} values are not the upper triangle of a square matrix")
    rows, cols = torch.triu_indices(channels, channels, device=packed.device)
    out = packed.new_zeros((*packed.shape[:-1], channels, channels))
    out[..., rows, cols] = packed
    out[..., cols, rows] = packed
    return out


def mahalanobis(
    embedding: torch.Tensor, mean: torch.Tensor, inv_covariance: torch.Tensor
) -> torch.Tensor:
    """Mahalanobis distance of each position's embedding to its Gaussian: ``(B, H, W)``.

    ``embedding (B, C, H, W)``, ``mean (C, H*W)``, ``inv_covariance (H*W, C, C)``; the same
    value as anomalib's ``AnomalyMapGenerator.compute_distance`` (square root of the clamped
    quadratic form). The deltas are made contiguous position-major before the batched matmul.
    """
    batch, channels, height, width = embedding.shape
    if mean.shape != (channels, height * width):
        raise ValueError(
            f"embedding {tuple(embedding.shape)} does not match a Gaussian fitted on "
            f"{mean.shape[0]} channels at {mean.shape[1]} positions"
        )
    inv_covariance = inv_covariance.to(embedding.dtype)
    delta = (embedding.reshape(batch, channels, -1) - mean.to(embedding.dtype)).permute(2, 0, 1)
    delta = delta.contiguous()  # (P, B, C)
    quadratic = (torch.bmm(delta, inv_covariance) * delta).sum(dim=-1)  # (P, B)
    return quadratic.t().reshape(batch, height, width).clamp(min=0).sqrt()
