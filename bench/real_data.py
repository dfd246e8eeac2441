"""Real data: ``python train.py experiment=magnetic_tile`` end to end over several seeds, timed.

The magnetic-tile set (one GOOD class, five defects, 80 test-only drift images from other
parts and cameras) is read where it lies (``--data``, else ``$VQC_MAGNETIC_TILE``, else
``../shared/datasets/magnetic-tile``); nothing is copied. Each seed (``--seeds``, passed as
``seed=N``) runs the whole experiment in its own folder under ``outputs/bench/``: training,
the PaDiM fit on its training images, drift threshold and temperature calibrated on
validation, the whole inspection scored on the test split. One run on a thousand tiles can be
lucky or unlucky, so the result keeps every seed's figures and, for each headline figure, the
median and range over seeds; the goals are checked on every seed and on the worst one.

``--experiment`` picks the experiment; each has its own result file (``real_data`` for
``magnetic_tile``, ``real_data_scratch`` for ``magnetic_tile_scratch``), so that the
from-scratch figures stay beside the fine-tuned ones. Quick mode runs one seed for one epoch:
it checks the path, not the quality.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import RESULTS, ROOT, Result, arguments, log, stat
from vqc.classes import ClassSet
from vqc.metrics import ScoreReport
from vqc.training.summary import RunSummary

DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "magnetic-tile"
PICTURES = ROOT / "docs" / "images"
DEFAULT_EXPERIMENT = "magnetic_tile"
DEFAULT_SEEDS = (0, 1, 2)
SECTION = "real_data"

#: The headline figures of one run and their units, in the order the report shows them.
HEADLINE = {"cost_ratio": "ratio", "pwa": "pwa", "floor_pwa": "pwa",
            "macro_recall": "fraction", "escapes": "images", "good_flagged": "fraction",
            "drift_auroc": "auroc", "drift_caught": "fraction", "false_drift": "fraction",
            "minutes": "min"}
REPORT_KEYS = ("pwa", "floor", "cost_ratio", "macro_recall", "known_macro_recall",
               "drift_recall", "accuracy", "escapes", "defect_images", "escape_rate",
               "false_alarms", "good_images", "false_alarm_rate")


@dataclass(frozen=True)
class Goal:
    """A target on a run's headline figures; with several bounds, all must hold."""

    name: str
    target: str  # how the page states it
    bounds: tuple[tuple[str, str, float], ...]  # (headline figure, "<=" or ">=", limit)

    def met(self, figures: dict[str, float | None]) -> bool:
        """A missing figure does not meet its goal: nothing measured, nothing claimed."""
        for key, op, limit in self.bounds:
            value = figures.get(key)
            if value is None or not (value <= limit if op == "<=" else value >= limit):
                return False
        return True

    def worst(self, runs: Sequence[dict[str, float | None]]) -> dict[str, float | None]:
        """Each bounded figure's worst value over the runs (None if a run lacks it)."""
        worst: dict[str, float | None] = {}
        for key, op, _ in self.bounds:
            values = [r.get(key) for r in runs]
            if not values or any(v is None for v in values):
                worst[key] = None
            else:
                worst[key] = max(values) if op == "<=" else min(values)  # type: ignore[type-var]
        return worst


GOALS = (
    Goal("wall time of one run", "<= 30 min", (("minutes", "<=", 30.0),)),
    Goal("defect escapes", "0", (("escapes", "<=", 0.0),)),
    Goal("GOOD flagged (false alarms / GOOD images)", "<= 5%", (("good_flagged", "<=", 0.05),)),
    Goal("macro recall", ">= 0.95", (("macro_recall", ">=", 0.95),)),
    Goal("drift AUROC", ">= 0.99", (("drift_auroc", ">=", 0.99),)),
    Goal("drift images caught, false drift", ">= 90% caught, <= 1% false",
         (("drift_caught", ">=", 0.90), ("false_drift", "<=", 0.01))),
    Goal("cost ratio to the best constant predictor", "<= 0.10",
         (("cost_ratio", "<=", 0.10),)),
)


def data_root(path: str | None) -> Path:
    root = Path(path or os.environ.get("VQC_MAGNETIC_TILE") or DEFAULT_DATA).resolve()
    if not (root / "labels.csv").is_file():
        raise SystemExit(f"{root}: no labels.csv; pass --data PATH to the magnetic-tile set "
                         "(or set VQC_MAGNETIC_TILE)")
    return root


def result_name(experiment: str) -> str:
    """``real_data`` for the default experiment, ``real_data_<variant>`` for the others."""
    if experiment == DEFAULT_EXPERIMENT:
        return SECTION
    return f"{SECTION}_{experiment.removeprefix(DEFAULT_EXPERIMENT + '_')}"


def experiment_of(name: str, figures: dict[str, Any]) -> str:
    """The experiment a stored result ran; older results only have their file name."""
    if figures.get("experiment"):
        return str(figures["experiment"])
    if name == SECTION:
        return DEFAULT_EXPERIMENT
    return f"{DEFAULT_EXPERIMENT}_{name.removeprefix(SECTION + '_')}"


def train(root: Path, run_dir: Path, experiment: str, overrides: list[str]) -> float:
    """Run the experiment in a child process; returns its wall-clock seconds."""
    command = [sys.executable, str(ROOT / "train.py"), f"experiment={experiment}",
               f"data.root={root}", f"hydra.run.dir={run_dir}", *overrides]
    log(" ".join(command[1:]))
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    return time.perf_counter() - start


def figures_of(summary: dict[str, Any], seconds: float,
               seed: int | None = None) -> dict[str, Any]:
    """One run's figures, from its ``summary.json``; a key an older run lacks reads None."""
    inspection = summary.get("inspection") or {}
    report = inspection.get("report") or {}
    alone = inspection.get("classifier_only") or {}
    return {
        "seed": seed,
        "seconds": seconds,
        "epochs": summary.get("epochs"),
        "inspection": {k: report.get(k) for k in REPORT_KEYS},
        "per_class": [{k: row.get(k) for k in ("name", "images", "predicted", "recall")}
                      for row in report.get("per_class") or []],
        "classifier_only": {k: alone.get(k) for k in REPORT_KEYS},
        "drift_auroc": inspection.get("drift_auroc"),
        "false_drift_rate": inspection.get("false_drift_rate"),
        "drift_recall": inspection.get("drift_recall"),
        "confusion": report.get("confusion"),
        "class_names": report.get("class_names"),
    }


def seed_runs(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Every run of a stored result: its seeds, or the one run of the older format."""
    return list(figures["per_seed"]) if "per_seed" in figures else [figures]


def headline(run: dict[str, Any]) -> dict[str, float | None]:
    """The headline figures of one run (see ``HEADLINE``); None where it lacks one."""
    inspection = run.get("inspection") or {}
    seconds = run.get("seconds")
    if isinstance(seconds, dict):  # older results stored a one-run statistic
        seconds = seconds.get("median")
    return {
        "cost_ratio": inspection.get("cost_ratio"),
        "pwa": inspection.get("pwa"),
        "floor_pwa": (inspection.get("floor") or {}).get("pwa"),
        "macro_recall": inspection.get("macro_recall"),
        "escapes": inspection.get("escapes"),
        "good_flagged": inspection.get("false_alarm_rate"),
        "drift_auroc": run.get("drift_auroc"),
        "drift_caught": run.get("drift_recall"),
        "false_drift": run.get("false_drift_rate"),
        "minutes": None if seconds is None else seconds / 60,
    }


def spread(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any] | None]:
    """Median and range over the runs of each headline figure; None if a run lacks it."""
    heads = [headline(r) for r in runs]
    out: dict[str, dict[str, Any] | None] = {}
    for key, unit in HEADLINE.items():
        values = [h[key] for h in heads]
        out[key] = stat(values, unit) if values and None not in values else None  # type: ignore[arg-type]
    return out


def goal_verdicts(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every goal checked on each run and on the worst one (met there = met on every run)."""
    heads = [headline(r) for r in runs]
    verdicts = []
    for goal in GOALS:
        per_run = [{"measured": {key: h[key] for key, _, _ in goal.bounds}, "met": goal.met(h)}
                   for h in heads]
        worst = goal.worst(heads)
        verdicts.append({"goal": goal, "per_run": per_run, "worst": worst,
                         "met": goal.met(worst), "runs_met": sum(r["met"] for r in per_run),
                         "runs": len(per_run)})
    return verdicts


def median_run(runs: Sequence[dict[str, Any]]) -> int:
    """Index of the run of median cost ratio (the lower one of an even count)."""
    ratios = [headline(r)["cost_ratio"] for r in runs]
    if None in ratios:
        return 0
    order = sorted(range(len(runs)), key=lambda i: ratios[i])  # type: ignore[arg-type,return-value]
    return order[(len(order) - 1) // 2]


def aggregate(runs: list[dict[str, Any]], experiment: str,
              overrides: list[str]) -> dict[str, Any]:
    """A result's figures: what ran, every seed's figures and the spread over seeds."""
    return {"experiment": experiment, "overrides": overrides,
            "seeds": [r["seed"] for r in runs], "per_seed": runs, "spread": spread(runs)}


def confusion_picture(summary: dict[str, Any], path: Path, title: str) -> Path:
    report = summary["inspection"]["report"]
    names = report["class_names"]
    classes = ClassSet(tuple(names), open_set=names[report["open_set_code"]],
                       good=names[report["good_code"]])
    score = ScoreReport.from_confusion(report["confusion"], report["cost_matrix"], classes)
    return score.save_confusion_png(path, f"{title}, whole inspection (test split): "
                                    f"PWA {score.pwa:.4f} vs floor {score.floor.pwa:.4f}")


def run(quick: bool, device: str = "cpu", data: str | None = None,
        overrides: list[str] | None = None, experiment: str = DEFAULT_EXPERIMENT,
        seeds: Sequence[int] = DEFAULT_SEEDS, results: Path = RESULTS) -> Result:
    root = data_root(data)
    seeds = list(seeds)[:1] if quick else list(seeds)
    if not seeds:
        raise SystemExit("--seeds: give at least one seed")
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    extra = list(overrides or [])
    if quick:
        extra.append("trainer.max_epochs=1")
    if device.startswith("cuda"):
        extra += ["trainer=gpu"]
    runs, summaries = [], []
    for seed in seeds:
        run_dir = ROOT / "outputs" / "bench" / f"{experiment}_{stamp}_seed{seed}"
        seconds = train(root, run_dir, experiment, [*extra, f"seed={seed}"])
        summary = RunSummary.read(run_dir)
        figures = figures_of(summary, seconds, seed)
        figures["run_dir"] = str(run_dir.relative_to(ROOT))
        runs.append(figures)
        summaries.append(summary)
        log(f"seed {seed}: {seconds / 60:.1f} min, cost ratio "
            f"{figures['inspection']['cost_ratio']}")
    name = result_name(experiment)
    middle = median_run(runs)
    folder = ROOT / runs[middle]["run_dir"] if quick else PICTURES
    picture = confusion_picture(summaries[middle], folder / f"{name}_confusion.png",
                                f"{experiment}, seed {seeds[middle]}")
    figures = aggregate(runs, experiment, extra)
    figures["confusion_png"] = str(picture.relative_to(ROOT))
    figures["confusion_seed"] = seeds[middle]
    result = Result(name, figures, quick, device=device)
    log(f"wrote {result.save(results)}")
    return result


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--data", help="the magnetic-tile folder (holding labels.csv)")
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT,
                        help="the experiment to run (magnetic_tile, magnetic_tile_scratch...)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS),
                        help="one run per seed, passed as seed=N (quick mode: the first); "
                        "put train.py overrides before --seeds")
    parser.add_argument("overrides", nargs="*", help="more train.py overrides")
    args = parser.parse_args()
    run(args.quick, args.device, args.data, args.overrides, args.experiment, args.seeds)


if __name__ == "__main__":
    main()
