"""``python eval.py``: a given checkpoint or inspector tested, with training's own reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

from tests.training.conftest import fast_overrides, strip_warnings
from vqc.cli import eval as eval_cli
from vqc.cli import train as train_cli

#: Pictures a test of the best checkpoint draws (those the tiny set gives rise to).
TEST_FIGURES = ("test_confusion.png", "test_misclassified.png", "drift_histogram.png",
                "drift_overlays.png", "inspection_tsne.png")


def run_script(main, argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """``python train.py/eval.py ARGV`` in this process; its exit status."""
    GlobalHydra.instance().clear()
    monkeypatch.setattr(sys, "argv", ["script.py", *argv])
    try:
        main()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    finally:
        GlobalHydra.instance().clear()
    return 0


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A tiny training run (``run/``) and the overrides it was made with."""
    from tests.training.conftest import write_tiny_csv_set

    tmp = tmp_path_factory.mktemp("eval")
    data = write_tiny_csv_set(tmp / "set")
    overrides = fast_overrides(data, tmp, "depth=2")
    with pytest.MonkeyPatch.context() as monkeypatch:
        code = run_script(train_cli.main, [*overrides, f"hydra.run.dir={tmp / 'run'}"],
                          monkeypatch)
    assert code == 0
    return tmp / "run", overrides


def test_eval_of_the_best_checkpoint_repeats_the_training_run_test(trained, tmp_path,
                                                                   monkeypatch) -> None:
    run, overrides = trained
    summary = json.loads((run / "summary.json").read_text())
    best = summary["best_checkpoint"]
    out = tmp_path / "eval"
    code = run_script(eval_cli.main, [*overrides, f"ckpt_path={best}",
                                      f"hydra.run.dir={out}"], monkeypatch)
    assert code == 0
    evaluated = json.loads((out / "summary.json").read_text())
    assert evaluated["checkpoint"] == best
    assert evaluated["test"] == summary["test"]
    assert evaluated["inspection"] == summary["inspection"]
    figures = [name for name in TEST_FIGURES if (run / "figures" / name).is_file()]
    assert "test_confusion.png" in figures and "drift_histogram.png" in figures
    for name in figures:
        assert np.array_equal(pixels(out / "figures" / name), pixels(run / "figures" / name)), name
    for name in ("test_report.md", "inspection_report.md", "test_predictions.csv"):
        assert (out / name).read_text() == (run / name).read_text(), name
    # its own folder: no training leftovers, the config it ran with beside the reports
    assert not list(out.rglob("*.ckpt"))
    assert (out / "config_tree.txt").is_file() and f"ckpt_path: {best}" in (
        out / "config.yaml").read_text()


def test_eval_of_a_checkpoint_alone_takes_the_settings_of_its_run(trained, tmp_path,
                                                                 monkeypatch) -> None:
    run, _ = trained
    summary = json.loads((run / "summary.json").read_text())
    best = summary["best_checkpoint"]
    out = tmp_path / "eval"
    code = run_script(eval_cli.main, [f"ckpt_path={best}", f"hydra.run.dir={out}"], monkeypatch)
    assert code == 0
    assert json.loads((out / "summary.json").read_text())["test"] == summary["test"]
    assert "the run's settings, from" in (out / "eval.log").read_text()
    # without them, the default model's weights are not the checkpoint's: refused by name
    code = run_script(eval_cli.main, [f"ckpt_path={best}", f"hydra.run.dir={tmp_path / 'off'}",
                                      "use_run_settings=false"], monkeypatch)
    assert code == 2


def test_eval_of_an_inspector_scores_it_as_training_did(trained, tmp_path, monkeypatch) -> None:
    run, overrides = trained
    out = tmp_path / "eval"
    # the inspector brings its own preprocessing: a different size on the command line is
    # replaced by the one it was fitted with
    args = [a for a in overrides if not a.startswith("data.preprocess.size")]
    code = run_script(eval_cli.main, [*args, "data.preprocess.size=[48,48]",
                                      f"inspector={run / 'inspector.safetensors'}",
                                      f"hydra.run.dir={out}"], monkeypatch)
    assert code == 0
    # the training run's warnings (its own, on top) are not the inspector's
    assert (out / "inspection_report.md").read_text() == strip_warnings(
        (run / "inspection_report.md").read_text())
    assert (out / "test_predictions.csv").read_text() == (run / "test_predictions.csv").read_text()
    assert np.array_equal(pixels(out / "figures" / "drift_histogram.png"),
                          pixels(run / "figures" / "drift_histogram.png"))
    assert not (out / "test_report.md").exists()  # no checkpoint: no test of the classifier


def test_a_run_trained_with_masks_is_evaluated_on_a_set_without(tmp_path, monkeypatch) -> None:
    from tests.training.conftest import write_tiny_csv_set

    masked = write_tiny_csv_set(tmp_path / "masked", masks=True)
    overrides = fast_overrides(masked, tmp_path, "depth=2", "figures.enabled=false",
                               "module.mask_weight=1", "data.columns.mask=mask")
    run = tmp_path / "run"
    assert run_script(train_cli.main, [*overrides, f"hydra.run.dir={run}"], monkeypatch) == 0
    summary = json.loads((run / "summary.json").read_text())
    plain = write_tiny_csv_set(tmp_path / "plain")  # the same images, no mask column
    out = tmp_path / "eval"
    code = run_script(eval_cli.main, [f"ckpt_path={summary['best_checkpoint']}",
                                      f"data.root={plain}", f"hydra.run.dir={out}"], monkeypatch)
    assert code == 0
    assert json.loads((out / "summary.json").read_text())["test"] == summary["test"]


@pytest.mark.parametrize(("extra", "match"), [
    ([], r"ckpt_path, inspector: give exactly one"),
    (["ckpt_path=/nowhere/best.ckpt"], r"ckpt_path=/nowhere/best\.ckpt: file not found"),
    (["lr=-1", "inspector=/nowhere/i.safetensors"], r"lr=-1: must be a number > 0"),
])
def test_eval_refuses_a_bad_target_in_one_line(tiny_csv_set, tmp_path, monkeypatch, capsys,
                                               extra, match) -> None:
    import re

    out = tmp_path / "eval"
    code = run_script(eval_cli.main, [*fast_overrides(tiny_csv_set, tmp_path), *extra,
                                      f"hydra.run.dir={out}"], monkeypatch)
    assert code == 2
    text = capsys.readouterr()
    output = text.out + text.err + (out / "eval.log").read_text()
    assert re.search(match, output), output[-2000:]
    assert "Traceback" not in output
    assert not (out / "summary.json").exists() and not (out / "config_tree.txt").exists()


def test_the_best_checkpoint_is_named_by_its_own_monitor(tmp_path, capsys, monkeypatch) -> None:
    """Kept by validation loss: training, summary.json and eval.py name val/loss and its value
    at the best epoch, and the sweep's metric (val/pwa) is read at that epoch, not the last."""
    import pandas as pd

    from tests.training.conftest import write_tiny_csv_set

    data = write_tiny_csv_set(tmp_path / "set")
    overrides = fast_overrides(data, tmp_path, "depth=2", "figures.enabled=false",
                               "trainer.max_epochs=3", "lr=0.05",
                               "callbacks.model_checkpoint.monitor=val/loss",
                               "callbacks.model_checkpoint.mode=min")
    run = tmp_path / "run"
    assert run_script(train_cli.main, [*overrides, f"hydra.run.dir={run}"], monkeypatch) == 0
    summary = json.loads((run / "summary.json").read_text())
    epochs = pd.read_csv(next(run.rglob("metrics.csv"))).dropna(subset=["val/loss"])
    best_row = epochs.loc[epochs["val/loss"].idxmin()]
    best = summary["best"]
    assert best["monitor"] == summary["best_monitor"] == "val/loss"
    assert best["score"] == pytest.approx(best_row["val/loss"])
    assert best["epoch"] == int(best_row["epoch"]) + 1
    assert summary["optimized_metric"] == "val/pwa"
    assert summary["metric"] == pytest.approx(best_row["val/pwa"])
    line = f"(val/loss = {best['score']:.4f}, epoch {best['epoch']})"
    trained = capsys.readouterr().out
    assert line in trained
    titles = [t for t in trained.splitlines() if t.startswith("Test: ")]
    out = tmp_path / "eval"
    assert run_script(eval_cli.main, [f"ckpt_path={summary['best_checkpoint']}",
                                      f"hydra.run.dir={out}"], monkeypatch) == 0
    assert json.loads((out / "summary.json").read_text())["best"] == best
    printed = capsys.readouterr().out
    assert line in printed
    assert [t for t in printed.splitlines() if t.startswith("Test: ")] == titles  # as training
    assert "Test: classifier alone (argmax)" in [t.strip() for t in titles]


@pytest.mark.parametrize(("layout", "says"), [
    ("folders", "add a test/ folder of class folders under data.root=/data/parts"),
    ("csv", "give test rows the value 'test' in the CSV's split column, or set data.test_csv"),
    ("valeo", "set the data config's test split or test_csv")])
def test_an_evaluation_without_test_images_says_where_its_layout_takes_them(layout, says):
    from vqc.config import compose
    from vqc.training.evaluation import how_to_add_test

    GlobalHydra.instance().clear()
    assert how_to_add_test(compose("train", [f"data={layout}", "data.root=/data/parts"])) == says
