"""One registry type for models, drift detectors and data layouts: one rule for a taken name,
one error for an unknown one, plugins found in the package and in other packages' entry points."""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint

import pytest

from vqc import registry as registry_module
from vqc.data.layouts import LAYOUTS
from vqc.drift.registry import DETECTORS
from vqc.errors import ConfigError
from vqc.models.registry import MODELS, register_family
from vqc.registry import Registry


class Alpha:
    pass


class Beta:
    pass


def test_a_taken_name_is_refused_naming_both_and_an_unknown_one_lists_the_known() -> None:
    plugins: Registry[type] = Registry("widget", "widget.type")
    plugins.register("alpha")(Alpha)
    plugins.register("alpha")(Alpha)  # the same class again (a reload): fine
    with pytest.raises(ConfigError, match=r"widget 'alpha' is registered twice "
                                          r"\(tests\.test_registry\.Alpha, "
                                          r"tests\.test_registry\.Beta\)"):
        plugins.register("alpha")(Beta)
    with pytest.raises(ConfigError, match=r"widget\.type='gamma': unknown widget; known: alpha"):
        plugins.get("gamma")
    assert plugins.get("ALPHA") is Alpha and plugins.names() == ["alpha"]


def test_the_three_kinds_share_it() -> None:
    assert all(isinstance(r, Registry) for r in (MODELS, DETECTORS, LAYOUTS))
    assert {"padim", "pooled"} <= set(DETECTORS.names())
    assert {"csv", "folders", "challenge"} <= set(LAYOUTS.names())
    assert {"cnn", "resnet18", "efficientnet_lite0"} <= set(MODELS.names())


def test_a_model_name_two_families_claim_is_refused() -> None:
    def build_other(name: str, num_classes: int, in_channels: int = 1):  # pragma: no cover
        raise AssertionError

    with pytest.raises(ConfigError, match=r"model 'cnn' is registered twice \(vqc\.models\.cnn"
                                          r"\.\w+, .*build_other\)"):
        register_family("other", ["cnn"])(build_other)


def test_plugins_of_another_package_come_from_its_entry_points(tmp_path, monkeypatch) -> None:
    (tmp_path / "their_plugins.py").write_text(
        "from vqc.registry import Registry\n"
        "import tests.test_registry as here\n"
        "here.THEIRS.register('theirs')(here.Beta)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    point = EntryPoint(name="theirs", value="their_plugins", group="vqc.widgets")
    monkeypatch.setattr(registry_module, "entry_points",
                        lambda group: [point] if group == "vqc.widgets" else [])
    assert THEIRS.get("theirs") is Beta  # found when first asked for
    sys.modules.pop("their_plugins", None)


THEIRS: Registry[type] = Registry("widget", "widget.type", group="vqc.widgets")
