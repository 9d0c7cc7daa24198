"""``ClassificationTask``: image classification as a LightningModule.

It owns what is not the model: the loss (label smoothing, or soft targets under timm's mixup/cutmix),
top-1/top-5 metrics, the optimizer (timm's ``create_optimizer_v2``: AdamW, SGD, ... with no weight
decay on norms and biases), the warmup + cosine schedule (timm's ``CosineLRScheduler``, stepped per
update) and an EMA of the weights (timm's ``ModelEmaV3``), which validation and the saved model use.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from zoo.tasks.base import TaskBase, classes_of, default_optim, model_of


class ClassificationTask(TaskBase):
    def __init__(
        self,
        model: str | nn.Module,
        num_classes: int | None = None,
        optim: dict[str, Any] | None = None,
        label_smoothing: float = 0.1,
        mixup: float = 0.0,
        cutmix: float = 0.0,
        ema_decay: float | None = None,
        channels_last: bool = False,
        compile: bool = False,
        pretrained: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.model = model_of(model, num_classes, pretrained)
        num_classes = classes_of(self.model, num_classes)
        self.optim = dict(optim or default_optim())
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.mixup = None
        if mixup > 0 or cutmix > 0:
            from timm.data import Mixup
            from timm.loss import SoftTargetCrossEntropy

            self.mixup = Mixup(mixup_alpha=mixup, cutmix_alpha=cutmix, label_smoothing=label_smoothing, num_classes=num_classes)
            self.train_loss = SoftTargetCrossEntropy()
        else:
            self.train_loss = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.val_loss = nn.CrossEntropyLoss()
        self.ema = self.make_ema(ema_decay)
        self.top1 = MulticlassAccuracy(num_classes=num_classes, top_k=1, average="micro")
        self.top5 = MulticlassAccuracy(num_classes=num_classes, top_k=min(5, num_classes), average="micro")
        # Compiled forward kept outside the module tree, so checkpoints keep the model's own key names.
        self.__dict__["_train_forward"] = torch.compile(self.model) if compile else self.model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.eval_model()(self._prepare(x))

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        if self.mixup is not None:
            x, y = self.mixup(x, y)
        logits = self._train_forward(self._prepare(x))
        loss = self.train_loss(logits, y) + self.plugin_losses(x, logits, y, x.shape[0])
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True, batch_size=x.shape[0])
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.top1(logits, y)
        self.top5(logits, y)
        n = x.shape[0]
        self.log("val/loss", self.val_loss(logits, y), prog_bar=False, on_epoch=True, sync_dist=True, batch_size=n)
        self.log("val/top1", self.top1, prog_bar=True, on_epoch=True, batch_size=n)
        self.log("val/top5", self.top5, on_epoch=True, batch_size=n)

