"""``OnnxInspector``: an exported inspector run by ONNX Runtime, deciding as ``Inspector`` does.

Needs only the ``.onnx`` file: the spec (classes, preprocessing, costs, temperature, drift
thresholds) and the order of the drift-score columns are read from its metadata. No model is
built; torch is used for the decision arithmetic only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vqc.drift import GLOBAL, Combination, DriftThreshold, pick_columns
from vqc.errors import DataError
from vqc.export.format import DRIFT_SCORES, INPUT, LOGITS, ExportMetadata
from vqc.inspection.base import Inspection, InspectorBase, InspectorSpec
from vqc.integrity import onnx_damage


def drift_combination(spec: InspectorSpec) -> Combination:
    """The combination rule of an exported inspector's spec (its detectors' scales, the
    combined threshold); a first-format spec holds one PaDiM (scale 1)."""
    assert spec.drift is not None
    entries = spec.drift.get("detectors") or [{"name": "padim", "scale": 1.0}]
    names = [str(entry["name"]) for entry in entries]
    scales = torch.tensor([float(entry.get("scale", 1.0)) for entry in entries],
                          dtype=torch.float32)
    threshold = (DriftThreshold.from_dict(spec.drift_threshold) if spec.drift_threshold
                 else None)
    roles = [str(entry.get("role", "drift")) for entry in entries]
    limits = torch.tensor([
        float(entry["threshold"]["threshold"]) if role == "defect" and entry.get("threshold")
        else float("nan") for entry, role in zip(entries, roles, strict=True)],
        dtype=torch.float32)
    return Combination(names, scales, threshold, roles, limits)


class OnnxInspector(InspectorBase):
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
            damage = onnx_damage(self.path)
            if damage:
                raise DataError(f"{self.path}: ONNX model file {damage}; copy it again, or "
                                "export it again with vqc-export") from err
            message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise DataError(f"{self.path}: not a readable ONNX model ({message})") from err
        metadata = ExportMetadata.from_props(self.session.get_modelmeta().custom_metadata_map,
                                             self.path)
        self.gaussian_keys: list[str] = metadata.gaussians
        self.column_detectors: list[str] = metadata.detectors
        self.input_shape = tuple(metadata.input_shape)
        self.exporter = metadata.exporter
        try:
            spec = InspectorSpec(**metadata.spec)
        except TypeError as err:
            raise DataError(f"{self.path}: unreadable vqc metadata ({err})") from err
        self._setup(spec)
        outputs = [o.name for o in self.session.get_outputs()]
        self.with_drift = DRIFT_SCORES in outputs
        if LOGITS not in outputs or [i.name for i in self.session.get_inputs()] != [INPUT]:
            raise DataError(f"{self.path}: expected input {INPUT!r} and output {LOGITS!r}, got "
                            f"{[i.name for i in self.session.get_inputs()]} -> {outputs}")
        self.combination: Combination | None = None
        self.per_lib = False
        if self.with_drift:
            if self.spec.drift is None or not self.gaussian_keys:
                raise DataError(f"{self.path}: drift scores without a drift configuration")
            self.combination = drift_combination(self.spec)
            if (len(self.column_detectors) != len(self.gaussian_keys)
                    or set(self.column_detectors) != set(self.combination.names)):
                raise DataError(f"{self.path}: drift-score columns {self.column_detectors} do "
                                f"not match the detectors {self.combination.names}")
            self.per_lib = any(key != GLOBAL for key in self.gaussian_keys)
        self._outputs = [LOGITS, DRIFT_SCORES] if self.with_drift else [LOGITS]
        fixed = self.session.get_inputs()[0].shape[0]
        self.batch_size = fixed if isinstance(fixed, int) else None

    @property
    def threshold(self) -> DriftThreshold | None:
        """The combined drift score's threshold."""
        return None if self.combination is None else self.combination.threshold

    # -- running ----------------------------------------------------------------------------
    def run(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """The graph's outputs: logits ``(B, K)`` and drift scores per column ``(B, G)``."""
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
                            f"{len(self.gaussian_keys)} in the metadata")
        return logits, scores

    def raw_scores(self, scores: Tensor, libs: Sequence[str | None] | None) -> Tensor:
        """Each detector's score of each image ``(B, D)``: under its lib's variant when the
        detector has one, else its global one (as the detectors choose in PyTorch)."""
        assert self.combination is not None
        rows = torch.arange(len(scores))
        picked = []
        for name in self.combination.names:
            columns = [i for i, owner in enumerate(self.column_detectors) if owner == name]
            keys = [self.gaussian_keys[i] for i in columns]
            index = [columns[i] for i in pick_columns(keys, libs, len(scores))]
            picked.append(scores[rows, torch.tensor(index, dtype=torch.long)])
        return torch.stack(picked, dim=1)

    def __call__(self, images: Tensor, libs: Sequence[str | None] | None = None) -> Inspection:
        """Decisions for preprocessed, normalised images, as ``Inspector.forward`` makes them."""
        logits, scores = self.run(images)
        raw = None if scores is None else self.raw_scores(scores, libs)
        return self.decide(logits, raw, libs, self.combination)

    forward = __call__
