"""``OnnxInspector``: an exported inspector run by ONNX Runtime, deciding as ``Inspector`` does.

Needs only the ``.onnx`` file: the spec (classes, preprocessing, costs, temperature, drift
thresholds) and the order of the drift-score columns are read from its metadata. No model is
built; torch is used for the decision arithmetic only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vqc.drift import GLOBAL, DriftConfig, DriftThreshold
from vqc.errors import ConfigError, DataError
from vqc.export.onnx import (
    DRIFT_SCORES,
    FORMAT,
    FORMAT_VERSION,
    INPUT,
    LOGITS,
    META_EXPORTER,
    META_FORMAT,
    META_GAUSSIANS,
    META_INPUT,
    META_SPEC,
    META_VERSION,
)
from vqc.inspection.inspector import (
    Inspection,
    InspectorSpec,
    build_preprocessor,
    decide_from,
    normalise_images,
    trained_cost_of,
)


def gaussian_columns(keys: Sequence[str], libs: Sequence[str | None] | None, n: int,
                     per_lib: bool) -> list[int]:
    """The ``drift_scores`` column of each of ``n`` images: its lib's Gaussian when it has
    one (and the detector is per lib), else the global one (as ``DriftDetector`` chooses)."""
    position = {key: i for i, key in enumerate(keys)}
    if GLOBAL not in position:
        raise DataError(f"drift-score columns {list(keys)} lack the global Gaussian")
    if libs is None or not per_lib:
        return [position[GLOBAL]] * n
    if len(libs) != n:
        raise ConfigError(f"{n} images but {len(libs)} libs")
    return [position.get(str(lib), position[GLOBAL]) for lib in libs]


class OnnxInspector:
    """Loads an exported inspector; ``__call__(images, libs)`` -> :class:`Inspection`.

    Offers what ``vqc-predict`` uses of an :class:`~vqc.inspection.inspector.Inspector`:
    :attr:`classes`, :attr:`preprocessor`, :meth:`normalise`, :meth:`load_images` and the
    call. ``threads`` sets ONNX Runtime's intra-op threads (default: its own choice); its
    threads do not busy-wait between runs.
    """

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: ONNX model file not found")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        # no busy-waiting between runs: the CPU is shared with image decoding in between
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=options,
                                                providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime's errors derive from Exception only
            message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise DataError(f"{self.path}: not a readable ONNX model ({message})") from err
        metadata = self.session.get_modelmeta().custom_metadata_map
        if metadata.get(META_FORMAT) != FORMAT:
            raise DataError(f"{self.path}: an ONNX model but not an exported vqc inspector "
                            f"(no {META_FORMAT}={FORMAT} in its metadata)")
        if int(metadata.get(META_VERSION, "0")) > FORMAT_VERSION:
            raise DataError(f"{self.path}: export format {metadata.get(META_VERSION)} is newer "
                            f"than this vqc reads ({FORMAT_VERSION})")
        try:
            self.spec = InspectorSpec(**json.loads(metadata[META_SPEC]))
            self.gaussian_keys: list[str] = list(json.loads(metadata.get(META_GAUSSIANS, "[]")))
            self.input_shape = tuple(int(v) for v in json.loads(metadata[META_INPUT]))
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{self.path}: unreadable vqc metadata ({err})") from err
        self.exporter = metadata.get(META_EXPORTER, "")
        self.classes = self.spec.classes
        self.preprocessor = build_preprocessor(self.spec)
        self.trained_cost = trained_cost_of(self.spec)
        outputs = [o.name for o in self.session.get_outputs()]
        self.with_drift = DRIFT_SCORES in outputs
        if LOGITS not in outputs or [i.name for i in self.session.get_inputs()] != [INPUT]:
            raise DataError(f"{self.path}: expected input {INPUT!r} and output {LOGITS!r}, got "
                            f"{[i.name for i in self.session.get_inputs()]} -> {outputs}")
        self.threshold: DriftThreshold | None = None
        self.per_lib = False
        if self.with_drift:
            if self.spec.drift is None or not self.gaussian_keys:
                raise DataError(f"{self.path}: drift scores without a drift configuration")
            config = DriftConfig(**{**self.spec.drift, "layers": tuple(self.spec.drift["layers"])})
            self.per_lib = config.per_lib
            if self.spec.drift_threshold:
                self.threshold = DriftThreshold.from_dict(self.spec.drift_threshold)
        self._outputs = [LOGITS, DRIFT_SCORES] if self.with_drift else [LOGITS]
        fixed = self.session.get_inputs()[0].shape[0]
        self.batch_size = fixed if isinstance(fixed, int) else None

    # -- images -----------------------------------------------------------------------------
    def normalise(self, images: Tensor) -> Tensor:
        """uint8 ``(B, C, H, W)`` -> float in [0, 1], then the training normalisation."""
        return normalise_images(images, self.spec)

    def load_images(self, paths: Sequence[str | os.PathLike[str]],
                    libs: Sequence[str | None] | None = None) -> Tensor:
        """Preprocessed, normalised float images ``(B, C, H, W)`` for files."""
        libs = list(libs) if libs is not None else [None] * len(paths)
        arrays = [self.preprocessor(path, lib) for path, lib in zip(paths, libs, strict=True)]
        return self.normalise(torch.from_numpy(np.stack(arrays)))

    # -- running ----------------------------------------------------------------------------
    def run(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """The graph's outputs: logits ``(B, K)`` and drift scores per Gaussian ``(B, G)``."""
        if tuple(images.shape[1:]) != self.input_shape:
            raise DataError(f"images of shape {tuple(images.shape[1:])}; this model takes "
                            f"{self.input_shape} (channels, height, width)")
        array = np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)
        if self.batch_size is None or len(array) == self.batch_size:
            results = self.session.run(self._outputs, {INPUT: array})
        else:  # a fixed-batch graph: run in chunks, padding the last one
            parts = []
            for start in range(0, len(array), self.batch_size):
                chunk = array[start:start + self.batch_size]
                pad = self.batch_size - len(chunk)
                if pad:
                    chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
                parts.append([out[:len(chunk) - pad]
                              for out in self.session.run(self._outputs, {INPUT: chunk})])
            results = [np.concatenate(column) for column in zip(*parts, strict=True)]
        logits = torch.from_numpy(results[0])
        scores = torch.from_numpy(results[1]) if self.with_drift else None
        if scores is not None and scores.shape[1] != len(self.gaussian_keys):
            raise DataError(f"{self.path}: {scores.shape[1]} drift-score columns but "
                            f"{len(self.gaussian_keys)} Gaussians in the metadata")
        return logits, scores

    def drift_score(self, scores: Tensor, libs: Sequence[str | None] | None) -> Tensor:
        """Each image's score under its own Gaussian (its lib's, else the global one)."""
        columns = gaussian_columns(self.gaussian_keys, libs, len(scores), self.per_lib)
        return scores[torch.arange(len(scores)), torch.tensor(columns, dtype=torch.long)]

    def __call__(self, images: Tensor, libs: Sequence[str | None] | None = None) -> Inspection:
        """Decisions for preprocessed, normalised images, as ``Inspector.forward`` makes them."""
        logits, scores = self.run(images)
        drift_score = None if scores is None else self.drift_score(scores, libs)
        return decide_from(logits, drift_score, libs, self.spec, self.threshold,
                           self.trained_cost)

    forward = __call__
