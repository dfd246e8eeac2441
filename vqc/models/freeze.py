"""Partial fine-tuning: which parameters train, and BatchNorm of the frozen part.

``unfreeze=N`` trains the head plus the last ``N`` blocks of the backbone (residual blocks
``layerX.Y`` of a ResNet, conv blocks of our CNNs); ``0`` trains the head only; ``-1`` trains
everything. The stem (first convolution and its BatchNorm) trains only with ``-1``.

A frozen BatchNorm must also stop updating its running statistics, which it does in training
mode even without gradients. :func:`set_frozen_bn_eval` puts every BatchNorm whose parameters
are all frozen in eval mode; :class:`~vqc.models.Classifier` calls it from ``train()``, so
``model.train()`` keeps frozen BatchNorm in eval.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from vqc.errors import ConfigError

if TYPE_CHECKING:
    from vqc.models.classifier import Classifier


def is_frozen(module: nn.Module) -> bool:
    """True when ``module`` has parameters of its own and none requires a gradient."""
    params = list(module.parameters(recurse=False))
    return bool(params) and not any(p.requires_grad for p in params)


def frozen_batchnorms(module: nn.Module) -> list[tuple[str, _BatchNorm]]:
    """BatchNorm layers (SyncBatchNorm included) whose affine parameters are all frozen."""
    return [
        (name, m)
        for name, m in module.named_modules()
        if isinstance(m, _BatchNorm) and is_frozen(m)
    ]


def set_frozen_bn_eval(module: nn.Module, every: bool = False) -> int:
    """Put the frozen BatchNorm layers of ``module`` (``every``: all of them) in eval mode;
    return how many."""
    frozen = frozen_batchnorms(module) if not every else [
        (name, m) for name, m in module.named_modules() if isinstance(m, _BatchNorm)]
    for _, bn in frozen:
        bn.eval()
    return len(frozen)


def describe_blocks(model: Classifier) -> str:
    """``"33 residual blocks (layer1: 3, layer2: 4, layer3: 23, layer4: 3)"`` or similar."""
    backbone = model.backbone
    count = len(backbone.blocks())
    sizes = getattr(backbone, "stage_sizes", None)
    if sizes is None:
        return f"{count} conv blocks"
    detail = ", ".join(f"{stage}: {n}" for stage, n in sizes().items())
    return f"{count} residual blocks ({detail})"


def check_unfreeze(model: Classifier, n: int) -> None:
    """Raise :class:`ConfigError` unless ``n`` is -1 or 0..number of blocks."""
    count = len(model.backbone.blocks())
    if isinstance(n, bool) or not isinstance(n, int):
        raise ConfigError(f"unfreeze must be an integer (-1, 0 or a block count), got {n!r}")
    if n < -1 or n > count:
        raise ConfigError(
            f"unfreeze={n} is out of range for {model.name}: it has {describe_blocks(model)}; "
            f"use 0..{count} (0 = head only), or -1 to train everything"
        )


def unfreeze(model: Classifier, n: int | None) -> None:
    """Make the head and the last ``n`` backbone blocks trainable, freeze the rest.

    ``n=-1`` makes everything trainable; ``None``, the model's ``default_unfreeze``. Calling
    it again replaces the previous choice; an optimizer built before the call must be rebuilt
    (see ``Classifier.param_groups``).
    """
    n = model.default_unfreeze if n is None else n
    check_unfreeze(model, n)
    if n == -1:
        model.requires_grad_(True)
    else:
        model.backbone.requires_grad_(False)
        blocks = model.backbone.blocks()
        for _, block in blocks[len(blocks) - n :]:
            block.requires_grad_(True)
        model.head.requires_grad_(True)
    model.unfrozen = n
    if model.training:
        model.train(True)  # re-applies eval mode to exactly the BatchNorm now frozen


def random_frozen_warning(model: Classifier) -> str | None:
    """A warning when ``unfreeze`` froze weights that were never loaded (random values that
    will never learn), else None."""
    if model.unfrozen == -1 or model.load_report is not None:
        return None
    count = len(model.backbone.blocks())
    return (
        f"unfreeze={model.unfrozen} freezes {count - model.unfrozen} of {count} blocks of "
        f"{model.name} (and its stem) at their RANDOM initial values: no pretrained weights "
        "were loaded (model.pretrained=false and no model.weights), so those layers never "
        "learn. Load weights (model.pretrained=true, or model.weights=PATH; "
        "model=efficientnet_lite0 has ImageNet weights offline) or train everything "
        "(unfreeze=-1)."
    )
