"""Training with pixel masks: per-cell targets, the balanced loss, and a run that uses them."""

import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf, open_dict

from tests.training.conftest import fast_overrides, write_tiny_csv_set
from vqc.config import compose
from vqc.data.masks import MASK_UNKNOWN
from vqc.errors import ConfigError
from vqc.models import build_model
from vqc.training.mask_loss import MaskSupervision, balanced_bce, cell_targets
from vqc.training.task import train, without_mask_training


def test_cell_targets_mark_any_defect_pixel_and_any_unknown_pixel():
    masks = torch.zeros(2, 4, 4, dtype=torch.uint8)
    masks[0, 0, 3] = 1  # one pixel in the top-right cell
    masks[1, 3, 0] = MASK_UNKNOWN  # bottom-left cell of image 1 unknown
    masks[1, 2, 2] = 1
    target, known = cell_targets(masks, (2, 2))
    assert target.tolist() == [[[0, 1], [0, 0]], [[0, 0], [0, 1]]]
    assert known.tolist() == [[[True, True], [True, True]], [[True, True], [False, True]]]


def test_balanced_bce_by_hand():
    target = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    known = torch.ones(1, 4, dtype=torch.bool)
    logits = torch.tensor([[0.0, 0.0, 0.0, 2.0]])
    # defect cells: -log(1/2); clean cells: mean of log 2, log 2, log(1 + e^2); half each
    clean = (2 * math.log(2) + math.log(1 + math.e ** 2)) / 3
    assert balanced_bce(logits, target, known).item() == pytest.approx(
        0.5 * math.log(2) + 0.5 * clean)
    # no defect cell: the clean cells alone
    assert balanced_bce(logits, torch.zeros(1, 4), known).item() == pytest.approx(
        (3 * math.log(2) + math.log(1 + math.e ** 2)) / 4)


def test_unknown_cells_do_not_count_and_nothing_known_gives_zero_with_a_graph():
    target = torch.tensor([[1.0, 0.0]])
    logits = torch.tensor([[0.0, 50.0]], requires_grad=True)  # the clean cell badly wrong
    only_defect = torch.tensor([[True, False]])
    assert balanced_bce(logits, target, only_defect).item() == pytest.approx(math.log(2))
    nothing = balanced_bce(logits, target, torch.zeros(1, 2, dtype=torch.bool))
    assert nothing.item() == 0.0
    nothing.backward()
    assert logits.grad is not None and torch.all(logits.grad == 0)


def test_mask_supervision_refuses_a_weight_of_zero_and_scales_by_its_weight():
    with pytest.raises(ConfigError, match=r"module\.mask_weight=0"):
        MaskSupervision(4, 0.0)
    head = MaskSupervision(4, 2.0)
    torch.nn.init.zeros_(head.conv.weight)
    torch.nn.init.zeros_(head.conv.bias)  # every cell's logit 0: each cell's loss is log 2
    masks = torch.zeros(2, 6, 6, dtype=torch.uint8)
    masks[0, :2, :2] = 1  # defect and clean cells both present
    assert head(torch.randn(2, 4, 3, 3), masks).item() == pytest.approx(2.0 * math.log(2))


def test_the_mask_loss_reaches_the_backbone():
    torch.manual_seed(0)
    model = build_model("cnn", num_classes=3, in_channels=1, depth=2, width=8)
    head = MaskSupervision(model.num_features, 1.0)
    masks = torch.zeros(2, 32, 32, dtype=torch.uint8)
    masks[:, :, 5] = 1
    _, feature_map = model.logits_and_map(torch.randn(2, 1, 32, 32))
    head(feature_map, masks).backward()
    first = model.backbone.layers[0]
    grads = [p.grad for p in first.parameters() if p.requires_grad]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)
    assert model.head.fc.weight.grad is None  # the class head has no part in it


@pytest.mark.parametrize("name", ["cnn", "resnet18", "efficientnet_lite0"])
def test_the_last_feature_map_is_what_the_embedding_pools(name):
    options = {"pretrained": False} if name.startswith("efficientnet") else {}
    model = build_model(name, num_classes=3, in_channels=1, **options).eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        pooled, feature_map = model.backbone.pooled_and_map(x)
        logits, same_map = model.logits_and_map(x)
        assert feature_map.shape[:2] == (2, model.num_features)
        assert torch.allclose(pooled, model.embed(x), atol=1e-5)
        assert torch.allclose(logits, model(x), atol=1e-5)
        assert torch.equal(same_map, feature_map)


def _cfg(root, tmp_path, *extra):
    GlobalHydra.instance().clear()
    cfg = compose("train", fast_overrides(root, tmp_path, "depth=2", "test=false",
                                          "figures.enabled=false", *extra))
    with open_dict(cfg):
        cfg.paths.run_dir = str(tmp_path / "run")
    return cfg


def test_a_run_learns_from_masks_and_checkpoints_the_mask_head(tmp_path):
    data = write_tiny_csv_set(tmp_path / "set", masks=True)
    summary = train(_cfg(data, tmp_path, "module.mask_weight=1", "data.columns.mask=mask"))
    metrics = pd.read_csv(next((tmp_path / "run").rglob("metrics.csv")))
    mask_losses = metrics["train/mask_loss"].dropna()
    assert len(mask_losses) == 2 and (mask_losses > 0).all()  # one per epoch
    state = torch.load(summary["best_checkpoint"], weights_only=True)["state_dict"]
    assert {"mask_head.conv.weight", "mask_head.conv.bias"} <= set(state)


def test_a_folder_set_trains_from_its_masks_folder(tmp_path):
    """Class folders converted from the tiny CSV set, masks in a tree mirroring them."""
    csv_set = write_tiny_csv_set(tmp_path / "csv", masks=True)
    root = tmp_path / "folders"
    for row in pd.read_csv(csv_set / "labels.csv", keep_default_na=False).itertuples():
        name = Path(row.image).name
        (root / row.split / row.label).mkdir(parents=True, exist_ok=True)
        shutil.copy(csv_set / row.image, root / row.split / row.label / name)
        if row.mask:
            (root / "masks" / row.split / row.label).mkdir(parents=True, exist_ok=True)
            shutil.copy(csv_set / row.mask, root / "masks" / row.split / row.label / name)
    overrides = [o if o != "data=csv" else "data=folders"
                 for o in fast_overrides(root, tmp_path, "depth=2", "test=false",
                                         "figures.enabled=false", "module.mask_weight=1",
                                         f"data.masks_root={root / 'masks'}")]
    GlobalHydra.instance().clear()
    cfg = compose("train", overrides)
    with open_dict(cfg):
        cfg.paths.run_dir = str(tmp_path / "run")
    train(cfg)
    metrics = pd.read_csv(next((tmp_path / "run").rglob("metrics.csv")))
    assert (metrics["train/mask_loss"].dropna() > 0).all()
    assert len(metrics["train/mask_loss"].dropna()) == 2


def test_mask_training_without_masks_is_refused_naming_the_settings(tmp_path):
    data = write_tiny_csv_set(tmp_path / "set")
    with pytest.raises(ConfigError, match=r"module\.mask_weight > 0.*data\.columns\.mask="
                                          r"COLUMN.*data\.masks_root=FOLDER.*"
                                          r"module\.mask_weight=0 \(data\.layout='csv'\)"):
        train(_cfg(data, tmp_path, "module.mask_weight=1"))
    table = pd.read_csv(data / "labels.csv").assign(mask="")  # a column, but empty
    table.to_csv(data / "labels.csv", index=False)
    with pytest.raises(ConfigError, match=r"no training image has one"):
        train(_cfg(data, tmp_path, "module.mask_weight=1", "data.columns.mask=mask"))


def test_a_mask_run_resumes_only_with_masks(tmp_path):
    data = write_tiny_csv_set(tmp_path / "set", masks=True)
    masks = ["module.mask_weight=1", "data.columns.mask=mask"]
    train(_cfg(data, tmp_path, *masks, "trainer.max_epochs=1"))
    with pytest.raises(ConfigError, match=r"trained with pixel masks, resumed without: set "
                                          r"module\.mask_weight"):
        train(_cfg(data, tmp_path, "trainer.max_epochs=2", "ckpt_path=last"))
    summary = train(_cfg(data, tmp_path, *masks, "trainer.max_epochs=2", "ckpt_path=last"))
    assert summary["epochs"] == 2


def test_testing_turns_mask_training_off_for_either_layout(tmp_path):
    for layout, masks in (("csv", "data.columns.mask=mask"), ("folders", "data.masks_root=/m")):
        GlobalHydra.instance().clear()
        overrides = [o if o != "data=csv" else f"data={layout}"
                     for o in fast_overrides(tmp_path, tmp_path, "module.mask_weight=1", masks)]
        cfg = compose("train", overrides)
        without_mask_training(cfg)
        assert cfg.module.mask_weight == 0.0
        assert OmegaConf.select(cfg, "data.columns.mask") is None
        if layout == "folders":  # the folder stays out of the classes, its masks unread
            assert cfg.data.masks_root == "/m" and cfg.data.read_masks is False
