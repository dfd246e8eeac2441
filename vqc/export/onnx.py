"""Export an :class:`~vqc.inspection.inspector.Inspector` to one ONNX graph, and check it.

The graph takes preprocessed, normalised images ``images (B, C, H, W)`` (float32, ``H, W``
fixed by the inspector's preprocessing, ``B`` dynamic) and returns

- ``logits (B, K)``: the classifier's logits over the trained classes;
- ``drift_scores (B, G)`` when the inspector has a drift detector: the image's drift score
  under each of its ``G`` fitted Gaussians, the global one first, then one per lib in sorted
  order (the order is in the model's metadata, ``vqc.gaussians``).

Inside the graph: the backbone (one pass serves both heads), the PaDiM channel selection and
nearest upsampling, the Mahalanobis distance per position with the stored means and inverse
covariances as constants, the optional bilinear upsampling and Gaussian smoothing of the map,
and the maximum over positions. Outside it (:class:`~vqc.export.runtime.OnnxInspector`):
picking each image's Gaussian and threshold by lib, the temperature, the softmax and the
decision rule, the same code :class:`~vqc.inspection.inspector.Inspector` runs.

The inspector's spec (classes, preprocessing, costs, thresholds) travels as JSON in the model's
``metadata_props``, so a runtime needs only the ``.onnx`` file.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vqc.drift import GLOBAL, DriftDetector
from vqc.drift.features import forward_with_maps, upsample_nearest
from vqc.drift.gaussian import mahalanobis
from vqc.drift.smoothing import gaussian_blur, resize_bilinear
from vqc.errors import ConfigError, DataError
from vqc.inspection.inspector import Inspector
from vqc.io import write_atomic

log = logging.getLogger(__name__)

#: ``metadata_props`` keys of an exported inspector.
META_FORMAT = "vqc.format"
META_VERSION = "vqc.format_version"
META_SPEC = "vqc.spec"
META_GAUSSIANS = "vqc.gaussians"
META_INPUT = "vqc.input_shape"
META_EXPORTER = "vqc.exporter"
FORMAT = "vqc-inspector-onnx"
FORMAT_VERSION = 1

INPUT = "images"
LOGITS = "logits"
DRIFT_SCORES = "drift_scores"

#: A protobuf file cannot exceed 2 GiB; keep a margin for the graph itself.
MAX_BYTES = 2**31 - (64 << 20)
#: Opset of the TorchScript exporter when none is asked for.
LEGACY_OPSET = 17


def gaussian_order(detector: DriftDetector) -> list[str]:
    """The order of ``drift_scores`` columns: the global Gaussian, then the libs, sorted."""
    if GLOBAL not in detector.gaussians:
        raise ConfigError("the drift detector is not fitted: nothing to export")
    return [GLOBAL, *sorted(key for key in detector.gaussians if key != GLOBAL)]


class ExportGraph(nn.Module):
    """What is exported: images -> logits and, with a detector, one drift score per Gaussian.

    The same computation as ``Inspector.forward`` up to the scores (see the module docstring),
    written with static channel indices so that it traces into a graph.
    """

    def __init__(self, inspector: Inspector, image_size: Sequence[int]) -> None:
        super().__init__()
        self.classifier = inspector.classifier
        self.image_size = (int(image_size[0]), int(image_size[1]))
        detector = inspector.drift
        self.with_drift = detector is not None
        self.keys: list[str] = []
        self.split: list[tuple[str, str]] = []
        if detector is None:
            return
        if not inspector.shared_backbone:
            raise ConfigError("only drift detectors reading the classifier's own feature maps "
                              "(the shared backbone) can be exported")
        idx = detector.embedding.idx
        if idx is None:
            raise ConfigError("the drift detector is not fitted: nothing to export")
        config = detector.config
        self.layers = tuple(config.layers)
        self.upsample = bool(config.upsample)
        self.sigma = float(config.sigma)
        self.keys = gaussian_order(detector)
        device = next(self.classifier.parameters()).device
        probe = torch.zeros(1, self.classifier.in_channels, *self.image_size, device=device)
        with torch.no_grad():
            maps = self.classifier.feature_maps(probe, self.layers)
        channels = [int(maps[name].shape[1]) for name in self.layers]
        if int(idx.max()) >= sum(channels) or not bool((idx[1:] > idx[:-1]).all()):
            raise ConfigError(f"stored channel indices do not fit layers {list(self.layers)} "
                              f"with {channels} channels")
        start = 0
        for i, (name, count) in enumerate(zip(self.layers, channels, strict=True)):
            local = idx[(idx >= start) & (idx < start + count)] - start
            start += count
            if len(local):
                self.register_buffer(f"channels_{i}", local.to(torch.int64).clone())
                self.split.append((name, f"channels_{i}"))
        for i, key in enumerate(self.keys):
            stats = detector.gaussians[key]
            self.register_buffer(f"mean_{i}", stats.mean.detach().float().clone())
            self.register_buffer(f"inv_covariance_{i}",
                                 stats.inv_covariance.detach().float().clone())

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        if not self.with_drift:
            return (self.classifier(images),)
        logits, maps = forward_with_maps(self.classifier, images, self.layers)
        size = maps[self.layers[0]].shape[-2:]
        embedding = torch.cat([upsample_nearest(torch.index_select(maps[name], 1,
                                                                   getattr(self, buffer)), size)
                               for name, buffer in self.split], dim=1)
        scores = []
        for i in range(len(self.keys)):
            distances = mahalanobis(embedding, getattr(self, f"mean_{i}"),
                                    getattr(self, f"inv_covariance_{i}"))
            if self.upsample:
                distances = resize_bilinear(distances, self.image_size)
            distances = gaussian_blur(distances, self.sigma)
            scores.append(distances.amax(dim=(-2, -1)))
        return logits, torch.stack(scores, dim=1)


def _nbytes(module: nn.Module) -> int:
    return sum(t.numel() * t.element_size()
               for t in [*module.parameters(), *module.buffers()])


def _metadata(inspector: Inspector, graph: ExportGraph, input_shape: list[int],
              exporter: str) -> dict[str, str]:
    return {
        META_FORMAT: FORMAT,
        META_VERSION: str(FORMAT_VERSION),
        META_SPEC: json.dumps(inspector.spec_dict()),
        META_GAUSSIANS: json.dumps(graph.keys),
        META_INPUT: json.dumps(input_shape),
        META_EXPORTER: exporter,
    }


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
        source = copy.deepcopy(inspector).cpu()  # the detector's source follows the copy
        if source.drift is not None:
            source.drift.to("cpu")
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
        ", drift scores per Gaussian" if graph.with_drift else "")
    return write_atomic(path, proto.SerializeToString())


# -- parity ---------------------------------------------------------------------------------
@torch.no_grad()
def reference_outputs(inspector: Inspector, images: Tensor) -> tuple[Tensor, Tensor | None]:
    """PyTorch's logits ``(B, K)`` and drift scores per Gaussian ``(B, G)`` (eager, detector
    code), in the export's Gaussian order."""
    device = next(inspector.classifier.parameters()).device
    images = images.to(device)
    if inspector.drift is None:
        return inspector.classifier(images).float().cpu(), None
    detector = inspector.drift
    logits, maps = forward_with_maps(inspector.classifier, images, detector.config.layers)
    size = tuple(images.shape[-2:])
    columns = [detector.score(maps, None if key == GLOBAL else [key] * len(images), size)
               for key in gaussian_order(detector)]
    return logits.float().cpu(), torch.stack(columns, dim=1).float().cpu()


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
