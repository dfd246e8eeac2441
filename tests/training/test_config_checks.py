"""The config checked before any work, through ``python train.py``; the Hydra habits (debug
configs, --help, local config, config tree, project-root paths, max_time)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from tests.reliability.test_bad_input import (
    TrainCli,
    assert_clear_failure,
    leftovers,
    train_args,
)
from tests.training.conftest import fast_overrides, write_tiny_csv_set
from vqc.config import CONFIG_DIR
from vqc.config import compose as compose_train
from vqc.config_checks import CHECKS, validate
from vqc.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
DEBUG = sorted(p.stem for p in (CONFIG_DIR / "debug").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))


@pytest.fixture(scope="module")
def train_cli() -> TrainCli:
    assert "HYDRA_FULL_ERROR" not in os.environ
    return TrainCli.shared()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_csv_set(tmp_path_factory.mktemp("set"))


#: A drift config with a defect gate (the tiny runs' drift.n_features kept at the top level).
GATE = ["drift=padim_pooled_gate", "+drift.n_features=8"]
BAD = [
    ("unfreeze_not_an_integer", ["unfreeze=abc"], r"unfreeze=abc: must be an integer >= -1"),
    ("lr_not_a_number", ["lr=1e-3x"], r"lr=1e-3x: must be a number > 0"),
    ("lr_negative", ["lr=-1"], r"lr=-1: must be a number > 0"),
    ("ensemble_zero", ["ensemble=0"], r"ensemble=0: must be an integer >= 1"),
    ("escape_weight_negative", ["module.escape_weight=-1"],
     r"module\.escape_weight=-1: must be a number >= 0"),
    ("mask_weight_negative", ["module.mask_weight=-0.5"],
     r"module\.mask_weight=-0\.5: must be a number >= 0"),
    ("dropout_one", ["dropout=1"], r"dropout=1: must be a number >= 0 and < 1"),
    ("batch_size_zero", ["data.batch_size=0"], r"data\.batch_size=0: must be an integer >= 1"),
    ("image_size_negative", ["data.preprocess.size=[32,-4]"],
     r"data\.preprocess\.size=\[32,-4\]: must be a list of 2 integers each >= 1"),
    ("gate_rate_above_one", [*GATE, "drift.gate_rate=1.5"],
     r"drift\.gate_rate=1\.5: must be a number > 0 and < 1"),
    ("false_drift_rate_zero", [*GATE, "drift.target_rate=0"],
     r"drift\.target_rate=0: must be a number > 0 and < 1"),
    ("detector_eps_zero", [*GATE, "drift.detectors.padim.eps=0"],
     r"drift\.detectors\.padim\.eps=0: must be a number > 0"),
    ("unknown_decision", ["module.decision=cheapest"],
     r"module\.decision=cheapest: must be one of argmax, bayes"),
    ("max_time_format", ["trainer.max_time=2h"], r"trainer\.max_time=2h: must be DD:HH:MM:SS"),
    ("tags_not_strings", ["tags=[baseline,3]"], r"tags=\['baseline',3\]: must be a list of "
                                                r"strings"),
    ("unfreeze_above_the_blocks", ["depth=2", "unfreeze=3"],
     r"unfreeze=3 is out of range for cnn: it has 2 conv blocks"),
]


@pytest.mark.parametrize(("extra", "match"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_setting_is_one_line_before_any_work(train_cli, data, tmp_path, extra, match):
    result = train_cli(train_args(data, tmp_path, *extra), tmp_path)
    assert_clear_failure(result, match, 2)
    line = next(line for line in result.output.splitlines() if "must be" in line
                or "out of range" in line)
    assert "\n" not in line and len(line) < 300
    assert leftovers(tmp_path / "run") == []  # not even the config tree: nothing was done
    assert not (tmp_path / "data" / "cache").exists()  # no image was read


def test_data_csv_without_a_root_names_the_key(train_cli, data, tmp_path):
    args = [a for a in train_args(data, tmp_path) if not a.startswith("data.root=")]
    result = train_cli(args, tmp_path)
    assert_clear_failure(result, r"data\.root: required, set it on the command line", 2)


@pytest.mark.parametrize("name", ["default", *EXPERIMENTS])
def test_every_shipped_config_passes(name):
    validate(compose_train("train", [] if name == "default" else [f"experiment={name}"]))


@pytest.mark.parametrize("debug", DEBUG)
def test_debug_configs_pass_and_shrink_the_run(debug):
    cfg = compose_train("train", [f"debug={debug}"])
    validate(cfg)
    assert cfg.trainer.max_epochs <= 20 and cfg.debug_limits and "logger" in cfg
    assert "wandb" not in cfg.logger  # debug runs are not logged to W&B
    limits = {"fast_dev_run": ("fast_dev_run", True), "overfit": ("overfit_batches", 3),
              "limit": ("limit_train_batches", 5)}
    if debug in limits:
        key, value = limits[debug]
        assert cfg.trainer[key] == value


def test_validator_takes_more_checks():
    def no_sevens(cfg):
        if cfg.seed == 7:
            yield "seed=7: not this one"

    cfg = compose_train("train", ["seed=7"])
    validate(cfg)
    with pytest.raises(ConfigError, match=r"^seed=7: not this one$"):
        validate(cfg, [*CHECKS, no_sevens])


def test_help_lists_only_real_choices(train_cli, tmp_path):
    result = train_cli(["--help"], tmp_path)
    assert result.code == 0, result.output[-2000:]
    listed = {}
    for line in result.output.split("== Config ==")[0].splitlines():
        group, sep, options = line.partition(": ")
        if sep and " " not in group:
            listed[group] = options.split(", ")
    assert "data/base" not in listed and "local" not in listed and "hydra" not in listed
    for group, options in listed.items():
        files = sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))
        assert options == files, group
    assert {"data", "model", "debug", "trainer"} <= set(listed)
    assert "common" not in listed["data"]


def test_a_tiny_run_without_progress_bar_saves_its_config(train_cli, data, tmp_path):
    """trainer.enable_progress_bar=false with the rich progress bar callback, max_time without
    a +, and the config tree and resolved config saved in the run folder; the run is started
    from another folder and its paths are anchored at the project root."""
    args = train_args(data, tmp_path, "callbacks=default", "trainer.enable_progress_bar=false",
                      "trainer.max_time=00:00:10:00", "tags=[smoke,cpu]", "trainer.max_epochs=1",
                      "test=false", "inspector=false", "figures.enabled=false")
    result = train_cli(args, tmp_path / "elsewhere")
    assert result.code == 0, result.output[-3000:]
    run = tmp_path / "run"
    tree = (run / "config_tree.txt").read_text()
    assert "trainer" in tree and "enable_progress_bar: false" in tree
    assert "enable_progress_bar: false" in result.output  # printed at the start too
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert "${" not in (run / "config.yaml").read_text()
    assert saved["tags"] == ["smoke", "cpu"] and saved["trainer"]["max_time"] == "00:00:10:00"
    assert saved["paths"]["root_dir"] == str(ROOT)
    assert (run / "checkpoints" / "last.ckpt").is_file()


def test_paths_are_anchored_at_the_project_root(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name in ("VQC_DATA_DIR", "VQC_OUTPUT_DIR", "VQC_CACHE_DIR", "PROJECT_ROOT"):
        monkeypatch.delenv(name, raising=False)
    paths = compose_train("train").paths
    assert (paths.data_dir, paths.output_dir) == (str(ROOT / "data"), str(ROOT / "outputs"))
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    assert compose_train("train").paths.data_dir == str(tmp_path / "data")


def test_local_config_is_optional_and_git_ignored(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(CONFIG_DIR, conf, ignore=shutil.ignore_patterns("default.yaml.local"))
    (conf / "local" / "default.yaml").unlink(missing_ok=True)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        assert compose("train").data.num_workers == 2  # no local file: composes as shipped
    shutil.copy(conf / "local" / "example.yaml.txt", conf / "local" / "default.yaml")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("train")
    assert cfg.data.num_workers == 8 and cfg.trainer.accelerator == "gpu"
    GlobalHydra.instance().clear()
    ignored = subprocess.run(["git", "check-ignore", "-q", "conf/local/default.yaml"], cwd=ROOT)
    assert ignored.returncode == 0


def test_max_time_is_a_plain_override():
    cfg = compose_train("train", ["trainer.max_time=00:01:00:00"])
    assert cfg.trainer.max_time == "00:01:00:00"
    assert compose_train("train", ["trainer.max_time=null"]).trainer.max_time is None


def test_fast_overrides_still_pass(tmp_path):
    validate(compose_train("train", fast_overrides(tmp_path, tmp_path)))


@pytest.mark.parametrize(("overrides", "lines"), [
    (["depth=abc"], ["depth=abc: must be an integer >= 1 and <= 8"]),
    (["model=cnn", "depth=9"], ["depth=9: must be an integer >= 1 and <= 8"]),
    (["model=cnn", "model.width=${.depth}", "depth=0"],
     ["depth=0: must be an integer >= 1 and <= 8"]),
    (["drift=padim", "+drift.role=foo"],
     ["drift.role=foo: must be one of drift, defect (or null)"]),
    (["drift=pooled_gate", "+drift.detectors.p.type=padim", "+drift.eps=0"],
     ["drift.eps=0: must be a number > 0"]),  # the shared value, by every detector taking it
    (["drift=stats_gate", "+drift.sigma=-1"],
     ["drift.sigma: beside detectors, an option of none of them (pooled)"]),
    (["drift=padim_pooled", "+drift.detectors.padim.foo=1"],
     ["drift.detectors.padim.foo: not an option of the padim drift detector; it takes layers, "
      "n_features, seed, sampler, fit_on, good_code, eps, sigma, upsample, pool"]),
    (["drift=padim_pooled", "drift.detectors.padim.type=nope"],
     ["drift.detectors.padim.type='nope': unknown drift detector type; known: image_quality, "
      "padim, pooled"]),
    (["model=efficientnet_lite0", "+model.depth=3"],
     ["model.depth: not a setting of efficientnet_lite models; they take pretrained, weights, "
      "unfreeze, dropout"]),
    (["drift.cross_fit=null"], []),  # read as 0
], ids=["depth", "depth_of_cnn", "relative_reference", "role", "shared_key", "shared_of_none",
        "unknown_option", "unknown_type", "unknown_model_key", "cross_fit_null"])
def test_plugin_options_are_checked_by_their_declared_rules(overrides, lines) -> None:
    from vqc.config_checks import find_problems

    cfg = compose_train("train", ["data=csv", "data.root=/tmp", *overrides])
    assert find_problems(cfg, build_models=False) == lines
