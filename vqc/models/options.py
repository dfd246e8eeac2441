"""The options every model family takes (a family adds its own in a subclass beside its
builder, e.g. ``CnnOptions`` in ``vqc.models.cnn``). Torch-free: the command line checks these
ranges before torch is imported."""

from __future__ import annotations

from dataclasses import dataclass

from vqc.options import check_values, option


@dataclass(frozen=True)
class ModelOptions:
    """The keys of every ``conf/model/*.yaml`` besides ``name``."""

    pretrained: bool = option(False, doc="start from ImageNet weights (a file, a package or "
                                         "the hub)")
    weights: str | None = option(None, doc="a weights file: ImageNet weights or a model "
                                           "trained before")
    unfreeze: int | None = option(-1, low=-1, doc="blocks trained besides the head: -1 all, "
                                                  "0 head only, null the family's default")
    dropout: float = option(0.0, low=0, high=1, open_high=True,
                            doc="dropout before the linear head")

    def __post_init__(self) -> None:
        check_values(self, "model")


@dataclass(frozen=True)
class PretrainedOptions(ModelOptions):
    """A family whose point is its ImageNet weights: ``pretrained`` by default."""

    pretrained: bool = option(True, doc="start from ImageNet weights (a file, a package or "
                                        "the hub)")


__all__ = ["ModelOptions", "PretrainedOptions"]
