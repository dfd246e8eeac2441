"""The exported inspector's ONNX format: input and output names, ``metadata_props`` keys.

Shared by the exporter (``vqc.export.onnx``, which writes :class:`ExportMetadata`) and the
runtime (``vqc.export.runtime``, which reads it back); neither imports the other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vqc.errors import DataError

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


@dataclass
class ExportMetadata:
    """What an exported inspector's ``metadata_props`` hold besides the graph."""

    spec: dict[str, Any]
    input_shape: list[int]
    gaussians: list[str] = field(default_factory=list)
    detectors: list[str] = field(default_factory=list)
    exporter: str = ""

    def to_props(self) -> dict[str, str]:
        return {
            META_FORMAT: FORMAT,
            META_VERSION: str(FORMAT_VERSION),
            META_SPEC: json.dumps(self.spec),
            META_GAUSSIANS: json.dumps(self.gaussians),
            META_COLUMNS: json.dumps(self.detectors),
            META_INPUT: json.dumps(self.input_shape),
            META_EXPORTER: self.exporter,
        }

    @classmethod
    def from_props(cls, props: Mapping[str, str], path: object) -> ExportMetadata:
        """Read them back; ``DataError`` naming ``path`` for another file or a newer format.
        A first-format file's columns all belong to its one PaDiM."""
        if props.get(META_FORMAT) != FORMAT:
            raise DataError(f"{path}: an ONNX model but not an exported vqc inspector "
                            f"(no {META_FORMAT}={FORMAT} in its metadata)")
        if int(props.get(META_VERSION, "0")) > FORMAT_VERSION:
            raise DataError(f"{path}: export format {props.get(META_VERSION)} is newer "
                            f"than this vqc reads ({FORMAT_VERSION})")
        try:
            gaussians = [str(k) for k in json.loads(props.get(META_GAUSSIANS, "[]"))]
            detectors = json.loads(props.get(META_COLUMNS, "null")) or ["padim"] * len(gaussians)
            return cls(spec=dict(json.loads(props[META_SPEC])),
                       input_shape=[int(v) for v in json.loads(props[META_INPUT])],
                       gaussians=gaussians, detectors=[str(d) for d in detectors],
                       exporter=props.get(META_EXPORTER, ""))
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{path}: unreadable vqc metadata ({err})") from err
