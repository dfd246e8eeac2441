import pandas as pd
import pytest

from tests.inspection.conftest import interrupt_prediction, write_images
from vqc.cli import predict as predict_cli


@pytest.fixture
def artifact(inspector, tmp_path):
    return inspector.save(tmp_path / "inspector.safetensors")


def _index(folder, names, tmp_path):
    rows = pd.DataFrame({"filename": names[::-1], "window": 2003, "lib": "Die01"},
                        index=range(100, 100 + len(names)))
    path = tmp_path / "win_and_lib.csv"
    rows.to_csv(path)
    return path, rows


def test_submission_has_the_challenge_format(artifact, tmp_path):
    names = write_images(tmp_path / "images", 7, 3)
    index, rows = _index(tmp_path / "images", names, tmp_path)
    out = tmp_path / "out" / "submission.csv"
    assert predict_cli.main(["--inspector", str(artifact), "--images", str(tmp_path / "images"),
                             "--index", str(index), "--out", str(out),
                             "--batch-size", "4"]) == 0
    text = out.read_text().splitlines()
    assert text[0] == ",filename,window,lib,Label"
    sub = pd.read_csv(out, index_col=0)
    assert sub.index.tolist() == rows.index.tolist()          # the index's own row order
    assert sub["filename"].tolist() == rows["filename"].tolist()
    assert sub["Label"].dtype.kind == "i" and sub["Label"].between(0, 6).all()
    drift_rows = sub["filename"].isin(names[7:])
    assert (sub.loc[drift_rows, "Label"] == 6).all()          # the bright squares are drift
    details = pd.read_csv(tmp_path / "out" / "submission_details.csv")
    assert {"reason", "drift_score", "p_GOOD", "p_Missing"} <= set(details.columns)
    assert not (tmp_path / "out" / "submission.csv.partial.csv").exists()


def test_interrupted_prediction_resumes_to_the_same_csv(artifact, tmp_path, monkeypatch):
    names = write_images(tmp_path / "images", 9, 3)
    index, _ = _index(tmp_path / "images", names, tmp_path)
    args = ["--inspector", str(artifact), "--images", str(tmp_path / "images"),
            "--index", str(index), "--batch-size", "4"]
    reference = tmp_path / "ref.csv"
    assert predict_cli.main([*args, "--out", str(reference)]) == 0

    calls = {"n": 0}
    real = predict_cli._predict_batch

    def dies_on_the_third_batch(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # as if the process were killed mid-run
        return real(*a, **k)

    out = tmp_path / "sub.csv"
    monkeypatch.setattr(predict_cli, "_predict_batch", dies_on_the_third_batch)
    with pytest.raises(KeyboardInterrupt):
        predict_cli.main([*args, "--out", str(out)])
    assert not out.exists()
    partial = pd.read_csv(tmp_path / "sub.csv.partial.csv")
    assert len(partial) == 8                                    # two complete batches
    monkeypatch.setattr(predict_cli, "_predict_batch", real)
    assert predict_cli.main([*args, "--out", str(out)]) == 0
    assert out.read_text() == reference.read_text()


def test_unreadable_image_stops_or_becomes_drift(artifact, tmp_path):
    names = write_images(tmp_path / "images", 3, 0)
    (tmp_path / "images" / names[1]).write_text("not a png")
    out = tmp_path / "sub.csv"
    args = ["--inspector", str(artifact), "--images", str(tmp_path / "images"), "--out",
            str(out)]
    assert predict_cli.main(args) == 1
    assert not out.exists()
    assert predict_cli.main([*args, "--on-bad-image", "drift"]) == 0
    sub = pd.read_csv(out, index_col=0)
    assert sub.loc[sub["filename"] == names[1], "Label"].item() == 6


def test_missing_inspector_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    assert predict_cli.main(["--inspector", str(tmp_path / "nope.safetensors"), "--images",
                             str(tmp_path / "images"), "--out", str(tmp_path / "o.csv")]) == 1
    assert "nope.safetensors: inspector file not found" in capsys.readouterr().err


def test_a_torn_last_line_is_redone(artifact, tmp_path, monkeypatch):
    names = write_images(tmp_path / "images", 6, 2)
    index, _ = _index(tmp_path / "images", names, tmp_path)
    args = ["--inspector", str(artifact), "--images", str(tmp_path / "images"),
            "--index", str(index), "--batch-size", "4"]
    reference = tmp_path / "ref.csv"
    assert predict_cli.main([*args, "--out", str(reference)]) == 0
    out = tmp_path / "sub.csv"
    partial = tmp_path / "sub.csv.partial.csv"
    interrupt_prediction([*args, "--out", str(out)], monkeypatch)
    # a kill in the middle of writing the first batch: header, two rows, half a row
    lines = partial.read_text().splitlines(keepends=True)
    assert len(lines) == 5
    partial.write_text("".join(lines[:3]) + lines[3][:20])
    assert predict_cli.main([*args, "--out", str(out)]) == 0
    assert out.read_text() == reference.read_text()


def test_prediction_logs_its_phase_line(artifact, tmp_path, capsys):
    names = write_images(tmp_path / "images", 5, 2)
    index, _ = _index(tmp_path / "images", names, tmp_path)
    assert predict_cli.main(["--inspector", str(artifact), "--images", str(tmp_path / "images"),
                             "--index", str(index), "--out", str(tmp_path / "sub.csv"),
                             "--batch-size", "3"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert any(line.startswith("phase predict: 7 images in ") for line in lines), lines
