"""Reading an offline W&B run file (``run-*.wandb``): its config, summary, history, artifacts.

The file is W&B's record log: a 7-byte header, then 32 KiB blocks of chunks, each with a 7-byte
header (crc32, length, type: 1 full, 2 first, 3 middle, 4 last) and a protobuf ``Record``.

wandb 0.31 ships no Python reader of this file: the one of older versions
(``wandb.sdk.internal.datastore``) left with the Python internal process when wandb-core (Go)
took its place, ``wandb beta leet`` is an interactive terminal viewer and ``wandb sync
--dry-run`` only lists runs; ``wandb.Api`` reads runs from a server. The record types are
wandb's own (``wandb.proto.wandb_internal_pb2``); only the block framing is read here.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32 * 1024
HEADER = 7


def records(path: Path) -> list[Any]:
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    out, pos, pending = [], HEADER, b""
    while pos + HEADER <= len(data):
        room = BLOCK - pos % BLOCK
        if room < HEADER:
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:
            break
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            out.append(record)
            pending = b""
    return out


def closed(path: Path, timeout: float = 60.0) -> Path:
    """``path`` once its ``exit`` record is in: ``wandb.finish`` can return while wandb-core is
    still writing the file's last records."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            done = any(r.WhichOneof("record_type") == "exit" for r in records(path))
        except Exception:  # a record being written
            done = False
        if done:
            return Path(path)
        assert time.monotonic() < deadline, f"{path}: no exit record after {timeout} s"
        time.sleep(0.2)


def run_config(path: Path) -> dict[str, Any]:
    """The run's config as W&B stored it (``key -> value``; W&B's own keys included)."""
    config: dict[str, Any] = {}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "config":
            for item in record.config.update:
                _put(config, item)
        elif kind == "run":
            for item in record.run.config.update:
                _put(config, item)
    return config


def run_group(path: Path) -> str:
    for record in records(path):
        if record.WhichOneof("record_type") == "run":
            return record.run.run_group
    return ""


def run_record(path: Path) -> Any:
    """The run's ``RunRecord`` (name, tags, group...)."""
    return next(r.run for r in records(path) if r.WhichOneof("record_type") == "run")


def _put(target: dict[str, Any], item: Any) -> None:
    keys = list(item.nested_key) or [item.key]
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = json.loads(item.value_json)


def summary(path: Path) -> dict[str, Any]:
    """The run summary as the run left it (later updates win)."""
    out: dict[str, Any] = {}
    for record in records(path):
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                _put(out, item)
            for item in record.summary.remove:
                keys = list(item.nested_key) or [item.key]
                out.pop(keys[0], None)
    return out


def history(path: Path) -> list[dict[str, Any]]:
    """The history rows, in order (media and tables as their file references)."""
    rows = []
    for record in records(path):
        if record.WhichOneof("record_type") == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                _put(row, item)
            rows.append(row)
    return rows


def metric_definitions(path: Path) -> dict[str, Any]:
    """``define_metric`` records: name -> ``MetricRecord``."""
    return {r.metric.name or r.metric.glob_name: r.metric for r in records(path)
            if r.WhichOneof("record_type") == "metric"}


def artifacts(path: Path) -> list[dict[str, Any]]:
    """Logged artifacts: name, type, metadata, aliases and files (name in it -> local file)."""
    out = []
    for record in records(path):
        if record.WhichOneof("record_type") == "artifact":
            artifact = record.artifact
            out.append({
                "name": artifact.name, "type": artifact.type, "aliases": list(artifact.aliases),
                "metadata": json.loads(artifact.metadata) if artifact.metadata else {},
                "files": {c.path: c.local_path for c in artifact.manifest.contents},
            })
    return out


def output_text(path: Path) -> str:
    """What the run's process printed while the run was open (W&B's console capture)."""
    return "".join(r.output_raw.line for r in records(path)
                   if r.WhichOneof("record_type") == "output_raw")
