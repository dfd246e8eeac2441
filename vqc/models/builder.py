"""The steps every pretrained family's builder shares, once: the weights found before anything
is built (a run without them stops at once), the backbone created and wrapped with its head,
the weights loaded, the blocks to train unfrozen. A family gives what is its own: how to create
its backbone, where its weights come from and, if published weights name their keys another
way, how to rename them."""

from __future__ import annotations

from collections.abc import Callable

import torch

from vqc.models.base import Backbone
from vqc.models.classifier import Classifier
from vqc.models.registry import none_if_blank
from vqc.models.weights import load_state_dict_into

#: ``weights -> (state dict, where it came from)``: a family's weights source.
Resolve = Callable[[str | None], tuple[dict[str, torch.Tensor], str]]
#: ``(state dict, backbone, origin) -> state dict`` in keys the backbone knows.
Remap = Callable[[dict[str, torch.Tensor], Backbone, str], dict[str, torch.Tensor]]


def pretrained_classifier(create: Callable[[], Backbone], *, name: str, num_classes: int,
                          dropout: float, unfreeze: int | None, pretrained: bool,
                          weights: str | None, resolve: Resolve, remap: Remap | None = None,
                          fine_tune_unfreeze: int | None = None) -> Classifier:
    """A classifier of the backbone ``create`` makes, with the weights ``resolve`` finds when
    ``pretrained`` (a ``weights`` file is loaded whenever given). ``fine_tune_unfreeze``: the
    blocks ``unfreeze=None`` trains once weights are loaded (all of them without weights)."""
    weights = none_if_blank(weights)
    state = resolve(weights) if pretrained or weights is not None else None  # fail fast
    backbone = create()
    model = Classifier(backbone, num_classes=num_classes, dropout=dropout, name=name)
    if fine_tune_unfreeze is not None:
        model.fine_tune_unfreeze = fine_tune_unfreeze
    if state is not None:
        raw, origin = state
        if remap is not None:
            raw = remap(raw, backbone, origin)
        model.load_report = load_state_dict_into(model, raw, origin=origin)
        if fine_tune_unfreeze is not None:
            model.default_unfreeze = fine_tune_unfreeze
    model.unfreeze(unfreeze)
    return model


__all__ = ["Remap", "Resolve", "pretrained_classifier"]
