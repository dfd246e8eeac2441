"""The composed config checked before any work: types and ranges of every key vqc reads.

``validate(cfg)`` runs every function of ``CHECKS`` on the composed config and raises one
:class:`~vqc.errors.ConfigError` whose lines each name a key, its value and what is allowed
(``lr=-1: must be a number > 0``). ``train.py`` and ``eval.py`` call it before touching data.

A check is a function ``(cfg) -> iterable of problem lines``; add one with ``@check``::

    @check
    def drift_layers_exist(cfg):
        if ...:
            yield "drift.layers=[...]: ..."

Most keys are described declaratively in ``RULES`` (a key, a type, a range); a rule skips keys
the config does not have, so group options without a key (e.g. ``model.depth`` outside the
configurable CNN) need no special case.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vqc.errors import ConfigError

Check = Callable[[DictConfig], Iterable[str]]
#: Every check run by :func:`validate`, in order.
CHECKS: list[Check] = []
_MISSING = object()


def check(function: Check) -> Check:
    """Decorator: run ``function`` in :func:`validate`."""
    CHECKS.append(function)
    return function


def validate(cfg: DictConfig, checks: Sequence[Check] | None = None) -> None:
    """Raise :class:`ConfigError` listing every problem (one line each) of ``cfg``."""
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
        problems.extend(function(cfg))
    # model.unfreeze=${unfreeze} and the like: one line, for the knob the user set
    return [p for p in dict.fromkeys(problems)
            if not (p.startswith("model.") and p.removeprefix("model.") in problems)]


# -- values ------------------------------------------------------------------------------------
def value_of(cfg: DictConfig, key: str) -> Any:
    """The resolved value at ``key``; ``_MISSING`` when absent; ``???`` raises ``LookupError``."""
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key, default=_MISSING) if parent_key else cfg
    if parent is _MISSING or not isinstance(parent, DictConfig) or leaf not in parent:
        return _MISSING
    if OmegaConf.is_missing(parent, leaf):
        raise LookupError(f"{key}: required, set it on the command line ({key}=...)")
    value = parent[leaf]
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value).replace(" ", "") if isinstance(value, list) else str(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


@dataclass(frozen=True)
class Rule:
    """``key`` must be of ``kind`` (int, number, bool, str, choice, ints, strs) within
    ``low``/``high`` (``open_low``/``open_high``: the bound itself is refused); ``nullable``:
    ``null`` is allowed; ``choices`` for ``kind="choice"``; ``length`` for lists."""

    key: str
    kind: str
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    nullable: bool = False
    choices: tuple[Any, ...] = ()
    length: int | None = None
    also: tuple[Any, ...] = ()  # other values allowed besides the kind (e.g. "warn")

    def allowed(self) -> str:
        if self.kind == "choice":
            text = "one of " + ", ".join(_show(c) for c in self.choices)
        else:
            noun = {"int": "an integer", "number": "a number", "bool": "true or false",
                    "str": "a string", "strs": "a list of strings",
                    "ints": "a list of integers"}[self.kind]
            if self.length is not None:
                noun = f"a list of {self.length} integers"
            bounds = []
            if self.low is not None:
                bounds.append(f"{'>' if self.open_low else '>='} {_show(self.low)}")
            if self.high is not None:
                bounds.append(f"{'<' if self.open_high else '<='} {_show(self.high)}")
            where = " each" if self.kind == "ints" else ""
            text = noun + (f"{where} {' and '.join(bounds)}" if bounds else "")
        extra = [*(_show(a) for a in self.also), *(["null"] if self.nullable else [])]
        return text + (f" (or {', '.join(extra)})" if extra else "")

    def _in_range(self, number: float) -> bool:
        if self.low is not None and (number < self.low or (self.open_low and number == self.low)):
            return False
        return not (self.high is not None
                    and (number > self.high or (self.open_high and number == self.high)))

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.nullable
        if any(value == a and type(value) is type(a) for a in self.also):
            return True
        if self.kind == "choice":
            return any(value == c and type(value) is type(c) for c in self.choices)
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "str":
            return isinstance(value, str)
        if self.kind == "strs":
            return isinstance(value, list) and all(isinstance(v, str) for v in value)
        if self.kind == "ints":
            return (isinstance(value, list) and all(_is_int(v) and self._in_range(v)
                                                    for v in value)
                    and (self.length is None or len(value) == self.length))
        if self.kind == "int" and not _is_int(value):
            return False
        return _is_number(value) and self._in_range(value)

    def problems(self, cfg: DictConfig) -> Iterator[str]:
        try:
            value = value_of(cfg, self.key)
        except LookupError as err:
            yield str(err)
            return
        except Exception as err:  # an interpolation that does not resolve
            yield f"{self.key}: cannot be resolved: {str(err).splitlines()[0]}"
            return
        if value is not _MISSING and not self.accepts(value):
            yield f"{self.key}={_show(value)}: must be {self.allowed()}"


def _rate(key: str) -> Rule:
    return Rule(key, "number", 0, 1, open_low=True, open_high=True)


def _count(key: str, low: int = 0, nullable: bool = False) -> Rule:
    return Rule(key, "int", low, nullable=nullable)


def _flag(key: str) -> Rule:
    return Rule(key, "bool")


def _batches(key: str) -> Rule:
    """Lightning's ``limit_*_batches`` / ``overfit_batches``: a count or a fraction."""
    return Rule(key, "number", 0, nullable=True)


TOP = [
    _count("seed"), Rule("unfreeze", "int", -1, nullable=True),
    Rule("dropout", "number", 0, 1, open_high=True),
    Rule("depth", "int", 1, 8), Rule("lr", "number", 0, open_low=True), Rule("ensemble", "int", 1),
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
    Rule("data.classes.names", "strs", nullable=True), _flag("data.test_labelled"),
]
MODEL = [
    Rule("model.name", "str"), _flag("model.pretrained"), Rule("model.weights", "str",
                                                                  nullable=True),
    Rule("model.unfreeze", "int", -1, nullable=True),
    Rule("model.dropout", "number", 0, 1, open_high=True),
    Rule("model.depth", "int", 1, 8), _count("model.width", 1),
]
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
DRIFT_KEYS = [
    _flag("enabled"), Rule("target_rate", "number", 0, 1, open_low=True, open_high=True,
                           also=("auto",)), _rate("gate_rate"), _count("n_features", 1),
    Rule("eps", "number", 0, open_low=True), Rule("sigma", "number", 0), _flag("upsample"),
    Rule("fit_on", "choice", choices=("all", "good", "per_lib", "good_per_lib")),
    Rule("sampler", "choice", choices=("torch", "python")), _flag("per_lib_thresholds"),
    Rule("role", "choice", choices=("drift", "defect")),
]
RULES: list[Rule] = [*TOP, *DATA, *MODEL, *MODULE, *TRAINER]


@check
def declared_keys(cfg: DictConfig) -> Iterator[str]:
    """Every key of ``RULES`` the config has, of its type and within its range."""
    for rule in RULES:
        yield from rule.problems(cfg)


@check
def drift_keys(cfg: DictConfig) -> Iterator[str]:
    """``drift.*`` and each ``drift.detectors.<name>.*`` (rates in (0, 1), counts > 0...)."""
    drift = cfg.get("drift")
    if not isinstance(drift, DictConfig):
        return
    prefixes = ["drift"]
    detectors = drift.get("detectors")
    if isinstance(detectors, DictConfig):
        prefixes += [f"drift.detectors.{name}" for name in detectors]
    for prefix in prefixes:
        for rule in DRIFT_KEYS:
            yield from replace(rule, key=f"{prefix}.{rule.key}").problems(cfg)


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
    if not isinstance(options, dict) or any(
            isinstance(err, str) for err in (rule_problem(cfg, "model.dropout"),
                                             rule_problem(cfg, "model.depth"))):
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
    return next(iter(rule.problems(cfg)), None)



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
