import pandas as pd
import pytest

from tests.inspection.conftest import write_images
from vqc.cli import export as export_cli
from vqc.cli import predict as predict_cli
from vqc.export import OnnxInspector


@pytest.fixture(scope="module")
def artifact(per_lib_inspector, tmp_path_factory):
    return per_lib_inspector.save(tmp_path_factory.mktemp("artifact") / "inspector.safetensors")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Tiny images (the last three with a bright square) and an index giving their libs."""
    folder = tmp_path_factory.mktemp("images")
    names = write_images(folder / "images", 7, 3)
    libs = ["Die01", "Die02", "Die09", ""] * 3
    index = pd.DataFrame({"filename": names, "window": 2003, "lib": libs[:len(names)]},
                         index=range(50, 50 + len(names)))
    index.to_csv(folder / "win_and_lib.csv")
    return folder / "images", folder / "win_and_lib.csv"


@pytest.fixture(scope="module")
def onnx_model(artifact, images, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "model.onnx"
    code = export_cli.main(["--inspector", str(artifact), "--out", str(out), "--check-images",
                            str(images[0]), "--check-index", str(images[1]),
                            "--check-count", "10"])
    assert code == 0
    return out


def test_export_checks_parity_on_images(onnx_model):
    assert OnnxInspector(onnx_model).gaussian_keys == ["*", "Die01", "Die02"]


def test_export_with_a_static_batch_and_random_check(artifact, tmp_path, capsys):
    out = tmp_path / "static.onnx"
    assert export_cli.main(["--inspector", str(artifact), "--out", str(out),
                            "--static-batch", "3", "--check-count", "8"]) == 0
    printed = capsys.readouterr().out
    assert "parity on 8 random image(s)" in printed and "decisions identical: True" in printed
    assert "drift_scores" in printed and "max abs" in printed
    assert OnnxInspector(out).batch_size == 3   # 8 images ran as 3 + 3 + 2 padded


def test_predict_with_onnx_gives_the_same_submission(artifact, onnx_model, images, tmp_path):
    common = ["--images", str(images[0]), "--index", str(images[1]), "--batch-size", "4"]
    torch_out, onnx_out = tmp_path / "torch.csv", tmp_path / "onnx.csv"
    assert predict_cli.main(["--inspector", str(artifact), *common,
                             "--out", str(torch_out)]) == 0
    assert predict_cli.main(["--onnx", str(onnx_model), *common, "--out", str(onnx_out)]) == 0
    assert onnx_out.read_bytes() == torch_out.read_bytes()
    sub = pd.read_csv(onnx_out, index_col=0)
    assert (sub["Label"].iloc[7:] == 6).all()           # the bright squares are drift
    a = pd.read_csv(tmp_path / "torch_details.csv")
    b = pd.read_csv(tmp_path / "onnx_details.csv")
    assert a["decision"].tolist() == b["decision"].tolist()
    pd.testing.assert_series_equal(a["drift_score"], b["drift_score"], rtol=1e-4)
    pd.testing.assert_series_equal(a["p_GOOD"], b["p_GOOD"], rtol=1e-4, atol=1e-6)


def test_predict_refuses_a_file_that_is_not_onnx(artifact, images, tmp_path, capsys):
    args = ["--images", str(images[0]), "--out", str(tmp_path / "o.csv")]
    assert predict_cli.main(["--onnx", str(artifact), *args]) == 1
    err = capsys.readouterr().err
    assert "inspector.safetensors: not a readable ONNX model" in err
    assert not (tmp_path / "o.csv").exists()
    with pytest.raises(SystemExit):
        predict_cli.main(["--onnx", str(artifact), "--inspector", str(artifact), *args])
    with pytest.raises(SystemExit):
        predict_cli.main(args)


def test_export_of_a_missing_inspector_is_a_clear_error(tmp_path, capsys):
    assert export_cli.main(["--inspector", str(tmp_path / "nope.safetensors"),
                            "--out", str(tmp_path / "m.onnx")]) == 1
    assert "inspector file not found" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
