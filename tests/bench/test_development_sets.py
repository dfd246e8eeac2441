"""The development-set benchmark's figures and goals, from hand-made runs."""

from bench.development_sets import SETS, class_share, set_figures, verdicts, worst_first

NAMES = ["functional", "defect_1of3", "defect_2of3", "defect_3of3", "drift"]


def _run(cost_ratio, severe_row, flagged=0.05, seconds=600.0, accuracy=0.9):
    confusion = [[95, 5, 0, 0, 0], [10, 10, 0, 0, 0], [0, 0, 5, 0, 0], severe_row,
                 [0, 0, 0, 0, 0]]
    return {"seed": 0, "seconds": seconds, "class_names": NAMES, "confusion": confusion,
            "inspection": {"cost_ratio": cost_ratio, "accuracy": accuracy,
                           "false_alarm_rate": flagged, "escapes": severe_row[0]},
            "drift_auroc": None, "drift_recall": None, "false_drift_rate": None}


def test_a_share_of_one_class_answered_as_another():
    run = _run(0.1, [2, 0, 0, 98, 0])
    assert class_share(run, "defect_3of3", "functional") == 0.02
    assert class_share(run, "functional", "defect_1of3") == 0.05
    assert class_share(run, "drift", "functional") is None  # no drift images
    assert class_share(run, "scratch", "functional") is None


def test_elpv_goals_read_accuracy_severe_cells_and_flagged_functional_cells():
    good = _run(0.1, [1, 0, 0, 99, 0])
    bad = _run(0.3, [5, 0, 0, 95, 0], flagged=0.2, seconds=2400, accuracy=0.8)
    figures = set_figures(bad)
    assert figures["severe_passed"] == 0.05 and figures["minutes"] == 40
    assert figures["good_accepted"] == 0.8
    ordered = worst_first([good, bad])
    assert ordered[0] is bad  # the highest cost ratio first
    met = {v["goal"].name: (v["runs_met"], v["met"]) for v in verdicts(SETS["elpv"], ordered)}
    assert met == {"4-level accuracy": (1, False), "severe cells passed as functional": (1, False),
                   "functional cells flagged": (1, False), "minutes a run": (1, False)}
    assert all(v["met"] for v in verdicts(SETS["elpv"], [good]))


def test_a_missing_figure_meets_no_goal():
    drift_goal = next(g for g in SETS["elpv_drift"].goals if "drift" in g.name)
    assert not drift_goal.met(set_figures(_run(0.1, [0, 0, 0, 10, 0])))


def test_the_report_takes_the_magnetic_tiles_from_the_real_data_run_of_the_default():
    from bench.report_sets import collect

    runs = [_run(0.01, [0, 0, 0, 10, 0]), _run(0.2, [1, 0, 0, 9, 0])]
    real = {"date": "2026-12-07 06:00 UTC", "figures": {"experiment": "magnetic_tile",
                                                         "seeds": [0, 1], "per_seed": runs}}
    found = collect({"real_data": real, "default_recipe_elpv": {"figures": {}}})
    assert list(found) == ["magnetic_tile", "elpv"]  # in the order of SETS
    assert found["magnetic_tile"]["figures"]["per_seed"][0] is runs[1]  # worst first
    older = {**real, "date": "2026-12-06 06:00 UTC"}  # before it was the default recipe
    assert collect({"real_data": older}) == {}


def test_new_seeds_join_the_stored_ones_of_the_same_recipe():
    from bench.development_sets import merged_runs

    stored = {"quick": False, "figures": {"overrides": ["data=csv"], "per_seed": [
        {"seed": 0, "tag": "old 0"}, {"seed": 1, "tag": "old 1"}]}}
    runs = merged_runs(stored, [{"seed": 1, "tag": "new 1"}, {"seed": 2, "tag": "new 2"}],
                       ["data=csv"])
    assert sorted((r["seed"], r["tag"]) for r in runs) == [
        (0, "old 0"), (1, "new 1"), (2, "new 2")]
    other = merged_runs(stored, [{"seed": 2, "tag": "new 2"}], ["data=folders"])
    assert [r["seed"] for r in other] == [2]  # another recipe's runs are not kept
    assert [r["seed"] for r in merged_runs(None, [{"seed": 5}], [])] == [5]
    changed = merged_runs(stored, [{"seed": 2, "tag": "new 2"}], ["data=csv"], recipe="abc")
    assert [r["seed"] for r in changed] == [2]  # the same overrides, other defaults


def test_the_recipe_digest_follows_the_composed_config_not_the_seed():
    from bench.development_sets import recipe_digest

    base = ["data=csv", "data.root=/tmp/set"]
    assert recipe_digest(base) == recipe_digest([*base, "seed=3"])
    assert recipe_digest(base) != recipe_digest([*base, "data.balanced=false"])
    assert recipe_digest(base) != recipe_digest([*base, "model=efficientnet_lite0"])


def test_a_rescored_run_is_stored_under_the_sets_own_command_and_todays_recipe(
        tmp_path, monkeypatch):
    """``--rescore`` refits drift on a stored run with eval.py: the result names the set's own
    overrides (not another set's) and today's recipe digest, so later seeds join it."""
    import json
    from pathlib import Path

    import bench.development_sets as dev

    root = tmp_path / "repo"
    trained = root / "outputs" / "bench" / "run_seed4"
    trained.mkdir(parents=True)
    monkeypatch.setattr(dev, "ROOT", root)
    summaries = {trained: {"best_checkpoint": "ckpt", "epochs": 9, "choices": []}}
    calls = []

    def fake_eval(command, cwd, check):
        calls.append(command)
        out = next(c.split("=", 1)[1] for c in command if c.startswith("hydra.run.dir="))
        summaries[Path(out)] = {"warnings": ["w"]}

    monkeypatch.setattr(dev.subprocess, "run", fake_eval)
    monkeypatch.setattr(dev.RunSummary, "read", staticmethod(lambda d: summaries[d]))
    monkeypatch.setattr(dev, "_stored_runs", lambda d: [{"seed": 4, "seconds": 600.0}])
    monkeypatch.setattr(dev, "figures_of", lambda s, seconds, seed: {
        "seed": seed, "seconds": seconds, "inspection": {"cost_ratio": 0.1}})
    monkeypatch.setattr(dev, "recipe_digest", lambda overrides: "today")
    demo = dev.DevSet("demo", "the demo", lambda: ["experiment=demo"], ())
    results = tmp_path / "results"
    result = dev.rescore(demo, [trained], results)
    assert calls[0][1:3] == [str(root / "eval.py"), "ckpt_path=ckpt"]
    stored = json.loads((results / "cpu" / "default_recipe_demo.json").read_text())
    assert stored["figures"]["overrides"] == ["experiment=demo"]
    assert stored["figures"]["recipe"] == "today" and stored["figures"]["seeds"] == [4]
    run = stored["figures"]["per_seed"][0]
    assert run["epochs"] == 9 and run["warnings"] == ["w"] and run["seconds"] == 600.0
    assert result is not None
