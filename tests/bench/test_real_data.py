"""The real-data benchmark's reading of run summaries, its spread over seeds, goals and page.

Nothing trains: each seed's ``summary.json`` is written by hand in a temporary folder.
"""

import json
from pathlib import Path
from typing import Any

import pytest

from bench import real_data
from bench.common import Result, load_results
from bench.real_data import (
    GOALS,
    aggregate,
    data_root,
    experiment_of,
    figures_of,
    goal_verdicts,
    headline,
    median_run,
    result_name,
    spread,
)
from bench.report import real_data_table, render

MACHINE = {"cpu": "test cpu", "cores": 2, "torch": "x", "memory_gib": 1.0}


def summary(escapes: int = 0, macro_recall: float = 0.97, auroc: float = 0.995,
            false_drift: float = 0.005, caught: float = 0.95, false_alarms: int = 4,
            cost_ratio: float = 0.08) -> dict[str, Any]:
    report = {"pwa": 0.998, "floor": {"name": "blowhole", "pwa": 0.97}, "cost_ratio": cost_ratio,
              "macro_recall": macro_recall, "accuracy": 0.9, "escapes": escapes,
              "defect_images": 78, "escape_rate": escapes / 78, "false_alarms": false_alarms,
              "good_images": 200, "false_alarm_rate": false_alarms / 200, "confusion": [[1]],
              "class_names": ["good", "drift"],
              "per_class": [{"name": "good", "images": 200, "predicted": 197, "recall": 0.98,
                             "precision": 1.0},
                            {"name": "drift", "images": 80, "predicted": 76, "recall": caught,
                             "precision": 1.0}]}
    return {"epochs": 20, "inspection": {"report": report, "classifier_only": dict(report),
                                         "drift_auroc": auroc, "false_drift_rate": false_drift,
                                         "drift_recall": caught}}


def three_seeds(tmp_path: Path, worst: dict[str, Any]) -> list[dict[str, Any]]:
    """Seeds 0 and 2 meet every goal; seed 1 is ``summary(**worst)``, and slower."""
    runs = []
    for seed, (kwargs, seconds) in enumerate([({}, 1200.0), (worst, 1500.0),
                                              ({"cost_ratio": 0.05}, 1000.0)]):
        run_dir = tmp_path / f"magnetic_tile_seed{seed}"
        run_dir.mkdir()
        (run_dir / "summary.json").write_text(json.dumps(summary(**kwargs)))
        loaded = json.loads((run_dir / "summary.json").read_text())
        runs.append(figures_of(loaded, seconds, seed))
    return runs


def verdicts_by_name(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {v["goal"].name: v for v in goal_verdicts(runs)}


def test_spread_over_seeds(tmp_path: Path) -> None:
    runs = three_seeds(tmp_path, {"escapes": 1, "cost_ratio": 0.3, "false_alarms": 10})
    s = spread(runs)
    assert s["cost_ratio"]["runs"] == [0.08, 0.3, 0.05]
    assert (s["cost_ratio"]["median"], s["cost_ratio"]["min"], s["cost_ratio"]["max"]) == (
        0.08, 0.05, 0.3)
    assert (s["escapes"]["median"], s["escapes"]["max"]) == (0.0, 1.0)
    assert s["good_flagged"]["runs"] == [0.02, 0.05, 0.02]
    assert s["minutes"]["median"] == 20.0 and s["minutes"]["unit"] == "min"
    assert s["floor_pwa"]["min"] == s["floor_pwa"]["max"] == 0.97
    assert median_run(runs) == 0  # cost ratios 0.08, 0.3, 0.05: seed 0 is the median
    figures = aggregate(runs, "magnetic_tile", ["trainer.max_epochs=20"])
    assert figures["seeds"] == [0, 1, 2] and figures["spread"] == s
    json.dumps(figures)  # stored as JSON


def test_one_escape_fails_zero_escapes_on_the_worst_seed(tmp_path: Path) -> None:
    v = verdicts_by_name(three_seeds(tmp_path, {"escapes": 1}))
    escapes = v["defect escapes"]
    assert [r["met"] for r in escapes["per_run"]] == [True, False, True]
    assert escapes["worst"] == {"escapes": 1} and escapes["runs_met"] == 2
    assert not escapes["met"]
    assert v["macro recall"]["met"] and v["macro recall"]["runs_met"] == 3
    assert v["wall time of one run"]["worst"] == {"minutes": 25.0}


def test_goals_at_and_just_past_their_limits(tmp_path: Path) -> None:
    at = summary(macro_recall=0.95, auroc=0.99, caught=0.9, false_drift=0.01,
                 false_alarms=10, cost_ratio=0.10)  # 10 of 200 GOOD: 5%
    v = {x["goal"].name: x["met"] for x in goal_verdicts([figures_of(at, 1800.0, 0)])}
    assert all(v.values()) and len(v) == len(GOALS)
    past = summary(escapes=1, macro_recall=0.949, auroc=0.989, caught=0.95,
                   false_drift=0.0101, false_alarms=11, cost_ratio=0.101)
    v = {x["goal"].name: x["met"] for x in goal_verdicts([figures_of(past, 1801.0, 0)])}
    assert not any(v.values())


def test_drift_goal_needs_both_caught_and_false_drift(tmp_path: Path) -> None:
    runs = three_seeds(tmp_path, {"caught": 0.85})
    drift = verdicts_by_name(runs)["drift images caught, false drift"]
    assert drift["worst"] == {"drift_caught": 0.85, "false_drift": 0.005}
    assert drift["runs_met"] == 2 and not drift["met"]


def test_missing_figures_read_none_and_meet_nothing() -> None:
    old = summary()
    del old["inspection"]["drift_recall"], old["inspection"]["report"]["cost_ratio"]
    run = figures_of(old, 600.0, 0)
    assert headline(run)["drift_caught"] is None and headline(run)["cost_ratio"] is None
    v = {x["goal"].name: x for x in goal_verdicts([run, figures_of(summary(), 600.0, 1)])}
    assert not v["cost ratio to the best constant predictor"]["met"]
    assert v["drift images caught, false drift"]["runs_met"] == 1
    assert spread([run])["cost_ratio"] is None
    assert figures_of({}, 1.0)["inspection"]["pwa"] is None


def test_result_names_keep_experiments_apart() -> None:
    assert result_name("magnetic_tile") == "real_data"
    assert result_name("magnetic_tile_scratch") == "real_data_scratch"
    assert experiment_of("real_data_scratch", {}) == "magnetic_tile_scratch"
    assert experiment_of("real_data", {}) == "magnetic_tile"
    assert experiment_of("real_data_x", {"experiment": "other"}) == "other"


def old_single_run() -> dict[str, Any]:
    """A result in the older one-run format (as stored before seeds), from scratch."""
    figures = figures_of(summary(escapes=0, macro_recall=0.772, cost_ratio=0.929,
                                 false_alarms=80, auroc=0.937, caught=0.0625), 1451.0)
    figures["seconds"] = {"median": 1451.0, "min": 1451.0, "max": 1451.0, "runs": [1451.0],
                          "unit": "s"}
    del figures["seed"], figures["inspection"]["false_alarm_rate"]  # a figure it lacks
    figures.update(overrides=[], confusion_png="docs/images/magnetic_tile_confusion.png",
                   goals={"escape_rate": {"goal": 0.01, "measured": 0.0, "met": True}})
    return figures


def page_section(page: str) -> str:
    return page[page.index("## 5. Real data"):page.index("## Reading") if "## Reading" in page
                else None]


def test_page_shows_seeds_spread_scratch_and_goals(tmp_path: Path) -> None:
    runs = three_seeds(tmp_path, {"escapes": 1, "cost_ratio": 0.3})
    figures = aggregate(runs, "magnetic_tile", [])
    figures.update(confusion_png="docs/images/real_data_confusion.png", confusion_seed=0)
    results = tmp_path / "results"
    Result("real_data", figures, quick=False, machine=MACHINE).save(results)
    Result("real_data_scratch", old_single_run(), quick=False, machine=MACHINE).save(results)
    page = render(load_results(results))
    section = page_section(page)
    header = next(line for line in section.splitlines() if line.startswith("| figure"))
    assert header == ("| figure | seed 0 | seed 1 | seed 2 | median [min–max], 3 seeds | "
                      "from scratch (`magnetic_tile_scratch`) |")
    cost = next(line for line in section.splitlines() if line.startswith("| cost ratio"))
    assert cost.endswith("| 0.080 | 0.300 | 0.050 | 0.080 [0.050–0.300] | 0.929 |")
    flagged = next(line for line in section.splitlines() if line.startswith("| GOOD flagged"))
    assert flagged.endswith("| 2.0% | 2.0% | 2.0% | 2.0% [2.0%–2.0%] | – |")  # scratch lacks it
    escapes = next(line for line in section.splitlines() if line.startswith("| defect escapes |"))
    assert escapes.endswith("| 0: yes | 1: **no** | 0: yes | 1: **no** | 2 of 3 | 0: yes |")
    goal = next(line for line in page.splitlines()
                if line.startswith("| cpu: magnetic tiles, `magnetic_tile`: defect escapes"))
    assert goal.endswith("| 0 | worst seed 1; 2 of 3 seeds met | **no** |")
    assert "`magnetic_tile_scratch`: defect" not in page  # the scratch run is the comparison
    assert "![confusion matrix (seed 0, the median cost ratio)](images/real_data_confusion.png)" \
        in section
    assert real_data_table(figures)[2] == ("| cost ratio to the best constant predictor | "
                                           "0.080 [0.050–0.300] |")


def test_old_single_run_result_alone_still_renders(tmp_path: Path) -> None:
    Result("real_data_scratch", old_single_run(), quick=False, machine=MACHINE).save(tmp_path)
    section = page_section(render(load_results(tmp_path)))
    assert "`python train.py experiment=magnetic_tile_scratch` (no overrides): 20 epochs, " \
           "24.2 min a run" in section
    assert "| defect escapes (of 78 defects) | 0 |" in section
    assert "| GOOD flagged (false alarms, of 200 GOOD) | – |" in section
    assert "| macro recall | >= 0.95 | 0.772: **no** | 0 of 1 |" in section
    assert "| good | 200 | 0.980 (197) |" in section
    assert "![confusion matrix](images/magnetic_tile_confusion.png)" in section


def test_the_stored_from_scratch_result_renders() -> None:
    stored = load_results()
    assert "real_data_scratch" in stored["cpu"]  # kept apart from the fine-tuned runs
    alone = {"real_data_scratch": stored["cpu"]["real_data_scratch"]}
    section = page_section(render({"cpu": alone}))
    assert "experiment=magnetic_tile_scratch" in section and "0.9736" in section
    # beside the fine-tuned runs, as its own column
    both = page_section(render({"cpu": stored["cpu"]}))
    assert "from scratch (`magnetic_tile_scratch`)" in both and "0.9736" in both


def test_missing_data_set_is_named(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=str(tmp_path)):
        data_root(str(tmp_path))


def test_run_trains_each_seed_in_its_own_folder(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed loop, with the training replaced by a summary written on the spot."""
    data = tmp_path / "tiles"
    data.mkdir()
    (data / "labels.csv").write_text("path,label\n")
    calls: list[tuple[Path, str, list[str]]] = []

    def fake_train(root: Path, run_dir: Path, experiment: str, overrides: list[str]) -> float:
        assert root == data
        calls.append((run_dir, experiment, overrides))
        seed = int(overrides[-1].removeprefix("seed="))
        run_dir.mkdir(parents=True)
        (run_dir / "summary.json").write_text(json.dumps(summary(cost_ratio=0.1 * (seed + 1))))
        return 60.0 * (seed + 1)

    def fake_picture(summary: dict[str, Any], path: Path, title: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(title)
        return path

    monkeypatch.setattr(real_data, "ROOT", tmp_path)
    monkeypatch.setattr(real_data, "PICTURES", tmp_path / "docs" / "images")
    monkeypatch.setattr(real_data, "train", fake_train)
    monkeypatch.setattr(real_data, "confusion_picture", fake_picture)
    result = real_data.run(False, data=str(data), experiment="magnetic_tile_scratch",
                           seeds=[3, 1, 2], results=tmp_path / "results")
    assert [(c[1], c[2]) for c in calls] == [("magnetic_tile_scratch", [f"seed={s}"])
                                             for s in (3, 1, 2)]
    assert len({c[0] for c in calls}) == 3
    assert all(c[0].parent == tmp_path / "outputs" / "bench" for c in calls)
    stored = load_results(tmp_path / "results")["cpu"]["real_data_scratch"]["figures"]
    assert stored["seeds"] == [3, 1, 2] and stored["experiment"] == "magnetic_tile_scratch"
    assert stored["spread"]["minutes"]["runs"] == [4.0, 2.0, 3.0]
    assert stored["confusion_seed"] == 2  # cost ratios 0.4, 0.2, 0.3: seed 2 is the median
    assert stored["confusion_png"] == "docs/images/real_data_scratch_confusion.png"
    assert result.section == "real_data_scratch"

    calls.clear()
    quick = real_data.run(True, data=str(data), seeds=[5, 6], results=tmp_path / "results")
    assert [c[2] for c in calls] == [["trainer.max_epochs=1", "seed=5"]]
    assert quick.section == "real_data" and quick.figures["seeds"] == [5]
    assert quick.figures["confusion_png"].startswith("outputs/bench/magnetic_tile_")
