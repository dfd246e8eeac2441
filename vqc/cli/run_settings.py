"""The settings a checkpoint was trained with, for ``eval.py ckpt_path=...``.

A run folder keeps the command-line overrides it was made with (``.hydra/overrides.yaml``,
written by Hydra beside every run and every sweep job). A checkpoint in that folder's
``checkpoints/`` is evaluated with those overrides first, then the ones given to ``eval.py``
(which win where both set a key), so that ``python eval.py ckpt_path=RUN/checkpoints/X.ckpt``
needs no repetition of ``experiment=...``. ``use_run_settings=false`` turns this off.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from vqc.errors import ConfigError
from vqc.training.run_names import override_key

SWITCH = "use_run_settings"

#: Settings of how a run was made, not of what it made: Hydra's own (an Optuna search's
#: ``hparams_search`` would turn the evaluation into a sweep), the loggers (``eval.yaml`` logs
#: to CSV), the trainer (a DDP or GPU run is evaluated here as the command line says) and the
#: callbacks (weight averaging, early stopping), and the checkpoint it resumed from.
NOT_CARRIED = ("hydra", "hparams_search", "logger", "trainer", "callbacks", "ckpt_path",
               "optimized_metric")


def _not_carried(key: str) -> bool:
    root = key.split("/", 1)[0].split(".", 1)[0]
    return root in NOT_CARRIED


def _value(argv: Sequence[str], key: str) -> str | None:
    found = [arg.split("=", 1)[1] for arg in argv
             if "=" in arg and override_key(arg) == key]
    return found[-1] if found else None


def saved_overrides(checkpoint: str | Path) -> tuple[Path, list[str]] | None:
    """The overrides file of the run ``checkpoint`` belongs to (``RUN/checkpoints/X.ckpt``)
    and its overrides; ``None`` where the checkpoint is not in a run folder."""
    path = Path(checkpoint).expanduser().parent.parent / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    try:
        overrides = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        reason = " ".join(str(err).split())  # one line
        raise ConfigError(f"{path}: unreadable run settings ({reason}); give the run's settings "
                          f"on the command line and {SWITCH}=false") from err
    if overrides is None:
        overrides = []
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(f"{path}: not a list of overrides; give the run's settings on the "
                          f"command line and {SWITCH}=false")
    return path, overrides


def with_run_settings(argv: Sequence[str]) -> tuple[list[str], str | None]:
    """``argv`` (without the program name) preceded by the overrides of the checkpoint's run
    (deletions ``~key`` included; those of :data:`NOT_CARRIED` and of any key ``argv`` sets
    are left out), and a line saying which were added (``None`` where none were)."""
    args = list(argv)
    checkpoint = _value(args, "ckpt_path")
    switch = (_value(args, SWITCH) or "true").strip().lower()
    if switch not in ("true", "false"):
        raise ConfigError(f"{SWITCH}={switch}: must be true or false")
    if not checkpoint or switch == "false" or "-m" in args or "--multirun" in args:
        return args, None
    found = saved_overrides(checkpoint)
    if found is None:
        return args, None
    path, overrides = found
    given = {override_key(arg) for arg in args if "=" in arg or arg.startswith("~")}
    kept = [o for o in overrides if ("=" in o or o.startswith("~"))
            and not _not_carried(override_key(o)) and override_key(o) not in given]
    line = f"the run's settings, from {path}: {' '.join(kept)}" if kept else None
    return [*kept, *args], line
