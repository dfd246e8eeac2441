"""The inspection pipeline: image in, decision out (GOOD, a defect, or Drift), in one artifact."""

from vqc.inspection.inspector import Inspection, Inspector, InspectorSpec

__all__ = ["Inspection", "Inspector", "InspectorSpec"]
