"""Locating and composing the Hydra configuration outside of ``@hydra.main``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

#: The project's ``conf/`` folder; ``VQC_CONFIG_DIR`` points elsewhere.
CONFIG_DIR = Path(os.environ.get("VQC_CONFIG_DIR", Path(__file__).resolve().parents[1] / "conf"))


def compose(config_name: str = "train", overrides: Sequence[str] = ()) -> DictConfig:
    """The composed config, as ``python train.py OVERRIDES`` would see it (without ``hydra``)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))
