"""The Lightning module: a ``Classifier`` trained on the trained classes, scored on all."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from vqc.data.classes import ClassSet
from vqc.metrics import ScoringMetrics, TemperatureScaler, compare_decisions, decide, sub_matrix
from vqc.training.figures import FigureSink

log = logging.getLogger(__name__)


class ClassifierModule(L.LightningModule):
    """Trains ``model`` and logs PWA beside what it hides, on validation and test.

    ``cost`` is the full cost matrix (trained classes plus the open-set class, if any); the
    classifier's outputs are the trained classes, whose codes are ``classes.trained_codes``.
    ``decision`` is how scores become a class: ``argmax`` or the ``bayes`` rule (least expected
    cost). On test, a temperature is fitted on validation logits and both rules are reported.
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
        figures: FigureSink | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.classes = classes
        self.loss_fn = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.lr, self.backbone_lr_factor = lr, backbone_lr_factor
        self.decision = decision
        self.channels_last = channels_last
        self.nan_policy = nan_policy
        self.figures = figures or FigureSink()
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
        self._misclassified: list[tuple[Tensor, int, int]] = []
        self.temperature = TemperatureScaler()

    # -- forward --------------------------------------------------------------------------------
    def _prepare(self, images: Tensor) -> Tensor:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def forward(self, images: Tensor) -> Tensor:
        return self.model(self._prepare(images))

    def _logits_and_embeddings(self, images: Tensor) -> tuple[Tensor, Tensor]:
        features = self.model.embed(self._prepare(images))
        return self.model.head(features), features

    def decide(self, logits: Tensor) -> Tensor:
        """Class codes decided from logits by the configured rule."""
        probs = self.temperature.probabilities(logits.float())
        return decide(probs, self.decision, self.trained_cost.to(probs.device), None)

    # -- training -------------------------------------------------------------------------------
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor | None:
        images, target = batch
        logits = self(images)
        loss = self.loss_fn(logits, target)
        if not torch.isfinite(loss):
            message = (f"non-finite training loss ({loss.item()}) at epoch {self.current_epoch}, "
                       f"batch {batch_idx}")
            if self.nan_policy == "skip":
                log.warning("%s: batch skipped (module.nan_policy=skip)", message)
                return None
            raise FloatingPointError(f"{message}; lower the learning rate, or set "
                                     "module.nan_policy=skip to skip such batches")
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True,
                 batch_size=len(target))
        return loss

    # -- validation -----------------------------------------------------------------------------
    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        images, target = batch
        logits, features = self._logits_and_embeddings(images)
        loss = self.loss_fn(logits, target)
        self.log("val/loss", loss, on_epoch=True, batch_size=len(target), sync_dist=True)
        self.val_metrics.update(self.decide(logits), target)
        self._val_outputs.append((logits.detach().float().cpu(), target.cpu(),
                                  features.detach().float().cpu()))

    def on_validation_epoch_end(self) -> None:
        scalars = self.val_metrics.compute()
        pwa = scalars.pop("val/pwa").float()
        self.log_dict({k: v.float() for k, v in scalars.items()})
        self.log("val/pwa", pwa, prog_bar=True)
        if self.trainer.sanity_checking:
            self.val_metrics.reset()
            self._val_outputs.clear()
            return
        report = self.val_metrics.report()
        for warning in report.warnings:
            log.info("epoch %d, validation: %s", self.current_epoch, warning)
        if self.figures.due(self.current_epoch, self.trainer.max_epochs):
            _, target, features = (torch.cat(t) for t in zip(*self._val_outputs, strict=True))
            self.figures.epoch_figures(self, "val", report, features, target, self.classes)
        self.val_metrics.reset()
        self._val_outputs.clear()

    # -- test -----------------------------------------------------------------------------------
    def on_test_epoch_start(self) -> None:
        self._fit_temperature()

    def _fit_temperature(self) -> None:
        self._fit_temperature_from(getattr(self.trainer, "datamodule", None))

    def _fit_temperature_from(self, datamodule: Any) -> None:
        """Calibrate on validation logits so that the Bayes rule reads probabilities."""
        if datamodule is None or datamodule.val_frame is None or len(datamodule.val_frame) == 0:
            return
        logits, targets = [], []
        was_training = self.training
        self.eval()
        with torch.no_grad():
            for images, target in datamodule.val_dataloader():
                logits.append(self(images.to(self.device)).float().cpu())
                targets.append(target)
        self.train(was_training)
        self.temperature.fit(torch.cat(logits), torch.cat(targets))
        log.info("temperature fitted on validation: %.3f", self.temperature.temperature)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        images, target = batch
        logits, features = self._logits_and_embeddings(images)
        decided = self.decide(logits)
        self.test_metrics.update(decided, target)
        wrong = (decided != target).nonzero().flatten()
        room = self.figures.max_misclassified - len(self._misclassified)
        for i in wrong[:max(room, 0)].tolist():
            self._misclassified.append((images[i].detach().float().cpu(), int(target[i]),
                                        int(decided[i])))
        probs = self.temperature.probabilities(logits.float())
        self._test_outputs.append((logits.detach().float().cpu(), probs.detach().cpu(),
                                   target.cpu(), features.detach().float().cpu()))

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
        self.figures.epoch_figures(self, "test", report, features, target, self.classes)
        self.figures.misclassified_grid(self, "test", self._misclassified, self.classes)
        self.test_metrics.reset()
        self._test_outputs.clear()
        self._misclassified.clear()

    # -- optimisation ---------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        groups = self.model.param_groups(self.lr, self.backbone_lr_factor)
        optimizer = self.optimizer_factory(groups)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler,
                                                         "interval": "epoch"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["vqc"] = {"class_names": list(self.classes.names),
                             "open_set": self.classes.open_set, "good": self.classes.good,
                             "model": getattr(self.model, "name", type(self.model).__name__),
                             "temperature": float(self.temperature.temperature)}
