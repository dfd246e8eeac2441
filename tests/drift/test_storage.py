"""Fitted Gaussians are stored in the smallest exact form: symmetric matrices as their upper
triangles, read back bit for bit; files of the earlier format (full matrices) still load."""

import json
from dataclasses import asdict

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from tests.export.conftest import make_two_detector_inspector
from tests.inspection.test_inspector import _batch
from vqc.drift.gaussian import StreamingGaussian, pack_upper, symmetric, unpack_upper
from vqc.errors import ConfigError
from vqc.inspection.inspector import Inspector


def test_packing_a_symmetric_matrix_is_exact_and_halves_it():
    torch.manual_seed(0)
    a = torch.randn(5, 7, 7)
    exact = symmetric(a @ a.transpose(1, 2))
    assert torch.equal(exact, exact.transpose(1, 2))
    packed = pack_upper(exact)
    assert packed.shape == (5, 28)
    assert torch.equal(unpack_upper(packed), exact)
    with pytest.raises(ValueError, match="upper triangle"):
        unpack_upper(torch.zeros(3, 27))


def test_fitted_inverse_covariances_are_exactly_symmetric():
    gaussian = StreamingGaussian()
    gaussian.update(torch.randn(40, 6, 3, 3, generator=torch.Generator().manual_seed(1)))
    inverse = gaussian.finalize().inv_covariance
    assert torch.equal(inverse, inverse.transpose(-2, -1))


def test_the_inspector_file_holds_upper_triangles_and_decides_alike(tmp_path):
    inspector = make_two_detector_inspector(gate=True)
    path = inspector.save(tmp_path / "new.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        names = set(handle.keys())
    assert "drift.padim.inv_covariance_upper" in names
    assert "drift.pooled.inv_covariance_upper" in names
    assert not any(name.endswith(".inv_covariance") for name in names)
    loaded = Inspector.load(path)
    for name, detector in inspector.drift.detectors.items():
        assert torch.equal(loaded.drift.detectors[name].inv_covariance, detector.inv_covariance)
    images = inspector.normalise(_batch(5, 3))
    libs = ["Die01", "Die02"] * 4
    a, b = inspector(images, libs), loaded(images, libs)
    assert torch.equal(a.drift_score, b.drift_score) and torch.equal(a.decision, b.decision)


def test_a_second_format_file_with_full_matrices_still_loads_and_decides_alike(tmp_path):
    inspector = make_two_detector_inspector(gate=True)
    tensors = {f"classifier.{k}": v.contiguous()
               for k, v in inspector.classifier.state_dict().items()}
    for name, detector in inspector.drift.detectors.items():
        tensors.update({f"drift.{name}.{k}": v.contiguous()
                        for k, v in detector.state_dict().items()})
    spec = inspector.spec_dict()
    for entry in spec["drift"]["detectors"]:
        entry["options"].pop("pool", None)  # the second format knew no pool
    spec["versions"]["format"] = "2"
    path = tmp_path / "v2.safetensors"
    save_file(tensors, str(path), metadata={"format": "vqc-inspector", "spec": json.dumps(spec)})
    assert path.stat().st_size > inspector.save(tmp_path / "v3.safetensors").stat().st_size
    loaded = Inspector.load(path)
    images = inspector.normalise(_batch(5, 3))
    libs = ["Die01", "Die02"] * 4
    a, b = inspector(images, libs), loaded(images, libs)
    assert torch.equal(a.drift_score, b.drift_score) and torch.equal(a.decision, b.decision)


@pytest.mark.parametrize("pool", [0, -1, 1.5, True])
def test_a_bad_pool_is_refused(pool):
    from vqc.drift import PadimConfig

    with pytest.raises(ConfigError, match=r"drift\.pool"):
        PadimConfig(pool=pool)
    assert asdict(PadimConfig())["pool"] == 1
