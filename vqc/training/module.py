"""The Lightning module: a ``Classifier`` trained on the trained classes, scored on all."""

from __future__ import annotations

import inspect
import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from vqc.classes import ClassSet
from vqc.data.dataset import epoch_seed
from vqc.errors import ConfigError
from vqc.metrics import (
    ScoreReport,
    ScoringMetrics,
    TemperatureScaler,
    compare_decisions,
    decide,
    sub_matrix,
)
from vqc.training.limits import limited_rows

log = logging.getLogger(__name__)


#: State-dict prefix of the training-only mask head (``module.mask_weight``).
MASK_HEAD_PREFIX = "mask_head."


def without_mask_head(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` without the mask head's tensors: a run trained with pixel masks, tested or
    evaluated by a module that has no use for them."""
    return {k: v for k, v in state.items() if not k.startswith(MASK_HEAD_PREFIX)}


@dataclass
class EpochOutputs:
    """What a validation or test epoch leaves for callbacks (``RunFigures`` draws from it):
    its report, the embeddings of its images and their true codes, on the CPU."""

    report: ScoreReport
    features: Tensor
    codes: Tensor


class ClassifierModule(L.LightningModule):
    """Trains ``model`` and logs PWA beside what it hides, on validation and test.

    ``cost`` is the full cost matrix (trained classes plus the open-set class, if any); the
    classifier's outputs are the trained classes, whose codes are ``classes.trained_codes``.
    ``decision`` is how scores become a class: ``argmax`` or the ``bayes`` rule (least expected
    cost). On test, a temperature is fitted on validation logits and both rules are reported.

    Numerical faults: a non-finite training loss stops training with a ``FloatingPointError``
    naming the epoch and batch (``nan_policy="stop"``) or skips that batch (``"skip"``: no
    optimiser update, counted in ``skipped_batches`` and logged as ``train/skipped_batches``).
    A non-finite validation loss or output stops training too under ``"stop"``; under
    ``"skip"`` every validation figure of that epoch is logged as NaN. A non-finite monitored
    figure is never taken as the best checkpoint (see ``FiniteModelCheckpoint``).

    Pictures are a callback's (``RunFigures``): each validation or test epoch leaves its report
    and embeddings in ``epoch_outputs``, and ``test_step`` returns the decided codes.

    Resuming: Lightning restores weights, optimiser, scheduler, loop and callback states; the
    random state is not saved but rebuilt: each training epoch reseeds the global generators
    (dropout) from ``(seed, epoch, rank)`` and the data module's ``EpochSampler`` draws the
    order and every image's augmentation seed from ``(seed, epoch)``, so a run resumed at epoch
    ``e`` continues as if it had never stopped.
    """

    def __init__(
        self,
        model: nn.Module,
        classes: ClassSet,
        cost: Tensor,
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        lr: float = 1e-3,
        backbone_lr_factor: float = 1.0,
        decision: str = "argmax",
        collapse_share: float = 0.9,
        channels_last: bool = False,
        nan_policy: str = "stop",
        mask_head: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        #: ``MaskSupervision`` when training batches carry pixel masks (training only).
        self.mask_head = mask_head
        self.classes = classes
        self.loss_fn = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.lr, self.backbone_lr_factor = lr, backbone_lr_factor
        self.decision = decision
        self.channels_last = channels_last
        if channels_last:
            # The weights too: a gray batch (B, 1, H, W) is laid out the same either way, so
            # its format alone would leave every layer after the stem in NCHW (1.5x slower).
            model.to(memory_format=torch.channels_last)
        if nan_policy not in ("stop", "skip"):
            raise ConfigError(f"module.nan_policy={nan_policy!r}: expected 'stop' or 'skip'")
        self.nan_policy = nan_policy
        self.skipped_batches = 0
        # (loss, batch) of the batches since the last optimiser step (several when
        # gradients accumulate), checked together before the step
        self._unchecked_losses: list[tuple[Tensor, int]] = []
        self._val_non_finite: int | None = None  # first validation batch with nan/inf, if any
        self.trained_codes = classes.trained_codes
        self.register_buffer("cost", torch.as_tensor(cost, dtype=torch.float64), persistent=False)
        self.register_buffer("trained_cost", sub_matrix(self.cost, self.trained_codes),
                             persistent=False)
        metric_args = {"cost_matrix": self.cost, "classes": classes,
                       "score_codes": self.trained_codes, "collapse_share": collapse_share}
        self.val_metrics = ScoringMetrics(prefix="val/", **metric_args)
        self.test_metrics = ScoringMetrics(prefix="test/", **metric_args)
        self._val_outputs: list[tuple[Tensor, Tensor, Tensor]] = []
        self._test_outputs: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
        #: ``"val"`` / ``"test"``: the last such epoch's outputs (none after a faulty epoch)
        self.epoch_outputs: dict[str, EpochOutputs] = {}
        self.temperature = TemperatureScaler()
        #: Why the fitted temperature is not to be trusted (at its bound), or None.
        self.temperature_warning: str | None = None

    # -- forward --------------------------------------------------------------------------------
    def _prepare(self, images: Tensor) -> Tensor:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def forward(self, images: Tensor) -> Tensor:
        return self.model(self._prepare(images))

    def _logits_and_embeddings(self, images: Tensor) -> tuple[Tensor, Tensor]:
        images = self._prepare(images)
        features = self.model.embed(images)
        return self.model.head_logits(features, images), features

    def decide(self, logits: Tensor) -> Tensor:
        """Class codes decided from logits by the configured rule."""
        probs = self.temperature.probabilities(logits.float())
        return decide(probs, self.decision, self.trained_cost.to(probs.device), None)

    # -- training -------------------------------------------------------------------------------
    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor | None:
        images, target = batch[0], batch[1]
        if self.mask_head is None:
            loss = self.loss_fn(self(images), target)
        else:
            if len(batch) < 3:
                raise RuntimeError("module.mask_weight > 0, but the training batch holds no "
                                   "pixel masks (a data module built with masks=True gives "
                                   "them)")
            # The uncompiled network: torch.compile wraps forward() only.
            logits, feature_map = self.network.logits_and_map(self._prepare(images))
            mask_loss = self.mask_head(feature_map, batch[2])
            loss = self.loss_fn(logits, target) + mask_loss
            self.log("train/mask_loss", mask_loss.detach(), on_step=False, on_epoch=True,
                     batch_size=len(target))
        if self.nan_policy == "skip":
            # Skipping needs the answer now: the host waits for the forward pass here.
            if not torch.isfinite(loss):
                log.warning("%s: batch skipped (module.nan_policy=skip)",
                            self._non_finite_message(loss, batch_idx))
                self.skipped_batches += 1
                self.log("train/skipped_batches", 1.0, on_step=False, on_epoch=True,
                         reduce_fx="sum", batch_size=1)
                return None
        else:
            # Checked in on_before_optimizer_step, once the backward pass is queued: reading
            # the loss here would leave an accelerator idle while backward kernels launch.
            self._unchecked_losses.append((loss.detach(), batch_idx))
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True,
                 batch_size=len(target))
        return loss

    def _non_finite_message(self, loss: Tensor, batch_idx: int) -> str:
        return (f"non-finite training loss ({loss.item()}) at epoch {self.current_epoch + 1}, "
                f"batch {batch_idx + 1}")

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Stop before a non-finite loss's gradients reach the weights (nan_policy=stop)."""
        pending, self._unchecked_losses = self._unchecked_losses, []
        if not pending:
            return
        finite = torch.isfinite(torch.stack([loss for loss, _ in pending]))  # one read
        if not bool(finite.all()):
            loss, batch_idx = pending[int((~finite).nonzero()[0])]
            raise FloatingPointError(f"{self._non_finite_message(loss, batch_idx)}; lower the "
                                     "learning rate, or set module.nan_policy=skip to skip such "
                                     "batches")

    # -- validation -----------------------------------------------------------------------------
    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        images, target = batch
        logits, features = self._logits_and_embeddings(images)
        loss = self.loss_fn(logits, target)
        if not (torch.isfinite(loss) and torch.isfinite(logits).all()):
            self._non_finite_validation(loss, batch_idx)
        self.log("val/loss", loss, on_epoch=True, batch_size=len(target), sync_dist=True)
        self.val_metrics.update(self.decide(logits), target)
        self._val_outputs.append((logits.detach().float().cpu(), target.cpu(),
                                  features.detach().float().cpu()))

    def _non_finite_validation(self, loss: Tensor, batch_idx: int) -> None:
        where = f"epoch {self.current_epoch + 1}, batch {batch_idx + 1}"
        if self.nan_policy == "stop":
            raise FloatingPointError(
                f"non-finite validation loss or output ({loss.item()}) at {where}: the weights "
                "have diverged; lower the learning rate, or set module.nan_policy=skip to go on "
                "without selecting such epochs as best")
        if self._val_non_finite is None:
            self._val_non_finite = batch_idx

    def on_validation_epoch_start(self) -> None:
        self._val_non_finite = None
        self.epoch_outputs.pop("val", None)

    def on_validation_epoch_end(self) -> None:
        scalars = self.val_metrics.compute()
        # Any rank's fault spoils the epoch on every rank, so that they all log the same.
        non_finite = self.trainer.strategy.reduce_boolean_decision(
            self._val_non_finite is not None, all=False)
        if non_finite:
            scalars = {k: torch.full_like(v.float(), float("nan")) for k, v in scalars.items()}
            if not self.trainer.sanity_checking:
                first = ("another rank" if self._val_non_finite is None
                         else f"batch {self._val_non_finite + 1}")
                log.warning("epoch %d: non-finite validation loss or output (first at "
                            "%s); its validation figures are NaN and it cannot be the best "
                            "checkpoint", self.current_epoch + 1, first)
        pwa = scalars.pop("val/pwa").float()
        self.log_dict({k: v.float() for k, v in scalars.items()})
        self.log("val/pwa", pwa, prog_bar=True)
        if self.trainer.sanity_checking or non_finite:
            self.val_metrics.reset()
            self._val_outputs.clear()
            return
        report = self.val_metrics.report()
        for warning in report.warnings:
            log.info("epoch %d, validation: %s", self.current_epoch + 1, warning)
        _, target, features = (torch.cat(t) for t in zip(*self._val_outputs, strict=True))
        self.epoch_outputs["val"] = EpochOutputs(report, features, target)
        self.val_metrics.reset()
        self._val_outputs.clear()

    # -- test -----------------------------------------------------------------------------------
    @property
    def network(self) -> Any:
        """The classifier itself, without ``torch.compile``'s wrapper."""
        return getattr(self.model, "_orig_mod", self.model)

    def load_checkpoint_weights(self, path: str) -> None:
        """The weights of a checkpoint file (``state_dict`` only; nothing unpickled)."""
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        self.load_state_dict(state if self.mask_head is not None else without_mask_head(state))

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A checkpoint trained with pixel masks tests without them (``eval.py``)."""
        if self.mask_head is None and isinstance(checkpoint.get("state_dict"), dict):
            checkpoint["state_dict"] = without_mask_head(checkpoint["state_dict"])

    def on_test_epoch_start(self) -> None:
        self.fit_temperature(getattr(self.trainer, "datamodule", None))

    def fit_temperature(self, datamodule: Any) -> None:
        """Calibrate on validation logits so that the Bayes rule reads probabilities."""
        if datamodule is None or datamodule.val_frame is None or len(datamodule.val_frame) == 0:
            return
        logits, targets = [], []
        was_training = self.training
        self.eval()
        trainer = self._trainer  # None outside a trainer; limited runs read as much as it does
        rows = limited_rows(getattr(trainer, "limit_val_batches", None),
                            len(datamodule.val_frame), datamodule.batch_size)
        with torch.no_grad():
            for images, target in datamodule.val_dataloader():
                logits.append(self(images.to(self.device)).float().cpu())
                targets.append(target)
                rows -= len(target)
                if rows <= 0:
                    break
        self.train(was_training)
        logits = torch.cat(logits)
        if not torch.isfinite(logits).all():
            raise FloatingPointError(
                "the model's validation outputs are not finite: its weights have diverged "
                "(and no epoch had finite validation figures to be the best checkpoint); "
                "nothing to calibrate or test: lower the learning rate")
        self.temperature.fit(logits, torch.cat(targets))
        log.info("temperature fitted on validation: %.3f", self.temperature.temperature)
        self.temperature_warning = self.temperature.bound_warning(len(logits))

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Score a batch; returns the decided codes (callbacks see them in
        ``on_test_batch_end``: ``RunFigures`` keeps misclassified images)."""
        images, target = batch
        logits, features = self._logits_and_embeddings(images)
        decided = self.decide(logits)
        self.test_metrics.update(decided, target)
        probs = self.temperature.probabilities(logits.float())
        self._test_outputs.append((logits.detach().float().cpu(), probs.detach().cpu(),
                                   target.cpu(), features.detach().float().cpu()))
        return decided

    def on_test_epoch_end(self) -> None:
        scalars = self.test_metrics.compute()
        self.log_dict({k: v.float() for k, v in scalars.items()})
        self.log("test/temperature", float(self.temperature.temperature))
        report = self.test_metrics.report()
        _, probs, target, features = (torch.cat(t) for t in zip(*self._test_outputs, strict=True))
        rules = compare_decisions(probs, target, self.cost, self.classes, codes=self.trained_codes)
        for rule, rule_report in rules.items():
            self.log(f"test/{rule}/pwa", float(rule_report.pwa))
            self.log(f"test/{rule}/escapes", float(rule_report.escapes))
        self.test_report, self.test_decisions = report, rules
        self.epoch_outputs["test"] = EpochOutputs(report, features, target)
        self.test_metrics.reset()
        self._test_outputs.clear()

    # -- fit ------------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        """Reseed the global generators (dropout, any augmentation drawn outside the data set)
        from ``(seed, epoch, rank)``: epoch ``e`` draws the same whether or not the run was
        resumed, since checkpoints do not hold the random state."""
        seed = self._run_seed()
        if seed is None:
            return
        value = epoch_seed(seed, self.current_epoch, self.global_rank)
        torch.manual_seed(value)
        np.random.seed(value % 2**32)
        random.seed(value)

    def _run_seed(self) -> int | None:
        seed = getattr(getattr(self.trainer, "datamodule", None), "seed", None)
        if seed is None:
            seed = os.environ.get("PL_GLOBAL_SEED")  # set by lightning.seed_everything
        return None if seed is None else int(seed)

    # -- optimisation ---------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        groups = self.model.param_groups(self.lr, self.backbone_lr_factor)
        if self.mask_head is not None:
            groups.append({"name": "mask", "params": list(self.mask_head.parameters()),
                           "lr": self.lr})
        optimizer = self.optimizer_factory(groups)
        if self.scheduler_factory is None:
            return optimizer
        if per_step(self.scheduler_factory):
            total = int(self.trainer.estimated_stepping_batches)
            epochs = max(1, int(self.trainer.max_epochs or 1))
            scheduler = self.scheduler_factory(optimizer, total_steps=total,
                                               steps_per_epoch=max(1, total // epochs))
            interval = "step"
        else:
            scheduler, interval = self.scheduler_factory(optimizer), "epoch"
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler,
                                                         "interval": interval}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["vqc"] = {"class_names": list(self.classes.names),
                             "open_set": self.classes.open_set, "good": self.classes.good,
                             "model": getattr(self.model, "name", type(self.model).__name__),
                             "temperature": float(self.temperature.temperature)}


def per_step(factory: Callable[..., Any]) -> bool:
    """Whether a scheduler factory takes the run's step counts (and is stepped every step)."""
    try:
        return "total_steps" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
