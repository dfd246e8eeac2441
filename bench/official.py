"""The challenge's official two-network baseline, re-implemented for timing only.

Classifier: timm ``resnest50d`` (6 classes) on the strip resized to 224x224, gray repeated to
3 channels, no normalisation, softmax. Drift: PaDiM on ``wide_resnet50_2`` layers 1-3
(256 + 512 + 1024 = 1792 channels, 550 kept at random with seed 1024) at 128x128, as
anomalib's ``PadimModel`` runs it in eval mode: every layer upsampled (nearest) to layer1's
size, all 1792 channels concatenated, ``index_select`` of the 550, Mahalanobis distance per
position, bilinear upsampling to the input size, Gaussian blur (sigma 4, kernel 33, reflect
padding), max over the map. The score is min-max normalised with the lowest and highest
scores of the training images (clamped to [0, 1]); the decision is Drift (6) when that
"drift probability" exceeds 0.5, else the classifier's argmax.

Two interchangeable PaDiM implementations: ``use_anomalib=True`` runs anomalib's own
``PadimModel`` (anomalib imported lazily; its Gaussian fitted by anomalib with one thread,
since batched ``torch.linalg.inv`` hangs here with more); the default is plain
torch + timm doing the same operations, with the Gaussian fitted by
:class:`vqc.drift.gaussian.StreamingGaussian` (same ``covariance + 0.01001 * I``), so it runs
wherever timm does, CUDA included.

Weights are random (``pretrained=False``): this module measures cost, not accuracy.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import timm

from vqc.drift.gaussian import StreamingGaussian, limit_threads
from vqc.drift.smoothing import gaussian_kernel1d

NUM_CLASSES = 6
DRIFT_CLASS = 6
DRIFT_THRESHOLD = 0.5
BACKBONE = "wide_resnet50_2"
LAYERS = ("layer1", "layer2", "layer3")
#: timm ``features_only`` indices of layer1-3 (index 0 is the stem's ``act1``).
OUT_INDICES = (1, 2, 3)
N_FEATURES = 550
CHANNEL_SEED = 1024
SIGMA = 4.0
#: anomalib adds ``0.01 * I`` to each covariance, then ``1e-5 * I`` before inverting.
COVARIANCE_EPS = 0.01 + 1e-5
#: anomalib's default pre-processing normalises PaDiM inputs with ImageNet statistics.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FIT_BATCH = 16

Sampler = Literal["python", "torch"]


def official_channels(
    total: int = 1792, n_features: int = N_FEATURES, seed: int = CHANNEL_SEED,
    sampler: Sampler = "python",
) -> torch.Tensor:
    """The ``n_features`` channel indices PaDiM keeps out of ``total``, in draw order.

    ``"python"``: ``random.seed(seed); random.sample(range(total), n_features)``, the draw of
    the original PaDiM code and of anomalib before 1.x (run after ``seed_everything``).
    ``"torch"``: ``torch.randperm(total)[:n_features]`` from a generator seeded with ``seed``,
    the call anomalib 2.x makes (it uses the global generator after building the backbone,
    so its subset depends on everything drawn before).
    """
    if sampler == "python":
        return torch.tensor(random.Random(seed).sample(range(total), n_features), dtype=torch.int64)
    if sampler == "torch":
        generator = torch.Generator().manual_seed(seed)
        return torch.randperm(total, generator=generator)[:n_features]
    raise ValueError(f"sampler must be 'python' or 'torch', got {sampler!r}")


def gaussian_kernel2d(sigma: float = SIGMA) -> torch.Tensor:
    """kornia's normalised 2-D Gaussian, ``(1, 1, k, k)`` with ``k = 2 * int(4 sigma + .5) + 1``."""
    kernel1d = gaussian_kernel1d(sigma)
    kernel = torch.outer(kernel1d, kernel1d)
    return (kernel / kernel.abs().sum()).view(1, 1, len(kernel1d), len(kernel1d))


def _three_channels(images: torch.Tensor) -> torch.Tensor:
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images (B, 1 or 3, H, W), got {tuple(images.shape)}")
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of a batch to ``size x size`` (no antialiasing), gray repeated to RGB."""
    images = images.float()
    if tuple(images.shape[-2:]) != (size, size):
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                               antialias=False)
    return _three_channels(images)


class TorchPadim(nn.Module):
    """anomalib's ``PadimModel`` inference in plain torch + timm: input -> anomaly map."""

    def __init__(self, n_features: int = N_FEATURES, sigma: float = SIGMA,
                 seed: int = CHANNEL_SEED, sampler: Sampler = "python") -> None:
        super().__init__()
        self.feature_net = timm.create_model(BACKBONE, pretrained=False, features_only=True,
                                             exportable=True, out_indices=OUT_INDICES).eval()
        total = sum(self.feature_net.feature_info.channels())
        self.register_buffer("idx", official_channels(total, n_features, seed, sampler))
        self.register_buffer("mean", torch.empty(0))
        self.register_buffer("inv_covariance", torch.empty(0))
        self.register_buffer("kernel", gaussian_kernel2d(sigma))
        self.idx: torch.Tensor
        self.mean: torch.Tensor
        self.inv_covariance: torch.Tensor
        self.kernel: torch.Tensor

    def generate_embedding(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> ``(B, n_features, H/4, W/4)``: upsample, concatenate, select."""
        features = self.feature_net(images)
        embeddings = features[0]
        for layer in features[1:]:
            layer = F.interpolate(layer, size=embeddings.shape[-2:], mode="nearest")
            embeddings = torch.cat((embeddings, layer), 1)
        return torch.index_select(embeddings, 1, self.idx)

    def set_gaussian(self, mean: torch.Tensor, inv_covariance: torch.Tensor) -> None:
        """Mean ``(C, P)`` and inverse covariance ``(P, C, C)``, anomalib's layouts."""
        self.mean = mean.to(self.idx.device, torch.float32)
        self.inv_covariance = inv_covariance.to(self.idx.device, torch.float32)

    @torch.no_grad()
    def fit(self, batches: Sequence[torch.Tensor]) -> None:
        """Fit the per-position Gaussians on preprocessed ``(B, 3, H, W)`` batches."""
        gaussian = StreamingGaussian(torch.float64)
        for batch in batches:
            gaussian.update(self.generate_embedding(batch))
        stats = gaussian.finalize(eps=COVARIANCE_EPS)
        self.set_gaussian(stats.mean, stats.inv_covariance)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Anomaly map ``(B, 1, H, W)`` of preprocessed images ``(B, 3, H, W)``."""
        if self.mean.numel() == 0:
            raise RuntimeError("the PaDiM Gaussian is not fitted: call fit_drift first")
        embedding = self.generate_embedding(images)
        batch, channels, height, width = embedding.shape
        delta = (embedding.reshape(batch, channels, height * width) - self.mean).permute(2, 0, 1)
        distances = (torch.matmul(delta, self.inv_covariance) * delta).sum(2).permute(1, 0)
        distances = distances.reshape(batch, 1, height, width).clamp(0).sqrt()
        distances = F.interpolate(distances, size=images.shape[-2:], mode="bilinear",
                                  align_corners=False)
        pad = self.kernel.shape[-1] // 2
        padded = F.pad(distances, (pad, pad, pad, pad), mode="reflect")
        return F.conv2d(padded, self.kernel)


class AnomalibPadim(nn.Module):
    """anomalib's own ``PadimModel`` (eval mode) behind :class:`TorchPadim`'s interface."""

    def __init__(self, n_features: int = N_FEATURES, sigma: float = SIGMA,
                 seed: int = CHANNEL_SEED, sampler: Sampler = "python") -> None:
        super().__init__()
        try:
            from anomalib.models.image.padim.anomaly_map import AnomalyMapGenerator
            from anomalib.models.image.padim.torch_model import PadimModel
        except ImportError as error:
            raise ImportError(
                "use_anomalib=True needs anomalib (pip install anomalib); "
                "use_anomalib=False runs the same operations in plain torch"
            ) from error
        self.model = PadimModel(backbone=BACKBONE, layers=list(LAYERS), pre_trained=False,
                                n_features=n_features)
        self.model.anomaly_map_generator = AnomalyMapGenerator(sigma=int(sigma))
        total = self.model.n_features_original
        self.model.idx = official_channels(total, n_features, seed, sampler)
        self.model.eval()

    @property
    def feature_net(self) -> nn.Module:
        """The timm ``features_only`` backbone (same state-dict layout as TorchPadim's)."""
        return self.model.feature_extractor.feature_extractor

    @property
    def idx(self) -> torch.Tensor:
        return self.model.idx

    @property
    def mean(self) -> torch.Tensor:
        return self.model.gaussian.mean

    @property
    def inv_covariance(self) -> torch.Tensor:
        return self.model.gaussian.inv_covariance

    def generate_embedding(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model.generate_embedding(self.model.feature_extractor(images))

    def set_gaussian(self, mean: torch.Tensor, inv_covariance: torch.Tensor) -> None:
        device = self.model.idx.device
        self.model.gaussian.mean = mean.to(device, torch.float32)
        self.model.gaussian.inv_covariance = inv_covariance.to(device, torch.float32)

    @torch.no_grad()
    def fit(self, batches: Sequence[torch.Tensor]) -> None:
        """anomalib's fit: fill the memory bank in train mode, then ``gaussian.fit``."""
        self.model.train()
        try:
            for batch in batches:
                self.model(batch)
            with limit_threads(1):  # batched torch.linalg.inv hangs with more threads here
                self.model.fit()
        finally:
            self.model.memory_bank = []
            self.model.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.model.gaussian.mean.numel() == 0:
            raise RuntimeError("the PaDiM Gaussian is not fitted: call fit_drift first")
        if self.model.training:
            self.model.eval()  # in train mode PadimModel stores embeddings instead
        return self.model(images).anomaly_map


class OfficialPipeline(nn.Module):
    """Official baseline: resnest50d classifier + PaDiM drift gate (Drift when p > 0.5).

    Input: preprocessed float strips ``(B, 1 or 3, H, W)`` in [0, 1], any size; each branch
    resizes the batch itself (bilinear, no antialiasing). ``forward`` returns ``(B,)`` int64
    decisions in 0..6. ``drift_size`` must exceed 16 (the blur's reflect padding).
    """

    def __init__(self, use_anomalib: bool = False, classifier_size: int = 224,
                 drift_size: int = 128) -> None:
        super().__init__()
        self.classifier_size = classifier_size
        self.drift_size = drift_size
        self.use_anomalib = use_anomalib
        self.classifier = timm.create_model("resnest50d", pretrained=False,
                                            num_classes=NUM_CLASSES).eval()
        self.padim: TorchPadim | AnomalibPadim = (AnomalibPadim() if use_anomalib
                                                  else TorchPadim())
        self.register_buffer("image_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("image_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.register_buffer("score_min", torch.tensor(math.nan))
        self.register_buffer("score_max", torch.tensor(math.nan))
        self.fitted = False
        self.image_mean: torch.Tensor
        self.image_std: torch.Tensor
        self.score_min: torch.Tensor
        self.score_max: torch.Tensor

    def _drift_input(self, images: torch.Tensor) -> torch.Tensor:
        return (_resize(images, self.drift_size) - self.image_mean) / self.image_std

    def _raw_scores(self, images: torch.Tensor) -> torch.Tensor:
        anomaly_map = self.padim(self._drift_input(images))
        return torch.amax(anomaly_map, dim=(-2, -1)).reshape(-1)

    @torch.no_grad()
    def fit_drift(self, images: torch.Tensor) -> None:
        """Fit the PaDiM Gaussians and the min/max of the training scores on ``images``."""
        if images.shape[0] < 2:
            raise ValueError("fit_drift needs at least 2 images")
        batches = [self._drift_input(images[i : i + FIT_BATCH])
                   for i in range(0, images.shape[0], FIT_BATCH)]
        self.padim.fit(batches)
        was_training = self.training
        self.eval()
        scores = torch.cat([torch.amax(self.padim(batch), dim=(-2, -1)).reshape(-1)
                            for batch in batches])
        self.train(was_training)
        self.score_min = scores.min().to(torch.float32)
        self.score_max = scores.max().to(torch.float32)
        self.fitted = True

    @torch.inference_mode()
    def classifier_forward(self, images: torch.Tensor) -> torch.Tensor:
        """Bare resnest50d logits ``(B, 6)``, resize included."""
        return self.classifier(_resize(images, self.classifier_size))

    @torch.inference_mode()
    def drift_scores(self, images: torch.Tensor) -> torch.Tensor:
        """Drift probabilities ``(B,)``: max of the anomaly map, min-max normalised, in [0, 1]."""
        if not self.fitted:  # a Python flag: no device sync per batch
            raise RuntimeError("the drift detector is not fitted: call fit_drift first")
        span = (self.score_max - self.score_min).clamp_min(torch.finfo(torch.float32).tiny)
        return ((self._raw_scores(images) - self.score_min) / span).clamp(0.0, 1.0)

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Decisions ``(B,)`` int64: 6 (Drift) when the drift probability > 0.5, else argmax."""
        probabilities = torch.softmax(self.classifier_forward(images), dim=1)
        drift = self.drift_scores(images)
        decisions = probabilities.argmax(dim=1)
        return torch.where(drift > DRIFT_THRESHOLD, torch.full_like(decisions, DRIFT_CLASS),
                           decisions)

    @torch.no_grad()
    def copy_from(self, other: OfficialPipeline) -> None:
        """Take ``other``'s weights, channel subset, Gaussian and score range (either path)."""
        self.classifier.load_state_dict(other.classifier.state_dict())
        self.padim.feature_net.load_state_dict(other.padim.feature_net.state_dict())
        self.padim.idx.copy_(other.padim.idx)
        self.padim.set_gaussian(other.padim.mean, other.padim.inv_covariance)
        self.score_min = other.score_min.clone()
        self.score_max = other.score_max.clone()
        self.fitted = other.fitted


def build_official(device: str = "cpu", use_anomalib: bool = False, fit_images: int = 32,
                   seed: int = 0, classifier_size: int = 224,
                   drift_size: int = 128) -> OfficialPipeline:
    """An :class:`OfficialPipeline` with random weights, fitted on ``fit_images`` random gray
    images, in eval mode on ``device``."""
    torch.manual_seed(seed)
    pipeline = OfficialPipeline(use_anomalib, classifier_size, drift_size).to(device).eval()
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(fit_images, 1, drift_size, drift_size, generator=generator)
    pipeline.fit_drift(images.to(device))
    return pipeline.eval()
