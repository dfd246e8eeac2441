"""``Inspector``: preprocess -> backbone -> drift score and class probabilities -> decision.

One backbone pass serves both the classifier and the drift detector when the detector reads
the classifier's own feature maps (``drift_source == "shared"``). An inspector is saved as one
``.safetensors`` file (weights, Gaussians, thresholds, preprocessing, classes, versions as
metadata) and loads without Hydra, Lightning or the training code, and without pickle.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vqc.data.classes import ClassSet
from vqc.data.preprocess import Preprocessor
from vqc.drift import ClassifierFeatures, DriftConfig, DriftDetector, DriftThreshold
from vqc.drift.features import forward_with_maps
from vqc.errors import ConfigError, DataError
from vqc.metrics import decide, sub_matrix
from vqc.models import Classifier, build_model, family_options

FORMAT = "vqc-inspector"
FORMAT_VERSION = 1


@dataclass
class InspectorSpec:
    """Everything but the tensors: JSON in the artifact's metadata."""

    class_names: list[str]
    open_set: str | None
    good: str | None
    model: dict[str, Any]                 # build_model keyword arguments
    preprocess: dict[str, Any]            # Preprocessor settings
    mean: list[float] | None = None
    std: list[float] | None = None
    decision: str = "bayes"
    cost_matrix: list[list[float]] = field(default_factory=list)
    temperature: float = 1.0
    drift: dict[str, Any] | None = None   # DriftConfig fields
    drift_threshold: dict[str, Any] | None = None
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def classes(self) -> ClassSet:
        return ClassSet(tuple(self.class_names), open_set=self.open_set, good=self.good)


@dataclass
class Inspection:
    """Decisions for a batch, with what they were made from."""

    probabilities: Tensor        # (B, K) calibrated, over the trained classes
    drift_score: Tensor | None   # (B,)
    drift_threshold: Tensor | None
    is_drift: Tensor             # (B,) bool
    decision: Tensor             # (B,) class codes (the open-set code for drift)
    expected_cost: Tensor        # (B, K) expected cost of answering each trained class

    def reasons(self, classes: ClassSet) -> list[str]:
        out = []
        for i in range(len(self.decision)):
            if bool(self.is_drift[i]):
                out.append(f"drift score {float(self.drift_score[i]):.4g} > threshold "
                           f"{float(self.drift_threshold[i]):.4g}")
            else:
                code = int(self.decision[i])
                out.append(f"{classes.names[code]}: least expected cost "
                           f"{float(self.expected_cost[i, code]):.4g}")
        return out


def _versions() -> dict[str, str]:
    import vqc

    return {"vqc": getattr(vqc, "__version__", "0"), "torch": torch.__version__,
            "format": str(FORMAT_VERSION)}


def build_preprocessor(spec: InspectorSpec) -> Preprocessor:
    """The preprocessing the inspector was trained with (decode, rotate/crop by lib, resize)."""
    return Preprocessor(size=tuple(spec.preprocess["size"]),
                        mode=spec.preprocess.get("mode", "L"),
                        rotate_crop=spec.preprocess.get("rotate_crop") or {},
                        max_pixels=int(spec.preprocess.get("max_pixels", 50_000_000)),
                        resize=spec.preprocess.get("resize", "stretch"))


def normalise_images(images: Tensor, spec: InspectorSpec) -> Tensor:
    """uint8 ``(B, C, H, W)`` -> float in [0, 1], then the spec's training normalisation."""
    images = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    if spec.mean is not None and spec.std is not None:
        mean = torch.tensor(spec.mean).view(1, -1, 1, 1)
        std = torch.tensor(spec.std).view(1, -1, 1, 1)
        images = (images - mean) / std
    return images


def trained_cost_of(spec: InspectorSpec) -> Tensor:
    """The cost matrix among the trained classes (float64), as the decision rule uses it."""
    cost = torch.tensor(spec.cost_matrix, dtype=torch.float64)
    return sub_matrix(cost, spec.classes.trained_codes)


def decide_from(logits: Tensor, drift_score: Tensor | None, libs: Sequence[str] | None,
                spec: InspectorSpec, threshold: DriftThreshold | None = None,
                trained_cost: Tensor | None = None) -> Inspection:
    """Decisions from logits ``(B, K)`` and each image's drift score ``(B,)`` (or ``None``).

    Calibrated probabilities (``softmax(logits / temperature)`` in float64), the expected cost
    of each trained class, drift where the score is strictly above the image's threshold (per
    lib when the threshold has one), then the spec's decision rule. Shared by :class:`Inspector`
    and the ONNX runtime so both decide alike.
    """
    classes = spec.classes
    cost = trained_cost_of(spec) if trained_cost is None else trained_cost
    probs = (logits.double() / spec.temperature).softmax(dim=1)
    cost = cost.to(probs.device)
    expected = probs @ cost
    n = len(logits)
    limits = None
    if drift_score is not None and threshold is not None:
        limits = threshold.for_libs(libs, n).to(drift_score.device)
        is_drift = drift_score > limits
    else:
        is_drift = torch.zeros(n, dtype=torch.bool, device=probs.device)
    decision = decide(probs, spec.decision, cost, None, is_drift, classes.open_set_code)
    return Inspection(probs.float().cpu(), None if drift_score is None else
                      drift_score.float().cpu(),
                      None if limits is None else limits.float().cpu(),
                      is_drift.cpu(), decision.cpu(), expected.float().cpu())


class Inspector(torch.nn.Module):
    """A trained classifier, optionally a fitted drift detector, and the decision rule."""

    def __init__(self, classifier: Classifier, spec: InspectorSpec,
                 drift: DriftDetector | None = None) -> None:
        super().__init__()
        self.classifier = classifier.eval()
        self.spec = spec
        self.classes = spec.classes
        self.drift = drift
        self.preprocessor = build_preprocessor(spec)
        # The decision is taken on the CPU: a handful of (B, K) operations cost less there than
        # their kernel launches and transfers on an accelerator.
        self.trained_cost = trained_cost_of(spec)
        if drift is not None and self.classes.open_set_code is None:
            raise ConfigError("a drift detector needs an open-set class (data.classes.open_set)")

    @property
    def shared_backbone(self) -> bool:
        """True when the drift detector reads the classifier's own maps (one forward pass)."""
        source = None if self.drift is None else self.drift.source
        return source is None or (isinstance(source, ClassifierFeatures)
                                  and source.model is self.classifier)

    # -- images ---------------------------------------------------------------------------------
    def load_images(self, paths: Sequence[str | os.PathLike[str]],
                    libs: Sequence[str | None] | None = None) -> Tensor:
        """Preprocessed, normalised float images ``(B, C, H, W)`` for files."""
        libs = list(libs) if libs is not None else [None] * len(paths)
        arrays = [self.preprocessor(path, lib) for path, lib in zip(paths, libs, strict=True)]
        return self.normalise(torch.from_numpy(np.stack(arrays)))

    def normalise(self, images: Tensor) -> Tensor:
        """uint8 ``(B, C, H, W)`` -> float in [0, 1], then the training normalisation."""
        return normalise_images(images, self.spec)

    # -- decisions ------------------------------------------------------------------------------
    @torch.no_grad()
    def forward(self, images: Tensor, libs: Sequence[str] | None = None) -> Inspection:
        """Decisions for preprocessed, normalised images."""
        device = next(self.classifier.parameters()).device
        images = images.to(device)
        drift_score = None
        if self.drift is not None and self.shared_backbone:
            logits, maps = forward_with_maps(self.classifier, images, self.drift.config.layers)
            drift_score = self.drift.score(maps, libs, image_size=tuple(images.shape[-2:]))
        else:
            logits = self.classifier(images)
            if self.drift is not None:
                drift_score = self.drift.score(images, libs, image_size=tuple(images.shape[-2:]))
        if drift_score is None:
            logits = logits.cpu()
        else:  # one transfer from the device for both
            both = torch.cat([logits.float(), drift_score.float()[:, None]], dim=1).cpu()
            logits, drift_score = both[:, :-1], both[:, -1]
        return decide_from(logits, drift_score, libs, self.spec,
                           None if self.drift is None else self.drift.threshold,
                           self.trained_cost)

    # -- artifact -------------------------------------------------------------------------------
    def spec_dict(self) -> dict[str, Any]:
        """The spec as saved (JSON-ready): with the drift configuration, threshold, versions."""
        spec = asdict(self.spec)
        if self.drift is not None:
            if not self.shared_backbone:
                raise ConfigError("only shared-backbone drift detectors are saved in an "
                                  "inspector artifact")
            spec["drift"] = asdict(self.drift.config)
            spec["drift"]["layers"] = list(self.drift.config.layers)
            spec["drift_threshold"] = (None if self.drift.threshold is None
                                       else self.drift.threshold.to_dict())
        spec["versions"] = _versions()
        return spec

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the artifact atomically (a temporary file renamed into place)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {f"classifier.{k}": v.detach().cpu().contiguous()
                   for k, v in self.classifier.state_dict().items()}
        spec = self.spec_dict()
        if self.drift is not None:
            tensors.update({f"drift.{k}": v for k, v in self.drift.state_dict().items()})
        tmp = path.with_name(f".{path.name}.tmp")
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "spec": json.dumps(spec)})
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str = "cpu") -> Inspector:
        """Read an artifact written by :meth:`save`; no pickle is ever loaded."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: inspector file not found")
        try:
            with safe_open(str(path), framework="pt", device=device) as handle:
                metadata = handle.metadata() or {}
                tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
        except (SafetensorError, OSError, ValueError) as err:
            raise DataError(f"{path}: not a vqc inspector (.safetensors) file ({err})") from err
        if metadata.get("format") != FORMAT:
            raise DataError(f"{path}: not a vqc inspector file (format "
                            f"{metadata.get('format')!r})")
        spec = InspectorSpec(**json.loads(metadata["spec"]))
        model = dict(spec.model)
        name = model.pop("name")
        counts = {k: model.pop(k) for k in ("num_classes", "in_channels") if k in model}
        classifier = build_model(name, **counts, **family_options(name, model),
                                 pretrained=False, weights=None)
        state = {k[len("classifier."):]: v for k, v in tensors.items()
                 if k.startswith("classifier.")}
        try:
            classifier.load_state_dict(state)
        except RuntimeError as err:
            raise DataError(f"{path}: classifier weights do not fit {spec.model}: {err}") from err
        drift = None
        if spec.drift is not None:
            config = DriftConfig(**{**spec.drift, "layers": tuple(spec.drift["layers"])})
            threshold = (DriftThreshold.from_dict(spec.drift_threshold)
                         if spec.drift_threshold else None)
            drift = DriftDetector(None, config=config, threshold=threshold)
            drift.load_state_dict({k[len("drift."):]: v for k, v in tensors.items()
                                   if k.startswith("drift.")})
        return cls(classifier.to(device), spec, drift)


def shared_drift_detector(classifier: Classifier, **options: Any) -> DriftDetector:
    """A detector reading the classifier's own maps (fit with ``ClassifierFeatures``)."""
    return DriftDetector(ClassifierFeatures(classifier, options.pop("layers", None)), **options)
