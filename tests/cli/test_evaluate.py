"""``vqc-score`` end to end on small challenge-format CSV pairs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.metrics.cases import LABELS, MISTAKES, NAMES
from vqc.cli.evaluate import main
from vqc.metrics import official_cost_matrix, sub_matrix

FILES = [f"img_{i:02d}.png" for i in range(len(LABELS))]


def challenge_csv(path: Path, labels: list[object], files: list[str] = FILES) -> Path:
    """The challenge's layout: unnamed index, filename, window, lib, Label."""
    pd.DataFrame({"filename": files, "window": 2003, "lib": "Die01", "Label": labels}).to_csv(path)
    return path


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    labels = challenge_csv(tmp_path / "Y_labels.csv", [NAMES[c] for c in LABELS])  # names
    preds = challenge_csv(tmp_path / "submission.csv", MISTAKES)  # codes
    return preds, labels


def test_table_json_markdown_png(pair: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    preds, labels = pair
    out = tmp_path / "out"
    assert main(["--predictions", str(preds), "--labels", str(labels), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    # hand values in tests/metrics/cases.py: PWA 1 - 22101/100000, floor always Missing 0.98796
    for text in ("PWA (official)", "0.7790", "always 'Missing': PWA 0.9880",
                 "-0.2090 PWA, cost ratio 18.356", "1 / 7 (14.3%)", "2 / 2 (100.0%)",
                 "Boucle plate", "never predicted"):
        assert text in printed, text
    data = json.loads((out / "scores.json").read_text())
    assert data["scores"]["pwa"] == pytest.approx(0.77899, abs=1e-12)
    assert data["scores"]["floor"]["name"] == "Missing"
    assert data["scores"]["escapes"] == 1
    assert [c["recall"] for c in data["scores"]["per_class"]][4] == pytest.approx(2 / 3)
    assert "| PWA (official) | 0.7790 |" in (out / "scores.md").read_text()
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_page_matrix(pair: tuple[Path, Path], capsys) -> None:
    preds, labels = pair
    assert main(["--predictions", str(preds), "--labels", str(labels), "--matrix", "page"]) == 0
    assert "0.8880" in capsys.readouterr().out  # 1 - 11202 / 100000 = 0.88798


def test_missing_filename_is_named(pair: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    _, labels = pair
    short = challenge_csv(tmp_path / "short.csv", MISTAKES[:-1], FILES[:-1])
    assert main(["--predictions", str(short), "--labels", str(labels)]) == 1
    err = capsys.readouterr().err
    assert "1 labelled file(s)" in err and "'img_09.png'" in err and "short.csv" in err

    # --allow-missing scores the other 9 and still names the missing one
    assert main(["--predictions", str(short), "--labels", str(labels), "--allow-missing",
                 "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "img_09.png" in out
    data = json.loads((tmp_path / "o" / "scores.json").read_text())
    assert data["unscored"]["labelled_without_prediction"] == ["img_09.png"]
    # without the Drift image (6 -> 5, 1000): 21101 / (9 * 10000) -> PWA 1 - 0.234455...
    assert data["scores"]["pwa"] == pytest.approx(1 - 21101 / 90000, abs=1e-12)


def test_unexpected_and_duplicate_filenames(pair: tuple[Path, Path], tmp_path: Path,
                                            capsys) -> None:
    _, labels = pair
    extra = challenge_csv(tmp_path / "extra.csv", [*MISTAKES, 0], [*FILES, "stray.png"])
    assert main(["--predictions", str(extra), "--labels", str(labels)]) == 1
    assert "no label" in (err := capsys.readouterr().err) and "'stray.png'" in err
    dup = challenge_csv(tmp_path / "dup.csv", [*MISTAKES, 0], [*FILES, FILES[0]])
    assert main(["--predictions", str(dup), "--labels", str(labels)]) == 1
    assert "more than once" in (err := capsys.readouterr().err) and "'img_00.png'" in err


def test_bad_label_and_missing_file(pair: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    preds, _ = pair
    bad = challenge_csv(tmp_path / "bad.csv", ["GOOD", "Scratch", *["GOOD"] * 8])
    assert main(["--predictions", str(preds), "--labels", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.csv, line 3 (img_01.png)" in err and "'Scratch'" in err
    assert main(["--predictions", str(tmp_path / "none.csv"), "--labels", str(bad)]) == 1
    assert "none.csv: CSV file not found" in capsys.readouterr().err


def test_six_by_six_matrix(tmp_path: Path, pair: tuple[Path, Path], capsys) -> None:
    preds, labels = pair
    six = tmp_path / "six.csv"
    np.savetxt(six, sub_matrix(official_cost_matrix(), range(6)).numpy(), fmt="%d",
               delimiter=",")
    # the labels hold a Drift image, which a 6x6 matrix cannot score
    assert main(["--predictions", str(preds), "--labels", str(labels), "--matrix",
                 str(six)]) == 1
    assert "'Drift'" in (err := capsys.readouterr().err) and "img_09.png" in err
    keep = slice(0, 9)
    l6 = challenge_csv(tmp_path / "l6.csv", LABELS[keep], FILES[keep])
    # 6 -> 5 on image 4 is impossible too: predict 5 (Lift-off noir -> Short circuit MOS, 1)
    p6 = challenge_csv(tmp_path / "p6.csv", [5 if c == 6 else c for c in MISTAKES[keep]],
                       FILES[keep])
    assert main(["--predictions", str(p6), "--labels", str(l6), "--matrix", str(six)]) == 0
    # costs: 0->5 100, 0->4 100, 1->0 10000, 3->5 1, 4->2 1 = 10202 -> 1 - 10202 / 90000
    assert f"{1 - 10202 / 90000:.4f}" in capsys.readouterr().out


def test_probabilities_compare_decisions(pair: tuple[Path, Path], tmp_path: Path,
                                         capsys) -> None:
    preds, labels = pair
    # 60% GOOD, 40% the true class for every image (Drift decided by the submitted Label)
    rows = []
    for name, code in zip(FILES, LABELS, strict=True):
        p = [0.0] * 6
        p[0] += 0.6
        p[min(code, 5)] += 0.4
        rows.append({"filename": name, **{NAMES[k]: p[k] for k in range(6)}})
    probs = tmp_path / "probs.csv"
    pd.DataFrame(rows).to_csv(probs, index=False)
    assert main(["--predictions", str(preds), "--labels", str(labels), "--probabilities",
                 str(probs), "--out", str(tmp_path / "o")]) == 0
    data = json.loads((tmp_path / "o" / "scores.json").read_text())
    # images 0 (GOOD) and 4 (Lift-off noir) were submitted as Drift: both rules keep Drift there,
    # 10000 + 1000. argmax: the other 6 defects and the Drift image are called GOOD (0.6),
    # 7 * 10000 -> 81000 -> PWA 0.19
    assert data["decisions"]["argmax"]["pwa"] == pytest.approx(0.19, abs=1e-12)
    # Bayes: defects right; the Drift image (0.6 GOOD, 0.4 Short circuit) -> Short circuit,
    # since 0.6 * 100 < 0.4 * 10000: 1000 -> 12000 -> PWA 0.88
    assert data["decisions"]["bayes"]["pwa"] == pytest.approx(0.88, abs=1e-12)
    assert "Decision rules" in capsys.readouterr().out

    logits = tmp_path / "logits.csv"
    pd.DataFrame([{"filename": f, **{NAMES[k]: 3.0 for k in range(6)}} for f in FILES]).to_csv(
        logits, index=False)
    assert main(["--predictions", str(preds), "--labels", str(labels), "--probabilities",
                 str(logits)]) == 1
    assert "do not sum to 1" in capsys.readouterr().err


def test_generic_classes(tmp_path: Path, capsys) -> None:
    files = ["a.png", "b.png", "c.png"]
    labels = challenge_csv(tmp_path / "l.csv", ["good", "crack", "crack"], files)
    preds = challenge_csv(tmp_path / "p.csv", [0, 0, 1], files)
    matrix = tmp_path / "m.csv"
    matrix.write_text("0,10\n100,0\n")
    assert main(["--predictions", str(preds), "--labels", str(labels), "--classes",
                 "good,crack", "--matrix", str(matrix)]) == 0
    out = capsys.readouterr().out
    # one crack called good: 100 / (3 * 100) -> PWA 0.6667; one escape of 2 cracks
    assert "0.6667" in out and "1 / 2 (50.0%)" in out


def test_another_spelling_of_a_class_is_read_as_training_reads_it(pair, tmp_path, capsys):
    """'Good' and 'lift off blanc' are GOOD and 'Lift-off blanc' to training: to vqc-score
    too, scored alike, and said."""
    preds, labels = pair
    names = [NAMES[c] for c in LABELS]
    respelt = [n.replace("GOOD", "Good").replace("Lift-off blanc", "lift off blanc")
               for n in names]
    other = challenge_csv(tmp_path / "respelt.csv", respelt)
    assert main(["--predictions", str(preds), "--labels", str(labels), "--out",
                 str(tmp_path / "a")]) == 0
    assert main(["--predictions", str(preds), "--labels", str(other), "--out",
                 str(tmp_path / "b")]) == 0
    a, b = (json.loads((tmp_path / d / "scores.json").read_text())["scores"] for d in "ab")
    assert a["pwa"] == b["pwa"] and a["per_class"] == b["per_class"]
    out = capsys.readouterr().out
    assert "labels read as their class" in out and "'Good' -> 'GOOD'" in out
