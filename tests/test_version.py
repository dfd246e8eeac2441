"""``vqc.__version__`` is the installed package's version, and artifacts record it."""

import importlib
import importlib.metadata
import json

from safetensors import safe_open

import vqc
from tests.inspection.conftest import make_inspector


def test_version_is_the_installed_metadata_version():
    assert vqc.__version__ == importlib.metadata.version("vqc")
    assert vqc.__version__ not in ("", "0")


def test_version_falls_back_when_the_package_is_not_installed(monkeypatch):
    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    try:
        assert importlib.reload(vqc).__version__ == "0+unknown"
    finally:
        monkeypatch.undo()
        importlib.reload(vqc)
    assert vqc.__version__ == importlib.metadata.version("vqc")


def test_the_inspector_artifact_records_the_version(tmp_path):
    path = make_inspector().save(tmp_path / "inspector.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        spec = json.loads(handle.metadata()["spec"])
    assert spec["versions"]["vqc"] == importlib.metadata.version("vqc")
