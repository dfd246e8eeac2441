"""A backbone plus a dropout + linear head: logits, embeddings and intermediate maps."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from vqc.errors import ConfigError
from vqc.models import freeze
from vqc.models.base import Backbone
from vqc.models.weights import LoadReport


class Classifier(nn.Module):
    """``forward(x)`` -> logits ``(B, num_classes)``.

    ``embed(x)`` gives the pooled backbone features (for t-SNE and the like) and
    ``feature_maps(x)`` the intermediate maps a drift detector reads (``layer1``..``layer3`` of a
    ResNet, every block of a CNN). State-dict keys are ``backbone.*`` and ``head.fc.*``.

    In training mode, BatchNorm layers whose parameters are frozen (see :meth:`unfreeze`) stay in
    eval mode: :meth:`train` re-applies that every time it is called.
    """

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        dropout: float = 0.0,
        name: str | None = None,
    ) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {dropout!r}")
        self.backbone = backbone
        self.head = nn.Sequential(
            OrderedDict(
                dropout=nn.Dropout(float(dropout)),
                fc=nn.Linear(backbone.num_features, num_classes),
            )
        )
        self.name = name or type(backbone).__name__
        self.num_classes = num_classes
        self.in_channels = backbone.in_channels
        self.num_features = backbone.num_features
        #: The last ``unfreeze`` value applied (-1: everything trains).
        self.unfrozen = -1
        #: The blocks its family fine-tunes from pretrained weights (-1: all of them), and what
        #: ``unfreeze=None`` (the config's ``unfreeze: null``) means for this model: that
        #: choice when weights were loaded, else -1 (everything trains).
        self.fine_tune_unfreeze = -1
        self.default_unfreeze = -1
        #: What loading weights did (set by ``build_model``; None when nothing was loaded).
        self.load_report: LoadReport | None = None
        #: Keep every BatchNorm's running statistics fixed in training (fine-tuning pretrained
        #: weights on small batches); otherwise only those of frozen layers are fixed.
        self.bn_stats_frozen = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def head_logits(self, pooled: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """The logits of ``images`` from their pooled features: the head's (an ensemble
        adds its other members', which need the images)."""
        return self.head(pooled)

    def logits_and_map(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits and the backbone's last feature map (see ``Backbone.pooled_and_map``)."""
        pooled, feature_map = self.backbone.pooled_and_map(x)
        return self.head_logits(pooled, x), feature_map

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features ``(B, num_features)``, before dropout and head."""
        return self.backbone(x)

    def feature_maps(
        self, x: torch.Tensor, layers: Sequence[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """Intermediate maps by name (see ``feature_layers``); runs only as far as needed."""
        return self.backbone.feature_maps(x, layers)

    @property
    def feature_layers(self) -> tuple[str, ...]:
        return self.backbone.feature_layers

    @property
    def block_names(self) -> list[str]:
        """The blocks ``unfreeze`` counts, in forward order, as state-dict prefixes."""
        return [f"backbone.{name}" for name, _ in self.backbone.blocks()]

    @property
    def num_blocks(self) -> int:
        return len(self.backbone.blocks())

    def unfreeze(self, n: int | None) -> None:
        """Train the head and the last ``n`` blocks (``0``: head only, ``-1``: everything,
        ``None``: the model's ``default_unfreeze``)."""
        freeze.unfreeze(self, n)

    def train(self, mode: bool = True) -> Classifier:
        super().train(mode)
        if mode:
            freeze.set_frozen_bn_eval(self, every=self.bn_stats_frozen)
        return self

    def freeze_bn_stats(self, frozen: bool = True) -> None:
        """Fix (or free) the running statistics of every BatchNorm from the next ``train()``."""
        self.bn_stats_frozen = bool(frozen)
        if self.training:
            self.train(True)

    def param_groups(self, lr: float, backbone_lr_factor: float = 1.0) -> list[dict[str, Any]]:
        """Optimizer parameter groups of the trainable parameters.

        The head trains at ``lr``, the backbone at ``lr * backbone_lr_factor`` (e.g. 0.1 for a
        gentler update of pretrained weights). Groups with nothing trainable are left out; each
        group carries a ``"name"`` (``"head"`` or ``"backbone"``).
        """
        if not backbone_lr_factor > 0:
            raise ConfigError(
                f"backbone_lr_factor must be > 0, got {backbone_lr_factor!r} "
                "(to freeze the backbone use unfreeze=0)"
            )
        groups = [
            ("head", self.head, lr),
            ("backbone", self.backbone, lr * backbone_lr_factor),
        ]
        out = []
        for name, module, group_lr in groups:
            params = [p for p in module.parameters() if p.requires_grad]
            if params:
                out.append({"name": name, "params": params, "lr": group_lr})
        return out

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, num_classes={self.num_classes}, unfrozen={self.unfrozen}"
