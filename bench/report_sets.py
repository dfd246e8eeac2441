"""The section of ``docs/BENCHMARKS.md`` on the default recipe over the development sets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.development_sets import PREFIX, SETS, set_figures, verdicts, worst_first
from bench.real_data import DEFAULT_EXPERIMENT, SECTION

Write = Callable[[float | None], str]


def _num(digits: int) -> Write:
    return lambda v: "–" if v is None else f"{v:.{digits}f}"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


ROWS: dict[str, tuple[str, Write]] = {
    "minutes": ("minutes end to end", _num(1)),
    "cost_ratio": ("cost ratio to the best constant answer", _num(3)),
    "escapes": ("defect escapes", _num(0)),
    "good_flagged": ("GOOD flagged", _pct),
    "macro_recall": ("macro recall", _num(3)),
    "accuracy": ("accuracy", _num(3)),
    "severe_passed": ("severe cells (p = 1) passed as functional", _pct),
    "drift_auroc": ("drift AUROC", _num(3)),
    "drift_caught": ("drift caught", _pct),
    "false_drift": ("false drift (known images called drift)", _pct),
}


def collect(machine_results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{set name: result}`` of one machine; the magnetic tiles from ``real_data`` when it ran
    ``experiment=magnetic_tile`` (the default recipe with the set's path) and no
    ``default_recipe_magnetic_tile`` exists."""
    found = {name.removeprefix(PREFIX + "_"): r for name, r in machine_results.items()
             if name.startswith(PREFIX + "_")}
    real = machine_results.get(SECTION)
    if "magnetic_tile" not in found and real and \
            real["figures"].get("experiment") == DEFAULT_EXPERIMENT and \
            real["date"] >= "2026-12-07":  # experiment=magnetic_tile is the default since
        figures = {"set": "magnetic_tile", "overrides": ["experiment=magnetic_tile"],
                   "seeds": real["figures"].get("seeds"),
                   "per_seed": worst_first(list(real["figures"]["per_seed"]))}
        found["magnetic_tile"] = {**real, "figures": figures}
    return {name: found[name] for name in SETS if name in found}


def _chosen(run: dict[str, Any], key: str) -> str:
    for choice in run.get("choices") or []:
        if choice.get("key") == key:
            return str(choice.get("value"))
    return "–"


def set_section(name: str, result: dict[str, Any], goals: list[list[str]], tag: str,
                where: Callable[[dict[str, Any]], str],
                table: Callable[..., list[str]]) -> list[str]:
    dev, f = SETS[name], result["figures"]
    runs = f["per_seed"]
    out = [f"### {dev.title}", "", where(result), "",
           f"`python train.py {' '.join(f.get('overrides') or [])}`, one run per seed, the "
           "worst (highest cost ratio) first. Chosen by the run: input size "
           + ", ".join(sorted({_chosen(r, 'data.preprocess.size') for r in runs}))
           + "; epochs " + ", ".join(str(r.get("epochs")) for r in runs) + ".", ""]
    if f.get("note"):
        out += [f"How the runs were made: {f['note']}.", ""]
    header = ["figure", *(f"seed {r.get('seed')}" + (" (worst)" if i == 0 else "")
                          for i, r in enumerate(runs))]
    figures = [set_figures(r) for r in runs]
    rows = [[label, *(write(fg.get(key)) for fg in figures)]
            for key, (label, write) in ROWS.items()
            if any(fg.get(key) is not None for fg in figures)]
    out += table(header, rows)
    out += ["", "Goals, on every seed:", ""]
    rows = []
    for v in verdicts(dev, runs):
        marks = ["yes" if ok else "**no**" for ok in v["per_run"]]
        rows.append([v["goal"].name, v["goal"].target, *marks,
                     f"{v['runs_met']} of {v['runs']}"])
        goals.append([f"{tag}: default recipe, {dev.title}: {v['goal'].name}",
                      v["goal"].target, f"{v['runs_met']} of {v['runs']} seeds met",
                      "yes" if v["met"] else "**no**"])
    out += table(["goal", "target", *header[1:], "seeds met"], rows)
    return [*out, ""]


def default_recipe(results: dict[str, dict[str, Any]], goals: list[list[str]], tag: str,
                   where: Callable[[dict[str, Any]], str],
                   table: Callable[..., list[str]]) -> list[str]:
    out = ["`python -m bench.development_sets` (`--sets`, `--seeds`): the default command with "
           "only the set's path and columns, 3 seeds a set.", ""]
    for name, result in results.items():
        out += set_section(name, result, goals, tag, where, table)
    return out
