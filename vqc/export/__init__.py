"""Export of an inspector to ONNX, a parity check against PyTorch, and an ONNX Runtime
inspector (see ``docs/DEPLOY.md``)."""

from __future__ import annotations

from vqc.export.onnx import ExportGraph, check_parity, export_onnx, gaussian_order
from vqc.export.runtime import OnnxInspector

__all__ = ["ExportGraph", "OnnxInspector", "check_parity", "export_onnx", "gaussian_order"]
