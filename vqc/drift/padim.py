"""PaDiM: a Gaussian per feature-map position of known-class images; score = max Mahalanobis
distance over the positions (anomalib's ``PadimModel`` + ``AnomalyMapGenerator``).

The fitted Gaussians are buffers, stacked: ``mean (G, C, P)``, ``inv_covariance (G, P, C, C)``,
``count (G,)``, the global Gaussian first, then one per lib (``fit_on=per_lib``), their names in
:meth:`PadimDetector.column_keys`. See ``docs/DRIFT.md``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from vqc.drift.base import GLOBAL, DriftDetector, ForwardOutputs, check_options, pick_columns
from vqc.drift.features import ClassifierFeatures, FeatureSource, PadimEmbedding, Sampler
from vqc.drift.gaussian import DEFAULT_EPS, GaussianStats, StreamingGaussian, mahalanobis
from vqc.drift.registry import register
from vqc.drift.smoothing import gaussian_blur, resize_bilinear
from vqc.drift.threshold import DriftThreshold
from vqc.errors import ConfigError, DataError
from vqc.options import check_values, option

log = logging.getLogger(__name__)

FitOn = Literal["all", "good", "per_lib", "good_per_lib"]
FIT_ON: tuple[str, ...] = ("all", "good", "per_lib", "good_per_lib")


@dataclass(frozen=True)
class PadimConfig:
    """What defines a PaDiM detector (saved beside its tensors).

    ``fit_on``: ``all`` known-class images, ``good`` (only ``good_code``), ``per_lib`` (one
    Gaussian per lib, plus a global one for libs never seen), ``good_per_lib`` (both).
    ``sigma``: Gaussian smoothing of the map before the maximum (0: none), in pixels of the map,
    or of the input image when ``upsample`` (the map is first resized to the image, as anomalib
    and the challenge baseline do with ``sigma=4``). ``pool``: the embedding averaged over
    ``pool x pool`` blocks of positions before the Gaussians (1: none): ``pool**2`` times fewer
    Gaussians to store (an edge block of a map not divisible by ``pool`` averages what it
    covers).
    """

    layers: tuple[str, ...] | None = option(
        ("layer1", "layer2", "layer3"),
        doc="feature maps of the classifier, concatenated; null in a config: the model's own, "
            "named when the run starts (vqc.training.drift_layers)")
    n_features: int = option(100, low=1, doc="channels kept, drawn at random")
    seed: int = option(1024, doc="of the channels drawn")
    sampler: Sampler = "torch"
    fit_on: FitOn = "all"
    good_code: int = option(0, low=0)
    eps: float = option(DEFAULT_EPS, low=0, open_low=True, doc="added to each covariance's "
                                                               "diagonal")
    sigma: float = option(0.0, low=0, doc="Gaussian smoothing of the map, in pixels")
    upsample: bool = option(False, doc="the map resized to the image before smoothing")
    pool: int = option(1, low=1, doc="positions averaged in pool x pool blocks")

    def __post_init__(self) -> None:
        if self.layers is None:
            raise ConfigError("drift.layers=null: a run names the model's own feature layers; "
                              "a detector made outside a run needs them named")
        object.__setattr__(self, "layers", tuple(self.layers))
        check_values(self, "drift")

    @property
    def good_only(self) -> bool:
        return self.fit_on in ("good", "good_per_lib")

    @property
    def per_lib(self) -> bool:
        return self.fit_on in ("per_lib", "good_per_lib")


Inputs = Tensor | dict[str, Tensor] | ForwardOutputs


@register("padim")
class PadimDetector(DriftDetector):
    """PaDiM over feature maps; inputs are :class:`ForwardOutputs`, maps by layer name, or
    images ``(B, C, H, W)`` when a feature ``source`` is given (a separate backbone, anomalib's
    extractor); ``source`` may be ``None`` when only maps are passed."""

    config_type = PadimConfig
    fit_on_choices = FIT_ON
    symmetric_buffers = ("inv_covariance",)

    def __init__(
        self,
        source: FeatureSource | None = None,
        config: PadimConfig | None = None,
        threshold: DriftThreshold | None = None,
        **options: Any,
    ) -> None:
        if config is None:
            if "layers" not in options and source is not None:
                options["layers"] = tuple(source.layers)
            config = PadimConfig(**options)
        elif options:
            raise ConfigError(f"pass either config or options, not both: {sorted(options)}")
        if source is not None and tuple(source.layers) != config.layers:
            raise ConfigError(
                f"drift.layers {list(config.layers)} differ from the feature source's "
                f"{list(source.layers)}"
            )
        super().__init__(config, threshold)
        self.config: PadimConfig
        self.source = source
        self.embedding = PadimEmbedding(config.layers, config.n_features, config.seed,
                                        config.sampler)
        self.keys: list[str] = []
        self.register_buffer("mean", torch.empty(0))
        self.register_buffer("inv_covariance", torch.empty(0))
        self.register_buffer("count", torch.empty(0, dtype=torch.int64))
        self._accumulators: dict[str, StreamingGaussian] = {}

    @classmethod
    def from_options(cls, options: Mapping[str, Any], model: Any = None,
                     where: str = "drift") -> PadimDetector:
        """``layers`` missing or ``None``: the backbone's (``model`` given) or the default."""
        options = {k: v for k, v in options.items() if v is not None}
        check_options(PadimConfig, options, where)
        if "layers" in options:
            options["layers"] = tuple(options["layers"])
        if model is None:
            return cls(None, **options)
        return cls(ClassifierFeatures(model, options.pop("layers", None)), **options)

    # -- what it reads -----------------------------------------------------------------------
    @property
    def layers(self) -> tuple[str, ...]:
        return self.config.layers

    @property
    def per_lib(self) -> bool:
        return self.config.per_lib

    def meta(self) -> dict[str, Any]:
        return {"gaussians": list(self.keys)}

    def set_meta(self, meta: Mapping[str, Any]) -> None:
        self.keys = [str(k) for k in meta.get("gaussians", [])]

    def outputs_of(self, inputs: Inputs, image_size: Sequence[int] | None = None
                   ) -> ForwardOutputs:
        if isinstance(inputs, dict):
            inputs = ForwardOutputs(maps=inputs)
        elif isinstance(inputs, Tensor):
            if self.source is None:
                raise ConfigError("this drift detector has no feature source: pass feature "
                                  "maps")
            inputs = ForwardOutputs(maps=self.source(inputs),
                                    image_size=(int(inputs.shape[-2]), int(inputs.shape[-1])))
        return super().outputs_of(inputs, image_size)

    def embed(self, inputs: Inputs) -> Tensor:
        """PaDiM embedding ``(B, n_features, H, W)`` (``H, W`` divided by ``pool``)."""
        maps = self.outputs_of(inputs).maps
        embedding = self.embedding({name: m.detach() for name, m in maps.items()})
        if self.config.pool > 1:
            embedding = torch.nn.functional.avg_pool2d(embedding, self.config.pool,
                                                       ceil_mode=True)
        return embedding

    # -- fitting -----------------------------------------------------------------------------
    def reset_accumulators(self) -> None:
        self._accumulators = {}

    def accumulate(self, outputs: ForwardOutputs, libs: list[str] | None) -> None:
        embedding = self.embed(outputs)
        if not self.config.per_lib:
            self._accumulators.setdefault(GLOBAL, StreamingGaussian()).update(embedding)
            return
        assert libs is not None
        for lib in dict.fromkeys(libs):
            rows = torch.tensor([name == lib for name in libs], device=embedding.device)
            self._accumulators.setdefault(lib, StreamingGaussian()).update(embedding[rows])

    def finish_fit(self) -> None:
        accumulators = self._accumulators
        if self.config.per_lib:
            overall = StreamingGaussian()
            for acc in accumulators.values():
                overall.merge(acc)
            accumulators = {GLOBAL: overall, **accumulators}
        kept = []
        for key, acc in accumulators.items():
            if acc.count < 2:
                warnings.warn(f"drift detector: lib {key!r} has {acc.count} image(s); "
                              "it is scored with the global Gaussian", stacklevel=3)
                continue
            kept.append(key)
        keys = [GLOBAL, *sorted(k for k in kept if k != GLOBAL)]
        positions, channels = accumulators[GLOBAL].shape or (0, 0)
        device = accumulators[GLOBAL].mean.device  # type: ignore[union-attr]
        self.mean = torch.empty(len(keys), channels, positions, device=device)
        self.inv_covariance = torch.empty(len(keys), positions, channels, channels,
                                          device=device)
        self.count = torch.empty(len(keys), dtype=torch.int64, device=device)
        for i, key in enumerate(keys):
            stats = accumulators[key].finalize(self.config.eps, out=self.inv_covariance[i])
            self.mean[i] = stats.mean
            self.count[i] = stats.count
        self.keys = keys
        log.info("drift detector fitted on %d images (%s)", self._seen,
                 ", ".join(f"{k}: {int(c)}" for k, c in zip(keys, self.count, strict=True)))

    @property
    def fitted(self) -> bool:
        return bool(self.keys) and self.mean.ndim == 3

    @property
    def gaussians(self) -> dict[str, GaussianStats]:
        """The fitted Gaussians by name (views of the buffers)."""
        return {key: GaussianStats(self.mean[i], self.inv_covariance[i], int(self.count[i]))
                for i, key in enumerate(self.keys)}

    # -- scoring -----------------------------------------------------------------------------
    def column_keys(self) -> list[str]:
        return list(self.keys)

    def _distances(self, embedding: Tensor, i: int) -> Tensor:
        return mahalanobis(embedding, self.mean[i], self.inv_covariance[i])

    def _finish_map(self, distances: Tensor, image_size: tuple[int, int] | None) -> Tensor:
        """Resize to the image when ``upsample``, smooth when ``sigma > 0``."""
        if self.config.upsample:
            if image_size is None:
                raise ConfigError("drift.upsample needs image_size when feature maps are given")
            distances = resize_bilinear(distances, image_size)
        return gaussian_blur(distances, self.config.sigma)

    def score_columns(self, outputs: ForwardOutputs) -> Tensor:
        embedding = self.embed(outputs)
        return torch.stack([self._finish_map(self._distances(embedding, i), outputs.image_size)
                            .amax(dim=(-2, -1)) for i in range(len(self.keys))], dim=1)

    @torch.no_grad()
    def distance_map(self, inputs: Inputs, libs: Sequence[str] | None = None) -> Tensor:
        """Mahalanobis distance per position ``(B, H, W)`` at the first layer's resolution,
        under each image's Gaussian (its lib's, else the global one)."""
        self.check_fitted()
        embedding = self.embed(inputs)
        batch = embedding.shape[0]
        columns = pick_columns(self.keys, libs if self.config.per_lib else None, batch)
        if len(set(columns)) == 1:
            return self._distances(embedding, columns[0])
        out = embedding.new_empty((batch, *embedding.shape[-2:]))
        for column in dict.fromkeys(columns):
            rows = torch.tensor([c == column for c in columns], device=embedding.device)
            out[rows] = self._distances(embedding[rows], column)
        return out

    def anomaly_map(self, inputs: Inputs, libs: Sequence[str] | None = None,
                    image_size: Sequence[int] | None = None) -> Tensor:
        """Distance map, resized to the image when ``upsample``, smoothed when ``sigma > 0``."""
        outputs = self.outputs_of(inputs, image_size)
        return self._finish_map(self.distance_map(outputs, libs), outputs.image_size)

    def score(self, inputs: Inputs, libs: Sequence[str] | None = None,
              image_size: Sequence[int] | None = None) -> Tensor:
        """Drift score per image ``(B,)``: the maximum of :meth:`anomaly_map`."""
        return self.anomaly_map(inputs, libs, image_size).amax(dim=(-2, -1))

    # -- state -------------------------------------------------------------------------------
    def load_legacy_state(self, state: Mapping[str, Tensor]) -> None:
        """Take a state written by the first inspector format (``idx`` and
        ``gaussian/<key>/{mean,inv_covariance,count}``)."""
        parts: dict[str, dict[str, Tensor]] = {}
        for name, tensor in state.items():
            if name.startswith("gaussian/"):
                key, _, part = name[len("gaussian/"):].rpartition("/")
                parts.setdefault(key, {})[part] = tensor
        if GLOBAL not in parts or "idx" not in state:
            raise DataError("drift state has no global Gaussian or no channel indices")
        keys = [GLOBAL, *sorted(k for k in parts if k != GLOBAL)]
        self.embedding.set_idx(state["idx"])
        self.keys = keys
        self.mean = torch.stack([parts[k]["mean"] for k in keys])
        self.inv_covariance = torch.stack([parts[k]["inv_covariance"] for k in keys])
        self.count = torch.stack([parts[k]["count"].reshape(()) for k in keys])


#: The names this detector had before there were several.
DriftConfig = PadimConfig
