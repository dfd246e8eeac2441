"""Pretrained ImageNet weights from the model hubs, or a fast, clear failure without network.

Order of attempts for ``model.pretrained=true`` without ``model.weights``:

1. a copy already in the local cache (Hugging Face cache for timm, ``torch.hub`` cache for
   torchvision) is loaded without any network access;
2. offline (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` set to a true value): fail at once;
3. otherwise the hub's host is probed for at most :data:`PROBE_TIMEOUT_S` seconds; unreachable:
   fail at once (rather than sit through the hub client's retries);
4. otherwise download through timm / torchvision.

The failure is a :class:`~vqc.errors.ConfigError` that tells how to pass a local file.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

import torch

from vqc.errors import ConfigError
from vqc.models.backbones import split_name

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

    arch, _ = split_name(name)
    url = torchvision.models.get_model_weights(arch).DEFAULT.url
    file = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
    return HubWeights(url, urlparse(url).hostname or url, str(file) if file.is_file() else None)


def no_weights_error(name: str, source: str, where: str, reason: str) -> ConfigError:
    return ConfigError(
        f"model.pretrained=true for {name!r} ({source}) needs weights from {where}, but "
        f"{reason} and no cached copy exists. Pass a local file with model.weights=PATH "
        "(a .pth/.pt state dict, e.g. torchvision's resnet50-11ad3fa6.pth, or a .safetensors "
        "file, e.g. timm's model.safetensors), or set model.pretrained=false."
    )


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


def fetch_pretrained(name: str, source: str) -> tuple[dict[str, torch.Tensor], str]:
    """The default pretrained state dict of ``name`` and where it came from."""
    from vqc.models.weights import read_state_dict

    hub = hub_weights(name, source)
    if hub.cached is not None:
        return read_state_dict(hub.cached), hub.cached
    env = offline_by_env()
    if env is not None:
        raise no_weights_error(name, source, hub.description, f"{env} is set (offline)")
    if not host_reachable(hub.host):
        reason = f"{hub.host} is unreachable (connection probe, {PROBE_TIMEOUT_S:g} s limit)"
        raise no_weights_error(name, source, hub.description, reason)
    try:
        return _download(hub), hub.description
    except ConfigError:
        raise
    except Exception as error:
        reason = f"the download failed ({_short(error)})"
        raise no_weights_error(name, source, hub.description, reason) from error


def _short(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:200]
