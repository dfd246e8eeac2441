"""vqc: visual quality control."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__: str = version("vqc")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
