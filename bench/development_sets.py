"""The default recipe on every development set: ``python -m bench.development_sets``.

Each set is trained with the default command and only what the set itself needs (where it is,
its GOOD class): the magnetic tiles (``../shared/datasets/magnetic-tile``), the ELPV solar
cells with four levels (``pip install elpv-dataset``; ``vqc.data.elpv`` writes its CSV under
``outputs/bench/``), ELPV's drift case (trained on monocrystalline cells, polycrystalline ones
as drift) and the synthetic demo (``experiment=demo``). Every set runs once per seed
(``--seeds``, default 0 1 2); its result keeps every seed, worst first (highest cost ratio),
and each goal is checked on every seed. ``--sets`` picks some; a set whose data is missing is
skipped with a message. Each set's result is stored as ``default_recipe_<set>``.

``--set KEY=VALUE`` adds overrides to every set's command (a variant of the recipe, measured
the same way). New seeds join the stored ones only when both were made with the same composed
config (its digest, ``recipe``): a changed default starts the set's result anew.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from bench.common import RESULTS, ROOT, Result, arguments, log, machine_tag
from bench.real_data import DEFAULT_DATA, Goal, figures_of, headline
from vqc.config import compose
from vqc.training.summary import RunSummary

PREFIX = "default_recipe"
DEFAULT_SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class DevSet:
    """A development set: how to prepare it, the overrides that train on it, its goals."""

    name: str
    title: str
    prepare: Callable[[], list[str] | None]  # overrides, or None when the data is missing
    goals: tuple[Goal, ...]


def _time(limit: float) -> Goal:
    return Goal("minutes a run", f"<= {limit:g}", (("minutes", "<=", limit),))


DRIFT_GOAL = Goal("drift caught, false drift", ">= 90%, <= 1%",
                     (("drift_caught", ">=", 0.90), ("false_drift", "<=", 0.01)))
MAGNETIC_GOALS = (
    Goal("defect escapes", "0", (("escapes", "<=", 0.0),)),
    Goal("GOOD flagged", "<= 5%", (("good_flagged", "<=", 0.05),)),
    Goal("macro recall", ">= 0.95", (("macro_recall", ">=", 0.95),)),
    Goal("drift AUROC", ">= 0.99", (("drift_auroc", ">=", 0.99),)),
    DRIFT_GOAL,
    Goal("cost ratio", "<= 0.10", (("cost_ratio", "<=", 0.10),)),
    _time(30),
)
ELPV_GOALS = (
    Goal("4-level accuracy", ">= 0.90", (("accuracy", ">=", 0.90),)),
    Goal("severe cells passed as functional", "<= 2%", (("severe_passed", "<=", 0.02),)),
    Goal("functional cells flagged", "<= 10%", (("good_flagged", "<=", 0.10),)),
    _time(30),
)
ELPV_DRIFT_GOALS = (DRIFT_GOAL, _time(30))
DEMO_GOALS = (
    Goal("defect escapes", "0", (("escapes", "<=", 0.0),)),
    Goal("GOOD accepted", ">= 90%", (("good_accepted", ">=", 0.90),)),
    Goal("drift caught", ">= 80%", (("drift_caught", ">=", 0.80),)),
    _time(6),
)


def magnetic_tiles() -> list[str] | None:
    root = Path(os.environ.get("VQC_MAGNETIC_TILE") or DEFAULT_DATA)
    if not (root / "labels.csv").is_file():
        log(f"magnetic tiles: no {root / 'labels.csv'} (set VQC_MAGNETIC_TILE): skipped")
        return None
    return ["data=csv", f"data.root={root.resolve()}"]


def elpv(train_type: str | None = None) -> Callable[[], list[str] | None]:
    def prepare() -> list[str] | None:
        from vqc.data.elpv import write_elpv
        from vqc.errors import DataError

        out = ROOT / "outputs" / "bench" / ("elpv" if train_type is None else f"elpv_{train_type}")
        try:
            write_elpv(out, train_type=train_type)
        except DataError as err:
            log(f"ELPV: {err}: skipped")
            return None
        return ["data=csv", f"data.root={out}", "data.classes.good=functional"]

    return prepare


SETS = {s.name: s for s in (
    DevSet("magnetic_tile", "Magnetic tiles", magnetic_tiles, MAGNETIC_GOALS),
    DevSet("elpv", "ELPV solar cells, 4 levels", elpv(), ELPV_GOALS),
    DevSet("elpv_drift", "ELPV, trained on mono cells, poly cells as drift", elpv("mono"),
           ELPV_DRIFT_GOALS),
    DevSet("demo", "The synthetic demo", lambda: ["experiment=demo"], DEMO_GOALS),
)}


def class_share(run: dict[str, Any], true: str, predicted: str) -> float | None:
    """Share of ``true`` images answered ``predicted`` in a run's confusion matrix."""
    names, confusion = run.get("class_names"), run.get("confusion")
    if not names or not confusion or true not in names or predicted not in names:
        return None
    row = confusion[names.index(true)]
    return row[names.index(predicted)] / sum(row) if sum(row) else None


def set_figures(run: dict[str, Any]) -> dict[str, float | None]:
    """A run's headline figures and the ones the ELPV and demo goals read."""
    figures: dict[str, float | None] = dict(headline(run))
    inspection = run.get("inspection") or {}
    figures["accuracy"] = inspection.get("accuracy")
    figures["severe_passed"] = class_share(run, "defect_3of3", "functional")
    flagged = figures.get("good_flagged")
    figures["good_accepted"] = None if flagged is None else 1 - flagged
    return figures


def worst_first(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs ordered by cost ratio, highest (worst) first."""
    return sorted(runs, key=lambda r: -(set_figures(r).get("cost_ratio") or 0.0))


def verdicts(dev: DevSet, runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each goal on each run (in the order given) and how many runs met it."""
    out = []
    for goal in dev.goals:
        per_run = [goal.met(set_figures(r)) for r in runs]
        out.append({"goal": goal, "per_run": per_run, "met": all(per_run) and bool(per_run),
                    "runs_met": sum(per_run), "runs": len(per_run)})
    return out


def train(overrides: list[str], run_dir: Path) -> float:
    command = [sys.executable, str(ROOT / "train.py"), *overrides, f"hydra.run.dir={run_dir}"]
    log(" ".join(command[1:]))
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    return time.perf_counter() - start


#: Config groups that differ between machines and runs, not between recipes.
NOT_RECIPE = ("paths", "hydra", "seed", "logger", "callbacks")


def recipe_digest(overrides: Sequence[str]) -> str:
    """A digest of the config ``overrides`` compose (without seeds, paths and loggers): two
    results of one set share it only if every default they trained with was the same."""
    tree = OmegaConf.to_container(compose("train", overrides), resolve=False)
    recipe = {k: v for k, v in tree.items() if k not in NOT_RECIPE}
    text = json.dumps(recipe, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_set(dev: DevSet, seeds: Sequence[int], quick: bool, device: str,
            results: Path = RESULTS, variant: Sequence[str] = ()) -> Result | None:
    overrides = dev.prepare()
    if overrides is None:
        return None
    overrides = [*overrides, *variant]
    extra = ["trainer.max_epochs=2"] if quick else []  # 1: no epoch past the head-only one
    extra += ["trainer=gpu"] if device.startswith("cuda") else []
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    runs = []
    for seed in seeds:
        run_dir = ROOT / "outputs" / "bench" / f"{PREFIX}_{dev.name}_{stamp}_seed{seed}"
        seconds = train([*overrides, *extra, f"seed={seed}"], run_dir)
        summary = RunSummary.read(run_dir)
        figures = figures_of(summary, seconds, seed)
        figures["run_dir"] = str(run_dir.relative_to(ROOT))
        figures["choices"] = summary.get("choices")
        figures["warnings"] = summary.get("warnings")
        runs.append(figures)
        log(f"{dev.name} seed {seed}: {seconds / 60:.1f} min, "
            f"cost ratio {figures['inspection']['cost_ratio']}")
    section, used = f"{PREFIX}_{dev.name}", [*overrides, *extra]
    if variant:
        section += "_" + "_".join(v.replace("=", "-").replace(".", "-") for v in variant)
    stored = results / machine_tag(device) / f"{section}.json"
    previous = json.loads(stored.read_text()) if stored.is_file() and not quick else None
    recipe = recipe_digest(used)
    runs = merged_runs(previous, runs, used, recipe)
    result = Result(section, {
        "set": dev.name, "overrides": used, "recipe": recipe,
        "seeds": sorted(r["seed"] for r in runs),
        "per_seed": worst_first(runs)}, quick, device=device)
    log(f"wrote {result.save(results)}")
    return result


def merged_runs(previous: dict[str, Any] | None, runs: list[dict[str, Any]],
                overrides: list[str], recipe: str | None = None) -> list[dict[str, Any]]:
    """``runs`` beside the stored runs of other seeds made with the same overrides and the
    same composed config (``recipe``), so that ``--seeds 1 2`` adds to a stored seed 0 instead
    of replacing it (a seed run again replaces its stored run)."""
    if not previous or previous.get("quick"):
        return runs
    figures = previous.get("figures") or {}
    if figures.get("overrides") != overrides or figures.get("recipe") != recipe:
        return runs  # another recipe: its runs are not these
    new = {r["seed"] for r in runs}
    return [*runs, *(r for r in figures.get("per_seed", []) if r.get("seed") not in new)]


def rescore(dev: DevSet, run_dirs: Sequence[Path], results: Path = RESULTS) -> Result | None:
    """Refit drift and rescore stored runs of ``dev`` with ``eval.py`` (their best checkpoints,
    their own overrides, today's drift settings): a drift-only change needs no retraining,
    since training does not read drift. Minutes and epochs stay those of the training runs.
    The result is today's recipe (its digest), so it joins later seeds trained with it."""
    overrides = dev.prepare()
    if overrides is None:
        return None
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    runs = []
    for run_dir in run_dirs:
        trained = RunSummary.read(run_dir)
        out = ROOT / "outputs" / "bench" / f"{PREFIX}_{dev.name}_rescored_{stamp}_{run_dir.name}"
        command = [sys.executable, str(ROOT / "eval.py"),
                   f"ckpt_path={trained['best_checkpoint']}", f"hydra.run.dir={out}"]
        log(" ".join(command[1:]))
        subprocess.run(command, cwd=ROOT, check=True)
        summary = RunSummary.read(out)
        old = next((r for r in _stored_runs(run_dir) if r), None)
        figures = figures_of(summary, old["seconds"] if old else None,
                             old["seed"] if old else None)
        figures.update(run_dir=str(run_dir.relative_to(ROOT)), epochs=trained.get("epochs"),
                       choices=trained.get("choices"), warnings=summary.get("warnings"),
                       rescored=str(out.relative_to(ROOT)))
        runs.append(figures)
    section = f"{PREFIX}_{dev.name}"
    stored = results / machine_tag("cpu") / f"{section}.json"
    previous = json.loads(stored.read_text()) if stored.is_file() else None
    recipe = recipe_digest(overrides)
    runs = merged_runs(previous, runs, overrides, recipe)
    result = Result(section, {
        "set": dev.name, "overrides": overrides, "recipe": recipe,
        "seeds": sorted(r["seed"] for r in runs), "per_seed": worst_first(runs)}, False)
    log(f"wrote {result.save(results)}")
    return result


def _stored_runs(run_dir: Path) -> list[dict[str, Any]]:
    """The stored bench figures of ``run_dir`` (its seed and minutes), from any result."""
    found = []
    for path in RESULTS.glob("*/*.json"):
        for run in json.loads(path.read_text())["figures"].get("per_seed", []):
            if run.get("run_dir") == str(run_dir.relative_to(ROOT)):
                found.append(run)
    return found


def run(quick: bool, device: str = "cpu", sets: Sequence[str] | None = None,
        seeds: Sequence[int] = DEFAULT_SEEDS, variant: Sequence[str] = ()) -> list[Result]:
    chosen = list(sets or SETS)
    unknown = sorted(set(chosen) - set(SETS))
    if unknown:
        raise SystemExit(f"--sets: unknown {unknown}; choose among {list(SETS)}")
    seeds = list(seeds)[:1] if quick else list(seeds)
    done = [run_set(SETS[name], seeds, quick, device, variant=variant) for name in chosen]
    return [r for r in done if r is not None]


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--sets", nargs="+", default=list(SETS), help=f"among {list(SETS)}")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="variant",
                        help="overrides added to every set's command (stored apart)")
    parser.add_argument("--rescore", type=Path, nargs="+", metavar="RUN_DIR",
                        help="refit drift on these stored runs of the one set of --sets")
    args = parser.parse_args()
    if args.rescore:
        if len(args.sets) != 1:
            parser.error("--rescore: name the runs' set with --sets")
        rescore(SETS[args.sets[0]], [p.resolve() for p in args.rescore])
        return
    run(args.quick, args.device, args.sets, args.seeds, args.variant)


if __name__ == "__main__":
    main()
