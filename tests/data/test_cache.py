import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import TinyChallenge
from vqc.data import cache as cache_module
from vqc.data.cache import ImageCache
from vqc.data.datamodule import VqcDataModule
from vqc.data.layouts import ChallengeFiles
from vqc.data.preprocess import Preprocessor


def _datamodule(tiny: TinyChallenge, pre: Preprocessor, cache_dir: Path) -> VqcDataModule:
    source = ChallengeFiles(train_csv=str(tiny.train_csv), train_images=str(tiny.train_images),
                            test_csv=str(tiny.test_csv), test_images=str(tiny.test_images))
    return VqcDataModule(source, pre, str(cache_dir), good="GOOD", open_set="Drift",
                         batch_size=4, cache_workers=1, seed=0)


def test_second_epoch_and_second_run_decode_nothing(tiny_challenge, tiny_preprocessor, tmp_path):
    dm = _datamodule(tiny_challenge, tiny_preprocessor, tmp_path / "cache")
    dm.prepare_data()
    n_images = len(tiny_challenge.train) + len(tiny_challenge.test)
    assert dm.cache.stats.decoded == n_images
    dm.setup()
    for _ in range(2):  # two epochs
        for _batch in dm.train_dataloader():
            pass
    assert dm.cache.stats.decoded == n_images
    assert dm.cache.stats.hits >= len(dm.train_frame) * 2
    again = _datamodule(tiny_challenge, tiny_preprocessor, tmp_path / "cache")  # a new run
    again.setup()
    next(iter(again.train_dataloader()))
    assert again.cache.stats.decoded == 0


def test_entry_is_invalidated_when_the_file_changes(tmp_path, tiny_preprocessor):
    path = tmp_path / "a.png"
    Image.new("L", (40, 60), 10).save(path)
    cache = ImageCache(tmp_path / "cache", tiny_preprocessor)
    first = cache.get(path, "DieA")
    Image.new("L", (40, 60), 200).save(path)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    second = cache.get(path, "DieA")
    assert cache.stats.decoded == 2
    assert first.mean() < 50 < second.mean()


def test_entry_is_invalidated_when_preprocessing_changes(tmp_path, tiny_preprocessor):
    path = tmp_path / "a.png"
    Image.new("L", (40, 60), 10).save(path)
    ImageCache(tmp_path / "cache", tiny_preprocessor).get(path, "DieA")
    other = Preprocessor(size=(10, 4), rotate_crop=tiny_preprocessor.rotate_crop)
    cache = ImageCache(tmp_path / "cache", other)
    assert cache.get(path, "DieA").shape == (1, 10, 4)
    assert cache.stats.decoded == 1 and cache.stats.hits == 0


def test_killed_write_leaves_no_entry(tmp_path, tiny_preprocessor, monkeypatch):
    path = tmp_path / "a.png"
    Image.new("L", (40, 60), 10).save(path)
    cache = ImageCache(tmp_path / "cache", tiny_preprocessor)

    def killed(src, dst):
        raise KeyboardInterrupt  # the process dies between writing and renaming

    monkeypatch.setattr(cache_module.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        cache.get(path, "DieA")
    monkeypatch.undo()
    assert not cache.entry_path(path).exists()
    assert not list(cache.root.rglob("*.tmp"))
    assert cache.get(path, "DieA").shape == (1, 20, 8)  # and the next run builds it


def test_unreadable_entry_is_rebuilt(tmp_path, tiny_preprocessor):
    path = tmp_path / "a.png"
    Image.new("L", (40, 60), 10).save(path)
    cache = ImageCache(tmp_path / "cache", tiny_preprocessor)
    expected = cache.get(path, "DieA")
    cache.entry_path(path).write_bytes(b"garbage")
    np.testing.assert_array_equal(cache.get(path, "DieA"), expected)
    assert cache.stats.decoded == 2
