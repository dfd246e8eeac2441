"""What every Hydra command of vqc does before its work: check the config, show it, save it."""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from vqc.config import register_resolvers
from vqc.config_checks import Check, validate
from vqc.errors import ConfigError
from vqc.io import write_atomic

log = logging.getLogger("vqc")

#: Printed first in the tree, in this order; the other keys follow as they come.
TREE_ORDER = ("data", "model", "module", "drift", "trainer", "callbacks", "logger", "paths")

#: Library warnings that say nothing to act on in a vqc run: FutureWarnings of dependencies, a
#: small set with fewer batches than the logging interval (vqc logs every epoch anyway), frozen
#: blocks whose batch norms stay in eval mode on purpose (``module.freeze_bn_stats``).
QUIET = (r".*smaller than the logging interval.*", r"Found \d+ module\(s\) in eval mode.*")

__all__ = ["config_tree", "quiet_library_warnings", "register_resolvers", "start_run"]


def quiet_library_warnings() -> None:
    """Leave out the warnings of :data:`QUIET` (vqc's own warnings are kept)."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    for message in QUIET:
        warnings.filterwarnings("ignore", message=message)


def config_tree(cfg: DictConfig, order: Sequence[str] = TREE_ORDER) -> str:
    """The resolved config as a rich tree, one branch per group, as plain text."""
    from rich.console import Console
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("config", guide_style="dim")
    scalars = {k: v for k, v in cfg.items() if not OmegaConf.is_config(v)}
    if scalars:
        tree.add("top level").add(Syntax(OmegaConf.to_yaml(
            OmegaConf.create(scalars), resolve=True).rstrip(), "yaml"))
    groups = [k for k in order if k in cfg] + [
        k for k in cfg if OmegaConf.is_config(cfg[k]) and k not in order]
    for key in groups:
        node = cfg[key]
        text = (OmegaConf.to_yaml(node, resolve=True) if OmegaConf.is_config(node)
                else str(node)).rstrip()
        tree.add(str(key)).add(Syntax(text or "{}", "yaml"))
    buffer = io.StringIO()
    Console(file=buffer, width=100, no_color=True, color_system=None).print(tree)
    return buffer.getvalue()


def start_run(cfg: DictConfig, print_tree: bool = True,
              checks: Sequence[Check] | None = None) -> None:
    """Validate ``cfg`` (a :class:`~vqc.errors.ConfigError` before any work), then print the
    config tree and save ``config_tree.txt`` and the resolved ``config.yaml`` in the run folder
    (rank 0 only)."""
    validate(cfg, checks)
    from vqc.training.distributed import local_rank

    if local_rank() != 0:
        return
    try:
        tree = config_tree(cfg)
        resolved = OmegaConf.to_yaml(cfg, resolve=True)
    except Exception as err:  # an interpolation that does not resolve, e.g. ${oc.env:...}
        raise ConfigError(f"config: {str(err).splitlines()[0]}") from err
    if print_tree and cfg.get("print_config", True):
        from rich.console import Console

        Console().print(tree, markup=False, highlight=False)
    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / "config_tree.txt", tree)
    write_atomic(run_dir / "config.yaml", resolved)
