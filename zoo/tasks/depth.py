"""``DepthTask``: monocular depth estimation as a LightningModule, shared by every depth model.

The output contract (docs/architecture.md): a model returns depth ``[B, 1, H, W]`` in metres at its input's
resolution (a model may return a smaller map in training; it is upsampled, bilinear, to the ground truth first).
Losses over the valid pixels (ground truth above 0): ``l1``, FastDepth's (Wofk et al., arXiv:1903.03273), or ``silog``,
the scale-invariant log error of Eigen et al. (arXiv:1406.2283), ``mean(d^2) - lambda * mean(d)^2`` with
``d = log(pred) - log(truth)``, which forgives a global scale by ``lambda`` (0 is plain log MSE, 1 fully invariant).
Validation reports each image's errors (:func:`zoo.metrics.depth_errors`) averaged over the images, on the EMA of the
weights when enabled; ``val/delta1`` picks the best checkpoint.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.metrics import DEPTH_METRICS
from zoo.tasks.base import TaskBase, default_optim, model_of

LOSSES = ("l1", "silog")
MIN_DEPTH = 1e-3  # metres: predictions are clamped here before logs and ratios


def upsample_depth(pred: torch.Tensor, size) -> torch.Tensor:
    return pred if tuple(pred.shape[-2:]) == tuple(size) else F.interpolate(pred, size=tuple(size), mode="bilinear", align_corners=False)


def depth_loss(pred: torch.Tensor, target: torch.Tensor, loss: str = "l1", silog_lambda: float = 0.5) -> torch.Tensor:
    """The loss over the valid pixels (``target > 0``); 0 with a gradient when a batch has none."""
    valid = target > 0
    if not valid.any():
        return pred.sum() * 0.0
    p, t = pred[valid], target[valid]
    if loss == "l1":
        return (p - t).abs().mean()
    d = torch.log(p.clamp(min=MIN_DEPTH)) - torch.log(t)
    return (d ** 2).mean() - silog_lambda * d.mean() ** 2


class DepthTask(TaskBase):
    def __init__(
        self,
        model: str | nn.Module,
        optim: dict[str, Any] | None = None,
        loss: str = "l1",
        silog_lambda: float = 0.5,
        max_depth: float = 10.0,
        ema_decay: float | None = None,
        pretrained: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        from zoo.errors import ConfigError

        if loss not in LOSSES:
            raise ConfigError(f"task.loss={loss!r}: depth losses are {', '.join(LOSSES)}")
        if not 0 <= silog_lambda <= 1:
            raise ConfigError(f"task.silog_lambda={silog_lambda}: between 0 (log MSE) and 1 (fully scale-invariant)")
        self.model = model_of(model, None, pretrained)
        self.optim = dict(optim or default_optim())
        self.loss_name, self.silog_lambda, self.max_depth = loss, silog_lambda, max_depth
        self.ema = self.make_ema(ema_decay)
        from torchmetrics import MeanMetric

        self.scores = nn.ModuleDict({k: MeanMetric(nan_strategy="ignore") for k in DEPTH_METRICS})

    @classmethod
    def for_data(cls, model: nn.Module, data, optim: dict[str, Any], **options: Any) -> DepthTask:
        return cls(model, optim=optim, max_depth=data.max_depth, **options)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.eval_model()(x)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, depth = batch
        pred = upsample_depth(self.model(images).float(), depth.shape[-2:])
        loss = depth_loss(pred, depth, self.loss_name, self.silog_lambda)
        loss = loss + self.plugin_losses(images, pred, depth, images.shape[0])
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True, batch_size=images.shape[0])
        return loss

    def on_validation_epoch_start(self) -> None:
        for metric in self.scores.values():
            metric.reset()

    def validation_step(self, batch, batch_idx: int) -> None:
        from zoo.metrics import depth_errors

        images, depth = batch
        pred = upsample_depth(self(images).float(), depth.shape[-2:]).clamp(MIN_DEPTH, self.max_depth)
        self.log("val/loss", depth_loss(pred, depth, self.loss_name, self.silog_lambda), on_epoch=True, sync_dist=True,
                 batch_size=images.shape[0])
        for name, values in depth_errors(pred, depth).items():
            self.scores[name].update(values)

    def on_validation_epoch_end(self) -> None:
        for name, metric in self.scores.items():  # under DDP: every rank's images
            self.log(f"val/{name}", metric.compute(), prog_bar=name in ("rmse", "delta1"))
