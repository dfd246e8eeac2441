"""The options every model family takes, and those of the CNNs, whose ``depth`` is a top-level
knob. Torch-free: the command line checks these ranges before torch is imported. Another
family declares its own subclass of :class:`ModelOptions` beside its builder
(``ResNetOptions`` in ``vqc.models.backbones``)."""

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


MIN_DEPTH = 1
MAX_DEPTH = 8


@dataclass(frozen=True)
class BasicCnnOptions(ModelOptions):
    """``conf/model/basic_cnn.yaml`` (``vqc.models.cnn``)."""

    width: int = option(32, low=1, doc="channels of the first conv block")


@dataclass(frozen=True)
class CnnOptions(BasicCnnOptions):
    """``conf/model/cnn.yaml`` (``vqc.models.cnn``): a CNN of configurable depth; its ``depth``
    is also the top-level knob ``depth``."""

    depth: int = option(5, low=MIN_DEPTH, high=MAX_DEPTH, doc="conv blocks, widths doubling "
                                                              "from width")


__all__ = ["MAX_DEPTH", "MIN_DEPTH", "BasicCnnOptions", "CnnOptions", "ModelOptions",
           "PretrainedOptions"]
