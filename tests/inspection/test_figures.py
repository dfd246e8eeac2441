"""Inspection pictures: anomaly-map overlays, drift-score histograms, t-SNE with drift."""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from tests.inspection.conftest import make_inspector, write_images
from vqc.data.cache import ImageCache
from vqc.data.preprocess import Preprocessor
from vqc.inspection import figures as figures_module
from vqc.inspection.evaluate import evaluate_inspector
from vqc.inspection.figures import (
    THRESHOLD_LABEL,
    drift_histogram_figure,
    inspection_figures,
)
from vqc.inspection.inspector import Inspector

DRIFT = 6


def _table(folder: Path, n_normal: int = 6, n_drift: int = 3) -> pd.DataFrame:
    names = write_images(folder, n_normal, n_drift)
    return pd.DataFrame({"path": [str(folder / n) for n in names], "lib": "Die01",
                         "code": [0] * n_normal + [DRIFT] * n_drift, "filename": names})


@pytest.fixture
def cache(tmp_path) -> ImageCache:
    return ImageCache(tmp_path / "cache", Preprocessor(size=(24, 24)))


def _panels(fig: plt.Figure) -> list[plt.Axes]:
    return [ax for ax in fig.axes if len(ax.images) == 2]  # gray image + heat map


def test_all_three_pictures_are_written(tmp_path, cache, monkeypatch):
    inspector = make_inspector()
    frame = _table(tmp_path / "images")
    report = evaluate_inspector(inspector, frame, cache, batch_size=4)
    flagged = int((report.predictions["decision"] == DRIFT).sum())
    assert flagged >= 1
    made = []
    real = figures_module.anomaly_overlay_figure

    def keep(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(figures_module, "anomaly_overlay_figure", keep)
    paths = inspection_figures(inspector, report, frame, cache, tmp_path / "figures",
                               max_overlays=2, batch_size=4)
    assert {p.name for p in paths.values()} == {
        "drift_overlays.png", "drift_histogram.png", "test_tsne_with_drift.png"}
    for path in paths.values():
        assert path.parent == tmp_path / "figures" and path.stat().st_size > 1000
    assert len(made) == 1 and len(_panels(made[0])) == min(flagged, 2)


def test_overlay_has_one_panel_per_image_highest_scores_first():
    images = torch.rand(5, 1, 24, 24)
    maps = torch.rand(5, 6, 6)
    fig = figures_module.anomaly_overlay_figure(images, maps, [f"img {i}" for i in range(5)],
                                                scores=[1, 5, 3, 4, 2], max_images=3)
    panels = _panels(fig)
    assert [ax.get_title() for ax in panels] == ["img 1", "img 3", "img 2"]
    assert panels[0].images[1].get_array().shape == (24, 24)  # the map, resized to the image
    plt.close(fig)


def test_histogram_threshold_line_sits_at_the_threshold():
    scores = np.array([1.0, 1.5, 2.0, 2.2, 6.0, 8.0])
    codes = np.array([0, 0, 1, 1, DRIFT, DRIFT])
    classes = make_inspector().classes
    fig = drift_histogram_figure(scores, codes, classes, 3.0, {"Die02": 2.1})
    rows = [ax for ax in fig.axes if ax.get_lines()]
    assert len(rows) == 3  # one per class present
    for ax in rows:
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert np.allclose(lines[THRESHOLD_LABEL].get_xdata(), 3.0)
        assert np.allclose(lines["Die02 threshold"].get_xdata(), 2.1)
    title = fig._suptitle.get_text()
    assert "false-drift rate 0.0%" in title and "drift recall 100.0%" in title
    plt.close(fig)


def test_wide_score_range_gets_log_bins():
    scores = np.array([0.5, 1.0, 3.0, 400.0, 900.0])
    fig = drift_histogram_figure(scores, np.array([0, 0, 0, DRIFT, DRIFT]),
                                 make_inspector().classes, 10.0)
    assert fig.axes[-1].get_xscale() == "log"
    plt.close(fig)


def test_without_a_drift_detector_only_the_tsne(tmp_path, cache):
    full = make_inspector()
    inspector = Inspector(full.classifier, full.spec, None)
    frame = _table(tmp_path / "images")
    report = evaluate_inspector(inspector, frame, cache, batch_size=4)
    paths = inspection_figures(inspector, report, frame, cache, tmp_path / "figures")
    assert list(paths) == ["test_tsne_with_drift"]
    assert [p.name for p in (tmp_path / "figures").iterdir()] == ["test_tsne_with_drift.png"]


def test_nothing_flagged_and_few_images_make_only_the_histogram(tmp_path, cache, caplog):
    inspector = make_inspector()
    frame = _table(tmp_path / "images", n_normal=3, n_drift=0)
    report = evaluate_inspector(inspector, frame, cache)
    assert not (report.predictions["decision"] == DRIFT).any()
    with caplog.at_level("INFO", logger="vqc.inspection.figures"):
        paths = inspection_figures(inspector, report, frame, cache, tmp_path / "figures")
    assert list(paths) == ["drift_histogram"]
    assert "no image flagged as drift" in caplog.text
