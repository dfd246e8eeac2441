"""Plugins from outside ``vqc/``: a backbone, a drift detector and a data layout
(``toy_plugins.py``), each one class with its options dataclass, plus one yaml each in a
config folder of their own. An installed package's entry points make them known; then the
real commands train, save, reload, predict and export with them, and the command line checks
their options by the ranges their dataclasses declare."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.training.conftest import write_tiny_csv_set

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = """\
[vqc.models]
two_conv = tests.plugins.toy_plugins
[vqc.drift]
mean_distance = tests.plugins.toy_plugins
[vqc.layouts]
json_list = tests.plugins.toy_plugins
"""
CONFIGS = {
    "model/two_conv.yaml": "name: two_conv\npretrained: false\nweights: null\n"
                           "unfreeze: ${unfreeze}\ndropout: ${dropout}\nchannels: 6\n",
    "drift/mean_distance.yaml": "enabled: true\ntype: mean_distance\nfit_on: all\npower: 2.0\n"
                                "target_rate: 0.05\n",
    "data/json_list.yaml": "defaults:\n  - base/common@_here_\n  - _self_\n\nlayout: json_list\n"
                           "root: ???\nlisting: images.json\ntest_labelled: true\n",
}


def _install(site: Path) -> None:
    """The entry points of an installed package, ``toy-vqc-plugins``, found on ``site``."""
    info = site / "toy_vqc_plugins-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-vqc-plugins\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("toy")
    _install(tmp / "site")
    for name, text in CONFIGS.items():
        (tmp / "conf" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "conf" / name).write_text(text)
    data = write_tiny_csv_set(tmp / "data")
    table = pd.read_csv(data / "labels.csv")
    listing = {split: table.loc[table.split == split, ["image", "label"]].values.tolist()
               for split in ("train", "test")}
    (data / "images.json").write_text(json.dumps(listing))
    return {"tmp": tmp, "data": data}


def _env(tmp: Path) -> dict[str, str]:
    path = os.pathsep.join([str(tmp / "site"), str(ROOT)])
    return {**os.environ, "PYTHONPATH": path, "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1"}


def _run(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=tmp, env=_env(tmp), capture_output=True,
                          text=True, timeout=600)


def _train(setup: dict[str, Path], *extra: str) -> subprocess.CompletedProcess[str]:
    tmp = setup["tmp"]
    return _run(tmp, str(ROOT / "train.py"), f"hydra.searchpath=[file://{tmp / 'conf'}]",
                "model=two_conv", "drift=mean_distance", "data=json_list",
                f"data.root={setup['data']}", "data.preprocess.size=[16,16]",
                "data.num_workers=0", "data.cache_workers=1", "data.batch_size=8",
                f"paths.data_dir={tmp / 'cache'}", "trainer.max_epochs=2",
                "trainer.max_time=null", "trainer.enable_progress_bar=false",
                "callbacks=none", "logger=csv", "figures.tsne=false", *extra)


def test_plugins_of_another_package_train_reload_predict_and_export(setup) -> None:
    tmp, run = setup["tmp"], setup["tmp"] / "run"
    trained = _train(setup, f"hydra.run.dir={run}")
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    saved = json.loads((run / "summary.json").read_text())
    assert Path(saved["inspector"]).is_file()
    images = tmp / "to_predict"
    images.mkdir()
    for path in sorted((setup["data"] / "images").glob("test_*.png")):
        (images / path.name).write_bytes(path.read_bytes())

    predicted = _run(tmp, "-m", "vqc.cli.predict", "--inspector", saved["inspector"],
                     "--images", str(images), "--out", str(tmp / "submission.csv"))
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    submission = pd.read_csv(tmp / "submission.csv")
    assert len(submission) == len(list(images.glob("*.png")))
    details = pd.read_csv(tmp / "submission_details.csv")
    drift_scores = details.set_index("filename")["drift_score"]
    # the toy detector scores the test-only drift images, brighter than anything trained on,
    # above the known classes
    known = drift_scores[[n for n in drift_scores.index if "_drift_" not in n]]
    assert drift_scores[[n for n in drift_scores.index if "_drift_" in n]].min() > known.median()

    exported = _run(tmp, "-m", "vqc.cli.export", "--inspector", saved["inspector"],
                    "--out", str(tmp / "toy.onnx"), "--check-images", str(images))
    assert exported.returncode == 0, exported.stdout[-2000:] + exported.stderr[-2000:]
    assert "decisions identical: True" in exported.stdout


@pytest.mark.parametrize(("setting", "message"), [
    ("model.channels=0", "model.channels=0: must be an integer >= 1 and <= 64"),
    ("drift.power=0", "drift.power=0: must be a number > 0"),
    ("data.test_labelled=maybe", "data.test_labelled=maybe: must be true or false"),
])
def test_their_options_are_checked_by_their_own_ranges(setup, setting, message) -> None:
    result = _train(setup, setting, f"hydra.run.dir={setup['tmp'] / 'never'}")
    assert result.returncode == 2
    assert result.stderr.strip() == f"train.py: error: {message}"
    assert not (setup["tmp"] / "never").exists()
