"""Loading weights from a local file into a :class:`~vqc.models.Classifier`.

Accepted files: a state dict saved with ``torch.save`` (``.pth``, ``.pt``, ``.bin``, ``.ckpt``;
read with ``weights_only=True``, so no code in the file runs), possibly wrapped in a checkpoint
dict under ``state_dict`` / ``model_state_dict`` / ``model``, or a ``.safetensors`` file.

Two key layouts are recognised:

* the original network's, as timm and torchvision publish them (``conv1.weight``,
  ``layer1.0.conv1.weight``, ..., ``fc.weight``);
* this package's own (``backbone.*``, ``head.fc.*``), as ``Classifier.state_dict()`` writes it.

Prefixes added by wrappers (``module.``, ``_orig_mod.``, ``model.``) are stripped. The backbone
must match exactly: a missing, unexpected or differently shaped backbone tensor is a
:class:`~vqc.errors.ConfigError` naming the file and some keys (BatchNorm's
``num_batches_tracked`` counters may be absent). The head is loaded when its shape matches;
when only the class count differs (ImageNet's 1000 vs ours) it is skipped and the report says
so. A 3-channel first convolution loaded into a 1-channel model is summed over its input
channels (see :mod:`vqc.models.backbones`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vqc.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from vqc.models.base import Backbone
    from vqc.models.classifier import Classifier

log = logging.getLogger(__name__)

#: Suffixes of files read with ``torch.load``; anything else but ``.safetensors`` is refused.
TORCH_SUFFIXES: tuple[str, ...] = (".pth", ".pt", ".bin", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"
_WRAPPER_KEYS: tuple[str, ...] = ("state_dict", "model_state_dict", "model")
_WRAPPER_PREFIXES: tuple[str, ...] = ("module.", "_orig_mod.", "model.")
_SHOW = 5  # keys quoted in an error message


@dataclass
class LoadReport:
    """What :func:`load_weights` did."""

    origin: str
    loaded: int = 0
    head_loaded: bool = False
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        parts = [f"{self.origin}: {self.loaded} tensors loaded"]
        if self.head_loaded:
            parts.append("head included")
        return "; ".join(parts + self.notes)


def _first_line(error: BaseException, limit: int = 200) -> str:
    text = str(error).strip().splitlines()
    line = text[0] if text else type(error).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``path`` (no network, no code execution)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"model.weights={path}: no such file")
    suffix = file.suffix.lower()
    if suffix == SAFETENSORS_SUFFIX:
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(file), device="cpu"))
        except Exception as error:
            raise ConfigError(
                f"model.weights={path} is not a readable .safetensors file: {_first_line(error)}"
            ) from error
    if suffix not in TORCH_SUFFIXES:
        raise ConfigError(
            f"model.weights={path}: unknown weights format {suffix or '(no suffix)'!r}; "
            f"use a state dict saved as {', '.join(TORCH_SUFFIXES)} or {SAFETENSORS_SUFFIX}"
        )
    try:
        obj: Any = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ConfigError(
            f"model.weights={path} could not be read as PyTorch weights (a state dict saved "
            f"with torch.save): {_first_line(error)}"
        ) from error
    while not _is_state_dict(obj) and isinstance(obj, Mapping):
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not _is_state_dict(obj):
        raise ConfigError(
            f"model.weights={path} holds no state dict (a mapping of parameter names to "
            f"tensors); found {type(obj).__name__}"
        )
    return dict(obj)


def _strip_wrappers(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in state_dict):
                state_dict = {k[len(prefix) :]: v for k, v in state_dict.items()}
                changed = True
    return state_dict


def _examples(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > _SHOW else "")


@dataclass
class _Split:
    """A state dict cut into backbone and head tensors, keys as the model names them."""

    own_layout: bool
    backbone: dict[str, torch.Tensor]
    head: dict[str, torch.Tensor]
    unexpected: list[str]


def _split(sd: dict[str, torch.Tensor], backbone: Backbone) -> _Split:
    """Either key layout (see the module docstring) -> backbone and head tensors."""
    own_layout = all(k.startswith(("backbone.", "head.")) for k in sd)
    split = _Split(own_layout, {}, {}, [])
    for key, value in sd.items():
        if own_layout:
            if key.startswith("head.fc."):
                split.head[key[len("head.fc."):]] = value
            elif key.startswith("backbone."):
                split.backbone[key[len("backbone."):]] = value
            else:
                split.unexpected.append(key)
            continue
        prefix = next((p for p in backbone.external_head_prefixes if key.startswith(p)), None)
        if prefix is not None:
            split.head[key[len(prefix):]] = value
        else:
            split.backbone[backbone.external_prefix + key] = value
    return split


def _adapt_first_conv(split: _Split, expected: Mapping[str, torch.Tensor], first_conv: str,
                      report: LoadReport) -> None:
    """A 3-channel first convolution loaded into another channel count (summed for gray)."""
    from timm.models import adapt_input_conv

    src, dst = split.backbone.get(first_conv), expected.get(first_conv)
    if (src is not None and dst is not None and src.ndim == 4 and src.shape[1] == 3
            and dst.shape[1] != 3 and src.shape[0] == dst.shape[0]
            and src.shape[2:] == dst.shape[2:]):
        split.backbone[first_conv] = adapt_input_conv(int(dst.shape[1]), src)
        how = "summed over RGB" if dst.shape[1] == 1 else "repeated and rescaled"
        report.notes.append(f"first conv adapted from 3 to {dst.shape[1]} channels ({how})")


def _head_fits(split: _Split, head: nn.Linear, head_names: str, report: LoadReport,
               missing: list[str], unexpected: list[str], mismatched: list[str]) -> bool:
    """Whether the file's head loads; notes, and missing / unexpected / mismatched keys."""
    shapes = {"weight": head.weight.shape, "bias": head.bias.shape}
    unexpected += [head_names + k for k in split.head if k not in shapes]
    if not split.head:
        report.notes.append("no head in the file; it starts from random initialisation")
        return False
    if set(split.head) < set(shapes):
        missing += [head_names + k for k in shapes if k not in split.head]
        return False
    if set(split.head) != set(shapes):
        return False
    weight = split.head["weight"]
    if weight.shape == head.weight.shape and split.head["bias"].shape == head.bias.shape:
        return True
    if weight.ndim == 2 and weight.shape[1] == head.weight.shape[1]:
        report.notes.append(
            f"head not loaded: the file's head has {weight.shape[0]} classes, the model "
            f"{head.weight.shape[0]}; it starts from random initialisation"
        )
    else:
        mismatched.append(
            f"{head_names}weight {tuple(weight.shape)} vs model {tuple(head.weight.shape)}")
    return False


def _mismatch_error(model: Classifier, origin: str, missing: list[str],
                    unexpected: list[str], mismatched: list[str],
                    src: torch.Tensor | None, dst: torch.Tensor | None) -> ConfigError:
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys ({_examples(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys ({_examples(unexpected)})")
    if mismatched:
        parts.append(f"{len(mismatched)} shape mismatches ({_examples(mismatched)})")
    if src is not None and dst is not None and src.ndim == 4 and src.shape[1] != dst.shape[1]:
        hint = (f"The file's first convolution takes {src.shape[1]} input channel(s), the "
                f"model's {dst.shape[1]}: is in_channels right?")
    else:
        hint = "Are they the weights of another architecture?"
    return ConfigError(
        f"weights from {origin} do not fit model {model.name!r}: {'; '.join(parts)}. {hint}")


def load_state_dict_into(
    model: Classifier, state_dict: Mapping[str, torch.Tensor], origin: str
) -> LoadReport:
    """Load ``state_dict`` (either key layout) into ``model``; see the module docstring."""
    backbone = model.backbone
    report = LoadReport(origin=origin)
    split = _split(_strip_wrappers(dict(state_dict)), backbone)
    expected = backbone.state_dict()
    first_conv = backbone.first_conv_name() + ".weight"
    src = split.backbone.get(first_conv)
    _adapt_first_conv(split, expected, first_conv, report)

    def shown(key: str) -> str:  # a backbone key as the file names it
        if split.own_layout:
            return "backbone." + key
        prefix = backbone.external_prefix
        return key[len(prefix):] if prefix and key.startswith(prefix) else key

    missing = [shown(k) for k in expected
               if k not in split.backbone and not k.endswith("num_batches_tracked")]
    unexpected = split.unexpected + [shown(k) for k in split.backbone if k not in expected]
    mismatched = [f"{shown(k)} {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
                  for k, v in split.backbone.items()
                  if k in expected and v.shape != expected[k].shape]
    head_names = "head.fc." if split.own_layout else (backbone.external_head_prefixes
                                                       or ("",))[0]
    load_head = _head_fits(split, model.head.fc, head_names, report, missing, unexpected,
                           mismatched)
    if missing or unexpected or mismatched:
        raise _mismatch_error(model, origin, missing, unexpected, mismatched, src,
                              expected.get(first_conv))
    with torch.no_grad():
        backbone.load_state_dict(split.backbone, strict=False)
        if load_head:
            model.head.fc.load_state_dict(split.head)
    report.loaded = len(split.backbone) + (len(split.head) if load_head else 0)
    report.head_loaded = load_head
    log.info("%s", report)
    return report


def load_weights(model: Classifier, path: str | Path) -> LoadReport:
    """Load a local weights file into ``model``; raise :class:`ConfigError` if it does not fit."""
    return load_state_dict_into(model, read_state_dict(path), origin=str(path))
