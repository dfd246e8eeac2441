"""Export an :class:`~vqc.inspection.inspector.Inspector` to one ONNX graph, and check it.

The graph takes preprocessed, normalised images ``images (B, C, H, W)`` (float32, ``H, W``
fixed by the inspector's preprocessing, ``B`` dynamic) and returns

- ``logits (B, K)``: the classifier's logits over the trained classes;
- ``drift_scores (B, G)`` when the inspector has drift detectors: each detector's raw score of
  the image under each of its variants (PaDiM: the global Gaussian first, then one per lib in
  sorted order), detector after detector. The model's metadata names each column's detector
  (``vqc.drift_columns``) and variant (``vqc.gaussians``).

Inside the graph: the backbone (one pass serves every head) and each detector's
``score_columns``, the very modules the PyTorch inspector runs, traced (PaDiM: channel
selection, nearest upsampling, Mahalanobis distance per position against its buffers,
optional bilinear upsampling and smoothing, maximum; the pooled detector: Mahalanobis
distance of the pooled features). Outside it (:class:`~vqc.export.runtime.OnnxInspector`):
picking each image's column by lib, the division by each detector's scale, the maximum over
detectors, the threshold, the temperature, the softmax and the decision rule, the same code
:class:`~vqc.inspection.inspector.Inspector` runs.

The inspector's spec (classes, preprocessing, costs, detectors, scales, thresholds) travels as
JSON in the model's ``metadata_props``, so a runtime needs only the ``.onnx`` file.
"""

from __future__ import annotations

import copy
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vqc.drift import DriftEnsemble, forward_outputs
from vqc.drift.ensemble import lib_keys
from vqc.errors import ConfigError, DataError
from vqc.export.format import DRIFT_SCORES, INPUT, LOGITS, ExportMetadata
from vqc.inspection.inspector import Inspector
from vqc.io import write_atomic

log = logging.getLogger(__name__)

#: A protobuf file cannot exceed 2 GiB; keep a margin for the graph itself.
MAX_BYTES = 2**31 - (64 << 20)
#: Opset of the TorchScript exporter when none is asked for.
LEGACY_OPSET = 17


def gaussian_order(drift: DriftEnsemble) -> list[str]:
    """The global key, then every lib some detector has its own variant for, sorted."""
    for detector in drift:
        detector.check_fitted()
    return lib_keys(drift)


class ExportGraph(nn.Module):
    """What is exported: images -> logits and, with detectors, their raw scores per variant.

    The same modules as ``Inspector.forward`` up to the scores; each detector's variants are
    all scored (the choice by lib happens outside the graph).
    """

    def __init__(self, inspector: Inspector, image_size: Sequence[int]) -> None:
        super().__init__()
        self.classifier = inspector.classifier
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.drift = inspector.drift
        self.with_drift = self.drift is not None
        self.detector_names: list[str] = []
        self.keys: list[str] = []
        if self.drift is None:
            return
        gaussian_order(self.drift)  # fitted, all of them
        self.detector_names, self.keys = self.drift.column_names()
        # one eager pass fixes what tracing must see as constants (PaDiM's channel split)
        device = next(self.classifier.parameters()).device
        probe = torch.zeros(1, self.classifier.in_channels, *self.image_size, device=device)
        with torch.no_grad():
            self.forward(probe)

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        if self.drift is None:
            return (self.classifier(images),)
        outputs = forward_outputs(self.classifier, images, self.drift.layers)
        assert outputs.logits is not None
        scores = torch.cat([detector.score_columns(outputs) for detector in self.drift], dim=1)
        return outputs.logits, scores


def _nbytes(module: nn.Module) -> int:
    return sum(t.numel() * t.element_size()
               for t in [*module.parameters(), *module.buffers()])


def _metadata(inspector: Inspector, graph: ExportGraph, input_shape: list[int],
              exporter: str) -> dict[str, str]:
    return ExportMetadata(inspector.spec_dict(), input_shape, graph.keys, graph.detector_names,
                          exporter).to_props()


def _export_dynamo(graph: ExportGraph, example: Tensor, outputs: list[str], dynamic: bool,
                   opset: int | None) -> Any:
    """ONNX ``ModelProto`` from the ``torch.export``-based exporter."""
    dynamic_shapes = ({INPUT: {0: torch.export.Dim("batch", min=1, max=1 << 20)}}
                      if dynamic else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(graph, (example,), dynamo=True, input_names=[INPUT],
                                    output_names=outputs, dynamic_shapes=dynamic_shapes,
                                    opset_version=opset, verbose=False)
    return program.model_proto


def _export_torchscript(graph: ExportGraph, example: Tensor, outputs: list[str], dynamic: bool,
                        opset: int | None) -> Any:
    """ONNX ``ModelProto`` from the TorchScript-based exporter (the fallback)."""
    import io

    import onnx

    buffer = io.BytesIO()
    axes = {name: {0: "batch"} for name in [INPUT, *outputs]} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (example,), buffer, dynamo=False, input_names=[INPUT],
                          output_names=outputs, dynamic_axes=axes,
                          opset_version=opset or LEGACY_OPSET)
    return onnx.load_from_string(buffer.getvalue())


def export_onnx(
    inspector: Inspector,
    path: str | os.PathLike[str],
    batch_size_dynamic: bool = True,
    opset: int | None = None,
    batch_size: int = 2,
) -> Path:
    """Write ``inspector`` as one ONNX graph at ``path`` (atomically); returns the path.

    ``batch_size`` is the size of the example batch the graph is traced with, and the fixed
    batch size of the graph when ``batch_size_dynamic`` is false. ``opset``: the ONNX opset
    (default: the exporter's). The ``torch.export``-based exporter is tried first; when it fails
    the TorchScript-based one is used and a warning names the reason.
    """
    path = Path(path)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    size = [int(s) for s in inspector.spec.preprocess["size"]]
    input_shape = [int(inspector.classifier.in_channels), *size]
    source = inspector
    if next(inspector.classifier.parameters()).device.type != "cpu":
        source = copy.deepcopy(inspector).cpu()
    graph = ExportGraph(source, size).eval()
    total = _nbytes(graph)
    if total > MAX_BYTES:
        raise ConfigError(
            f"the inspector's weights and Gaussians take {total / 2**30:.2f} GiB, more than one "
            "ONNX file can hold (2 GiB): use fewer drift.n_features or a smaller model")
    outputs = [LOGITS, DRIFT_SCORES] if graph.with_drift else [LOGITS]
    example = torch.zeros(batch_size, *input_shape)
    errors = []
    proto, exporter = None, ""
    for exporter, function in (("dynamo", _export_dynamo),
                               ("torchscript", _export_torchscript)):
        try:
            proto = function(graph, example, outputs, batch_size_dynamic, opset)
            break
        except Exception as err:  # any exporter failure: try the next, report all
            reason = f"{type(err).__name__}: {' '.join(str(err).split())[:500]}"
            errors.append(f"{exporter} exporter: {reason}")
            if exporter == "dynamo":
                log.warning("torch.export-based ONNX export failed (%s); using the "
                            "TorchScript-based exporter", reason)
    if proto is None:
        raise ConfigError("the inspector cannot be exported to ONNX (an operation or option of "
                          "its model or drift detector has no ONNX form): " + "; ".join(errors))
    kept = [(e.key, e.value) for e in proto.metadata_props if not e.key.startswith("vqc.")]
    del proto.metadata_props[:]
    for key, value in [*kept, *_metadata(inspector, graph, input_shape, exporter).items()]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = "vqc inspector: images -> logits" + (
        ", drift scores per detector and variant" if graph.with_drift else "")
    return write_atomic(path, proto.SerializeToString())


# -- parity ---------------------------------------------------------------------------------
@torch.no_grad()
def reference_outputs(inspector: Inspector, images: Tensor) -> tuple[Tensor, Tensor | None]:
    """PyTorch's logits ``(B, K)`` and drift scores per detector and variant ``(B, G)``
    (eager, the exported modules), in the export's column order."""
    device = next(inspector.classifier.parameters()).device
    graph = ExportGraph(inspector, tuple(images.shape[-2:]))
    outputs = graph(images.to(device))
    logits = outputs[0].float().cpu()
    return logits, (outputs[1].float().cpu() if len(outputs) > 1 else None)


def _differences(name: str, ours: Tensor, reference: Tensor, atol: float,
                 rtol: float) -> dict[str, Any]:
    ours, reference = ours.double(), reference.double()
    if ours.shape != reference.shape:
        raise DataError(f"ONNX {name} have shape {tuple(ours.shape)}, PyTorch's "
                        f"{tuple(reference.shape)}")
    diff = (ours - reference).abs()
    rel = diff / reference.abs().clamp_min(1e-12)
    bad = diff > atol + rtol * reference.abs()
    return {f"{name}_max_abs": float(diff.max()) if diff.numel() else 0.0,
            f"{name}_max_rel": float(rel.max()) if rel.numel() else 0.0,
            f"{name}_out_of_tolerance": int(bad.sum())}


def check_parity(
    inspector: Inspector,
    onnx_path: str | os.PathLike[str],
    images: Tensor,
    libs: Sequence[str | None] | None = None,
    atol: float = 1e-4,
    rtol: float = 1e-4,
) -> dict[str, Any]:
    """Run ONNX Runtime (CPU) and PyTorch on the same images; compare what they give.

    ``images``: preprocessed, normalised float ``(B, C, H, W)`` (uint8 images are normalised
    with the inspector's normalisation first). Logits, probabilities and drift scores (under
    every Gaussian) must agree within ``|onnx - torch| <= atol + rtol * |torch|``, and the
    decisions (class codes and drift flags, with ``libs``) must be identical. Returns the
    largest absolute and relative differences; raises :class:`~vqc.errors.DataError` otherwise.
    """
    from vqc.export.runtime import OnnxInspector

    if images.dtype == torch.uint8:
        images = inspector.normalise(images)
    images = images.float().cpu()
    runtime = OnnxInspector(onnx_path)
    report: dict[str, Any] = {"images": len(images), "gaussians": list(runtime.gaussian_keys),
                              "atol": atol, "rtol": rtol}
    logits, scores = runtime.run(images)
    ref_logits, ref_scores = reference_outputs(inspector, images)
    report.update(_differences("logits", logits, ref_logits, atol, rtol))
    if (scores is None) != (ref_scores is None):
        raise DataError("the ONNX model and the inspector disagree on having a drift detector")
    if scores is not None and ref_scores is not None:
        report.update(_differences("drift_scores", scores, ref_scores, atol, rtol))
    ours, theirs = runtime(images, libs), inspector(images, libs)
    report.update(_differences("probabilities", ours.probabilities, theirs.probabilities,
                               atol, rtol))
    mismatched = ((ours.decision != theirs.decision) | (ours.is_drift != theirs.is_drift))
    report["decisions_differ"] = int(mismatched.sum())
    problems = [name for name in ("logits", "drift_scores", "probabilities")
                if report.get(f"{name}_out_of_tolerance", 0)]
    if problems or report["decisions_differ"]:
        rows = np.flatnonzero(mismatched.numpy())[:10].tolist()
        detail = "; ".join(f"{name}: {report[f'{name}_out_of_tolerance']} value(s) beyond "
                           f"atol={atol:g}, rtol={rtol:g} (max abs "
                           f"{report[f'{name}_max_abs']:.3g})" for name in problems)
        if rows:
            detail = "; ".join(filter(None, [detail, f"decisions differ for image(s) {rows}"]))
        raise DataError(f"{onnx_path}: ONNX Runtime does not match PyTorch: {detail}")
    return report
