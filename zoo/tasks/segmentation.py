"""``SegmentationTask``: semantic segmentation as a LightningModule, shared by every segmentation model.

The output contract (docs/architecture.md): a model returns logits ``[B, num_classes, H, W]`` at its input's
resolution; in training it may instead return lower-resolution logits, or a tuple ``(main, *auxiliary)`` whose
auxiliary heads (deep supervision) are weighted by ``aux_weight``; each output is upsampled (bilinear) to the mask
before the loss. The loss is cross-entropy over the labelled pixels (``ignore_index`` left out), or its
OHEM form (``loss=ohem``: only the pixels predicted with probability below ``ohem_thresh`` for their class, at
least ``ohem_min_kept`` of them, as mmsegmentation's OHEM sampler and PP-MobileSeg's recipes use), plus a Dice term
(``dice_weight``). Validation reports mean IoU and pixel accuracy from torchmetrics' confusion matrix, summed over
every process's pixels (:func:`zoo.metrics.segmentation_scores`), on the EMA of the weights when enabled.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.tasks.base import TaskBase, classes_of, default_optim, model_of

LOSSES = ("ce", "ohem")


def upsample_to(logits: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Logits resized to ``size`` (H, W) when they differ, bilinear as every segmentation head upsamples."""
    return logits if tuple(logits.shape[-2:]) == tuple(size) else F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


def ohem_cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int, thresh: float, min_kept: int) -> torch.Tensor:
    """Cross-entropy over the hard pixels: those whose probability for their class is below ``thresh``; when fewer
    than ``min_kept`` are, the ``min_kept`` least confident ones."""
    losses = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="none").flatten()
    valid = target.flatten() != ignore_index
    if not valid.any():
        return logits.sum() * 0.0
    losses = losses[valid]
    probability = torch.exp(-losses.detach())  # p of the true class
    hard = probability < thresh
    if int(hard.sum()) < min(min_kept, len(losses)):
        cut = probability.kthvalue(min(min_kept, len(losses))).values
        hard = probability <= cut
    return losses[hard].mean()


def dice_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """1 - the mean over classes of the soft Dice coefficient, over the labelled pixels."""
    valid = (target != ignore_index).unsqueeze(1)
    probability = logits.softmax(1) * valid
    one_hot = F.one_hot(target.clamp(0, logits.shape[1] - 1), logits.shape[1]).permute(0, 3, 1, 2) * valid
    inter = (probability * one_hot).sum((0, 2, 3))
    total = probability.sum((0, 2, 3)) + one_hot.sum((0, 2, 3))
    return 1.0 - ((2 * inter + 1.0) / (total + 1.0)).mean()


class SegmentationTask(TaskBase):
    def __init__(
        self,
        model: str | nn.Module,
        num_classes: int | None = None,
        optim: dict[str, Any] | None = None,
        class_names: Sequence[str] | None = None,
        ignore_index: int = 255,
        loss: str = "ce",
        ohem_thresh: float = 0.7,
        ohem_min_kept: int = 10000,
        dice_weight: float = 0.0,
        aux_weight: float = 0.4,
        ema_decay: float | None = None,
        channels_last: bool = False,
        compile: bool = False,
        pretrained: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model", "class_names"])
        if loss not in LOSSES:
            from zoo.errors import ConfigError

            raise ConfigError(f"task.loss={loss!r}: segmentation losses are {', '.join(LOSSES)}")
        self.model = model_of(model, num_classes, pretrained)
        num_classes = classes_of(self.model, num_classes)
        self.class_names = list(class_names or getattr(getattr(self.model, "zoo_spec", None), "labels", None)
                                or [str(i) for i in range(num_classes)])
        self.optim = dict(optim or default_optim())
        self.ignore_index, self.loss_name = ignore_index, loss
        self.ohem_thresh, self.ohem_min_kept = ohem_thresh, ohem_min_kept
        self.dice_weight, self.aux_weight = dice_weight, aux_weight
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ema = self.make_ema(ema_decay)
        from torchmetrics.classification import MulticlassConfusionMatrix

        self.confusion = MulticlassConfusionMatrix(num_classes, ignore_index=ignore_index)
        self.__dict__["_train_forward"] = torch.compile(self.model) if compile else self.model

    @classmethod
    def for_data(cls, model: nn.Module, data, optim: dict[str, Any], **options: Any) -> SegmentationTask:
        return cls(model, data.num_classes, optim=optim, class_names=data.classes, ignore_index=data.ignore_index, **options)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.eval_model()(self._prepare(x))

    def criterion(self, logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        logits = upsample_to(logits.float(), masks.shape[-2:])
        if self.loss_name == "ohem":
            loss = ohem_cross_entropy(logits, masks, self.ignore_index, self.ohem_thresh, self.ohem_min_kept)
        else:
            loss = F.cross_entropy(logits, masks, ignore_index=self.ignore_index)
        if self.dice_weight:
            loss = loss + self.dice_weight * dice_loss(logits, masks, self.ignore_index)
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, masks = batch
        outputs = self._train_forward(self._prepare(images))
        main, *aux = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        loss = self.criterion(main, masks)
        for extra in aux:
            loss = loss + self.aux_weight * self.criterion(extra, masks)
        loss = loss + self.plugin_losses(images, main, masks, images.shape[0])
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True, batch_size=images.shape[0])
        return loss

    def on_validation_epoch_start(self) -> None:
        self.confusion.reset()

    def validation_step(self, batch, batch_idx: int) -> None:
        images, masks = batch
        logits = upsample_to(self(images).float(), masks.shape[-2:])
        self.confusion.update(logits.argmax(1), masks)
        self.log("val/loss", F.cross_entropy(logits, masks, ignore_index=self.ignore_index), on_epoch=True, sync_dist=True,
                 batch_size=images.shape[0])

    def on_validation_epoch_end(self) -> None:
        from zoo.metrics import segmentation_scores

        scores = segmentation_scores(self.confusion.compute(), self.class_names)  # under DDP: every rank's pixels
        self.log("val/miou", scores["miou"], prog_bar=True)
        self.log("val/pixel_acc", scores["pixel_acc"], prog_bar=True)
