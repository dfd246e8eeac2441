"""``python train.py -m model=resnet101 unfreeze=4,8,12``: ImageNet ResNets, or a stop in seconds.

The ResNets' configs ask for ImageNet weights. With a model hub reachable (here: its local cache,
``HF_HOME``) the sweep fine-tunes them; offline with none, the command stops before Hydra
starts, naming each place it looked and the two ways on, once for the whole sweep.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.training.conftest import fast_overrides, write_tiny_csv_set

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    return os.environ | {"WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1", **extra}


def _hub_cache(home: Path, repo: str, state: dict[str, torch.Tensor]) -> Path:
    """``state`` as ``repo``'s model.safetensors in a Hugging Face cache under ``home``."""
    from safetensors.torch import save_file

    commit = "0" * 40
    folder = home / "hub" / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    file = folder / "snapshots" / commit / "model.safetensors"
    file.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(file))
    return file


def test_offline_without_weights_the_sweep_stops_at_once_naming_the_ways_on(tmp_path) -> None:
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "-m", "model=resnet101", "unfreeze=4,8,12",
         f"paths.output_dir={tmp_path / 'out'}", f"paths.data_dir={tmp_path / 'data'}"],
        env=_env(HF_HOME=str(tmp_path / "hf"), TORCH_HOME=str(tmp_path / "torch")),
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    seconds = time.monotonic() - start
    assert result.returncode == 2, result.stderr[-2000:]
    assert seconds < 10, seconds
    err = result.stderr
    assert "every job of this sweep (3 jobs) would stop" in err
    assert err.count("no ImageNet weights for 'resnet101'") == 1  # said once, not per job
    for tried in ("1. model.weights: not set", "2. weights package: none exists",
                  "3. hub:", "HF_HUB_OFFLINE", "model.weights=FILE", "model.pretrained=false"):
        assert tried in err, tried
    assert not (tmp_path / "out").exists() and not (tmp_path / "data").exists()  # nothing read


@pytest.mark.timeout(600)
def test_with_the_hub_cache_the_sweep_fine_tunes_imagenet_resnets(tmp_path) -> None:
    import timm
    from timm.models import get_pretrained_cfg

    repo = get_pretrained_cfg("resnet18").hf_hub_id
    torch.manual_seed(0)
    donor = timm.create_model("resnet18", num_classes=1000).state_dict()
    cached = _hub_cache(tmp_path / "hf", repo, donor)
    data = write_tiny_csv_set(tmp_path / "set")
    sweep = tmp_path / "sweep"
    overrides = [o for o in fast_overrides(data, tmp_path, "model=resnet18", "unfreeze=1,2",
                                                "model.pretrained=true")
                 if not o.startswith("unfreeze=")]
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "-m", *overrides, "unfreeze=1,2",
         "trainer.max_epochs=1", "inspector=false", "figures.enabled=false",
         f"hydra.sweep.dir={sweep}"],
        env=_env(HF_HOME=str(tmp_path / "hf")), cwd=tmp_path, capture_output=True, text=True,
        timeout=540)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(sweep / "sweep_summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["overrides"], r["status"]) for r in rows] == [("unfreeze=1", "ok"),
                                                             ("unfreeze=2", "ok")]
    for row in rows:
        log = next(Path(row["run_dir"]).glob("*.log")).read_text()
        assert f"{cached}: " in log and "tensors loaded" in log  # the weights' origin
        warnings = json.loads((Path(row["run_dir"]) / "summary.json").read_text())["warnings"]
        assert not any("RANDOM" in w for w in warnings)
        assert row["warnings"] == str(len(warnings))
    assert "warnings" in result.stdout  # the table's column
