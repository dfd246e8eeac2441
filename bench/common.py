"""Timing, machine description and result files shared by every benchmark.

Every figure is the median of several runs with its spread (min and max); ratios are taken
between figures measured in the same process, one after the other, so that the load of a
shared machine weighs on both sides alike.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

import vqc

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


@dataclass
class Stat:
    """Several measurements of one quantity (seconds, images per second, bytes...)."""

    runs: list[float]
    unit: str = "s"

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def low(self) -> float:
        return min(self.runs)

    @property
    def high(self) -> float:
        return max(self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {"median": self.median, "min": self.low, "max": self.high, "runs": self.runs,
                "unit": self.unit}


def stat(runs: list[float], unit: str = "s") -> dict[str, Any]:
    """``Stat(runs, unit).to_dict()``, the form results are stored in."""
    return Stat([float(r) for r in runs], unit).to_dict()


def per_item(seconds: dict[str, Any], items: int, unit: str = "img/s") -> dict[str, Any]:
    """A rate (``items / s``) from a stored time, run by run."""
    return stat([items / s for s in seconds["runs"]], unit)


def ratio(numerator: dict[str, Any], denominator: dict[str, Any]) -> dict[str, Any]:
    """Run-by-run ratio of two stored figures measured alternately (run i with run i)."""
    return stat([a / b for a, b in zip(numerator["runs"], denominator["runs"], strict=True)], "x")


def synchronize(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_once(fn: Callable[[], Any], device: torch.device | str = "cpu") -> float:
    """Wall-clock seconds of one call, the device's queue drained before and after."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def measure(fn: Callable[[], Any], repeats: int, warmup: int = 1,
            device: torch.device | str = "cpu") -> dict[str, Any]:
    """Seconds per call: ``warmup`` untimed calls, then ``repeats`` timed ones."""
    for _ in range(warmup):
        time_once(fn, device)
    return stat([time_once(fn, device) for _ in range(repeats)])


def measure_side_by_side(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1,
                         device: torch.device | str = "cpu") -> dict[str, dict[str, Any]]:
    """Seconds per call of each function, interleaved: round i times every function once.

    Interleaving makes a burst of load from other processes fall on every contender, so the
    run-by-run ratios (:func:`ratio`) are steadier than ratios of separately timed medians.
    """
    for fn in fns.values():
        for _ in range(warmup):
            time_once(fn, device)
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            runs[name].append(time_once(fn, device))
    return {name: stat(values) for name, values in runs.items()}


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else platform.machine()


def machine(device: torch.device | str = "cpu") -> dict[str, Any]:
    """What the figures were measured on."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else
        os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "vqc": vqc.__version__,
        "device": str(device),
    }
    if torch.device(device).type == "cuda":
        props = torch.cuda.get_device_properties(torch.device(device))
        info["gpu"] = props.name
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
    return info


def machine_tag(device: torch.device | str = "cpu") -> str:
    """Folder name of a machine's results: ``cpu`` or ``gpu-<card>``."""
    if torch.device(device).type != "cuda":
        return "cpu"
    name = torch.cuda.get_device_properties(torch.device(device)).name
    return "gpu-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def invocation() -> str:
    """The command line that is running, as a user would type it from the project root."""
    script = Path(sys.argv[0]).resolve()
    if script.suffix == ".py" and script.is_relative_to(ROOT):
        module = ".".join(script.relative_to(ROOT).with_suffix("").parts)
        return shlex.join(["python", "-m", module, *sys.argv[1:]])
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])


@dataclass
class Result:
    """One benchmark's output file: what ran, where, when, and its figures."""

    section: str
    figures: dict[str, Any]
    quick: bool
    device: str = "cpu"
    command: str = field(default_factory=lambda: invocation())
    date: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).strftime(
        "%Y-%m-%d %H:%M UTC"))
    machine: dict[str, Any] = field(default_factory=dict)

    def save(self, results: Path = RESULTS) -> Path:
        """Write ``results/<machine tag>/<section>.json`` atomically."""
        if not self.machine:
            self.machine = machine(self.device)
        folder = results / machine_tag(self.device)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.section}.json"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1) + "\n")
        os.replace(tmp, path)
        return path


def load_results(results: Path = RESULTS) -> dict[str, dict[str, dict[str, Any]]]:
    """``{machine tag: {section: result dict}}`` of every stored result."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for path in sorted(results.glob("*/*.json")):
        found.setdefault(path.parent.name, {})[path.stem] = json.loads(path.read_text())
    return found


def arguments(doc: str) -> argparse.ArgumentParser:
    """The command line every benchmark takes (``--quick``, ``--device``); add to it."""
    parser = argparse.ArgumentParser(description=doc.strip().split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and fewer runs: checks that the benchmark runs")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    return parser


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)
