"""``LanguageModelingTask``: next-token prediction as a LightningModule.

The loss is the mean cross-entropy over every predicted token (in nats); validation also logs bits per
token (``val/bpt`` = loss / ln 2: bits per byte for the byte-level MatLM). Optimizer, schedule and EMA
come from :class:`~zoo.tasks.base.TaskBase`, as for the other tasks.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from zoo.tasks.base import TaskBase, default_optim, model_of


class TokenCrossEntropy(nn.Module):
    """Cross-entropy of logits ``[B, L, V]`` against next tokens ``[B, L]``, averaged over all tokens."""

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.flatten(0, -2).float(), targets.flatten())


class LanguageModelingTask(TaskBase):
    def __init__(self, model: str | nn.Module, optim: dict[str, Any] | None = None, ema_decay: float | None = None,
                 compile: bool = False, pretrained: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.model = model_of(model, None, pretrained)
        self.optim = dict(optim or default_optim())
        self.train_loss = TokenCrossEntropy()
        self.ema = self.make_ema(ema_decay)
        self.__dict__["_train_forward"] = torch.compile(self.model) if compile else self.model

    @classmethod
    def for_data(cls, model: nn.Module, data, optim: dict[str, Any], **options: Any) -> LanguageModelingTask:
        return cls(model, optim=optim, **options)  # the vocabulary is the model's

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.eval_model()(tokens)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self._train_forward(x)
        loss = self.train_loss(logits, y) + self.plugin_losses(x, logits, y, y.numel())
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True, batch_size=y.numel())
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        loss = self.train_loss(self(x), y)
        n = y.numel()
        self.log("val/loss", loss, prog_bar=True, on_epoch=True, sync_dist=True, batch_size=n)
        self.log("val/bpt", loss / math.log(2), on_epoch=True, sync_dist=True, batch_size=n)
