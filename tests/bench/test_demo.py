"""The demo benchmark's reading of a run summary, its goals and its section of the page.

Nothing trains: the summary is written by hand, and the demo's child process is replaced.
"""

import json
from pathlib import Path
from typing import Any

import pytest

from bench import demo
from bench.common import Result, load_results
from bench.demo import GOALS, figures_of, goal_verdicts, run_folder
from bench.report import render

MACHINE = {"cpu": "test cpu", "cores": 2, "torch": "x", "memory_gib": 1.0}
NAMES = ["GOOD", "Boucle plate", "Missing", "Drift"]


def summary(good_to_drift: int = 1, drift_missed: int = 0, escapes: int = 0,
            known_to_drift: int = 3) -> dict[str, Any]:
    """A 3-class test split and drift: 40 GOOD, 10 + 200 defects, 20 drift images."""
    confusion = [[40 - good_to_drift, 0, 0, good_to_drift],
                 [escapes, 10 - escapes, 0, 0],
                 [0, 0, 200 - known_to_drift, known_to_drift],
                 [drift_missed, 0, 0, 20 - drift_missed]]
    report = {"class_names": NAMES, "good_code": 0, "open_set_code": 3, "confusion": confusion,
              "n": 270, "pwa": 0.994, "floor": {"name": "Missing", "pwa": 0.9916},
              "cost_ratio": 0.72, "escapes": escapes, "defect_images": 210, "good_images": 40,
              "known_macro_recall": 0.95}
    return {"epochs": 8, "inspector": "outputs/x/inspector.safetensors",
            "inspection": {"report": report, "drift_auroc": 0.998,
                           "false_drift_rate": (good_to_drift + known_to_drift) / 250}}


def verdicts(figures: dict[str, Any]) -> dict[str, bool]:
    return {v["goal"].name: v["met"] for v in goal_verdicts(figures)}


def test_figures_from_the_summary_and_the_inspector_size() -> None:
    f = figures_of(summary(), 210.0, 17_300_000)
    assert (f["good_accepted_images"], f["good_images"], f["good_accepted"]) == (39, 40, 0.975)
    assert (f["drift_caught_images"], f["drift_images"], f["drift_caught"]) == (20, 20, 1.0)
    assert (f["false_drift_images"], f["known_images"], f["false_drift"]) == (4, 250, 0.016)
    assert f["minutes"] == 3.5 and f["inspector_mb"] == 17.3
    assert (f["floor"], f["floor_pwa"], f["cost_ratio"], f["escapes"]) == (
        "Missing", 0.9916, 0.72, 0)
    assert f["known_macro_recall"] == 0.95 and f["drift_auroc"] == 0.998 and f["epochs"] == 8
    json.dumps(f)  # stored as JSON


def test_a_summary_lacking_figures_reads_none_and_meets_nothing() -> None:
    f = figures_of({}, 60.0, None)
    assert f["good_accepted"] is None and f["drift_caught"] is None and f["inspector_mb"] is None
    assert verdicts(f) == {g.name: g.name.startswith("wall time") for g in GOALS}


def test_goals_at_and_just_past_their_limits() -> None:
    # 4 of 40 GOOD to drift: 90% accepted; 4 of 20 drift missed: 80% caught; 6 minutes
    at = figures_of(summary(good_to_drift=4, drift_missed=4), 360.0, None)
    assert all(verdicts(at).values()) and len(verdicts(at)) == len(GOALS)
    past = figures_of(summary(good_to_drift=5, drift_missed=5, escapes=1), 361.0, None)
    assert not any(verdicts(past).values())


def test_one_escape_misses_only_the_escape_goal() -> None:
    v = verdicts(figures_of(summary(escapes=1), 200.0, None))
    assert v == {"defect escapes": False, "GOOD accepted": True, "drift images caught": True,
                 "wall time, generation included": True}


def test_page_section_and_goal_summary(tmp_path: Path) -> None:
    figures = figures_of(summary(drift_missed=5), 215.0, 17_340_000)
    figures["load_1min"] = {"start": 0.4, "end": 2.26}
    Result("demo", figures, quick=False, machine=MACHINE).save(tmp_path)
    page = render(load_results(tmp_path))
    section = page[page.index("## 6. The demo"):]
    lines = section.splitlines()
    assert "test cpu, 2 cores" in lines[2]
    assert "| defect escapes (of 210 defects) | 0 |" in lines
    assert "| GOOD accepted | 97.5% (39 of 40) |" in lines
    assert "at the start and the end of the run: 0.4 and 2.3" in section
    assert "| drift images caught | 75.0% (15 of 20) |" in lines
    assert "| false drift (known-class images flagged) | 1.6% (4 of 250) |" in lines
    assert "| best constant predictor (always Missing): PWA | 0.9916 |" in lines
    assert "| minutes end to end, generation included | 3.6 |" in lines
    assert "| inspector file (MB) | 17.3 |" in lines
    assert "| drift images caught | >= 80% | 75.0% | **no** |" in lines
    assert "| cpu: demo: drift images caught | >= 80% | 75.0% | **no** |" in page
    assert "| cpu: demo: GOOD accepted | >= 90% | 97.5% | yes |" in page
    assert "| cpu: demo: wall time, generation included | <= 6 min on 2 cores | 3.6 | yes |" \
        in page


def test_run_times_the_demo_in_a_fresh_folder(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The run, with the demo's child process replaced by a summary written on the spot."""
    calls: list[tuple[Path, list[str]]] = []

    def fake_demo(folder: Path, overrides: list[str]) -> float:
        calls.append((folder, overrides))
        run_dir = folder / "demo" / "2026-01-01_00-00-00"
        run_dir.mkdir(parents=True)
        (run_dir / "inspector.safetensors").write_bytes(b"x" * 2_500_000)
        written = summary()
        written["inspector"] = str(run_dir / "inspector.safetensors")
        (run_dir / "summary.json").write_text(json.dumps(written))
        return 240.0

    monkeypatch.setattr(demo, "ROOT", tmp_path)
    monkeypatch.setattr(demo, "demo", fake_demo)
    result = demo.run(True, results=tmp_path / "results")
    (folder, overrides), = calls
    assert folder.parent == tmp_path / "outputs" / "bench" and folder.name.startswith("demo_")
    assert overrides == ["trainer.max_epochs=1"]
    stored = load_results(tmp_path / "results")["cpu"]["demo"]
    assert stored["quick"] and stored["figures"]["minutes"] == 4.0
    assert stored["figures"]["inspector_mb"] == 2.5
    assert stored["figures"]["run_dir"].startswith("outputs/bench/demo_")
    assert set(stored["figures"]["load_1min"]) == {"start", "end"}
    assert result.figures["overrides"] == ["trainer.max_epochs=1"]


def test_run_folder_names_what_it_found(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="found 0"):
        run_folder(tmp_path)


def test_the_demo_runs_as_a_user_runs_it_with_everything_in_its_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commands: list[list[str]] = []
    monkeypatch.setattr(demo.subprocess, "run", lambda command, **_: commands.append(command))
    demo.demo(tmp_path, ["trainer.max_epochs=1"])
    (command,) = commands
    assert command[1:3] == ["-m", "vqc.cli.demo"]
    assert command[3:] == [f"data.root={tmp_path / 'data'}",
                           f"paths.cache_dir={tmp_path / 'cache'}",
                           f"paths.output_dir={tmp_path}", "trainer.max_epochs=1"]
