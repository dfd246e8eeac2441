"""What ``train.py`` refuses before Hydra starts: in a second or two, before any data is read
or a heavy library imported, and in one line per problem.

- a setting that does not exist, with the nearest one that does (``trainer.max_epoch`` ->
  ``trainer.max_epochs``), whether it was overridden or added with ``+``;
- a value out of its type or range (``config_checks``, the checks that need no model);
- a run or cache folder that cannot be created;
- pretrained weights that cannot be had (in a sweep: said once, when every job would stop).

``python train.py -m ... --cfg job`` lists a sweep's jobs and their configs without running
them (Hydra itself refuses ``--cfg`` with ``-m``).

Only plain overrides (and ``-m``) are looked at; with any other flag, or a config that does not
compose for another reason, Hydra runs as usual and reports what it finds.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from collections.abc import Sequence

from omegaconf import DictConfig, OmegaConf

from vqc.config import CONFIG_DIR
from vqc.errors import VqcError
from vqc.io import folder_problem

#: Settings that decide where a model's weights come from: a sweep over them is expanded when
#: the jobs' weights are checked (at most MAX_CHECKED_JOBS combinations).
WEIGHT_KEYS = ("model", "model.name", "model.source", "model.pretrained", "model.weights")
MAX_CHECKED_JOBS = 16
#: How close a known key must be to an unknown one to be suggested (difflib's ratio).
SUGGEST_CUTOFF = 0.8
_NOT_IN_STRUCT = re.compile(r"Could not override '([^']+)'")


def _split(argv: Sequence[str]) -> tuple[bool, list[str], list[str]]:
    """``-m`` given, the overrides, the other flags."""
    multirun = any(arg in ("-m", "--multirun") for arg in argv)
    flags = [a for a in argv if a.startswith("-") and a not in ("-m", "--multirun")]
    overrides = [a for a in argv if not a.startswith("-")]
    return multirun, overrides, flags


def _compose(overrides: list[str], hydra: bool = False) -> DictConfig:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides, return_hydra_config=hydra)


def _nearest(cfg: DictConfig, key: str) -> str | None:
    """The existing key nearest to ``key`` under the same parent, if one is close."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if not isinstance(node, DictConfig):
        return None
    close = difflib.get_close_matches(leaf, [str(k) for k in node], n=1, cutoff=SUGGEST_CUTOFF)
    return f"{parent}.{close[0]}" if close and parent else (close[0] if close else None)


def _unknown_key_error(error: Exception, plain: list[str]) -> str | None:
    """``trainer.max_epoch=1``: Hydra's 7 lines as one, with the key meant."""
    found = _NOT_IN_STRUCT.search(str(error))
    if not found:
        return None
    key = found.group(1)
    try:
        cfg = _compose([o for o in plain if o.split("=", 1)[0].lstrip("~+") != key])
    except Exception:
        return None
    near = _nearest(cfg, key)
    new = f"+{key}=... adds it as a new one"
    return f"{key}: no such setting; " + (f"did you mean {near}? ({new})" if near else new)


#: Nodes whose keys are the user's own (dies, class aliases, callbacks, loggers, detectors):
#: a new key there is never a misspelling of a neighbour.
USER_KEYED = ("data.preprocess.rotate_crop", "data.classes", "callbacks", "logger",
              "drift.detectors", "hydra")


def _one_edit(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` differ by one inserted, deleted or replaced character."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    i = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return a[i + 1:] == b[i + 1:] or a[i:] == b[i + 1:] or a[i + 1:] == b[i:]


def _added_key_errors(cfg_without: DictConfig, plain: list[str]) -> list[str]:
    """``+trainer.max_epoch=1`` adds a key nothing reads, one letter from the one meant
    (``++key=...`` adds it anyway)."""
    problems = []
    for override in plain:
        if not override.startswith("+") or override.startswith("++"):
            continue
        key = override[1:].split("=", 1)[0]
        parent, _, leaf = key.rpartition(".")
        if parent.startswith(USER_KEYED):
            continue
        node = OmegaConf.select(cfg_without, parent) if parent else cfg_without
        if not isinstance(node, DictConfig) or leaf in node:
            continue
        near = next((str(k) for k in node if _one_edit(leaf, str(k))), None)
        if near:
            meant = f"{parent}.{near}" if parent else near
            problems.append(f"+{key}: adds a setting nothing reads beside {meant}; did you mean "
                            f"{meant}={override.split('=', 1)[1]}? (++{key}=... adds it anyway)")
    return problems


def _value_errors(cfg: DictConfig) -> list[str]:
    """``config_checks`` without the checks that build the model (they need torch)."""
    from vqc.config_checks import find_problems

    try:
        return find_problems(cfg, build_models=False)
    except Exception:
        return []  # not this check's to report: validation in the run says what it is


def early_errors(argv: Sequence[str]) -> str | None:
    """The module docstring's problems of ``argv``: a message, or ``None``."""
    multirun, overrides, flags = _split(argv)
    if flags:
        return None
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parsed = OverridesParser.create().parse_overrides(overrides)
        axes = {o.input_line.split("=", 1)[0]: [
            f"{o.input_line.split('=', 1)[0]}={v}" for v in o.sweep_string_iterator()]
            for o in parsed if o.is_sweep_override()}
    except Exception:
        return None  # a sweep Hydra expands itself (interval, an Optuna search): not checked
    # the first job stands for the sweep: a swept group brings its own keys
    plain = [o.input_line for o in parsed if not o.is_sweep_override()] + [
        values[0] for values in axes.values() if values]
    swept = [values for key, values in axes.items() if key.lstrip("+~") in WEIGHT_KEYS]
    n_jobs = math.prod(len(values) for values in axes.values())
    try:
        cfg = _compose(plain, hydra=True)
    except Exception as error:
        return _unknown_key_error(error, plain)
    added = [o for o in plain if o.startswith("+") and not o.startswith("++")]
    without_added = cfg
    if added:  # composed again only when a key is added
        try:
            without_added = _compose([o for o in plain if o not in added])
        except Exception:
            without_added = cfg
    problems = _added_key_errors(without_added, plain) + _value_errors(cfg)
    if problems:
        return "\n".join(problems)
    run_key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    for key in (run_key, "paths.cache_dir"):
        try:
            folder = OmegaConf.select(cfg, key)
        except Exception:
            continue
        problem = folder_problem(str(folder)) if folder else None
        if problem:
            parent = "paths.output_dir" if key.startswith("hydra.") else "paths.data_dir"
            return (f"{key}={folder}: cannot create this folder: {problem} (it lies under "
                    f"{parent} unless {key} is set itself)")
    jobs = list(itertools.islice(itertools.product(*swept), MAX_CHECKED_JOBS + 1))
    if len(jobs) > MAX_CHECKED_JOBS:
        return None  # too many to check: each job says for itself
    try:
        models = [_compose([*plain, *job]).model if job else cfg.model for job in jobs]
    except Exception:
        return None
    return weights_error(models, n_jobs if multirun else 1)


def weights_error(models: list[DictConfig], n_jobs: int) -> str | None:
    """The error of a run whose pretrained weights cannot be had; in a sweep of ``n_jobs``,
    said once when every job's cannot (a sweep where some can runs, and the others fail by
    themselves)."""
    from vqc.models import locate_weights

    errors = []
    for model in models:
        try:
            locate_weights(str(model.name), OmegaConf.to_container(model, resolve=True))
        except VqcError as err:
            errors.append(str(err))
        except Exception:
            return None  # not this check's to report: the run says what it is
    if not errors or len(errors) < len(models):
        return None
    if n_jobs == 1:
        return errors[0]
    return (f"every job of this sweep ({n_jobs} jobs) would stop on its weights; none is run.\n"
            + "\n".join(dict.fromkeys(errors)))


def sweep_listing(argv: Sequence[str]) -> str | None:
    """``-m ... --cfg job|all``: each job's overrides and config, nothing run; ``None`` when
    ``argv`` asks for something else."""
    multirun, overrides, flags = _split(argv)
    if not multirun or not flags or flags[0] not in ("--cfg", "-c"):
        return None
    wanted = next((a for a in overrides if a in ("job", "hydra", "all")), None)
    overrides = [a for a in overrides if a != wanted]
    try:
        return _listing(overrides, wanted)
    except Exception as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise VqcError(f"cannot list this sweep's jobs: {first}") from None


def _listing(overrides: list[str], wanted: str | None) -> str:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    plain = [o.input_line for o in parsed if not o.is_sweep_override()]
    sweeper = OmegaConf.select(_compose(plain, hydra=True), "hydra.sweeper._target_") or ""
    if "BasicSweeper" not in str(sweeper):
        return (f"# {sweeper}: this sweeper chooses its jobs as the sweep goes; they cannot be "
                "listed before it runs")
    axes = [[f"{o.input_line.split('=', 1)[0]}={v}" for v in o.sweep_string_iterator()]
            for o in parsed if o.is_sweep_override()]
    out = []
    for number, job in enumerate(itertools.product(*axes)):
        out.append(f"# job {number}: {' '.join(job) or '(no swept value)'}")
        if wanted != "hydra":
            out.append(OmegaConf.to_yaml(_compose([*plain, *job])).rstrip())
    return "\n".join(out)


__all__ = ["early_errors", "sweep_listing", "weights_error"]
