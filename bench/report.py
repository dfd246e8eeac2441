"""Write ``docs/BENCHMARKS.md`` from the stored results (``bench/results/<machine>/*.json``)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.common import RESULTS, ROOT, load_results

OUTPUT = ROOT / "docs" / "BENCHMARKS.md"
ANALYSIS = ROOT / "bench" / "analysis.md"
SECTIONS = ("inspection", "data", "training", "padim_fit", "real_data")


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


def real_data(result: dict[str, Any], goals: list[list[str]], tag: str) -> list[str]:
    f = result["figures"]
    alone = f["classifier_only"]
    minutes = f["seconds"]["median"] / 60
    out = [where(result), "", f"`python train.py experiment=magnetic_tile` "
           f"({' '.join(f['overrides']) or 'no overrides'}): {f['epochs']} epochs, "
           f"{minutes:.1f} min end to end (caching, training, drift fit, calibration, test).", ""]
    goals.append([f"{tag}: magnetic tiles end to end", "<= 30 min", f"{minutes:.1f} min",
                  met(minutes <= 30)])
    out += real_data_table(f)
    out += ["", "Per class (whole inspection):", ""]
    out += table(["class", "test images", "predicted", "recall"],
                 [[r["name"], str(r["images"]), str(r["predicted"]), num(r["recall"], 3)]
                  for r in f["per_class"]])
    picture = Path(f["confusion_png"])
    out += ["", f"Classifier alone (argmax, no drift detector): PWA {num(alone['pwa'], 4)}, "
            f"{alone['escapes']} escapes, macro recall {num(alone['macro_recall'], 3)}.", "",
            f"![confusion matrix]({picture.relative_to('docs')})" if picture.parts[0] == "docs"
            else f"Confusion matrix: `{picture}`"]
    for name, g in f["goals"].items():
        goals.append([f"{tag}: magnetic tiles {name.replace('_', ' ')}",
                      ("<= " if name in ("escape_rate", "false_drift_rate") else ">= ") +
                      (pct(g["goal"], 0) if "rate" in name else num(g["goal"], 2)),
                      pct(g["measured"]) if "rate" in name else num(g["measured"], 3),
                      met(g["met"])])
    return out


def real_data_table(f: dict[str, Any]) -> list[str]:
    """The headline table (also in the README)."""
    i = f["inspection"]
    return table(["figure", "value"], [
        ["PWA (whole inspection, official-shaped costs)", num(i["pwa"], 4)],
        ["best constant predictor", f"always {i['floor']['name']}: {num(i['floor']['pwa'], 4)}"],
        ["cost ratio to the best constant", num(i["cost_ratio"], 3)],
        ["macro recall", num(i["macro_recall"], 3)],
        ["defect escapes", f"{i['escapes']} of {i['defect_images']} ({pct(i['escape_rate'])})"],
        ["GOOD false alarms", f"{i['false_alarms']} of {i['good_images']}"],
        ["drift AUROC", num(f["drift_auroc"], 3)],
        ["false drift (known-class images flagged)", pct(f["false_drift_rate"])],
        ["drift images caught", pct(f["drift_recall"])],
    ])


WRITERS: dict[str, tuple[str, Callable[[dict[str, Any], list[list[str]], str], list[str]]]] = {
    "inspection": ("Inspection throughput", inspection),
    "data": ("Data pipeline", data),
    "training": ("Training speed", training),
    "padim_fit": ("PaDiM fitting: time and memory", padim_fit),
    "real_data": ("Real data: magnetic tiles", real_data),
}

INTRO = """# Benchmarks

Regenerated by `make bench` (every benchmark, full sizes) or `make bench-quick` (small sizes,
fewer runs, one training epoch on real data: a check that everything runs); one benchmark:
`.venv/bin/python -m bench.run --only inspection` (`data`, `training`, `padim_fit`,
`real_data`); on a GPU: `--device cuda`. Results are stored per machine under
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
        found = [(tag, machine_results[section]) for tag, machine_results in results.items()
                 if section in machine_results]
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
