"""What every drift detector is: an ``nn.Module`` whose fitted state is buffers, fitted from a
stream of batches, calibrated on validation to a false-drift budget, scoring what one forward
pass of the classifier gives (:class:`ForwardOutputs`).

A detector subclass implements :meth:`DriftDetector.accumulate` (fold in one batch),
:meth:`DriftDetector.finish_fit` (turn the running sums into buffers) and
:meth:`DriftDetector.score_columns` (one raw score per image under each of its variants, e.g.
PaDiM's per-lib Gaussians); it registers itself with :func:`vqc.drift.registry.register`.
See ``docs/DRIFT.md``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from vqc.drift.gaussian import pack_upper, unpack_upper
from vqc.drift.threshold import (
    DEFAULT_TARGET_RATE,
    DriftThreshold,
    Method,
    detector_scale,
    fit_threshold,
)
from vqc.errors import ConfigError, DataError
from vqc.options import field_names, unknown_keys

#: Key of the variant fitted on every selected image (PaDiM's global Gaussian), the fallback
#: for libs a detector has no variant of.
GLOBAL = "*"

@dataclass
class ForwardOutputs:
    """What one forward pass of the classifier gives a drift detector.

    ``maps``: feature maps by layer name; ``pooled``: the pooled backbone features
    (``Classifier.embed``) ``(B, num_features)``; ``logits`` ``(B, K)``; ``image_size``: the
    input's ``(H, W)`` (for detectors that resize their maps to the image); ``images``: the
    classifier's input ``(B, C, H, W)`` (for detectors of image quality).
    """

    maps: dict[str, Tensor] = field(default_factory=dict)
    pooled: Tensor | None = None
    logits: Tensor | None = None
    image_size: tuple[int, int] | None = None
    images: Tensor | None = None

    def __len__(self) -> int:
        for tensor in (self.pooled, self.logits, self.images, *self.maps.values()):
            if tensor is not None:
                return int(tensor.shape[0])
        return 0

    def rows(self, keep: Tensor) -> ForwardOutputs:
        """The outputs of the images where ``keep`` (bool ``(B,)``) is true."""
        if bool(keep.all()):
            return self

        def pick(t: Tensor | None) -> Tensor | None:
            return None if t is None else t[keep.to(t.device)]

        return ForwardOutputs({name: m[keep.to(m.device)] for name, m in self.maps.items()},
                              pick(self.pooled), pick(self.logits), self.image_size,
                              pick(self.images))

    def detached(self) -> ForwardOutputs:
        def cut(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.detach()

        return ForwardOutputs({name: m.detach() for name, m in self.maps.items()},
                              cut(self.pooled), cut(self.logits), self.image_size,
                              cut(self.images))


def pick_columns(keys: Sequence[str], libs: Sequence[str | None] | None, n: int) -> list[int]:
    """Each of ``n`` images' column among a detector's variants ``keys``: its lib's when there
    is one, else the global one. Shared by the detectors and the ONNX runtime."""
    position = {key: i for i, key in enumerate(keys)}
    if GLOBAL not in position:
        raise DataError(f"drift-score columns {list(keys)} lack the global one")
    if libs is None or len(keys) == 1:
        return [position[GLOBAL]] * n
    if len(libs) != n:
        raise ConfigError(f"{n} images but {len(libs)} libs")
    return [position.get(str(lib), position[GLOBAL]) for lib in libs]


def libs_of(batch: Sequence[Any], n: int, required: bool) -> list[str] | None:
    """The libs of a ``(inputs, codes[, libs])`` batch as strings, or ``None``."""
    libs = batch[2] if len(batch) > 2 else None
    if libs is None:
        if required:
            raise ConfigError("drift.fit_on=per_lib needs batches of (images, codes, libs)")
        return None
    libs = [str(lib) for lib in libs]
    if len(libs) != n:
        raise DataError(f"a batch has {n} codes but {len(libs)} libs")
    return libs


def score_loader(batches: Iterable[Sequence[Any]],
                 score: Callable[[Any, list[str] | None], Tensor]
                 ) -> tuple[Tensor, Tensor, list[str] | None]:
    """``score(inputs, libs)`` over ``(inputs, codes[, libs])`` batches: the scores, codes and
    libs (``None`` when batches carry none), concatenated on the CPU."""
    scores, codes, libs = [], [], []
    with_libs = True
    for batch in batches:
        batch_codes = torch.as_tensor(batch[1]).reshape(-1)
        batch_libs = libs_of(batch, len(batch_codes), required=False)
        with_libs = with_libs and batch_libs is not None
        scores.append(score(batch[0], batch_libs).cpu())
        codes.append(batch_codes.cpu())
        libs.extend(batch_libs or [])
    if not scores:
        raise DataError("no batches to score")
    return torch.cat(scores), torch.cat(codes), (libs if with_libs else None)


def check_options(config_type: type, options: Mapping[str, Any], where: str) -> None:
    """Raise a ``ConfigError`` naming ``where`` for keys ``config_type`` does not have."""
    unknown = unknown_keys(config_type, options)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: "
                          f"{sorted(field_names(config_type))}")


class ResizableBuffers(nn.Module):
    """Buffers whose size is known only once fitted: loading a state gives them its shapes
    (as anomalib's ``DynamicBufferMixin`` does), so an unfitted module loads a fitted state."""

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any,
                              **kwargs: Any) -> None:
        for name, buffer in list(self._buffers.items()):
            key = prefix + name
            if key in state_dict and (buffer is None or buffer.shape != state_dict[key].shape):
                incoming = state_dict[key]
                like = incoming if buffer is None else buffer
                self._buffers[name] = torch.empty(incoming.shape, dtype=like.dtype,
                                                  device=like.device if buffer is None
                                                  else buffer.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class DriftDetector(ResizableBuffers):
    """One drift detector: fit (streaming), calibrate, score; state in buffers.

    ``config`` is a frozen dataclass of the detector's options (JSON-ready), with at least
    ``fit_on`` and ``good_code``. After :meth:`calibrate_scores`, :attr:`threshold` is the
    detector's own threshold and the buffer ``scale`` (:func:`detector_scale`, what a
    combination of detectors divides its scores by).
    """

    #: The registry name (``type:`` in ``conf/drift/*.yaml``), set by ``register``.
    type_name: ClassVar[str] = ""
    #: The options' dataclass.
    config_type: ClassVar[type]
    #: Buffers of symmetric matrices (last two dimensions), saved as their upper triangles.
    symmetric_buffers: ClassVar[tuple[str, ...]] = ()
    #: Accepted values of ``fit_on``.
    fit_on_choices: ClassVar[tuple[str, ...]] = ("all", "good")

    def __init__(self, config: Any, threshold: DriftThreshold | None = None) -> None:
        super().__init__()
        if config.fit_on not in self.fit_on_choices:
            raise ConfigError(f"drift.fit_on={config.fit_on!r} is not one of "
                              f"{list(self.fit_on_choices)} for the {self.type_name} detector")
        self.config = config
        self.threshold = threshold
        self.register_buffer("scale", torch.ones((), dtype=torch.float32))
        self._seen = 0

    # -- what it reads and how it is described -----------------------------------------------
    @property
    def layers(self) -> tuple[str, ...]:
        """Feature maps the detector reads from the forward pass (none by default)."""
        return ()

    @property
    def good_only(self) -> bool:
        return self.config.fit_on in ("good", "good_per_lib")

    @property
    def per_lib(self) -> bool:
        """True when the detector fits one variant per lib (it needs libs in its batches)."""
        return False

    def options(self) -> dict[str, Any]:
        """The options as saved (JSON-ready); ``build_detector(type, **options)`` rebuilds it."""
        options = asdict(self.config)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}

    def meta(self) -> dict[str, Any]:
        """Fitted state that is not a tensor (saved as JSON beside the options)."""
        return {}

    def set_meta(self, meta: Mapping[str, Any]) -> None:
        """Take back what :meth:`meta` gave, before loading the buffers."""

    @classmethod
    def reads_trained_features(cls, options: Mapping[str, Any]) -> bool:
        """Whether, with ``options``, the detector reads what training learns (the pooled
        embedding, not a frozen layer): its scores of training images are then not those of
        new images, and cross-fitting its threshold is refused. A detector of frozen layers
        or raw pixels keeps the default, ``False``; which layers training changes is checked
        against the model elsewhere."""
        return False

    @classmethod
    def from_options(cls, options: Mapping[str, Any], model: Any = None,
                     where: str = "drift") -> DriftDetector:
        """Build from config options; ``model`` is the classifier whose outputs it will read
        (for defaults such as the backbone's layers)."""
        check_options(cls.config_type, options, where)
        return cls(config=cls.config_type(**options))

    # -- inputs ------------------------------------------------------------------------------
    def outputs_of(self, inputs: Any, image_size: Sequence[int] | None = None) -> ForwardOutputs:
        """``ForwardOutputs`` from what a caller passes (subclasses accept more)."""
        if isinstance(inputs, ForwardOutputs):
            if image_size is not None:
                return ForwardOutputs(inputs.maps, inputs.pooled, inputs.logits,
                                      (int(image_size[0]), int(image_size[1])))
            return inputs
        raise ConfigError(f"the {self.type_name} drift detector scores ForwardOutputs (one pass "
                          "of the classifier: vqc.drift.forward_outputs), got "
                          f"{type(inputs).__name__}")

    # -- fitting -----------------------------------------------------------------------------
    def begin_fit(self) -> None:
        """Forget any running sums (called before the first :meth:`update`)."""
        self._seen = 0
        self.reset_accumulators()

    def reset_accumulators(self) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def update(self, inputs: Any, codes: Tensor | Sequence[int],
               libs: Sequence[str] | None = None) -> int:
        """Fold in one batch (only the images ``fit_on`` selects); returns how many were kept."""
        codes = torch.as_tensor(codes).reshape(-1)
        if self.per_lib and libs is None:
            raise ConfigError("drift.fit_on=per_lib needs batches of (images, codes, libs)")
        keep = ((codes == self.config.good_code) if self.good_only
                else torch.ones_like(codes, dtype=torch.bool))
        if not bool(keep.any()):
            return 0
        outputs = self.outputs_of(inputs).rows(keep).detached()
        kept_libs = (None if libs is None
                     else [str(lib) for lib, k in zip(libs, keep.tolist(), strict=True) if k])
        self.accumulate(outputs, kept_libs)
        self._seen += int(keep.sum())
        return int(keep.sum())

    def accumulate(self, outputs: ForwardOutputs, libs: list[str] | None) -> None:
        raise NotImplementedError

    def end_fit(self) -> None:
        """Turn the running sums into buffers; needs at least 2 selected images."""
        if self._seen < 2:
            what = "GOOD images" if self.good_only else "images"
            raise DataError(f"{self.type_name} drift detector: {self._seen} {what} to fit on, "
                            "at least 2 are needed")
        self.finish_fit()
        self.reset_accumulators()

    def finish_fit(self) -> None:
        raise NotImplementedError

    def fit(self, batches: Iterable[Sequence[Any]]) -> DriftDetector:
        """Fit on ``(inputs, codes)`` or ``(inputs, codes, libs)`` batches, in one pass."""
        self.begin_fit()
        for batch in batches:
            codes = torch.as_tensor(batch[1]).reshape(-1)
            self.update(batch[0], codes, libs_of(batch, len(codes), required=self.per_lib))
        self.end_fit()
        return self

    @property
    def fitted(self) -> bool:
        raise NotImplementedError

    def check_fitted(self) -> None:
        if not self.fitted:
            raise ConfigError(f"the {self.type_name} drift detector is not fitted: call fit() "
                              "or load a state")

    # -- scoring -----------------------------------------------------------------------------
    def column_keys(self) -> list[str]:
        """Names of the variants :meth:`score_columns` scores under, the global one first."""
        return [GLOBAL]

    def score_columns(self, outputs: ForwardOutputs) -> Tensor:
        """Raw score of each image under every variant ``(B, len(column_keys()))``; what an
        exported graph computes (no data-dependent control flow)."""
        raise NotImplementedError

    def score(self, inputs: Any, libs: Sequence[str] | None = None,
              image_size: Sequence[int] | None = None) -> Tensor:
        """Raw drift score per image ``(B,)``: under its lib's variant, else the global one."""
        self.check_fitted()
        with torch.no_grad():
            columns = self.score_columns(self.outputs_of(inputs, image_size).detached())
        index = pick_columns(self.column_keys(), libs, len(columns))
        return columns[torch.arange(len(columns)), torch.tensor(index, dtype=torch.long)]

    def is_drift(self, inputs: Any, libs: Sequence[str] | None = None,
                 image_size: Sequence[int] | None = None) -> Tensor:
        if self.threshold is None:
            raise ConfigError("the drift detector has no threshold: call calibrate()")
        return self.threshold.is_drift(self.score(inputs, libs, image_size), libs)

    # -- calibration -------------------------------------------------------------------------
    def score_batches(self, batches: Iterable[Sequence[Any]]
                      ) -> tuple[Tensor, Tensor, list[str] | None]:
        """Scores, codes and libs (``None`` when batches carry none) over a whole loader."""
        return score_loader(batches, self.score)

    def calibrate_scores(self, scores: Tensor, libs: Sequence[str] | None = None,
                         is_drift: Tensor | None = None,
                         target_rate: float = DEFAULT_TARGET_RATE, per_lib: bool = False,
                         method: Method = "auto") -> DriftThreshold:
        """Set :attr:`threshold` (see :func:`fit_threshold`) and the ``scale`` buffer
        (:func:`detector_scale`) from validation scores."""
        self.threshold = fit_threshold(scores, libs, is_drift, target_rate, per_lib, method)
        normal = scores if is_drift is None else scores[~is_drift.to(torch.bool)]
        self.scale.fill_(detector_scale(normal if len(normal) else scores))
        return self.threshold

    def calibrate(self, batches: Iterable[Sequence[Any]],
                  target_rate: float = DEFAULT_TARGET_RATE, per_lib: bool = False,
                  method: Method = "auto", drift_code: int | None = None) -> DriftThreshold:
        """Calibrate on validation batches; images of ``drift_code`` count as drift examples."""
        scores, codes, libs = self.score_batches(batches)
        is_drift = None if drift_code is None else codes == drift_code
        return self.calibrate_scores(scores, libs, is_drift, target_rate, per_lib, method)

    # -- files -------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Everything but the tensors: type, options, fitted metadata, threshold (JSON)."""
        return {"type": self.type_name, "options": self.options(), "meta": self.meta(),
                "threshold": None if self.threshold is None else self.threshold.to_dict()}

    def tensors(self) -> dict[str, Tensor]:
        """The buffers, on the CPU and contiguous (safetensors-ready); an exactly symmetric
        one of :attr:`symmetric_buffers` as its upper triangle, ``<name>_upper`` (half the
        bytes, read back bit for bit)."""
        self.check_fitted()
        out = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        for name in self.symmetric_buffers:
            matrices = out.get(name)
            if matrices is not None and matrices.ndim >= 2 and matrices.shape[-1] > 1 \
                    and torch.equal(matrices, matrices.transpose(-2, -1)):
                out[f"{name}_upper"] = pack_upper(out.pop(name))
        return out

    def save(self, path: str | Path) -> None:
        """One ``.safetensors`` file: the buffers, with :meth:`describe` as metadata."""
        from safetensors.torch import save_file

        save_file(self.tensors(), str(path), metadata={"detector": json.dumps(self.describe())})

    @classmethod
    def load(cls, path: str | Path, *args: Any) -> DriftDetector:
        """Read a file written by :meth:`save` (``args`` go to the constructor, e.g. PaDiM's
        feature source)."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            state = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
        if "detector" not in metadata:
            raise DataError(f"{path}: not a drift detector file (no detector metadata)")
        description = json.loads(metadata["detector"])
        if cls.type_name and description["type"] != cls.type_name:
            raise DataError(f"{path}: a {description['type']} detector, not {cls.type_name}")
        from vqc.drift.registry import detector_class

        kind = detector_class(description["type"])
        detector = kind(*args, config=kind.config_type(**description["options"]))
        detector.restore(description, state)
        return detector

    def restore(self, description: Mapping[str, Any], state: Mapping[str, Tensor]) -> None:
        """Load a :meth:`describe` dictionary and the buffers."""
        self.set_meta(description.get("meta") or {})
        state = dict(state)
        for name in self.symmetric_buffers:
            if f"{name}_upper" in state:
                state[name] = unpack_upper(state.pop(f"{name}_upper"))
        self.load_state_dict(state)
        threshold = description.get("threshold")
        self.threshold = None if threshold is None else DriftThreshold.from_dict(threshold)
