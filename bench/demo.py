"""The demo: ``python -m vqc.cli.demo`` (what ``make demo`` runs) end to end, timed.

A user's first ``make demo`` generates the synthetic set, caches its strips, fine-tunes the
model, fits drift, predicts the test images and scores them. The benchmark does the same in
a child process, with the set, its cache and the run folder in a fresh folder of its own under
``outputs/bench/`` (``data.root``, ``paths.cache_dir``, ``paths.output_dir``), so the wall
time includes generating the set and nothing is read from an earlier run. Its figures come
from the run's ``summary.json`` (the whole inspection on the test split) and the size of the
inspector file it writes; the machine's load (1-minute average) at the start and the end
tells whether other work shared the cores. Quick mode trains one epoch: it checks the path,
not the quality.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import RESULTS, ROOT, Result, arguments, log
from bench.real_data import Goal
from vqc.training.summary import RunSummary

SECTION = "demo"

GOALS = (
    Goal("defect escapes", "0", (("escapes", "<=", 0.0),)),
    Goal("GOOD accepted", ">= 90%", (("good_accepted", ">=", 0.90),)),
    Goal("drift images caught", ">= 80%", (("drift_caught", ">=", 0.80),)),
    Goal("wall time, generation included", "<= 6 min on 2 cores", (("minutes", "<=", 6.0),)),
)


def demo(folder: Path, overrides: list[str]) -> float:
    """Run the demo in a child process with everything under ``folder``; its wall seconds."""
    command = [sys.executable, "-m", "vqc.cli.demo", f"data.root={folder / 'data'}",
               f"paths.cache_dir={folder / 'cache'}", f"paths.output_dir={folder}", *overrides]
    log(" ".join(command[1:]))
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    return time.perf_counter() - start


def run_folder(folder: Path) -> Path:
    """The one run folder the demo wrote under ``folder`` (``demo/<date>``)."""
    found = sorted(folder.glob("demo/*/summary.json"))
    if len(found) != 1:
        raise SystemExit(f"{folder}: expected one demo/*/summary.json, found {len(found)}")
    return found[0].parent


def share(count: int | None, total: int | None) -> float | None:
    return None if count is None or not total else count / total


def figures_of(summary: dict[str, Any], seconds: float,
               inspector_bytes: int | None) -> dict[str, Any]:
    """The demo's figures from its ``summary.json``; a figure the summary lacks reads None."""
    inspection = summary.get("inspection") or {}
    report = inspection.get("report") or {}
    confusion = report.get("confusion")
    good, drift = report.get("good_code"), report.get("open_set_code")
    good_accepted = drift_caught = drift_images = false_drift = None
    if confusion and good is not None and drift is not None:
        good_accepted = int(confusion[good][good])
        drift_caught = int(confusion[drift][drift])
        drift_images = int(sum(confusion[drift]))
        false_drift = int(sum(row[drift] for i, row in enumerate(confusion) if i != drift))
    images = report.get("n")
    known = None if images is None or drift_images is None else images - drift_images
    floor = report.get("floor") or {}
    return {
        "seconds": seconds,
        "minutes": seconds / 60,
        "epochs": summary.get("epochs"),
        "images": images,
        "escapes": report.get("escapes"),
        "defect_images": report.get("defect_images"),
        "good_images": report.get("good_images"),
        "good_accepted_images": good_accepted,
        "good_accepted": share(good_accepted, report.get("good_images")),
        "drift_images": drift_images,
        "drift_caught_images": drift_caught,
        "drift_caught": share(drift_caught, drift_images),
        "known_images": known,
        "false_drift_images": false_drift,
        "false_drift": inspection.get("false_drift_rate"),
        "drift_auroc": inspection.get("drift_auroc"),
        "cost_ratio": report.get("cost_ratio"),
        "pwa": report.get("pwa"),
        "floor": floor.get("name"),
        "floor_pwa": floor.get("pwa"),
        "known_macro_recall": report.get("known_macro_recall"),
        "inspector_mb": None if inspector_bytes is None else inspector_bytes / 1e6,
    }


def goal_verdicts(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Every goal checked on the run's figures."""
    return [{"goal": goal, "measured": {key: figures.get(key) for key, _, _ in goal.bounds},
             "met": goal.met(figures)} for goal in GOALS]


def run(quick: bool, device: str = "cpu", overrides: list[str] | None = None,
        results: Path = RESULTS) -> Result:
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    folder = ROOT / "outputs" / "bench" / f"demo_{stamp}"
    extra = list(overrides or [])
    if quick:
        extra.append("trainer.max_epochs=1")
    if device.startswith("cuda"):
        extra.append("trainer=gpu")
    load_start = os.getloadavg()[0]
    seconds = demo(folder, extra)
    load_end = os.getloadavg()[0]  # the demo's own 2 cores included
    run_dir = run_folder(folder)
    summary = RunSummary.read(run_dir)
    inspector = ROOT / summary["inspector"] if summary.get("inspector") else None
    size = inspector.stat().st_size if inspector and inspector.is_file() else None
    figures = figures_of(summary, seconds, size)
    figures.update(overrides=extra, run_dir=str(run_dir.relative_to(ROOT)),
                   load_1min={"start": load_start, "end": load_end})
    log(f"{seconds / 60:.1f} min, escapes {figures['escapes']}, GOOD accepted "
        f"{figures['good_accepted_images']} of {figures['good_images']}, drift caught "
        f"{figures['drift_caught_images']} of {figures['drift_images']}")
    result = Result(SECTION, figures, quick, device=device)
    log(f"wrote {result.save(results)}")
    return result


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("overrides", nargs="*", help="more vqc.cli.demo overrides")
    args = parser.parse_args()
    run(args.quick, args.device, args.overrides)


if __name__ == "__main__":
    main()
