"""``Inspector``: preprocess -> backbone -> drift score and class probabilities -> decision.

One backbone pass serves the classifier and every drift detector (they read its logits,
pooled features and feature maps). An inspector is saved as one ``.safetensors`` file (weights,
detector buffers, thresholds, preprocessing, classes, versions as metadata) and loads without
Hydra, Lightning or the training code, and without pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vqc.drift import (
    ClassifierFeatures,
    DriftDetector,
    DriftEnsemble,
    DriftThreshold,
    ForwardOutputs,
    PadimConfig,
    PadimDetector,
    forward_outputs,
)
from vqc.errors import ConfigError, DataError
from vqc.inspection.base import (
    Inspection,
    InspectorBase,
    InspectorSpec,
    build_preprocessor,
    decide_from,
    normalise_images,
    trained_cost_of,
)
from vqc.inspection.spec_check import read_spec
from vqc.integrity import safetensors_damage
from vqc.io import write_atomic
from vqc.models import Classifier, build_model, ensemble_of, family_options

FORMAT = "vqc-inspector"
#: 3: symmetric matrices stored as upper triangles (``<name>_upper``), PaDiM's ``pool``;
#: 2: several drift detectors (``spec.drift.detectors``); 1: one PaDiM (both still read).
FORMAT_VERSION = 3
#: Metadata key of the SHA-256 of the spec text: a changed byte of the metadata is refused.
SPEC_DIGEST = "spec_sha256"


def _versions() -> dict[str, str]:
    import vqc

    return {"vqc": getattr(vqc, "__version__", "0"), "torch": torch.__version__,
            "format": str(FORMAT_VERSION)}


class Inspector(InspectorBase, torch.nn.Module):
    """A trained classifier, optionally fitted drift detectors, and the decision rule.

    ``drift``: a :class:`~vqc.drift.DriftEnsemble`, or one detector (wrapped in one). The
    detectors read the classifier's own forward pass (one pass serves both).
    """

    def __init__(self, classifier: Classifier, spec: InspectorSpec,
                 drift: DriftEnsemble | DriftDetector | None = None) -> None:
        torch.nn.Module.__init__(self)
        self._setup(spec)
        self.classifier = classifier.eval()
        if isinstance(drift, DriftDetector):
            drift = DriftEnsemble({drift.type_name: drift})
        self.drift = drift
        if drift is not None:
            if self.classes.open_set_code is None:
                raise ConfigError("a drift detector needs an open-set class "
                                  "(data.classes.open_set)")
            for detector in drift:
                source = getattr(detector, "source", None)
                if source is not None and not (isinstance(source, ClassifierFeatures)
                                               and source.model is classifier):
                    raise ConfigError("an inspector's drift detectors read the classifier's own "
                                      "feature maps (the shared backbone); this one reads "
                                      "another network's")

    @property
    def shared_backbone(self) -> bool:
        """Always true: the drift detectors read the classifier's own forward pass."""
        return True

    # -- decisions ------------------------------------------------------------------------------
    @torch.no_grad()
    def outputs(self, images: Tensor) -> ForwardOutputs:
        """What one forward pass gives the detectors (:class:`~vqc.drift.ForwardOutputs`)."""
        device = next(self.classifier.parameters()).device
        layers = () if self.drift is None else self.drift.layers
        return forward_outputs(self.classifier, images.to(device), layers)

    @torch.no_grad()
    def forward(self, images: Tensor, libs: Sequence[str] | None = None) -> Inspection:
        """Decisions for preprocessed, normalised images."""
        outputs = self.outputs(images)
        logits = outputs.logits
        assert logits is not None
        if self.drift is None:
            return self.decide(logits.cpu(), None, libs, None)
        raw = self.drift.raw_scores(outputs, libs)
        # one transfer from the device for both
        both = torch.cat([logits.float(), raw.float()], dim=1).cpu()
        k = logits.shape[1]
        return self.decide(both[:, :k], both[:, k:], libs, self.drift.combination())

    # -- artifact -------------------------------------------------------------------------------
    def spec_dict(self) -> dict[str, Any]:
        """The spec as saved (JSON-ready): with the drift detectors, thresholds, versions."""
        spec = asdict(self.spec)
        if self.drift is not None:
            spec["drift"] = self.drift.describe()
            threshold = self.drift.threshold
            spec["drift_threshold"] = None if threshold is None else threshold.to_dict()
        spec["versions"] = _versions()
        return spec

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the artifact atomically (a temporary file renamed into place)."""
        from safetensors.torch import save

        tensors = {f"classifier.{k}": v.detach().cpu().contiguous()
                   for k, v in self.classifier.state_dict().items()}
        spec = self.spec_dict()
        if self.drift is not None:
            tensors.update({f"drift.{k}": v for k, v in self.drift.tensors().items()})
        text = json.dumps(spec)
        data = save(tensors, metadata={"format": FORMAT, "spec": text,
                                       SPEC_DIGEST: hashlib.sha256(text.encode()).hexdigest()})
        return write_atomic(path, data)  # the umask's mode, like every output

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str = "cpu") -> Inspector:
        """Read an artifact written by :meth:`save` (this format or the first); no pickle is
        ever loaded."""
        path = Path(path)
        spec, tensors = _read_artifact(path, device)
        classifier = _classifier(spec, tensors, path)
        drift = None
        if spec.drift is not None:
            drift_state = {k[len("drift."):]: v for k, v in tensors.items()
                           if k.startswith("drift.")}
            try:
                drift = (_legacy_drift(spec, drift_state) if "detectors" not in spec.drift
                         else DriftEnsemble.restore(spec.drift, spec.drift_threshold,
                                                    drift_state))
            except (KeyError, TypeError, ValueError, RuntimeError) as err:
                raise DataError(
                    f"{path}: unreadable drift detectors ({type(err).__name__}: {err}); "
                    "write the artifact again with this vqc (re-run training's inspector step "
                    "on the run's checkpoint), then export it again with vqc-export") from err
        if spec.drift is None or "detectors" in spec.drift:  # the first format: not checked
            _refuse_other_tensors(path, tensors, drift)
        try:
            return cls(classifier.to(device), spec, None if drift is None else drift.to(device))
        except (ConfigError, TypeError, ValueError) as err:
            raise DataError(f"{path}: inspector metadata does not make an inspector "
                            f"({type(err).__name__}: {err})") from err


def _read_artifact(path: Path, device: str) -> tuple[InspectorSpec, dict[str, Tensor]]:
    """The checked spec and the tensors of the artifact at ``path``."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise DataError(f"{path}: inspector file not found")
    damage = safetensors_damage(path)
    if damage:
        raise DataError(f"{path}: inspector file {damage}; copy it again, or write it "
                        "again from its run's checkpoint")
    try:
        with safe_open(str(path), framework="pt", device=device) as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as err:
        raise DataError(f"{path}: not a vqc inspector (.safetensors) file ({err})") from err
    if metadata.get("format") != FORMAT:
        raise DataError(f"{path}: not a vqc inspector file (format "
                        f"{metadata.get('format')!r})")
    digest = metadata.get(SPEC_DIGEST)  # absent from artifacts written before it
    if digest is not None and digest != hashlib.sha256(
            str(metadata.get("spec")).encode()).hexdigest():
        raise DataError(f"{path}: inspector metadata was changed after it was written (its "
                        f"SHA-256 is not the recorded {SPEC_DIGEST}); copy it again, or "
                        "write it again from its run's checkpoint")
    spec = read_spec(metadata.get("spec"), path)
    version = int(spec.versions.get("format", "1"))
    if version > FORMAT_VERSION:
        raise DataError(f"{path}: inspector format {version} is newer than this vqc reads "
                        f"({FORMAT_VERSION}); upgrade vqc")
    return spec, tensors


def _refuse_other_tensors(path: Path, tensors: dict[str, Tensor],
                          drift: DriftEnsemble | None) -> None:
    """Refuse an artifact whose tensors are not exactly those its parts read: a renamed
    tensor would otherwise be left unread (the classifier's are checked by its strict load)."""
    def plain(name: str) -> str:  # a symmetric matrix is stored whole or as its triangle
        return name.removesuffix("_upper")

    written = {plain(k) for k in tensors if not k.startswith("classifier.")}
    expected = set() if drift is None else {  # names only: no copy of the buffers
        plain(f"drift.{name}.{key}") for name, detector in drift.detectors.items()
        for key in detector.state_dict()}
    extra, missing = sorted(written - expected), sorted(expected - written)
    if extra or missing:
        raise DataError(f"{path}: inspector tensors changed after it was written (unknown: "
                        f"{extra[:3]}, missing: {missing[:3]}); copy it again, or write it "
                        "again from its run's checkpoint")


def _classifier(spec: InspectorSpec, tensors: dict[str, Tensor], path: Path) -> Classifier:
    """The classifier the spec describes, with the artifact's weights."""
    model = dict(spec.model)
    name = model.pop("name")
    counts = {k: model.pop(k) for k in ("num_classes", "in_channels") if k in model}
    members = int(model.pop("members", 1))  # an ensemble's networks (ensemble=N)
    try:
        classifier = ensemble_of([build_model(name, **counts, **family_options(name, model),
                                              pretrained=False, weights=None)
                                  for _ in range(members)])
    except (ConfigError, TypeError, ValueError) as err:
        raise DataError(f"{path}: inspector metadata 'model' {spec.model} cannot be "
                        f"built: {err}") from err
    state = {k[len("classifier."):]: v for k, v in tensors.items()
             if k.startswith("classifier.")}
    try:
        classifier.load_state_dict(state)
    except RuntimeError as err:
        raise DataError(f"{path}: classifier weights do not fit {spec.model}: {err}") from err
    return classifier


def _legacy_drift(spec: InspectorSpec, state: dict[str, Tensor]) -> DriftEnsemble:
    """The single PaDiM of a first-format artifact, as an ensemble of one (same decisions)."""
    assert spec.drift is not None
    config = PadimConfig(**{**spec.drift, "layers": tuple(spec.drift["layers"])})
    threshold = (DriftThreshold.from_dict(spec.drift_threshold) if spec.drift_threshold
                 else None)
    detector = PadimDetector(None, config=config, threshold=threshold)
    detector.load_legacy_state(state)
    return DriftEnsemble({"padim": detector})


def shared_drift_detector(classifier: Classifier, **options: Any) -> PadimDetector:
    """A PaDiM detector reading the classifier's own maps (fit with ``ClassifierFeatures``)."""
    return PadimDetector(ClassifierFeatures(classifier, options.pop("layers", None)), **options)


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "SPEC_DIGEST",
    "Inspection",
    "Inspector",
    "InspectorSpec",
    "build_preprocessor",
    "decide_from",
    "normalise_images",
    "shared_drift_detector",
    "trained_cost_of",
]
