"""Real data: ``python train.py experiment=magnetic_tile`` end to end, timed, and its scores.

The magnetic-tile set (one GOOD class, five defects, 80 test-only drift images from other
parts and cameras) is read where it lies (``--data``, else ``$VQC_MAGNETIC_TILE``, else
``../shared/datasets/magnetic-tile``); nothing is copied. The run trains the 5-block CNN from
scratch (no pretrained weights needed), fits PaDiM on its training images, calibrates the drift
threshold and the temperature on validation, and scores the whole inspection on the test split.
Quick mode trains for one epoch: it checks the path, not the quality.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, Result, arguments, log, stat
from vqc.classes import ClassSet
from vqc.metrics import ScoreReport

DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "magnetic-tile"
PICTURES = ROOT / "docs" / "images"
GOALS = {"escape_rate": 0.01, "macro_recall": 0.95, "drift_auroc": 0.99,
         "false_drift_rate": 0.01}


def data_root(path: str | None) -> Path:
    root = Path(path or os.environ.get("VQC_MAGNETIC_TILE") or DEFAULT_DATA).resolve()
    if not (root / "labels.csv").is_file():
        raise SystemExit(f"{root}: no labels.csv; pass --data PATH to the magnetic-tile set "
                         "(or set VQC_MAGNETIC_TILE)")
    return root


def train(root: Path, run_dir: Path, overrides: list[str]) -> float:
    """Run the experiment in a child process; returns its wall-clock seconds."""
    command = [sys.executable, str(ROOT / "train.py"), "experiment=magnetic_tile",
               f"data.root={root}", f"hydra.run.dir={run_dir}", *overrides]
    log(" ".join(command[1:]))
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    return time.perf_counter() - start


def figures_of(summary: dict[str, Any], seconds: float) -> dict[str, Any]:
    """What the report shows, from the run's ``summary.json``."""
    inspection = summary["inspection"]
    report, alone = inspection["report"], inspection["classifier_only"]
    keys = ("pwa", "floor", "cost_ratio", "macro_recall", "accuracy", "escapes",
            "defect_images", "escape_rate", "false_alarms", "good_images", "false_alarm_rate")
    figures = {
        "seconds": stat([seconds]),
        "epochs": summary["epochs"],
        "inspection": {k: report[k] for k in keys},
        "per_class": [{k: row[k] for k in ("name", "images", "predicted", "recall")}
                      for row in report["per_class"]],
        "classifier_only": {k: alone[k] for k in keys},
        "drift_auroc": inspection["drift_auroc"],
        "false_drift_rate": inspection["false_drift_rate"],
        "drift_recall": inspection["drift_recall"],
        "confusion": report["confusion"],
        "class_names": report["class_names"],
    }
    measured = {"escape_rate": report["escape_rate"], "macro_recall": report["macro_recall"],
                "drift_auroc": inspection["drift_auroc"],
                "false_drift_rate": inspection["false_drift_rate"]}
    figures["goals"] = {
        name: {"goal": goal, "measured": measured[name],
               "met": measured[name] is not None and (
                   measured[name] >= goal if name in ("macro_recall", "drift_auroc")
                   else measured[name] <= goal)}
        for name, goal in GOALS.items()}
    return figures


def confusion_picture(summary: dict[str, Any], path: Path) -> Path:
    report = summary["inspection"]["report"]
    names = report["class_names"]
    classes = ClassSet(tuple(names), open_set=names[report["open_set_code"]],
                       good=names[report["good_code"]])
    score = ScoreReport.from_confusion(report["confusion"], report["cost_matrix"], classes)
    return score.save_confusion_png(path, "magnetic tiles, whole inspection (test split): "
                                    f"PWA {score.pwa:.4f} vs floor {score.floor.pwa:.4f}")


def run(quick: bool, device: str = "cpu", data: str | None = None,
        overrides: list[str] | None = None) -> Result:
    root = data_root(data)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    run_dir = ROOT / "outputs" / "bench" / f"magnetic_tile_{stamp}"
    extra = list(overrides or [])
    if quick:
        extra.append("trainer.max_epochs=1")
    if device.startswith("cuda"):
        extra += ["trainer=gpu"]
    seconds = train(root, run_dir, extra)
    summary = json.loads((run_dir / "summary.json").read_text())
    figures = figures_of(summary, seconds)
    figures["overrides"] = extra
    figures["run_dir"] = str(run_dir.relative_to(ROOT))
    picture = (run_dir if quick else PICTURES) / "magnetic_tile_confusion.png"
    figures["confusion_png"] = str(confusion_picture(summary, picture).relative_to(ROOT))
    result = Result("real_data", figures, quick, device=device)
    log(f"wrote {result.save()}")
    return result


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--data", help="the magnetic-tile folder (holding labels.csv)")
    parser.add_argument("overrides", nargs="*", help="more train.py overrides")
    args = parser.parse_args()
    run(args.quick, args.device, args.data, args.overrides)


if __name__ == "__main__":
    main()
