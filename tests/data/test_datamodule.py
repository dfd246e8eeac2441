from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from tests.conftest import write_tiny_challenge
from vqc.classes import ClassSet
from vqc.config import compose
from vqc.data.build import build_datamodule
from vqc.data.datamodule import VqcDataModule
from vqc.data.dataset import balanced_sampler
from vqc.data.layouts import ChallengeFiles
from vqc.errors import DataError


def _dm(tiny, pre, cache_dir, **kwargs) -> VqcDataModule:
    source = ChallengeFiles(train_csv=str(tiny.train_csv), train_images=str(tiny.train_images),
                            test_csv=str(tiny.test_csv), test_images=str(tiny.test_images))
    classes = ClassSet(("GOOD", "Scratch", "Dent", "Drift"), open_set="Drift", good="GOOD")
    defaults = {"classes": classes, "batch_size": 4, "cache_workers": 1}
    return VqcDataModule(source, pre, str(cache_dir), **(defaults | kwargs))


def test_loaders_serve_preprocessed_batches(tiny_challenge, tiny_preprocessor, tmp_path):
    dm = _dm(tiny_challenge, tiny_preprocessor, tmp_path / "c", val_fraction=0.2)
    dm.setup()
    assert dm.num_classes == 3 and dm.in_channels == 1
    counts = dm.class_counts()
    assert counts["train"].tolist() == [10, 6, 4, 0]
    assert counts["val"].tolist() == [2, 2, 1, 0]
    assert counts["test"].tolist() == [3, 2, 2, 2]
    images, labels = next(iter(dm.test_dataloader()))
    assert images.shape == (4, 1, 20, 8) and images.dtype == torch.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert set(labels.tolist()) <= {0, 1, 2, 3}


def test_train_augmentation_only_in_training(tiny_challenge, tiny_preprocessor, tmp_path):
    from torchvision.transforms import v2

    dm = _dm(tiny_challenge, tiny_preprocessor, tmp_path / "c", balanced=False,
             augment=[v2.RandomInvert(p=1.0)], mean=[0.5], std=[0.5])
    dm.setup()
    plain = dm._dataset(dm.train_frame, train=False)[0][0]
    augmented = dm._dataset(dm.train_frame, train=True)[0][0]
    torch.testing.assert_close(augmented, -plain, atol=1e-6, rtol=0)  # invert then normalise


def test_balanced_sampler_draws_classes_equally():
    codes = np.array([0] * 900 + [1] * 90 + [2] * 10)
    sampler = balanced_sampler(codes, seed=0)
    drawn = np.concatenate([codes[list(sampler)] for _ in range(10)])
    shares = np.bincount(drawn) / len(drawn)
    np.testing.assert_allclose(shares, [1 / 3] * 3, atol=0.03)
    assert list(balanced_sampler(codes, seed=0)) == list(balanced_sampler(codes, seed=0))


def test_unbalanced_loader_follows_the_data(tiny_challenge, tiny_preprocessor, tmp_path):
    dm = _dm(tiny_challenge, tiny_preprocessor, tmp_path / "c", balanced=False, batch_size=64)
    dm.setup()
    _, labels = next(iter(dm.train_dataloader()))
    assert labels.bincount().tolist() == [10, 6, 4]


def test_truncated_image_stops_setup_with_its_name(tiny_challenge, tiny_preprocessor, tmp_path):
    bad = tiny_challenge.train_images / "train_0005.png"
    bad.write_bytes(bad.read_bytes()[:60])
    dm = _dm(tiny_challenge, tiny_preprocessor, tmp_path / "c")
    with pytest.raises(DataError, match=r"(?s)on_bad_image=skip.*train_0005\.png.*truncated"):
        dm.setup()


def test_skip_mode_leaves_bad_images_out_and_lists_them(tiny_challenge, tiny_preprocessor,
                                                        tmp_path):
    (tiny_challenge.train_images / "train_0005.png").write_text("not an image")
    dm = _dm(tiny_challenge, tiny_preprocessor, tmp_path / "c", on_bad_image="skip")
    dm.setup()
    assert len(dm.train_frame) + len(dm.val_frame) == 24
    assert not (dm.cache_dir() / "skipped.csv").exists()  # the cache is shared by runs
    listed = pd.read_csv(dm.write_skipped(tmp_path / "run"))
    assert listed["path"].str.endswith("train_0005.png").tolist() == [True]


def test_empty_training_set_is_an_error(tmp_path, tiny_preprocessor):
    tiny = write_tiny_challenge(tmp_path / "d", {}, {"GOOD": 1})
    tiny.train_csv.write_text(",filename,window,lib,Label\n")
    with pytest.raises(DataError, match="training set is empty"):
        _dm(tiny, tiny_preprocessor, tmp_path / "c").setup()


# -- built from the Hydra configs ---------------------------------------------------------------
def test_csv_config_loads_a_split_csv(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i, (label, split) in enumerate([("good", "train")] * 6 + [("dent", "train")] * 4
                                       + [("good", "test"), ("drift", "test")]):
        path = tmp_path / "images" / f"{i}.jpg"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (30, 50, 3), dtype=np.uint8)).save(path)
        rows.append({"image": f"images/{i}.jpg", "label": label, "split": split})
    pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
    cfg = compose("train", ["data=csv", f"data.root={tmp_path}", "data.preprocess.size=[16,16]",
                            "data.num_workers=0", "data.cache_workers=1"])
    dm = build_datamodule(cfg.data, str(tmp_path / "cache"))
    dm.setup()
    assert dm.classes.names == ("good", "dent", "drift")
    assert dm.class_counts().sum(axis=1).tolist() == [7, 4, 1]
    images, _ = next(iter(dm.train_dataloader()))
    assert images.shape[1:] == (1, 16, 16)


def test_folders_config(tmp_path):
    for name in ("train/good/a.png", "train/good/b.png", "train/dent/c.png", "train/dent/d.png",
                 "test/good/e.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (12, 12), 90).save(tmp_path / name)
    cfg = compose("train", ["data=folders", f"data.root={tmp_path}", "data.num_workers=0",
                            "data.cache_workers=1", "data.preprocess.size=[8,8]"])
    dm = build_datamodule(cfg.data, str(tmp_path / "cache"))
    dm.setup()
    assert dm.class_counts()["test"].tolist() == [1, 0]


def test_valeo_config_applies_the_official_table(tmp_path):
    root = tmp_path / "valeo"
    (root / "input_train").mkdir(parents=True)
    rows = []
    for i, label in enumerate(["GOOD", "GOOD", "Missing", "Missing", "Boucle plate",
                               "Lift-off blanc", "Lift-off noir", "Short circuit MOS"]):
        lib = "Die01" if i % 2 else "Die02"
        size = (540, 630) if lib == "Die01" else (720, 840)
        Image.new("L", size, 40 + i).save(root / "input_train" / f"{i}.png")
        rows.append({"filename": f"{i}.png", "window": 2003, "lib": lib, "Label": label})
    pd.DataFrame(rows).to_csv(root / "Y_train.csv")
    cfg = compose("train", ["data=valeo", f"data.root={root}", "data.val_fraction=0",
                            "data.num_workers=0", "data.cache_workers=1"])
    dm = build_datamodule(cfg.data, str(tmp_path / "cache"))
    dm.setup()
    assert dm.num_classes == 6 and dm.classes.names[6] == "Drift"
    image = dm.cache.get(Path(dm.train_frame["path"].iloc[0]), dm.train_frame["lib"].iloc[0])
    assert image.shape == (1, 224, 64) and image.max() == 40  # the first image's grey level


def test_square_root_balance_lies_between_equal_and_natural_shares() -> None:
    """Counts 100 and 25: natural shares 0.8 / 0.2, balanced 0.5 / 0.5, sqrt 10 : 5."""
    import numpy as np

    from vqc.data.dataset import balanced_weights, class_shares

    counts = {"good": 100, "bad": 25}
    assert class_shares(counts, False) == pytest.approx({"good": 0.8, "bad": 0.2})
    assert class_shares(counts, True) == pytest.approx({"good": 0.5, "bad": 0.5})
    assert class_shares(counts, "sqrt") == pytest.approx({"good": 2 / 3, "bad": 1 / 3})
    codes = np.array([0] * 100 + [1] * 25)
    weights = balanced_weights(codes, 0.5)
    assert float(weights[codes == 0].sum() / weights.sum()) == pytest.approx(2 / 3)
