"""The drift detector: PaDiM Gaussians of known-class images; score = max Mahalanobis distance.

``fit`` streams over training batches once (memory independent of the number of images),
``score`` gives one number per image, ``anomaly_map`` the map it is the maximum of, and
``calibrate`` sets the threshold from validation scores. See ``docs/DRIFT.md``.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from vqc.drift.features import FeatureSource, PadimEmbedding, Sampler
from vqc.drift.gaussian import DEFAULT_EPS, GaussianStats, StreamingGaussian, mahalanobis
from vqc.drift.smoothing import gaussian_blur, resize_bilinear
from vqc.drift.threshold import DEFAULT_TARGET_RATE, DriftThreshold, Method, fit_threshold
from vqc.errors import ConfigError, DataError

log = logging.getLogger(__name__)

FitOn = Literal["all", "good", "per_lib", "good_per_lib"]
FIT_ON: tuple[str, ...] = ("all", "good", "per_lib", "good_per_lib")
#: Key of the Gaussian fitted on every selected image (the fallback for unknown libs).
GLOBAL = "*"

Inputs = torch.Tensor | dict[str, torch.Tensor]


@dataclass(frozen=True)
class DriftConfig:
    """What defines a detector (saved beside its tensors).

    ``fit_on``: ``all`` known-class images, ``good`` (only ``good_code``), ``per_lib`` (one
    Gaussian per lib, plus a global one for libs never seen), ``good_per_lib`` (both).
    ``sigma``: Gaussian smoothing of the map before the maximum (0: none), in pixels of the map,
    or of the input image when ``upsample`` (the map is first resized to the image, as anomalib
    and the challenge baseline do with ``sigma=4``).
    """

    layers: tuple[str, ...] = ("layer1", "layer2", "layer3")
    n_features: int = 100
    seed: int = 1024
    sampler: Sampler = "torch"
    fit_on: FitOn = "all"
    good_code: int = 0
    eps: float = DEFAULT_EPS
    sigma: float = 0.0
    upsample: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        if self.fit_on not in FIT_ON:
            raise ConfigError(f"drift.fit_on={self.fit_on!r} is not one of {list(FIT_ON)}")
        if self.sigma < 0:
            raise ConfigError(f"drift.sigma must be >= 0, got {self.sigma!r}")
        if self.eps <= 0:
            raise ConfigError(f"drift.eps must be > 0, got {self.eps!r}")

    @property
    def good_only(self) -> bool:
        return self.fit_on in ("good", "good_per_lib")

    @property
    def per_lib(self) -> bool:
        return self.fit_on in ("per_lib", "good_per_lib")


class DriftDetector:
    """PaDiM over a feature source; inputs are images ``(B, C, H, W)`` or maps by layer name.

    ``source`` may be ``None`` when only maps are passed (e.g. from
    :func:`~vqc.drift.features.forward_with_maps`, the shared backbone).
    """

    def __init__(
        self,
        source: FeatureSource | None = None,
        config: DriftConfig | None = None,
        threshold: DriftThreshold | None = None,
        **options: Any,
    ) -> None:
        if config is None:
            if "layers" not in options and source is not None:
                options["layers"] = tuple(source.layers)
            config = DriftConfig(**options)
        elif options:
            raise ConfigError(f"pass either config or options, not both: {sorted(options)}")
        if source is not None and tuple(source.layers) != config.layers:
            raise ConfigError(
                f"drift.layers {list(config.layers)} differ from the feature source's "
                f"{list(source.layers)}"
            )
        self.source = source
        self.config = config
        self.embedding = PadimEmbedding(config.layers, config.n_features, config.seed,
                                        config.sampler)
        self.gaussians: dict[str, GaussianStats] = {}
        self.threshold = threshold

    # -- features ---------------------------------------------------------------------------
    def feature_maps(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        if isinstance(inputs, dict):
            return inputs
        if self.source is None:
            raise ConfigError("this drift detector has no feature source: pass feature maps")
        return self.source(inputs)

    @torch.no_grad()
    def embed(self, inputs: Inputs) -> torch.Tensor:
        """PaDiM embedding ``(B, n_features, H, W)``."""
        maps = {name: m.detach() for name, m in self.feature_maps(inputs).items()}
        return self.embedding(maps)

    # -- fitting ----------------------------------------------------------------------------
    @torch.no_grad()
    def fit(self, batches: Iterable[Sequence[Any]]) -> DriftDetector:
        """Fit on ``(inputs, codes)`` or ``(inputs, codes, libs)`` batches, in one pass.

        ``codes`` are class codes (used with ``fit_on=good``), ``libs`` the die of each image
        (needed with ``per_lib``). Only a running mean and covariance per position are kept.
        """
        config = self.config
        accumulators: dict[str, StreamingGaussian] = {}
        seen = 0
        for batch in batches:
            inputs, codes = batch[0], torch.as_tensor(batch[1]).reshape(-1)
            libs = _libs_of(batch, len(codes), required=config.per_lib)
            keep = (codes == config.good_code) if config.good_only else torch.ones_like(
                codes, dtype=torch.bool)
            if not bool(keep.any()):
                continue
            embedding = self.embed(_rows(inputs, keep))
            seen += int(keep.sum())
            if not config.per_lib:
                accumulators.setdefault(GLOBAL, StreamingGaussian()).update(embedding)
                continue
            kept_libs = [lib for lib, k in zip(libs, keep.tolist(), strict=True) if k]
            for lib in dict.fromkeys(kept_libs):
                rows = torch.tensor([name == lib for name in kept_libs], device=embedding.device)
                accumulators.setdefault(lib, StreamingGaussian()).update(embedding[rows])
        if seen < 2:
            what = "GOOD images" if config.good_only else "images"
            raise DataError(f"drift detector: {seen} {what} to fit on, at least 2 are needed")
        if config.per_lib:
            overall = StreamingGaussian()
            for acc in accumulators.values():
                overall.merge(acc)
            accumulators[GLOBAL] = overall
        self.gaussians = {}
        for key, acc in accumulators.items():
            if acc.count < 2:
                warnings.warn(f"drift detector: lib {key!r} has {acc.count} image(s); "
                              "it is scored with the global Gaussian", stacklevel=2)
                continue
            self.gaussians[key] = acc.finalize(config.eps)
        log.info("drift detector fitted on %d images (%s)", seen,
                 ", ".join(f"{k}: {g.count}" for k, g in self.gaussians.items()))
        return self

    @property
    def fitted(self) -> bool:
        return GLOBAL in self.gaussians

    # -- scoring ----------------------------------------------------------------------------
    @torch.no_grad()
    def distance_map(self, inputs: Inputs, libs: Sequence[str] | None = None) -> torch.Tensor:
        """Mahalanobis distance per position ``(B, H, W)`` at the first layer's resolution."""
        if not self.fitted:
            raise ConfigError("the drift detector is not fitted: call fit() or load a state")
        embedding = self.embed(inputs)
        batch = embedding.shape[0]
        if libs is None or not self.config.per_lib:
            stats = self.gaussians[GLOBAL]
            return mahalanobis(embedding, stats.mean, stats.inv_covariance)
        if len(libs) != batch:
            raise ConfigError(f"{batch} images but {len(libs)} libs")
        keys = [str(lib) if str(lib) in self.gaussians else GLOBAL for lib in libs]
        out = embedding.new_empty((batch, *embedding.shape[-2:]))
        for key in dict.fromkeys(keys):
            rows = torch.tensor([k == key for k in keys], device=embedding.device)
            stats = self.gaussians[key]
            out[rows] = mahalanobis(embedding[rows], stats.mean, stats.inv_covariance)
        return out

    def anomaly_map(
        self,
        inputs: Inputs,
        libs: Sequence[str] | None = None,
        image_size: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Distance map, resized to the image when ``upsample``, smoothed when ``sigma > 0``."""
        distances = self.distance_map(inputs, libs)
        if self.config.upsample:
            if image_size is None:
                if isinstance(inputs, dict):
                    raise ConfigError("drift.upsample needs image_size when feature maps are given")
                image_size = inputs.shape[-2:]
            distances = resize_bilinear(distances, image_size)
        return gaussian_blur(distances, self.config.sigma)

    def score(
        self,
        inputs: Inputs,
        libs: Sequence[str] | None = None,
        image_size: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Drift score per image ``(B,)``: the maximum of :meth:`anomaly_map`."""
        return self.anomaly_map(inputs, libs, image_size).amax(dim=(-2, -1))

    def is_drift(
        self,
        inputs: Inputs,
        libs: Sequence[str] | None = None,
        image_size: Sequence[int] | None = None,
    ) -> torch.Tensor:
        if self.threshold is None:
            raise ConfigError("the drift detector has no threshold: call calibrate()")
        return self.threshold.is_drift(self.score(inputs, libs, image_size), libs)

    def score_batches(
        self, batches: Iterable[Sequence[Any]]
    ) -> tuple[torch.Tensor, torch.Tensor, list[str] | None]:
        """Scores, codes and libs (``None`` when batches carry none) over a whole loader."""
        scores, codes, libs = [], [], []
        with_libs = True
        for batch in batches:
            batch_codes = torch.as_tensor(batch[1]).reshape(-1)
            batch_libs = _libs_of(batch, len(batch_codes), required=False)
            with_libs = with_libs and batch_libs is not None
            scores.append(self.score(batch[0], batch_libs).cpu())
            codes.append(batch_codes.cpu())
            libs.extend(batch_libs or [])
        if not scores:
            raise DataError("no batches to score")
        return torch.cat(scores), torch.cat(codes), (libs if with_libs else None)

    def calibrate(
        self,
        batches: Iterable[Sequence[Any]],
        target_rate: float = DEFAULT_TARGET_RATE,
        per_lib: bool = False,
        method: Method = "auto",
        drift_code: int | None = None,
    ) -> DriftThreshold:
        """Set :attr:`threshold` from validation batches (see :func:`fit_threshold`).

        Images of ``drift_code`` count as drift examples; all others as in-distribution.
        """
        scores, codes, libs = self.score_batches(batches)
        is_drift = None if drift_code is None else codes == drift_code
        self.threshold = fit_threshold(scores, libs, is_drift, target_rate, per_lib, method)
        return self.threshold

    # -- state ------------------------------------------------------------------------------
    def to(self, device: torch.device | str) -> DriftDetector:
        self.gaussians = {key: stats.to(device) for key, stats in self.gaussians.items()}
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors only: channel indices and each Gaussian's mean, inverse covariance, count."""
        if self.embedding.idx is None:
            raise ConfigError("the drift detector is not fitted: nothing to save")
        state = {"idx": self.embedding.idx.clone()}
        for key, stats in self.gaussians.items():
            state[f"gaussian/{key}/mean"] = stats.mean.detach().cpu().contiguous()
            inverse = stats.inv_covariance.detach().cpu().contiguous()
            state[f"gaussian/{key}/inv_covariance"] = inverse
            state[f"gaussian/{key}/count"] = torch.tensor(stats.count, dtype=torch.int64)
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.embedding = PadimEmbedding(self.config.layers, self.config.n_features,
                                        self.config.seed, self.config.sampler, idx=state["idx"])
        parts: dict[str, dict[str, torch.Tensor]] = {}
        for name, tensor in state.items():
            if name.startswith("gaussian/"):
                key, _, field = name[len("gaussian/"):].rpartition("/")
                parts.setdefault(key, {})[field] = tensor
        self.gaussians = {
            key: GaussianStats(p["mean"], p["inv_covariance"], int(p["count"]))
            for key, p in parts.items()
        }
        if GLOBAL not in self.gaussians:
            raise ConfigError("drift state has no global Gaussian")

    def save(self, path: str | Path) -> None:
        """One ``.safetensors`` file: the tensors, with config and threshold as metadata."""
        from safetensors.torch import save_file

        metadata = {"config": json.dumps(asdict(self.config))}
        if self.threshold is not None:
            metadata["threshold"] = json.dumps(self.threshold.to_dict())
        save_file(self.state_dict(), str(path), metadata=metadata)

    @classmethod
    def load(cls, path: str | Path, source: FeatureSource | None = None) -> DriftDetector:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            state = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
        if "config" not in metadata:
            raise DataError(f"{path}: not a drift detector file (no config metadata)")
        config = DriftConfig(**json.loads(metadata["config"]))
        threshold = (DriftThreshold.from_dict(json.loads(metadata["threshold"]))
                     if "threshold" in metadata else None)
        detector = cls(source, config=config, threshold=threshold)
        detector.load_state_dict(state)
        return detector


def _libs_of(batch: Sequence[Any], n: int, required: bool) -> list[str] | None:
    libs = batch[2] if len(batch) > 2 else None
    if libs is None:
        if required:
            raise ConfigError("drift.fit_on=per_lib needs batches of (images, codes, libs)")
        return None
    libs = [str(lib) for lib in libs]
    if len(libs) != n:
        raise DataError(f"a batch has {n} codes but {len(libs)} libs")
    return libs


def _rows(inputs: Inputs, keep: torch.Tensor) -> Inputs:
    if bool(keep.all()):
        return inputs
    if isinstance(inputs, dict):
        return {name: m[keep.to(m.device)] for name, m in inputs.items()}
    return inputs[keep.to(inputs.device)]
