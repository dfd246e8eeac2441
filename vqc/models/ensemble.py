"""Networks of one architecture, trained from different seeds, answering as one classifier.

Networks trained from different seeds err differently where each is unsure; the mean of their
probabilities is usually better calibrated than either. The ensemble is a
:class:`~vqc.models.Classifier`: its logits are the log of the members' mean probabilities, so
temperature scaling, the decision rules and the ONNX graph take it as they take one network.
Member 0 also gives the pooled features and feature maps the drift detectors read; every other
member adds one forward pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from vqc.errors import ConfigError
from vqc.models.classifier import Classifier


class EnsembleClassifier(Classifier):
    """``forward(x)`` -> ``log(mean_k softmax(member_k(x)))``, ``(B, num_classes)``.

    State-dict keys: member 0's as they are (``backbone.*``, ``head.*``), the others' under
    ``others.{k-1}.*``: a checkpoint of member 0 loads into ``backbone``/``head`` unchanged.
    """

    def __init__(self, members: Sequence[Classifier]) -> None:
        if len(members) < 2:
            raise ConfigError(f"an ensemble needs at least 2 members, got {len(members)}")
        first = members[0]
        for k, member in enumerate(members[1:], start=1):
            if (member.num_classes, member.in_channels, member.name) != (
                    first.num_classes, first.in_channels, first.name):
                raise ConfigError(
                    f"ensemble member {k} ({member.name}, {member.num_classes} classes, "
                    f"{member.in_channels} channels) is not member 0's architecture "
                    f"({first.name}, {first.num_classes} classes, {first.in_channels} channels)")
        super().__init__(first.backbone, first.num_classes, name=first.name)
        self.head = first.head
        self.others = nn.ModuleList(members[1:])
        self.unfrozen = first.unfrozen
        self.load_report = first.load_report

    @property
    def members(self) -> int:
        return 1 + len(self.others)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head_logits(self.backbone(x), x)

    def head_logits(self, pooled: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """Member 0's head on ``pooled`` combined with the other members' logits of
        ``images``: the log of the mean of their softmax probabilities."""
        logits = [self.head(pooled), *(member(images) for member in self.others)]
        log_probs = torch.stack([z.float().log_softmax(dim=-1) for z in logits])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(logits))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, members={self.members}"


def ensemble_of(members: Sequence[Classifier]) -> Classifier:
    """One classifier of ``members``: the network itself when there is one."""
    return members[0] if len(members) == 1 else EnsembleClassifier(members)


def member_count(model: nn.Module) -> int:
    """How many networks ``model`` runs (1 for a plain classifier)."""
    return int(getattr(model, "members", 1))
