"""Names of a multirun's jobs: the keys a sweep varies and a run name that starts with them."""

from __future__ import annotations

import sys
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vqc.training.sweep_table import read_summary


def override_key(override: str) -> str:
    """The key an override sets: ``+a.b=1`` -> ``a.b``; ``~drift`` -> ``drift``."""
    return override.split("=", 1)[0].lstrip("+~")


def swept_keys(config: DictConfig) -> list[str]:
    """Keys a multirun varies: sweep overrides (``a=1,2``, ``range()``...) and sweeper params."""
    keys: list[str] = []
    task = list(OmegaConf.select(config, "hydra.overrides.task") or [])
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        for override in OverridesParser.create().parse_overrides(task):
            if override.is_sweep_override():
                keys.append(override.key_or_group)
    except Exception:  # pragma: no cover - Hydra already parsed them
        pass
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    keys += [str(k) for k in params]
    return list(dict.fromkeys(keys))


def _argv_swept_keys(argv: list[str]) -> list[str]:
    """Keys swept on a command line (``a=1,2``), for jobs run where the sweep was started."""
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        plain = [a for a in argv if not a.startswith("-")]
        return [o.key_or_group for o in OverridesParser.create().parse_overrides(plain)
                if o.is_sweep_override()]
    except Exception:
        return []


def job_run_name(hydra_cfg: Any) -> str:
    """A multirun job's run name: its swept values first, then the experiment
    (``unfreeze=8,model=resnet101 · magnetic_tile``), so that a list that cuts long names
    still tells the jobs apart. The swept keys come from the sweep's summary (written when the
    sweep starts), else from the command line and the sweeper's parameters."""
    sweep_dir = OmegaConf.select(hydra_cfg, "sweep.dir")
    header = (read_summary(str(sweep_dir)) if sweep_dir else None) or {}
    swept = list(header.get("swept") or [])
    if not swept:
        params = OmegaConf.select(hydra_cfg, "sweeper.params") or {}
        swept = list(dict.fromkeys([*_argv_swept_keys(sys.argv[1:]), *map(str, params)]))
    task = [str(o) for o in (OmegaConf.select(hydra_cfg, "overrides.task") or [])]
    values = sorted((o for o in task if override_key(o) in swept),
                    key=lambda o: swept.index(override_key(o)))
    name = (",".join(values) or OmegaConf.select(hydra_cfg, "job.override_dirname")
            or f"job{OmegaConf.select(hydra_cfg, 'job.num')}")
    experiment = OmegaConf.select(hydra_cfg, "runtime.choices.experiment")
    return f"{name} · {experiment}" if experiment else name
