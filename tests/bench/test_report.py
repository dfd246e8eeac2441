"""The benchmark harness: statistics, interleaved timing, result files and the report page."""

from pathlib import Path

import pytest

from bench.common import Result, load_results, measure_side_by_side, per_item, ratio, stat
from bench.report import fig, render


def test_stat_median_and_spread() -> None:
    s = stat([3.0, 1.0, 2.0, 10.0])
    assert (s["median"], s["min"], s["max"]) == (2.5, 1.0, 10.0)
    assert s["runs"] == [3.0, 1.0, 2.0, 10.0]


def test_ratio_is_run_by_run_and_rates_per_item() -> None:
    slow, fast = stat([2.0, 6.0, 3.0]), stat([1.0, 2.0, 3.0])
    assert ratio(slow, fast)["runs"] == [2.0, 3.0, 1.0]
    assert ratio(slow, fast)["median"] == 2.0  # not 3.0 / 2.0, the ratio of the medians
    assert per_item(stat([0.5, 0.25]), 32)["runs"] == [64.0, 128.0]


def test_side_by_side_interleaves_after_warm_up() -> None:
    calls: list[str] = []
    times = measure_side_by_side({"a": lambda: calls.append("a"),
                                  "b": lambda: calls.append("b")}, repeats=2, warmup=1)
    assert calls == ["a", "b", "a", "b", "a", "b"]
    assert len(times["a"]["runs"]) == len(times["b"]["runs"]) == 2


def test_fig_formats_median_and_range() -> None:
    assert fig(stat([1.0, 2.0, 3.0])) == "2.0 [1.0–3.0]"
    assert fig(stat([1234.0, 1500.0, 1300.0])) == "1,300 [1,234–1,500]"
    assert fig(stat([0.5])) == "0.5"  # one run: no range
    assert fig(None) == "–"


def inspection_result(speedup: float, overhead: float) -> Result:
    row = {"model": "tiny", "bare_img_s": stat([100.0]), "inspector_img_s": stat([80.0]),
           "drift_overhead": stat([overhead]), "speedup_vs_official": stat([speedup])}
    figures = {"batch": 32, "size": [224, 64], "repeats": 1,
               "official_img_s": stat([10.0]), "inspectors": [row]}
    return Result("inspection", figures, quick=False,
                  machine={"cpu": "test cpu", "cores": 2, "torch": "x", "memory_gib": 1.0})


@pytest.mark.parametrize(("speedup", "overhead", "verdicts"),
                         [(3.5, 1.2, ["yes", "yes"]), (2.9, 1.3, ["**no**", "**no**"])])
def test_report_checks_goals(tmp_path: Path, speedup: float, overhead: float,
                             verdicts: list[str]) -> None:
    inspection_result(speedup, overhead).save(tmp_path)
    page = render(load_results(tmp_path))
    goal_rows = [line for line in page.splitlines() if line.startswith("| cpu: tiny")]
    assert [row.rstrip(" |").rsplit("| ", 1)[1] for row in goal_rows] == verdicts
    assert "*Not measured yet.*" in page  # the other sections
    assert "test cpu" in page


def test_result_files_round_trip(tmp_path: Path) -> None:
    path = inspection_result(4.0, 1.1).save(tmp_path)
    assert path == tmp_path / "cpu" / "inspection.json"
    loaded = load_results(tmp_path)["cpu"]["inspection"]
    assert loaded["figures"]["inspectors"][0]["speedup_vs_official"]["median"] == 4.0
    assert not list(tmp_path.rglob(".*.tmp"))
