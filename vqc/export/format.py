"""The exported inspector's ONNX format: input and output names, ``metadata_props`` keys.

Shared by the exporter (``vqc.export.onnx``) and the runtime (``vqc.export.runtime``), which
otherwise do not depend on each other.
"""

from __future__ import annotations

FORMAT = "vqc-inspector-onnx"
#: 2: drift-score columns of several detectors (``vqc.drift_columns``); 1: one PaDiM's.
FORMAT_VERSION = 2

#: ``metadata_props`` keys of an exported inspector.
META_FORMAT = "vqc.format"
META_VERSION = "vqc.format_version"
META_SPEC = "vqc.spec"
#: The variant key of each ``drift_scores`` column (``*``, or a lib).
META_GAUSSIANS = "vqc.gaussians"
#: The detector name of each ``drift_scores`` column.
META_COLUMNS = "vqc.drift_columns"
META_INPUT = "vqc.input_shape"
META_EXPORTER = "vqc.exporter"

INPUT = "images"
LOGITS = "logits"
DRIFT_SCORES = "drift_scores"
