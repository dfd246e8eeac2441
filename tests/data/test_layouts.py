"""Data layouts: each data config names a registered builder and holds only its keys."""

from dataclasses import dataclass

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from vqc.config import CONFIG_DIR, compose
from vqc.data.build import LOADER_KEYS, build_data_source, build_datamodule
from vqc.data.layouts import (
    LAYOUTS,
    ChallengeFiles,
    ClassFolders,
    CsvList,
    build_source,
    layout_keys,
    register_layout,
)
from vqc.errors import ConfigError

DATA_CONFIGS = sorted(p.stem for p in (CONFIG_DIR / "data").glob("*.yaml"))
BUILDERS = {"demo": ChallengeFiles, "valeo": ChallengeFiles, "csv": CsvList,
            "folders": ClassFolders}


def _data(name: str) -> dict:
    cfg = compose("train", [f"data={name}", "data.root=/parts"])
    return OmegaConf.to_container(cfg.data, resolve=True)


def test_the_data_configs_are_the_four_data_sets():
    assert sorted(BUILDERS) == DATA_CONFIGS


@pytest.mark.parametrize("name", DATA_CONFIGS)
def test_each_data_config_holds_its_layouts_keys_only(name):
    data = _data(name)
    source = build_data_source(data)
    assert type(source) is BUILDERS[name]
    own = set(data) - LOADER_KEYS - {"layout"}
    assert own <= set(layout_keys(data["layout"])) and "root" in own


def test_the_base_file_is_not_a_data_set_choice():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        options = GlobalHydra.instance().config_loader().get_group_options("data")
    assert sorted(options) == DATA_CONFIGS
    GlobalHydra.instance().clear()
    with pytest.raises(Exception, match="common"):
        compose("train", ["data=common"])


def test_an_unknown_layout_is_refused_listing_the_known_ones(tmp_path):
    cfg = compose("train", ["data=csv", "data.root=/parts", "data.layout=parquet"])
    with pytest.raises(ConfigError, match=r"data\.layout='parquet': unknown data layout; known: "
                                          r"challenge, csv, folders"):
        build_datamodule(cfg.data, str(tmp_path))


def test_a_key_of_another_layout_is_refused_by_name():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['train_csv'\] for layout "
                                          r"'folders'; its keys: \['mask_suffix', "
                                          r"'masks_root', 'read_masks', 'root', 'test_root'"):
        build_source("folders", {"root": "/parts", "train_csv": "/parts/y.csv"})


def test_a_registered_layout_is_built_by_name():
    @dataclass
    class Listing:
        root: str | None = None

        @property
        def name(self) -> str:
            return str(self.root)

        def tables(self):
            raise NotImplementedError

    register_layout("listing_for_test")(Listing)
    try:
        source = build_source("listing_for_test", {"root": "/parts"})
        assert isinstance(source, Listing) and source.name == "/parts"
        with pytest.raises(ConfigError, match=r"data layout 'listing_for_test' is registered "
                                               r"twice \(.*Listing, .*ChallengeFiles\)"):
            register_layout("listing_for_test")(ChallengeFiles)
    finally:
        LAYOUTS.remove("listing_for_test")


def test_split_values_are_read_in_any_case() -> None:
    import pandas as pd

    from vqc.data.layouts import _by_split

    table = pd.DataFrame({"path": ["a", "b", "c", "d"], "label": ["good"] * 4,
                          "split": ["Train", " TEST ", "Val", "train"],
                          "where": [f"list.csv row {i + 2}" for i in range(4)]})
    train, test = _by_split(table, "train", "test", "list.csv")
    assert list(train["split"]) == ["train", "val", "train"] and list(test["path"]) == ["b"]
