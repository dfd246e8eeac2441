"""``ensemble=N``: its setting checked, its members' seeds, a member's checkpoint tested alone."""

import pytest
from omegaconf import OmegaConf

from vqc.errors import ConfigError
from vqc.training.evaluation import _one_member
from vqc.training.members import ensemble_size, member_seed


@pytest.mark.parametrize("value", [0, -1, 1.5, "2", True])
def test_a_bad_ensemble_setting_is_refused_by_name(value):
    with pytest.raises(ConfigError, match=r"ensemble=.*: must be an integer >= 1"):
        ensemble_size(OmegaConf.create({"ensemble": value}))


def test_members_count_and_seeds():
    assert ensemble_size(OmegaConf.create({})) == 1
    assert ensemble_size(OmegaConf.create({"ensemble": 3})) == 3
    assert [member_seed(42, k) for k in range(3)] == [42, 1042, 2042]


def test_a_member_checkpoint_tested_alone_is_warned_about():
    assert _one_member(OmegaConf.create({"ensemble": 1}), "best.ckpt") is None
    text = _one_member(OmegaConf.create({"ensemble": 2}), "run/checkpoints/best.ckpt")
    assert "one of the run's 2 networks" in text and "inspector.safetensors" in text
