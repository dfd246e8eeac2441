"""A plugin's options declared once: the rules derived from a dataclass's fields, the check the
dataclass runs on itself, and the built-in plugins declaring theirs."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

import pytest

from vqc.drift.registry import DETECTORS
from vqc.errors import ConfigError
from vqc.models.registry import MODELS
from vqc.options import Rule, check_values, docs_of, option, rules_of, unknown_keys


@dataclass(frozen=True)
class Example:
    depth: int = option(5, low=1, high=8, doc="conv blocks")
    rate: float | Literal["auto"] = option(0.1, low=0, high=1, open_low=True, open_high=True)
    mode: Literal["fast", "exact"] = "fast"
    layers: tuple[str, ...] = ("a",)
    size: list[int] = option(default_factory=lambda: [4, 4], low=1, length=2)
    path: str | None = None
    flag: bool = True
    anything: dict = option(default_factory=dict)
    side: int | float = 2
    pair: tuple[int, int] = (1, 2)

    def __post_init__(self) -> None:
        check_values(self, "model")


def test_each_field_becomes_the_rule_its_type_and_range_say() -> None:
    rules = rules_of(Example, "model")
    assert rules["depth"] == Rule("model.depth", "int", 1, 8)
    assert rules["rate"] == Rule("model.rate", "number", 0, 1, True, True, also=("auto",))
    assert rules["mode"] == Rule("model.mode", "choice", choices=("fast", "exact"))
    assert rules["layers"] == Rule("model.layers", "strs")
    assert rules["size"] == Rule("model.size", "ints", 1, length=2)
    assert rules["path"] == Rule("model.path", "str", nullable=True)
    assert rules["flag"] == Rule("model.flag", "bool")
    assert rules["side"] == Rule("model.side", "number")
    assert rules["pair"] == Rule("model.pair", "ints", length=2)
    assert "anything" not in rules  # a mapping: its owner checks it
    assert docs_of(Example) == {"depth": "conv blocks"}


@pytest.mark.parametrize(("rule", "good", "bad", "allowed"), [
    (Rule("k", "int", 1, 8), [1, 8], [0, 9, 2.0, True, "3"], "an integer >= 1 and <= 8"),
    (Rule("k", "number", 0, 1, True, True, also=("auto",)), [0.5, "auto"], [0, 1, "x", None],
     "a number > 0 and < 1 (or auto)"),
    (Rule("k", "choice", choices=("fast", "exact"), nullable=True), ["fast", None], ["slow"],
     "one of fast, exact (or null)"),
    (Rule("k", "ints", 1, length=2), [[1, 2], (3, 4)], [[0, 1], [1], [1, 2, 3]],
     "a list of 2 integers each >= 1"),
    (Rule("k", "str"), ["a", Path("b")], [3, None], "a string"),
])
def test_a_rule_accepts_what_it_says_and_names_it(rule, good, bad, allowed) -> None:
    assert all(rule.accepts(value) for value in good)
    assert not any(rule.accepts(value) for value in bad)
    assert rule.allowed() == allowed


def test_the_dataclass_refuses_every_bad_value_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        Example(depth=9, rate=1.5, mode="slow")
    assert str(caught.value).splitlines() == [
        "model.depth=9: must be an integer >= 1 and <= 8",
        "model.rate=1.5: must be a number > 0 and < 1 (or auto)",
        "model.mode=slow: must be one of fast, exact"]
    assert Example(rate="auto").rate == "auto"
    assert unknown_keys(Example, {"depth": 1, "dept": 2, "wide": 3}) == ["dept", "wide"]


def test_options_whose_hints_cannot_be_read_are_a_clear_error() -> None:
    @dataclass
    class Unreadable:
        size: Undefined = 3  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(ConfigError, match=r"Unreadable: their type hints cannot be read"):
        rules_of(Unreadable, "data")


def test_every_built_in_plugin_declares_its_options() -> None:
    for name in MODELS.names():
        family = MODELS.get(name)
        assert family.options_type is not None, name
        builder = inspect.signature(family.builder).parameters
        for field in fields(family.options_type):  # the builder's defaults are the options'
            assert builder[field.name].default == field.default, (name, field.name)
    for name in DETECTORS.names():
        options = DETECTORS.get(name).config_type
        assert rules_of(options, "drift"), name
        for field in fields(options):
            assert field.name in rules_of(options, "drift"), (name, field.name)
