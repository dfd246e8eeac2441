"""Every shipped config composes, and the knobs reach the groups they steer."""

from pathlib import Path

import pytest

from vqc.config import CONFIG_DIR, compose
from vqc.errors import ConfigError
from vqc.training.loggers import resolve_wandb_mode

EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))
MODELS = sorted(p.stem for p in (CONFIG_DIR / "model").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes(experiment):
    cfg = compose("train", [f"experiment={experiment}"])
    assert cfg.model.unfreeze == cfg.unfreeze and cfg.model.dropout == cfg.dropout


def test_origin_layer_counts_map_to_blocks():
    blocks = {n: compose("train", [f"experiment=origin_resnet50_unfreeze{n}"]).model.unfreeze
              for n in (6, 12, 24)}
    assert blocks == {6: 1, 12: 2, 24: 3}


@pytest.mark.parametrize("model", MODELS)
def test_top_level_knobs_reach_every_model(model):
    cfg = compose("train", [f"model={model}", "unfreeze=4", "dropout=0.3", "depth=3"])
    assert (cfg.model.unfreeze, cfg.model.dropout) == (4, 0.3)
    assert cfg.model.get("depth", 3) == 3  # only the configurable CNN has a depth


def test_optuna_search_composes():
    cfg = compose("train", ["hparams_search=optuna"])
    assert cfg.optimized_metric == "val/pwa"


def test_wandb_mode(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_wandb_mode("auto") == "offline"  # no account: offline, no prompt
    with pytest.raises(ConfigError, match="no API key"):
        resolve_wandb_mode("online")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_wandb_mode("online") == "disabled"  # the environment wins
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_wandb_mode("auto") == "online"


def test_config_dir_is_the_repository_conf():
    assert Path(__file__).resolve().parents[2] / "conf" == CONFIG_DIR
