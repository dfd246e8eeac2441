"""A limited trainer limits the steps after training too: drift fit, calibration, scoring;
and what a whole run reports and logs."""

import logging
import re

import pytest

from tests.training.conftest import fast_overrides, strip_warnings
from tests.training.test_train import _cfg
from vqc.inspection.inspector import Inspector
from vqc.training.limits import StageLimits, limited_rows
from vqc.training.task import train


@pytest.mark.parametrize(("limit", "expected"), [
    (None, 100), (1.0, 100), (2, 16), (0.25, 24), (0.01, 8), (0, 8), (50, 100),
])
def test_limits_map_to_rows_as_lightning_counts_batches(limit, expected):
    # 100 rows in batches of 8: 13 batches; a share rounds down, at least one batch is read
    assert limited_rows(limit, 100, 8) == expected


class _Trainer:
    limit_train_batches, limit_val_batches, limit_test_batches = 1, 0.5, 1.0


class _Data:
    batch_size = 4
    train_frame = range(20)
    val_frame = range(10)
    test_frame = range(7)


def test_stage_limits_read_the_trainer():
    limits = StageLimits.of(_Trainer(), _Data())
    assert (limits.train, limits.val, limits.test) == (4, 4, None)
    assert limits.limited and not StageLimits().limited


def _phases(caplog) -> dict[str, int]:
    found = {}
    for record in caplog.records:
        match = re.fullmatch(r"phase (.+): (\d+) images in [\d.]+ s", record.getMessage())
        if match:
            found[match.group(1)] = int(match.group(2))
    return found


def test_a_limited_run_fits_calibrates_and_scores_on_as_many_batches(tiny_csv_set, tmp_path,
                                                                      caplog):
    run = tmp_path / "run"
    cfg = _cfg(fast_overrides(tiny_csv_set, tmp_path, "depth=2", "trainer.max_epochs=1",
                              "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
                              "+trainer.limit_test_batches=1", "data.batch_size=4",
                              "figures.enabled=true"), run)
    with caplog.at_level(logging.INFO, logger="vqc"):
        summary = train(cfg)
    inspector = Inspector.load(summary["inspector"])
    (padim,) = list(inspector.drift)
    assert int(padim.count[0]) == 4  # one batch of 4 training images, of 21
    phases = _phases(caplog)
    assert phases["drift fit"] == 4
    assert phases["drift calibration"] == 4
    assert phases["scoring"] == 4 and phases["figures"] == 4
    assert len((run / "test_predictions.csv").read_text().splitlines()) == 1 + 4


def test_fast_dev_run_reads_one_batch_after_training_too(tiny_csv_set, tmp_path, caplog):
    cfg = _cfg(fast_overrides(tiny_csv_set, tmp_path, "depth=2", "trainer.fast_dev_run=1",
                              "data.batch_size=4", "figures.enabled=false"), tmp_path / "run")
    with caplog.at_level(logging.INFO, logger="vqc"):
        train(cfg)
    phases = _phases(caplog)
    assert phases["drift fit"] == 4 and phases["scoring"] == 4


def test_an_unlimited_run_reads_every_image(tiny_csv_set, tmp_path, caplog):
    run = tmp_path / "run"
    cfg = _cfg(fast_overrides(tiny_csv_set, tmp_path, "depth=2", "trainer.max_epochs=1",
                              "figures.enabled=false", "module.decision=bayes"), run)
    with caplog.at_level(logging.INFO, logger="vqc"):
        summary = train(cfg)
    (padim,) = list(Inspector.load(summary["inspector"]).drift)
    # the reports: the whole inspection first, the classifier alone named by its rule
    inspection = strip_warnings((run / "inspection_report.md").read_text())
    assert inspection.startswith("## Test: the whole inspection (drift detector + classifier)")
    assert "| classifier alone (argmax) |" in inspection
    assert inspection.index("| whole inspection |") < inspection.index("in detail")
    assert strip_warnings((run / "test_report.md").read_text()).startswith(
        "## Test: classifier alone (least-cost rule)")
    assert summary["decision"] == "bayes"
    assert {"known_macro_recall", "drift_recall"} <= set(summary["inspection"]["report"])
    phases = _phases(caplog)
    assert phases["drift fit"] == int(padim.count[0]) > 4
    assert phases["scoring"] == 12  # 3 per class, drift included
    # output is not a terminal here: training logs each epoch as a line
    epochs = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch 1/1:")]
    assert len(epochs) == 1 and "train/loss_epoch" in epochs[0] and "val/loss" in epochs[0]
