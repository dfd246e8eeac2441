"""Locating and composing the Hydra configuration outside of ``@hydra.main``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf


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

#: Group folders that hold pieces of other configs, not choices: never listed by ``--help``.
INTERNAL = ("base", "hydra", "local")


def project_root() -> str:
    """``PROJECT_ROOT`` if set, else the checkout holding ``conf/``: where ``data/`` and
    ``outputs/`` are, whatever the current folder. An installed wheel has no checkout: its
    configs are inside the package, so the root is the current folder."""
    if os.environ.get("PROJECT_ROOT"):
        return os.environ["PROJECT_ROOT"]
    checkout = CONFIG_DIR.resolve().parent
    if (checkout / "pyproject.toml").is_file() or (checkout / "train.py").is_file():
        return str(checkout)
    return os.getcwd()


def config_groups(config_dir: Path = CONFIG_DIR) -> str:
    """``group: option, option`` lines of every real choice under ``config_dir`` (what
    ``--help`` lists): internal folders (``base``, ``hydra``, ``local``) are left out."""
    lines = []
    for folder in sorted(p for p in config_dir.rglob("*") if p.is_dir()):
        parts = folder.relative_to(config_dir).parts
        if any(part in INTERNAL or part.startswith("_") for part in parts):
            continue
        options = sorted(p.stem for p in folder.glob("*.yaml"))
        if options:
            lines.append(f"{'/'.join(parts)}: {', '.join(options)}")
    return "\n".join(lines)


def register_resolvers() -> None:
    """``${vqc.root:}`` (the project root) and ``${vqc.groups:}`` (``--help``'s choices)."""
    if not OmegaConf.has_resolver("vqc.root"):
        OmegaConf.register_new_resolver("vqc.root", project_root)
    if not OmegaConf.has_resolver("vqc.groups"):
        OmegaConf.register_new_resolver("vqc.groups", lambda: config_groups())


register_resolvers()


def compose(config_name: str = "train", overrides: Sequence[str] = ()) -> DictConfig:
    """The composed config, as ``python train.py OVERRIDES`` would see it (without ``hydra``)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))
