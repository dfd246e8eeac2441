"""The run summary is typed and versioned: written and read by one module, unknown keys and
newer versions refused by name, and still read as a mapping by older code."""

from __future__ import annotations

import json

import pytest

from vqc.errors import DataError
from vqc.training.summary import SUMMARY_VERSION, RunSummary


def test_a_summary_goes_to_its_file_and_back(tmp_path) -> None:
    summary = RunSummary(run_dir=str(tmp_path), epochs=3, warnings=["careful"],
                         best={"monitor": "val/loss", "score": 0.25, "epoch": 3, "metrics": {}})
    summary.update({"metric": 0.9, "test": {"pwa": 0.99}})
    path = summary.write()
    assert path == tmp_path / "summary.json"
    data = json.loads(path.read_text())
    assert data["version"] == SUMMARY_VERSION and data["metric"] == 0.9
    again = RunSummary.read(tmp_path)
    assert again == summary or again.to_dict() == summary.to_dict()
    assert again["test"] == {"pwa": 0.99} and again.get("inspection") is None
    assert {**again}["best"]["monitor"] == "val/loss"  # a mapping, as summary.json was
    with pytest.raises(KeyError):
        again["no_such_key"]


def test_a_newer_or_unknown_summary_is_refused_by_name(tmp_path) -> None:
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"run_dir": "r", "version": SUMMARY_VERSION + 1}))
    with pytest.raises(DataError, match=rf"summary version {SUMMARY_VERSION + 1} is newer"):
        RunSummary.read(path)
    path.write_text(json.dumps({"run_dir": "r", "mteric": 1.0}))
    with pytest.raises(DataError, match=r"unknown key\(s\) \['mteric'\]"):
        RunSummary.read(path)
    path.write_text("[1, 2]")
    with pytest.raises(DataError, match="not a run summary"):
        RunSummary.read(path)
