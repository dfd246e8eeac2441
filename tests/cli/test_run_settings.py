"""``eval.py ckpt_path=...``: the overrides of the checkpoint's run come first."""

from __future__ import annotations

from pathlib import Path

import pytest

from vqc.cli.run_settings import with_run_settings
from vqc.errors import ConfigError
from vqc.training.run_names import override_key


def a_run(tmp_path: Path, overrides: str) -> Path:
    """A run folder with ``overrides`` (YAML text) as its ``.hydra/overrides.yaml``; the path
    of a checkpoint in it."""
    (tmp_path / "run" / ".hydra").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints").mkdir()
    (tmp_path / "run" / ".hydra" / "overrides.yaml").write_text(overrides)
    checkpoint = tmp_path / "run" / "checkpoints" / "best-epoch003.ckpt"
    checkpoint.write_bytes(b"")
    return checkpoint


def test_override_keys() -> None:
    assert override_key("+a.b=1") == "a.b"
    assert override_key("~drift") == "drift"
    assert override_key("data=csv") == "data"


def test_the_runs_overrides_come_first_and_the_given_ones_win(tmp_path) -> None:
    checkpoint = a_run(tmp_path, "- experiment=magnetic_tile\n- seed=1\n- data.root=/tiles\n"
                                 "- hydra.run.dir=/somewhere\n")
    args, line = with_run_settings([f"ckpt_path={checkpoint}", "seed=2"])
    assert args == ["experiment=magnetic_tile", "data.root=/tiles", f"ckpt_path={checkpoint}",
                    "seed=2"]
    assert line is not None and "experiment=magnetic_tile data.root=/tiles" in line
    assert str(checkpoint.parent.parent / ".hydra" / "overrides.yaml") in line


def test_settings_of_how_the_run_was_made_stay_behind_and_deletions_are_kept(tmp_path) -> None:
    checkpoint = a_run(tmp_path, "- hparams_search=optuna\n- logger=wandb\n- trainer=ddp\n"
                                 "- trainer.max_epochs=30\n- ckpt_path=last\n- ~drift\n"
                                 "- +callbacks.weight_averaging.decay=0.9\n- hydra/launcher=x\n"
                                 "- model=resnet18\n")
    args, _ = with_run_settings([f"ckpt_path={checkpoint}"])
    assert args == ["~drift", "model=resnet18", f"ckpt_path={checkpoint}"]
    args, _ = with_run_settings([f"ckpt_path={checkpoint}", "~model"])
    assert args == ["~drift", f"ckpt_path={checkpoint}", "~model"]


def test_nothing_is_added_when_switched_off_outside_a_run_or_without_a_checkpoint(
        tmp_path) -> None:
    checkpoint = a_run(tmp_path, "- seed=1\n")
    off = [f"ckpt_path={checkpoint}", "use_run_settings=false"]
    assert with_run_settings(off) == (off, None)
    loose = tmp_path / "loose.ckpt"
    loose.write_bytes(b"")
    assert with_run_settings([f"ckpt_path={loose}"]) == ([f"ckpt_path={loose}"], None)
    assert with_run_settings(["inspector=x.safetensors"]) == (["inspector=x.safetensors"], None)


def test_an_empty_overrides_file_adds_nothing(tmp_path) -> None:
    checkpoint = a_run(tmp_path, "[]\n")
    assert with_run_settings([f"ckpt_path={checkpoint}"]) == ([f"ckpt_path={checkpoint}"], None)


@pytest.mark.parametrize("text", ["a: [1\n", "{seed: 1}\n"])
def test_a_broken_overrides_file_is_named(tmp_path, text) -> None:
    checkpoint = a_run(tmp_path, text)
    with pytest.raises(ConfigError, match=r"overrides\.yaml.*use_run_settings=false"):
        with_run_settings([f"ckpt_path={checkpoint}"])


def test_a_bad_switch_is_named(tmp_path) -> None:
    checkpoint = a_run(tmp_path, "- seed=1\n")
    with pytest.raises(ConfigError, match="use_run_settings=maybe"):
        with_run_settings([f"ckpt_path={checkpoint}", "use_run_settings=maybe"])
