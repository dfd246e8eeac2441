"""An inspector's metadata read against its schema: a tampered or damaged header is refused in
one line naming the key, never a traceback, never accepted with a wrong value.

Each :class:`~vqc.inspection.base.InspectorSpec` field has a JSON type here; unknown, missing
and mistyped keys are named, and the values that tie fields together (the GOOD and open-set
classes among the class names, the cost matrix's size, the decision rule, the temperature) are
checked. The drift detectors' own descriptions are checked when they are rebuilt.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from vqc.errors import DataError
from vqc.inspection.base import InspectorSpec
from vqc.metrics import DECISION_RULES

#: JSON type of each field: (accepted Python types, may be null).
TYPES: dict[str, tuple[tuple[type, ...], bool]] = {
    "class_names": ((list,), False),
    "open_set": ((str,), True),
    "good": ((str,), True),
    "model": ((dict,), False),
    "preprocess": ((dict,), False),
    "mean": ((list,), True),
    "std": ((list,), True),
    "decision": ((str,), False),
    "cost_matrix": ((list,), False),
    "temperature": ((int, float), False),
    "drift": ((dict,), True),
    "drift_threshold": ((dict,), True),
    "versions": ((dict,), False),
}
#: Keys of ``preprocess`` (``conf/data/base/common.yaml``); ``size`` is required.
PREPROCESS_KEYS = ("size", "auto_side", "mode", "max_pixels", "resize", "rotate_crop",
                   "bit_depth")
_NAMES = {"list": "a list", "dict": "an object", "str": "a string", "int": "a number",
          "float": "a number"}


def _kind(value: Any) -> str:
    return "null" if value is None else {
        bool: "a boolean", int: "a number", float: "a number", str: "a string",
        list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _problems(raw: dict[str, Any]) -> list[str]:
    """What is wrong with the decoded metadata, one phrase each (empty: nothing)."""
    known = [f.name for f in fields(InspectorSpec)]
    required = [f.name for f in fields(InspectorSpec)
                if f.default is MISSING and f.default_factory is MISSING]
    problems = [f"unknown key {key!r} (known: {', '.join(known)})"
                for key in raw if key not in TYPES]
    problems += [f"missing key {key!r}" for key in required if key not in raw]
    for key, value in raw.items():
        if key not in TYPES:
            continue
        types, nullable = TYPES[key]
        if (value is None and not nullable) or (value is not None and (
                not isinstance(value, types) or isinstance(value, bool))):
            wanted = " or ".join(dict.fromkeys(_NAMES[t.__name__] for t in types))
            problems.append(f"{key!r} is {_kind(value)}, not {wanted}"
                            + (" or null" if nullable else ""))
    return problems


def _value_problems(spec: InspectorSpec) -> list[str]:
    names = spec.class_names
    problems = []
    if not names or not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        problems.append(f"'class_names' must be distinct strings, got {names!r}")
    for key in ("good", "open_set"):
        value = getattr(spec, key)
        if value is not None and value not in names:
            problems.append(f"{key!r} is {value!r}, which is not among the class names {names}")
    if spec.decision not in DECISION_RULES:
        problems.append(f"'decision' is {spec.decision!r}, not one of {list(DECISION_RULES)}")
    if not (math.isfinite(spec.temperature) and spec.temperature > 0):
        problems.append(f"'temperature' is {spec.temperature!r}, not a positive number")
    if not isinstance(spec.model.get("name"), str):
        problems.append("'model' has no 'name' string")
    unknown = [key for key in spec.preprocess if key not in PREPROCESS_KEYS]
    if unknown:
        problems.append(f"'preprocess' has unknown key(s) {unknown} (known: "
                        f"{', '.join(PREPROCESS_KEYS)})")
    size = spec.preprocess.get("size")
    if not (isinstance(size, list) and len(size) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in size)):
        problems.append(f"'preprocess' 'size' is {size!r}, not [height, width] in pixels")
    matrix = spec.cost_matrix
    if matrix and not (all(isinstance(row, list) and len(row) == len(matrix) for row in matrix)
                       and all(isinstance(x, int | float) and not isinstance(x, bool)
                               and math.isfinite(x) for row in matrix for x in row)):
        problems.append("'cost_matrix' is not a square matrix of finite numbers")
    for key in ("mean", "std"):
        values = getattr(spec, key)
        if values is not None and not all(isinstance(x, int | float) for x in values):
            problems.append(f"{key!r} must be a list of numbers")
    return problems


def read_spec(text: str | None, path: str | Path) -> InspectorSpec:
    """The spec of the inspector at ``path`` from its metadata ``text``, checked (module
    docstring); a :class:`DataError` naming every problem otherwise."""
    how = "write it again from its run's checkpoint (eval.py ckpt_path=...), or copy it again"
    if text is None:
        raise DataError(f"{path}: inspector metadata has no 'spec'; {how}")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: inspector metadata is not valid JSON ({err}); {how}") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: inspector metadata is {_kind(raw)}, not an object; {how}")
    problems = _problems(raw)
    spec = None if problems else InspectorSpec(**raw)
    if spec is not None:
        problems = _value_problems(spec)
    if problems:
        raise DataError(f"{path}: inspector metadata does not fit its schema: "
                        f"{'; '.join(problems)}; {how}")
    assert spec is not None
    return spec


__all__ = ["TYPES", "read_spec"]
