"""``DetectionTask``: object detection as a LightningModule, shared by every detector family.

The family supplies its training criterion (``model.make_loss()``: for YOLOv10 the consistent dual
assignments of :mod:`zoo.models._tal`; RT-DETR and D-FINE compute their Hungarian-matching loss in their
own forward, which then receives the targets, see :class:`zoo.models.rtdetr.ModelLoss`); in eval mode
every detector returns ``[B, max_det, 6]`` detections, so validation is the same for all: COCO mAP@[.5:.95] and mAP@.5 (:mod:`zoo.metrics`,
torchmetrics with the faster-coco-eval backend) on the EMA of the weights, which is also what the run saves. The optimizer and the
warmup + cosine schedule are the ones every task uses (:mod:`zoo.tasks.base`).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from zoo.tasks.base import TaskBase, classes_of, default_optim, model_of


class DetectionTask(TaskBase):
    def __init__(
        self,
        model: str | nn.Module,
        num_classes: int | None = None,
        optim: dict[str, Any] | None = None,
        class_names: Sequence[str] | None = None,
        ema_decay: float | None = 0.9999,
        channels_last: bool = False,
        compile: bool = False,
        pretrained: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model", "class_names"])
        model = model_of(model, num_classes, pretrained)
        num_classes = classes_of(model, num_classes)
        class_names = class_names or getattr(getattr(model, "zoo_spec", None), "labels", None)
        from zoo.contracts import Detector

        if not isinstance(model, Detector):
            from zoo.errors import ConfigError

            raise ConfigError(f"{type(model).__name__} has no make_loss(): it cannot be trained by DetectionTask")
        self.model = model
        self.criterion = model.make_loss()
        self.optim = dict(optim or default_optim())
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ema = self.make_ema(ema_decay)
        from zoo.metrics import DetectionMetric

        self.metric = DetectionMetric(num_classes, class_names)
        self.__dict__["_train_forward"] = torch.compile(self.model) if compile else self.model

    @classmethod
    def for_data(cls, model: nn.Module, data, optim: dict[str, Any], **options: Any) -> DetectionTask:
        return cls(model, data.num_classes, optim=optim, class_names=data.classes, **options)

    def configure_callbacks(self) -> list:
        """``CloseMosaic`` when the data asks for it (``augment.close_mosaic``), in ``zoo train`` and plain Lightning alike."""
        epochs = getattr(getattr(self.trainer, "datamodule", None), "close_mosaic", 0)
        if not epochs:
            return []
        from zoo.data.mosaic import CloseMosaic

        return [CloseMosaic(epochs)]

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.eval_model()(self._prepare(x))

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, targets = batch
        if getattr(self.criterion, "in_forward", False):  # DETRs build denoising queries from the targets
            outputs = self._train_forward(self._prepare(images), targets)
        else:
            outputs = self._train_forward(self._prepare(images))
        loss, items = self.criterion(outputs, targets)
        n = images.shape[0]
        loss = loss + self.plugin_losses(images, outputs, targets, n)
        if getattr(self.criterion, "reduction", "sum") == "sum":
            # DDP averages gradients over ranks; scaling by their number keeps the per-image gradient of the
            # official recipes (loss summed over the global batch), so their SGD settings carry over.
            loss = loss * self.trainer.world_size
            shown = loss / (n * self.trainer.world_size)  # per image
        else:  # already a mean over the boxes of the batch (DETR losses)
            shown = loss
        self.log("train/loss", shown, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True, batch_size=n)
        self.log_dict({f"train/{k}": v for k, v in items.items()}, on_step=False, on_epoch=True, sync_dist=True, batch_size=n)
        return loss

    def on_validation_epoch_start(self) -> None:
        self.metric.reset()

    def validation_step(self, batch, batch_idx: int) -> None:
        images, targets = batch
        self.metric.update(self(images).float().cpu(), targets)

    def on_validation_epoch_end(self) -> None:
        result = self.metric.compute()  # under DDP: every rank's images (the val loader does not repeat any)
        self.log("val/map", result["map"], prog_bar=True)
        self.log("val/map50", result["map50"], prog_bar=True)
        self.log("val/map75", result["map75"])
