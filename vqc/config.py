"""Locating and composing the Hydra configuration outside of ``@hydra.main``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig


def _config_dir() -> Path:
    """``VQC_CONFIG_DIR``, else the package's ``conf/``: in a checkout a link to the repository's
    ``conf/`` (the folder itself is returned), in an installed wheel a copy of it."""
    if "VQC_CONFIG_DIR" in os.environ:
        return Path(os.environ["VQC_CONFIG_DIR"])
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):  # the second: a checkout sans link
        if (candidate / "train.yaml").is_file():
            return candidate.resolve()
    return here / "conf"


#: The Hydra configuration folder (see ``_config_dir``).
CONFIG_DIR = _config_dir()


def compose(config_name: str = "train", overrides: Sequence[str] = ()) -> DictConfig:
    """The composed config, as ``python train.py OVERRIDES`` would see it (without ``hydra``)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))
