"""Write ``docs/BENCHMARKS.md`` from the stored results (``bench/results/<machine>/*.json``)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import demo as demo_bench
from bench import report_sets
from bench.common import RESULTS, ROOT, load_results
from bench.real_data import SECTION, experiment_of, goal_verdicts, headline, seed_runs, spread

OUTPUT = ROOT / "docs" / "BENCHMARKS.md"
ANALYSIS = ROOT / "bench" / "analysis.md"
SECTIONS = ("inspection", "data", "training", "padim_fit", "real_data", "demo",
            "default_recipe")


def num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def fig(value: dict[str, Any] | None, digits: int = 1, scale: float = 1.0) -> str:
    """``median [min–max]`` of a stored figure."""
    if not value:
        return "–"
    median, low, high = (scale * value[k] for k in ("median", "min", "max"))
    if len(value.get("runs", [])) <= 1:
        return num(median, digits)
    return f"{num(median, digits)} [{num(low, digits)}–{num(high, digits)}]"


def pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def where(result: dict[str, Any]) -> str:
    m = result["machine"]
    device = m.get("gpu") or f"{m['cpu']}, {m['cores']} cores"
    quick = " (quick mode: small sizes, fewer runs)" if result["quick"] else ""
    return (f"*{device}, torch {m['torch']}; {result['date']}; `{result['command']}`{quick}.*")


# -- sections ----------------------------------------------------------------------------------
def inspection(result: dict[str, Any], goals: list[list[str]], tag: str) -> list[str]:
    f = result["figures"]
    out = [where(result), "",
           f"Batch {f['batch']} of {f['size'][0]}x{f['size'][1]} gray strips, "
           f"{f['repeats']} interleaved rounds. Official two-network pipeline: "
           f"**{fig(f['official_img_s'])} img/s**.", ""]
    rows = []
    onnx = any("onnx_img_s" in r for r in f["inspectors"])
    for r in f["inspectors"]:
        row = [r["model"], fig(r["bare_img_s"]), fig(r["inspector_img_s"]),
               f"{fig(r['drift_overhead'], 2)}x", f"{fig(r['speedup_vs_official'], 1)}x"]
        if onnx:
            row += [fig(r.get("onnx_img_s")), f"{fig(r.get('onnx_speedup'), 2)}x"]
        rows.append(row)
        goals.append([f"{tag}: {r['model']} inspector vs official pipeline", ">= 3x",
                      f"{num(r['speedup_vs_official']['median'], 1)}x",
                      met(r["speedup_vs_official"]["median"] >= 3)])
        goals.append([f"{tag}: {r['model']} drift + decision over bare forward", "<= 1.25x",
                      f"{num(r['drift_overhead']['median'], 2)}x",
                      met(r["drift_overhead"]["median"] <= 1.25)])
    header = ["inspector", "bare forward img/s", "whole inspector img/s",
              "inspector / bare time", "speed-up vs official"]
    if onnx:
        header += ["ONNX Runtime img/s", "ONNX speed-up vs eager"]
    return out + table(header, rows)


def data(result: dict[str, Any], goals: list[list[str]], tag: str) -> list[str]:
    f = result["figures"]
    e = f["epoch"]
    out = [where(result), "",
           f"One epoch of {e['images']} training images (synthetic challenge layout, die images "
           "decoded, rotated and cropped to 224x64 strips):", ""]
    out += table(["path", "epoch time (s)", "img/s"], [
        ["decode + rotate + crop (PNG)", fig(e["decode_s"], 2), fig(e["decode_img_s"])],
        ["read the cache", fig(e["cache_s"], 3), fig(e["cache_img_s"])],
        ["ratio", f"{fig(e['cache_speedup'])}x", ""]])
    goals.append([f"{tag}: cache read vs decoding", ">= 10x",
                  f"{num(e['cache_speedup']['median'])}x", met(e["cache_speedup"]["median"] >= 10)])
    out += ["", "Share of a training step spent waiting for the next batch (5-block CNN, "
            "batch 32, augmentations, balanced sampler):", ""]
    rows = []
    for w in f["wait"]:
        rows.append([str(w["workers"]), fig(w["step_s"], 3, 1.0), fig(w["wait_s"], 4),
                     pct(w["wait_share"])])
    out += table(["loader workers", "step (s)", "wait (s)", "waiting share"], rows)
    best = min(f["wait"], key=lambda w: w["wait_share"])
    goals.append([f"{tag}: data wait per step ({best['workers']} workers, the best measured)",
                  "< 5%", pct(best["wait_share"]), met(best["wait_share"] < 0.05)])
    return out


def training(result: dict[str, Any], goals: list[list[str]], tag: str) -> list[str]:
    f = result["figures"]
    cases = f["overhead"] if isinstance(f["overhead"], list) else [f["overhead"]]
    out = [where(result), "",
           "vqc's Lightning module (NaN guard, logging, hooks) vs a plain PyTorch loop, same "
           "model, data and initial weights, batch 32; median step time of each run:", ""]
    rows = []
    for o in cases:
        rows.append([f"{o['model']}, {o['size'][0]}x{o['size'][1]}", str(o["steps"]),
                     fig(o["plain_step_s"], 4), fig(o["lightning_step_s"], 4),
                     f"{fig(o['lightning_over_plain'], 3)}x"])
        goals.append([f"{tag}: Lightning / plain loop step, {o['model']}", "<= 1.05x",
                      f"{num(o['lightning_over_plain']['median'], 3)}x",
                      met(o["lightning_over_plain"]["median"] <= 1.05)])
    out += table(["model", "steps per run", "plain step (s)", "Lightning step (s)", "ratio"],
                 rows)
    variants = [k for k in f["throughput"][0] if k not in ("model", "size", "batch",
                                                          "best_over_fp32")]
    out += ["", f"Training images per second (forward, backward, AdamW step; batch "
            f"{f['throughput'][0]['batch']}, gray square images):", ""]
    rows = [[r["model"], f"{r['size']} px", *[fig(r[v]) for v in variants]]
            for r in f["throughput"]]
    return out + table(["model", "size", *variants], rows)


def padim_fit(result: dict[str, Any], goals: list[list[str]], tag: str) -> list[str]:
    f = result["figures"]
    out = [where(result), "",
           f"PaDiM on `{f['backbone']}` (layers 1-3, {f['n_features']} channels kept), "
           f"{f['image_size']} px, batch {f['batch']}. Peak memory is the process's peak "
           "resident set; 'growth' is the peak minus the resident set before fitting.", ""]
    rows = []
    for p in f["points"]:
        if "skipped" in p:
            rows.append([p["method"], str(p["images"]), "–", "–", f"skipped: {p['skipped']}"])
        else:
            rows.append([p["method"], str(p["images"]), fig(p["seconds"]),
                         fig(p["peak_gib"], 2), fig(p["delta_gib"], 2)])
    stream = [p for p in f["points"] if p["method"] == "stream" and "skipped" not in p]
    if len(stream) >= 2:
        first, last = stream[0], stream[-1]
        growth = last["delta_gib"]["median"] - first["delta_gib"]["median"]
        goals.append([f"{tag}: streaming PaDiM peak memory, {first['images']} -> "
                      f"{last['images']} images", "does not grow",
                      f"{round(growth, 2) + 0.0:+.2f} GiB", met(growth < 0.25)])
    return out + table(["fit", "images", "time (s)", "peak (GiB)", "growth (GiB)"], rows)


#: How each headline figure is labelled and written; a label may name a count of the test split.
HEADLINE_ROWS: dict[str, tuple[str, Callable[[float | None], str]]] = {
    "cost_ratio": ("cost ratio to the best constant predictor", lambda v: num(v, 3)),
    "pwa": ("PWA (whole inspection, official-shaped costs)", lambda v: num(v, 4)),
    "floor_pwa": ("best constant predictor ({floor}): PWA", lambda v: num(v, 4)),
    "macro_recall": ("macro recall (every class, drift included)", lambda v: num(v, 3)),
    "escapes": ("defect escapes (of {defect_images} defects)", lambda v: num(v, 0)),
    "good_flagged": ("GOOD flagged (false alarms, of {good_images} GOOD)", pct),
    "drift_auroc": ("drift AUROC", lambda v: num(v, 3)),
    "drift_caught": ("drift images caught", pct),
    "false_drift": ("false drift (known-class images flagged)", pct),
    "minutes": ("minutes end to end (one run)", lambda v: num(v, 1)),
}


def spread_cell(key: str, value: dict[str, Any] | None) -> str:
    """``median [min–max]`` of a headline figure over seeds, in that figure's format."""
    write = HEADLINE_ROWS[key][1]
    if not value:
        return "–"
    if len(value.get("runs", [])) <= 1:
        return write(value["median"])
    return f"{write(value['median'])} [{write(value['min'])}–{write(value['max'])}]"


def row_label(key: str, runs: list[dict[str, Any]]) -> str:
    i = runs[0].get("inspection") or {}
    floor = (i.get("floor") or {}).get("name")
    counts = {"floor": f"always {floor}" if floor else "–",
              "defect_images": i.get("defect_images", "–"),
              "good_images": i.get("good_images", "–")}
    return HEADLINE_ROWS[key][0].format(**{k: "–" if v is None else v
                                           for k, v in counts.items()})


def seed_header(run: dict[str, Any]) -> str:
    return "run" if run.get("seed") is None else f"seed {run['seed']}"


def real_data_table(f: dict[str, Any], per_seed: bool = False,
                    beside: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """The headline table: the median [min–max] over seeds (the README shows a condensed one).

    ``per_seed`` adds a column per seed; ``beside`` adds, per label, another result's
    headline (each its own median [min–max]) for comparison.
    """
    runs = seed_runs(f)
    summary = spread(runs)
    several = len(runs) > 1
    header = ["figure"]
    if per_seed and several:
        header += [seed_header(r) for r in runs]
    header.append(f"median [min–max], {len(runs)} seeds" if several else "value")
    others = {label: spread(seed_runs(g)) for label, g in (beside or {}).items()}
    header += list(others)
    rows = []
    for key, (_, write) in HEADLINE_ROWS.items():
        row = [row_label(key, runs)]
        if per_seed and several:
            row += [write(headline(r)[key]) for r in runs]
        row.append(spread_cell(key, summary[key]))
        row += [spread_cell(key, other[key]) for other in others.values()]
        rows.append(row)
    return table(header, rows)


def measured(values: dict[str, float | None]) -> str:
    """A goal's figures (one run's, or the worst of each), each in its own format."""
    return ", ".join(HEADLINE_ROWS[key][1](value) for key, value in values.items())


def goal_cell(verdict: dict[str, Any]) -> str:
    """A goal's figures (one run's, or the worst's) and whether they meet it."""
    return f"{measured(verdict.get('measured', verdict.get('worst', {})))}: {met(verdict['met'])}"


def real_data_goals(f: dict[str, Any], beside: dict[str, dict[str, Any]]) -> list[str]:
    """Each goal on every seed, on the worst seed, and how many seeds met it."""
    runs = seed_runs(f)
    verdicts = goal_verdicts(runs)
    others = {label: goal_verdicts(seed_runs(g)) for label, g in beside.items()}
    header = ["goal", "target"]
    if len(runs) > 1:
        header += [seed_header(r) for r in runs]
    header += ["worst seed", "seeds met", *(f"{label}: worst" for label in others)]
    rows = []
    for n, v in enumerate(verdicts):
        row = [v["goal"].name, v["goal"].target]
        if len(runs) > 1:
            row += [goal_cell(r) for r in v["per_run"]]
        row += [goal_cell(v), f"{v['runs_met']} of {v['runs']}"]
        row += [goal_cell(other[n]) for other in others.values()]
        rows.append(row)
    return table(header, rows)


def beside_label(name: str, result: dict[str, Any]) -> str:
    experiment = experiment_of(name, result["figures"])
    kind = "from scratch" if experiment.endswith("_scratch") else experiment
    return f"{kind} (`{experiment}`)" if kind != experiment else f"`{experiment}`"


def real_data(results: dict[str, dict[str, Any]], goals: list[list[str]],
              tag: str) -> list[str]:
    """A machine's real-data results: the default experiment over its seeds, the others
    (the from-scratch run) beside it; alone, another experiment is shown in full."""
    name = SECTION if SECTION in results else sorted(results)[0]
    result, f = results[name], results[name]["figures"]
    beside = {beside_label(n, r): r for n, r in sorted(results.items()) if n != name}
    runs = seed_runs(f)
    experiment = experiment_of(name, f)
    seeds = ", ".join(str(r["seed"]) for r in runs if r.get("seed") is not None)
    epochs = sorted({r.get("epochs") for r in runs if r.get("epochs") is not None})
    out = [where(result), "",
           f"`python train.py experiment={experiment}` "
           f"({' '.join(f.get('overrides') or []) or 'no overrides'})"
           + (f", one run per seed (`seed=` {seeds}) in its own folder" if seeds else "")
           + f": {'/'.join(map(str, epochs)) or '–'} epochs, "
           f"{spread_cell('minutes', spread(runs)['minutes'])} min a run end to end (caching, "
           "training, drift fit, calibration, test).", ""]
    for label, other in beside.items():
        out += [f"Beside it, {label}: {where(other)}", ""]
    out += real_data_table(f, per_seed=True, beside={k: r["figures"] for k, r in beside.items()})
    out += ["", "Goals, checked on every seed and on the worst one (met there: met by every "
            "seed; for a goal on two figures, the worst of each):", ""]
    out += real_data_goals(f, {k: r["figures"] for k, r in beside.items()})
    for v in goal_verdicts(runs):
        goals.append([f"{tag}: magnetic tiles, `{experiment}`: {v['goal'].name}",
                      v["goal"].target,
                      f"worst seed {measured(v['worst'])}; {v['runs_met']} of {v['runs']} "
                      "seeds met" if v["runs"] > 1 else measured(v["worst"]), met(v["met"])])
    out += ["", "Per class (whole inspection): recall (images predicted as the class):", ""]
    out += per_class_table(runs)
    alone = [r.get("classifier_only") or {} for r in runs]
    out += ["", "Classifier alone (argmax, no drift detector)"
            + (", seed by seed" if len(runs) > 1 else "") + ": PWA "
            + ", ".join(num(a.get("pwa"), 4) for a in alone) + "; escapes "
            + ", ".join(num(a.get("escapes"), 0) for a in alone) + "; macro recall "
            + ", ".join(num(a.get("macro_recall"), 3) for a in alone) + "."]
    if f.get("confusion_png"):
        picture = Path(f["confusion_png"])
        which = (f" (seed {f['confusion_seed']}, the median cost ratio)"
                 if "confusion_seed" in f and len(runs) > 1 else "")
        out += ["", f"![confusion matrix{which}]({picture.relative_to('docs')})"
                if picture.parts[0] == "docs" else f"Confusion matrix{which}: `{picture}`"]
    return out


def per_class_table(runs: list[dict[str, Any]]) -> list[str]:
    names = [r["name"] for r in runs[0].get("per_class") or []]
    by_name = [{r["name"]: r for r in run.get("per_class") or []} for run in runs]
    rows = []
    for name in names:
        cells = []
        for classes in by_name:
            r = classes.get(name)
            cells.append("–" if r is None else
                         f"{num(r.get('recall'), 3)} ({num(r.get('predicted'), 0)})")
        rows.append([name, str(by_name[0][name].get("images", "–")), *cells])
    return table(["class", "test images", *[seed_header(r) for r in runs]], rows)


def of(count: int | None, total: int | None) -> str:
    return "" if count is None or total is None else f" ({count} of {total})"


#: The demo's figures as the page shows them: label and how the value is written.
DEMO_ROWS: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "escapes": ("defect escapes (of {defect_images} defects)", lambda f: num(f["escapes"], 0)),
    "good_accepted": ("GOOD accepted",
                      lambda f: pct(f["good_accepted"])
                      + of(f["good_accepted_images"], f["good_images"])),
    "drift_caught": ("drift images caught",
                     lambda f: pct(f["drift_caught"])
                     + of(f["drift_caught_images"], f["drift_images"])),
    "drift_auroc": ("drift AUROC", lambda f: num(f["drift_auroc"], 3)),
    "false_drift": ("false drift (known-class images flagged)",
                    lambda f: pct(f["false_drift"])
                    + of(f["false_drift_images"], f["known_images"])),
    "cost_ratio": ("cost ratio to the best constant predictor",
                   lambda f: num(f["cost_ratio"], 3)),
    "pwa": ("PWA (whole inspection, official-shaped costs)", lambda f: num(f["pwa"], 4)),
    "floor_pwa": ("best constant predictor ({floor}): PWA", lambda f: num(f["floor_pwa"], 4)),
    "known_macro_recall": ("macro recall of the known classes",
                           lambda f: num(f["known_macro_recall"], 3)),
    "minutes": ("minutes end to end, generation included", lambda f: num(f["minutes"], 1)),
    "inspector_mb": ("inspector file (MB)", lambda f: num(f["inspector_mb"], 1)),
}


def demo_value(key: str, value: float | None) -> str:
    """One goal figure of the demo, written as its row on the page writes it."""
    if value is None:
        return "–"
    if key in ("good_accepted", "drift_caught", "false_drift"):
        return pct(value)
    return num(value, 0 if key == "escapes" else 1)


def load_note(load: dict[str, float] | None) -> str:
    """The machine's load around a timed run: above its core count, other work shared it."""
    if not load:
        return ""
    return (f" Load on the machine (1-minute average) at the start and the end of the run: "
            f"{num(load['start'], 1)} and {num(load['end'], 1)} (the run itself adds about 2).")


def demo(result: dict[str, Any], goals: list[list[str]], tag: str) -> list[str]:
    """The demo's one run: its figures, then its goals (also in the goal summary)."""
    f = {key: None for key in demo_bench.figures_of({}, 0.0, None)} | result["figures"]
    overrides = " ".join(f.get("overrides") or []) or "no overrides"
    labels = {"defect_images": f["defect_images"] if f["defect_images"] is not None else "–",
              "floor": f"always {f['floor']}" if f["floor"] else "–"}
    out = [where(result), "",
           f"`python -m vqc.cli.demo` ({overrides}), what `make demo` runs, in a fresh folder "
           f"of its own: generating the synthetic set ({num(f['images'], 0)} test images), "
           f"caching it, {num(f['epochs'], 0)} epochs of training, drift fit, `vqc-predict` "
           "and `vqc-score`; figures of the whole inspection on the test split."
           + load_note(f.get("load_1min")), ""]
    out += table(["figure", "value"], [[label.format(**labels), write(f)]
                                       for label, write in DEMO_ROWS.values()])
    out += ["", "Goals:", ""]
    rows = []
    for v in demo_bench.goal_verdicts(f):
        value = ", ".join(demo_value(k, x) for k, x in v["measured"].items())
        rows.append([v["goal"].name, v["goal"].target, value, met(v["met"])])
        goals.append([f"{tag}: demo: {v['goal'].name}", v["goal"].target, value,
                      met(v["met"])])
    return out + table(["goal", "target", "measured", "met"], rows)


def section_results(section: str,
                    machine_results: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """What a section's writer reads from one machine's results: its result, or for real
    data every experiment's result by name (``real_data``, ``real_data_scratch``...)."""
    if section == "default_recipe":
        return report_sets.collect(machine_results) or None
    if section == SECTION:
        found = {name: r for name, r in machine_results.items()
                 if name == SECTION or name.startswith(SECTION + "_")}
        return found or None
    return machine_results.get(section)


def default_recipe(results: dict[str, Any], goals: list[list[str]], tag: str) -> list[str]:
    return report_sets.default_recipe(results, goals, tag, where, table)


WRITERS: dict[str, tuple[str, Callable[[dict[str, Any], list[list[str]], str], list[str]]]] = {
    "default_recipe": ("The default recipe on every development set", default_recipe),
    "inspection": ("Inspection throughput", inspection),
    "data": ("Data pipeline", data),
    "training": ("Training speed", training),
    "padim_fit": ("PaDiM fitting: time and memory", padim_fit),
    "real_data": ("Real data: magnetic tiles", real_data),
    "demo": ("The demo: `make demo` end to end", demo),
}

INTRO = """# Benchmarks

Regenerated by `make bench` (every benchmark, full sizes) or `make bench-quick` (small sizes,
fewer runs, one training epoch on real data: a check that everything runs); one benchmark:
`.venv/bin/python -m bench.run --only inspection` (`data`, `training`, `padim_fit`,
`real_data`, `demo`); on a GPU: `--device cuda`. Results are stored per machine under
`bench/results/`, and this page is written from all of them (`python -m bench.report`).

Every figure is the median of several runs with the range [min–max]; ratios are run-by-run
ratios of figures measured alternately in one process, so a burst of load from other work
falls on both sides. The CPU machine is shared: absolute figures move from run to run; the
ratios much less. Weights are random (no model hub is reachable): speed does not depend on them.
"""


def render(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    goals: list[list[str]] = []
    body: list[str] = []
    machines = []
    for number, section in enumerate(SECTIONS, 1):
        title, writer = WRITERS[section]
        found = [(tag, picked) for tag, machine_results in results.items()
                 if (picked := section_results(section, machine_results))]
        body += ["", f"## {number}. {title}", ""]
        if not found:
            body.append("*Not measured yet.*")
        for tag, result in found:
            if len(found) > 1:
                body += [f"### {tag}", ""]
            body += writer(result, goals, tag)
            body.append("")
    for tag, machine_results in results.items():
        m = next(iter(machine_results.values()))["machine"]
        machines.append([tag, m["cpu"], str(m["cores"]), f"{m['memory_gib']} GiB", m["torch"],
                         m.get("gpu", "–")])
    lines = [INTRO, "## Machines", ""]
    lines += table(["results", "CPU", "cores", "memory", "torch", "GPU"], machines)
    lines += ["", "## Goals", ""]
    lines += table(["goal", "target", "measured", "met"], goals)
    if ANALYSIS.is_file():  # what the figures mean, written by hand after a full run
        body += ["", ANALYSIS.read_text().strip()]
    return "\n".join(lines + body).rstrip() + "\n"


def write(results_dir: Path = RESULTS, output: Path = OUTPUT) -> Path:
    text = render(load_results(results_dir))
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, output)
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    print(write(args.results, args.output))


if __name__ == "__main__":
    main()
