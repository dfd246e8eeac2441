"""Long steps show progress: a bar in a terminal, lines with counts and durations in a log."""

import logging
import re

import numpy as np
import pandas as pd
from PIL import Image

from vqc.data.cache import ImageCache
from vqc.data.dataset import warm_cache
from vqc.data.preprocess import Preprocessor
from vqc.data.synthetic.writer import generate
from vqc.progress import phase

LINE = re.compile(r"phase (.+): (\d+) images in [\d.]+ s")


def _phase_lines(caplog) -> dict[str, int]:
    found = {}
    for record in caplog.records:
        match = LINE.fullmatch(record.getMessage())
        if match:
            found[match.group(1)] = int(match.group(2))
    return found


def test_a_phase_logs_its_count_and_duration_with_or_without_a_terminal(caplog):
    with caplog.at_level(logging.INFO, logger="vqc"):
        for terminal in (True, False):
            with phase(f"work {terminal}", total=10, terminal=terminal) as step:
                for _ in range(5):
                    step.advance(2)
    assert _phase_lines(caplog) == {"work True": 10, "work False": 10}


def test_without_a_terminal_a_long_phase_logs_as_it_goes(caplog):
    with caplog.at_level(logging.INFO, logger="vqc"), \
            phase("slow", total=3, every_s=0.0, terminal=False) as step:
        for batch in step.track([[1, 2], [3]]):
            assert batch
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("phase slow: 2/3 images,")
    assert lines[1].startswith("phase slow: 3/3 images,") and LINE.fullmatch(lines[-1])


def test_a_failed_phase_logs_no_completion(caplog):
    with caplog.at_level(logging.INFO, logger="vqc"):
        try:
            with phase("broken", terminal=False):
                raise RuntimeError("stop")
        except RuntimeError:
            pass
    assert "broken" not in _phase_lines(caplog)


def test_generating_and_caching_log_their_phases(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="vqc"):
        generate(tmp_path / "set", n_train=8, n_test=4, seed=5, class_floor=1, workers=1)
        rng = np.random.default_rng(0)
        paths = []
        for i in range(3):
            path = tmp_path / f"img{i}.png"
            Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8)).save(path)
            paths.append(str(path))
        cache = ImageCache(tmp_path / "cache", Preprocessor(size=(8, 8), mode="L"))
        assert warm_cache(cache, pd.DataFrame({"path": paths, "lib": [None] * 3}), 1) == []
    found = _phase_lines(caplog)
    assert found["synthetic data"] == 12
    assert found["caching images"] == 3


def test_the_demo_logs_progress_lines_when_its_output_is_a_file():
    """``make demo`` logs at WARNING; written to a file it would show no epoch for minutes."""
    from vqc.cli.demo import show_progress_lines

    logger, root = logging.getLogger("vqc.progress"), logging.getLogger()
    before = logger.level, root.level
    try:
        logger.setLevel(logging.NOTSET)
        root.setLevel(logging.WARNING)  # as the demo sets it
        show_progress_lines(terminal=True)
        assert not logger.isEnabledFor(logging.INFO)  # the bars show it
        show_progress_lines(terminal=False)
        assert logger.isEnabledFor(logging.INFO)
    finally:
        logger.setLevel(before[0])
        root.setLevel(before[1])
