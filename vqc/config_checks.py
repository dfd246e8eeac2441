"""The composed config checked before any work: types and ranges of every key vqc reads.

``validate(cfg)`` runs every function of ``CHECKS`` on the composed config and raises one
:class:`~vqc.errors.ConfigError` whose lines each name a key, its value and what is allowed
(``lr=-1: must be a number > 0``). ``train.py`` and ``eval.py`` call it before touching data.

A check is a function ``(cfg) -> iterable of problem lines``; add one with ``@check``::

    @check
    def drift_layers_exist(cfg):
        if ...:
            yield "drift.layers=[...]: ..."

vqc's own keys (``trainer``, ``module``, ``data``...) are described in ``RULES`` (a key, a
type, a range); a rule skips keys the config does not have. A plugin's keys are not listed
here: the model family, the drift detectors and the data layout a config names each declare
theirs as a dataclass (``vqc.options``), and :func:`plugin_options` derives the rules from it.
That check imports the plugins (torch, seconds): like the checks that build the model, it runs
only when the others found nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vqc.config_values import rule_problems, value_of
from vqc.drift.config import DECISION_KEYS, DetectorEntry, DriftDecision
from vqc.errors import ConfigError
from vqc.models.options import CnnOptions
from vqc.options import Rule, rules_of

Check = Callable[[DictConfig], Iterable[str]]
#: Every check run by :func:`validate`, in order.
CHECKS: list[Check] = []


def check(function: Check) -> Check:
    """Decorator: run ``function`` in :func:`validate`."""
    CHECKS.append(function)
    return function


def validate(cfg: DictConfig, checks: Sequence[Check] | None = None) -> None:
    """Raise :class:`ConfigError` listing the problems (one line each) of ``cfg``: every
    problem of vqc's own keys, or, when they pass, every problem of the plugins' options."""
    problems = find_problems(cfg, checks)
    if problems:
        raise ConfigError("\n".join(problems))


def find_problems(cfg: DictConfig, checks: Sequence[Check] | None = None,
                  build_models: bool = True) -> list[str]:
    """Every problem of ``cfg``, one line each; ``build_models=False`` leaves out the checks
    that build the model (they import torch: ``train.py``'s first check skips them)."""
    problems: list[str] = []
    for function in CHECKS if checks is None else checks:
        if getattr(function, "builds_model", False) and (problems or not build_models):
            continue  # built from bad values, the model would only repeat the problem
        if getattr(function, "imports_plugins", False) and problems:
            continue  # a bad value of vqc's own is said without importing torch
        problems.extend(function(cfg))
    # model.unfreeze=${unfreeze} and the like: one line, for the knob the user set
    return [p for p in dict.fromkeys(problems)
            if not (p.startswith("model.") and p.removeprefix("model.") in problems)]


# -- values ------------------------------------------------------------------------------------
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _count(key: str, low: int = 0, nullable: bool = False) -> Rule:
    return Rule(key, "int", low, nullable=nullable)


def _flag(key: str) -> Rule:
    return Rule(key, "bool")


def _batches(key: str) -> Rule:
    """Lightning's ``limit_*_batches`` / ``overfit_batches``: a count or a fraction."""
    return Rule(key, "number", 0, nullable=True)


#: Model options also set at the top (``unfreeze=4``, ``depth=6``), checked by their own rules.
_MODEL_KNOBS = rules_of(CnnOptions, "")
TOP = [
    _count("seed"), _MODEL_KNOBS["unfreeze"], _MODEL_KNOBS["dropout"], _MODEL_KNOBS["depth"],
    Rule("lr", "number", 0, open_low=True), Rule("ensemble", "int", 1),
    Rule("ckpt_path", "str", nullable=True), _flag("test"), _flag("fit_inspector"),
    Rule("keep_last_checkpoint", "bool", nullable=True),
    Rule("inspector", "str", nullable=True, also=(True, False)),
    Rule("optimized_metric", "str", nullable=True),
    _flag("figures.enabled"), _count("figures.every_n_epochs"), _flag("figures.tsne"),
    Rule("tags", "strs"), _count("debug_limits", 1, nullable=True), _flag("print_config"),
]
DATA = [
    Rule("data.layout", "str"), Rule("data.val_fraction", "number", 0, 1, open_high=True),
    Rule("data.group_by", "choice", choices=("lib", "window", "group"), nullable=True),
    Rule("data.balanced", "bool", also=("sqrt",)), _count("data.batch_size", 1),
    _count("data.num_workers"),
    _flag("data.pin_memory"), _count("data.cache_workers", 1, nullable=True),
    Rule("data.on_bad_image", "choice", choices=("error", "skip")),
    Rule("data.preprocess.size", "ints", 1, length=2, also=("auto",)),
    _count("data.preprocess.auto_side", 16, nullable=True),
    Rule("data.preprocess.mode", "choice", choices=("L", "RGB")),
    _count("data.preprocess.max_pixels", 1),
    Rule("data.preprocess.bit_depth", "int", 9, 16, nullable=True),
    Rule("data.preprocess.resize", "choice", choices=("stretch", "letterbox")),
    Rule("data.classes.good", "str"), Rule("data.classes.open_set", "str", nullable=True),
    Rule("data.classes.names", "strs", nullable=True),
]
MODEL = [Rule("model.name", "str")]
MODULE = [
    Rule("module.loss", "choice",
         choices=("cross_entropy", "weighted_cross_entropy", "cost_matrix")),
    Rule("module.label_smoothing", "number", 0, 1, open_high=True),
    Rule("module.escape_weight", "number", 0),
    Rule("module.mask_weight", "number", 0, also=("auto",)),
    Rule("module.decision", "choice", choices=("argmax", "bayes")),
    Rule("module.collapse_share", "number", 0, 1, open_low=True),
    Rule("module.nan_policy", "choice", choices=("stop", "skip")),
    _flag("module.channels_last"), _flag("module.compile"),
    Rule("module.backbone_lr_factor", "number", 0), _flag("module.freeze_bn_stats"),
    Rule("module.optimizer.weight_decay", "number", 0),
    Rule("module.scheduler.warmup_epochs", "number", 0),
    Rule("module.scheduler.head_only_epochs", "number", 0),
    Rule("module.scheduler.min_factor", "number", 0, 1),
]
TRAINER = [
    Rule("trainer.max_epochs", "int", -1, nullable=True, also=("auto",)),
    _count("trainer.min_epochs", nullable=True),
    Rule("trainer.max_steps", "int", -1), Rule("trainer.max_time", "str", nullable=True),
    _count("trainer.log_every_n_steps", 1), Rule("trainer.num_sanity_val_steps", "int", -1),
    Rule("trainer.gradient_clip_val", "number", 0, nullable=True),
    _count("trainer.check_val_every_n_epoch", 1, nullable=True),
    _flag("trainer.enable_progress_bar"), _flag("trainer.enable_model_summary"),
    Rule("trainer.deterministic", "bool", also=("warn",)),
    Rule("trainer.fast_dev_run", "int", 0, also=(True, False)), _flag("trainer.detect_anomaly"),
    _batches("trainer.limit_train_batches"), _batches("trainer.limit_val_batches"),
    _batches("trainer.limit_test_batches"), _batches("trainer.overfit_batches"),
    _count("trainer.accumulate_grad_batches", 1),
]
RULES: list[Rule] = [*TOP, *DATA, *MODEL, *MODULE, *TRAINER]


@check
def declared_keys(cfg: DictConfig) -> Iterator[str]:
    """Every key of ``RULES`` the config has, of its type and within its range."""
    for rule in RULES:
        yield from rule_problems(rule, cfg)


@check
def drift_decision_keys(cfg: DictConfig) -> Iterator[str]:
    """The keys of the whole drift decision (``vqc.drift.config.DriftDecision``) and of each
    detector's entry (``DetectorEntry``: its ``type`` and ``role``)."""
    drift = cfg.get("drift")
    if not isinstance(drift, DictConfig):
        return
    problems = [p for rule in rules_of(DriftDecision, "drift").values()
                for p in rule_problems(rule, cfg)]
    if not problems:  # each in range: what the dataclass checks across keys (cross_fit=1)
        try:
            DriftDecision(**{k: value_of(cfg, f"drift.{k}") for k in DECISION_KEYS if k in drift})
        except ConfigError as err:
            problems = str(err).splitlines()
    yield from problems
    entries = drift.get("detectors")
    prefixes = ([f"drift.detectors.{name}" for name in entries]
                if isinstance(entries, DictConfig) else ["drift"])
    for prefix in prefixes:
        for rule in rules_of(DetectorEntry, prefix).values():
            yield from rule_problems(rule, cfg)


_TIME = re.compile(r"^\d+:\d{1,2}:\d{1,2}:\d{1,2}$")


@check
def max_time_format(cfg: DictConfig) -> Iterator[str]:
    """``trainer.max_time`` as Lightning reads a string: ``DD:HH:MM:SS``."""
    try:
        value = value_of(cfg, "trainer.max_time")
    except Exception:
        return  # reported by declared_keys
    if isinstance(value, str) and not _TIME.match(value):
        yield f"trainer.max_time={value}: must be DD:HH:MM:SS (e.g. 00:02:00:00 for 2 hours)"


@check
def every_value_resolves(cfg: DictConfig) -> Iterator[str]:
    """Required values (``???``) anywhere in the tree."""
    for key in _missing(cfg, ""):
        yield f"{key}: required, set it on the command line ({key}=...)"


def _missing(node: Any, prefix: str) -> Iterator[str]:
    """Keys holding ``???``, found without resolving anything."""
    keys = range(len(node)) if OmegaConf.is_list(node) else list(node.keys())
    for key in keys:
        child = node._get_node(key)
        path = f"{prefix}{key}"
        if path == "hydra" or child is None:
            continue
        if child._is_missing() and not child._is_interpolation():
            yield path
        elif OmegaConf.is_config(child) and not child._is_interpolation():
            yield from _missing(child, f"{path}.")


def imports_plugins(function: Check) -> Check:
    """Mark a check that imports plugins (torch, seconds): run only when the others pass."""
    function.imports_plugins = True  # type: ignore[attr-defined]
    return function


@check
@imports_plugins
def plugin_options(cfg: DictConfig) -> Iterator[str]:
    """The options of the model family, drift detectors and data layout the config names, by
    the rules their options dataclasses declare (``vqc.plugin_checks``)."""
    from vqc.plugin_checks import plugin_option_problems

    yield from plugin_option_problems(cfg)


def builds_model(function: Check) -> Check:
    """Mark a check that builds the model (torch, seconds): run only when the others pass."""
    function.builds_model = True  # type: ignore[attr-defined]
    return function


@check
@builds_model
def unfreeze_within_the_model(cfg: DictConfig) -> Iterator[str]:
    """``unfreeze`` not above the model's block count: the model built without weights on the
    ``meta`` device (no memory, no download), which checks its own options."""
    model = cfg.get("model")
    if not isinstance(model, DictConfig) or not _is_int(model.get("unfreeze", None)):
        return
    try:
        options = OmegaConf.to_container(model, resolve=True)
        mode = OmegaConf.select(cfg, "data.preprocess.mode", default="L")
    except Exception:
        return  # reported by the checks above
    if not isinstance(options, dict):
        return
    options.update(pretrained=False, weights=None)
    import torch

    from vqc.models import build_model

    try:
        with torch.device("meta"):
            build_model(**options, num_classes=2, in_channels=3 if mode == "RGB" else 1)
    except ConfigError as err:
        yield str(err).splitlines()[0]
    except Exception:
        return  # anything else is the build's own business, reported when training starts


def rule_problem(cfg: DictConfig, key: str) -> str | None:
    """The first problem of ``key`` under its rule in ``RULES`` (``None``: none)."""
    rule = next(r for r in RULES if r.key == key)
    return next(iter(rule_problems(rule, cfg)), None)



@check
@builds_model
def drift_layers_of_the_model(cfg: DictConfig) -> Iterator[str]:
    """Drift layers the model has (``vqc.training.drift_layers``), found before any data is
    read; the model is built without weights. ``n_features`` is capped later, with a
    warning."""
    drift = cfg.get("drift")
    if not isinstance(drift, DictConfig) or not drift.get("enabled", False):
        return
    if not isinstance(cfg.get("model"), DictConfig) or not cfg.get("data"):
        return
    from vqc.training.drift_layers import check_drift_layers

    try:
        check_drift_layers(cfg)
    except ConfigError as err:
        yield str(err).splitlines()[0]
    except Exception:
        return  # anything else is the build's own business, reported when training starts
