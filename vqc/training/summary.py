"""A run's summary, typed: what ``summary.json`` holds, written and read here only.

Training (``train.py``) and testing (``eval.py`` / ``vqc-test``) end with a :class:`RunSummary`;
the terminal report, the sweep table, the W&B review and the benchmarks read it. Each field
says what it holds. The file carries its ``version``: a file of a newer version than this vqc
reads is refused, and so is a file with keys this version does not know, naming them.

The summary also reads as a mapping of its fields (``summary["test"]``,
``summary.get("metric")``, ``{**summary}``), so code that treats ``summary.json`` as a
dictionary keeps working.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from vqc.errors import DataError
from vqc.io import write_atomic

#: The layout of ``summary.json`` this vqc writes (and the newest it reads).
SUMMARY_VERSION = 1
SUMMARY_FILE = "summary.json"


@dataclass(eq=False)
class RunSummary(Mapping[str, Any]):
    """The outcome of one run; ``None`` where the run had nothing to say."""

    run_dir: str                                   # the run's folder
    kind: str = "train"                            # "train", or "test" (a model tested)
    epochs: int | None = None                      # epochs trained
    classes: list[str] | None = None               # every class by its code (a submission's
                                                   # Label), the open set last
    choices: list[dict[str, Any]] = field(default_factory=list)  # ``auto`` values resolved
    warnings: list[str] = field(default_factory=list)  # everything the run warned about
    best_checkpoint: str | None = None             # the weights tested and shipped
    checkpoint: str | None = None                  # the checkpoint a test read
    best: dict[str, Any] | None = None             # monitor, score, epoch, metrics of the best
    best_monitor: str | None = None                # the figure the best checkpoint was kept by
    best_score: float | None = None                # its value there
    members: list[dict[str, Any]] | None = None    # networks of an ensemble beyond the first
    test: dict[str, Any] | None = None             # the classifier's test report
    test_decisions: dict[str, Any] | None = None   # that test under each decision rule
    decision: str | None = None                    # the rule the classifier decides by
    inspector: str | None = None                   # inspector.safetensors
    inspection: dict[str, Any] | None = None       # the whole inspection scored on test
    optimized_metric: str | None = None            # what a sweeper optimises
    metric: float | None = None                    # its value at the best epoch
    metric_floor: float | None = None              # the same figure of the best constant answer
    wandb_dir: str | None = None                   # the W&B run's folder
    rank: int | None = None                        # set on the other processes of a DDP run
    version: int = SUMMARY_VERSION

    # -- a mapping, for readers of summary.json as a dictionary ---------------------------------
    def __getitem__(self, key: str) -> Any:
        if key not in _NAMES:
            raise KeyError(key)
        return getattr(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in _NAMES:
            raise KeyError(f"{key!r} is not a field of RunSummary")
        setattr(self, key, value)

    def __iter__(self) -> Iterator[str]:
        return iter(_NAMES)

    def __len__(self) -> int:
        return len(_NAMES)

    def update(self, values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            self[key] = value

    # -- the file ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, folder: str | Path | None = None) -> Path:
        """``summary.json`` in ``folder`` (default: the run's), atomically."""
        path = Path(folder or self.run_dir) / SUMMARY_FILE
        return write_atomic(path, json.dumps(self.to_dict(), indent=2, default=str))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "summary") -> RunSummary:
        """A summary from its JSON object; a newer version or unknown keys refused by name."""
        version = int(data.get("version", 1))
        if version > SUMMARY_VERSION:
            raise DataError(f"{where}: summary version {version} is newer than this vqc reads "
                            f"({SUMMARY_VERSION}); upgrade vqc")
        unknown = sorted(set(data) - set(_NAMES))
        if unknown:
            raise DataError(f"{where}: unknown key(s) {unknown} in a run summary of version "
                            f"{version}")
        if "run_dir" not in data:
            raise DataError(f"{where}: a run summary without 'run_dir'")
        return cls(**dict(data))

    @classmethod
    def read(cls, path: str | Path) -> RunSummary:
        """``summary.json`` (or its folder) read back."""
        path = Path(path)
        path = path / SUMMARY_FILE if path.is_dir() else path
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise DataError(f"{path}: not a readable run summary ({err})") from err
        if not isinstance(data, dict):
            raise DataError(f"{path}: not a run summary (a JSON object)")
        data.setdefault("run_dir", str(path.parent))  # the folder it lies in
        return cls.from_dict(data, str(path))


_NAMES = tuple(f.name for f in fields(RunSummary))

__all__ = ["SUMMARY_FILE", "SUMMARY_VERSION", "RunSummary"]
