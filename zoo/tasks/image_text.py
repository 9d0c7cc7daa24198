"""``ImageTextTask``: contrastive image-text training (CLIP's loss) and retrieval validation, for image-text models.

A model of this task has ``encode_image``, ``encode_text`` (both L2-normalised), ``tokenize`` and a learned
``logit_scale`` (log of the inverse temperature), as :class:`zoo.models.mobileclip.MobileCLIP` does. The loss is CLIP's
symmetric cross-entropy over the batch's image-text similarities, scaled by ``exp(logit_scale)`` (capped at 100, as
CLIP caps it), with every pair of equal captions counted as a match: a synthetic set's captions repeat within a batch,
and treating a repeat as a negative would push apart what the data says is the same. ``lock_text=True`` trains the
image tower against a frozen text tower (LiT's locking, applied to the other tower), ``lock_image=True`` the reverse; a
locked text tower embeds each distinct caption once. Validation embeds every val pair and reports retrieval
recall@1/5/10 both ways (:func:`zoo.metrics.retrieval_recall`).
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.tasks.base import TaskBase, default_optim, model_of

MAX_LOGIT_SCALE = math.log(100.0)


def clip_loss(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, captions: list[str]) -> torch.Tensor:
    """Symmetric cross-entropy of ``exp(logit_scale) * image @ text.T`` against the pairs with equal captions."""
    logits = logit_scale.clamp(max=MAX_LOGIT_SCALE).exp() * image @ text.T
    index = {c: i for i, c in enumerate(dict.fromkeys(captions))}
    ids = torch.tensor([index[c] for c in captions], device=logits.device)
    same = (ids[:, None] == ids[None, :]).float()
    targets = same / same.sum(1, keepdim=True)  # symmetric, so its columns normalise the same way
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


class ImageTextTask(TaskBase):
    def __init__(
        self,
        model: str | nn.Module,
        optim: dict[str, Any] | None = None,
        lock_text: bool = False,
        lock_image: bool = False,
        ema_decay: float | None = None,
        pretrained: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        from zoo.errors import ConfigError

        self.model = model_of(model, 0, pretrained)
        missing = [a for a in ("encode_image", "encode_text", "tokenize", "logit_scale") if not hasattr(self.model, a)]
        if missing or getattr(self.model, "tower", "both") != "both":
            name = getattr(getattr(self.model, "zoo_spec", None), "name", type(self.model).__name__)
            raise ConfigError(f"{name} is not an image-text model with both towers (it lacks {', '.join(missing) or 'a tower'}); "
                              "image-text recipes train mobileclip* models")
        if lock_text and lock_image:
            raise ConfigError("task.lock_text and task.lock_image together leave nothing to train; drop one")
        for tower, locked in ((self.model.text, lock_text), (self.model.visual, lock_image)):
            if locked:
                tower.requires_grad_(False)
        self.lock_text, self.lock_image = lock_text, lock_image
        self.optim = dict(optim or default_optim())
        self.ema = self.make_ema(ema_decay)
        self.__dict__["_val"] = ([], [], [])  # image embeddings, text embeddings, captions

    @classmethod
    def for_data(cls, model: nn.Module, data, optim: dict[str, Any], **options: Any) -> ImageTextTask:
        return cls(model, optim=optim, **options)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.eval_model().encode_image(x)

    def _embed(self, model: nn.Module, images: torch.Tensor, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        text = self._locked_text(model, captions, images.device) if self.lock_text else model.encode_text(
            model.tokenize(captions).to(images.device))
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.lock_image):
            image = model.encode_image(images)
        return image, text

    @torch.no_grad()
    def _locked_text(self, model: nn.Module, captions: list[str], device) -> torch.Tensor:
        """A frozen text tower's embeddings, each caption's computed once (the tower has no state that changes them)."""
        cache = self.__dict__.setdefault("_text_cache", {})
        new = [c for c in dict.fromkeys(captions) if c not in cache]
        if new:
            was_training = model.text.training
            model.text.eval()
            rows = model.encode_text(model.tokenize(new).to(device))
            model.text.train(was_training)
            cache.update(zip(new, rows))
        return torch.stack([cache[c] for c in captions])

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, captions = batch
        image, text = self._embed(self.model, images, captions)
        loss = clip_loss(image, text, self.model.logit_scale, captions)
        loss = loss + self.plugin_losses(images, (image, text), captions, images.shape[0])
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True, batch_size=images.shape[0])
        self.log("train/temperature", 1 / self.model.logit_scale.detach().clamp(max=MAX_LOGIT_SCALE).exp(), on_step=True,
                 on_epoch=False, batch_size=images.shape[0])
        return loss

    def on_validation_epoch_start(self) -> None:
        self.__dict__["_val"] = ([], [], [])

    def validation_step(self, batch, batch_idx: int) -> None:
        images, captions = batch
        model = self.eval_model()
        image, text = self._embed(model, images, captions)
        self.log("val/loss", clip_loss(image, text, model.logit_scale, captions), on_epoch=True, sync_dist=True,
                 batch_size=images.shape[0])
        images_seen, _, captions_seen = self._val
        images_seen.append(image.float().cpu())
        captions_seen.extend(captions)

    def on_validation_epoch_end(self) -> None:
        from zoo.metrics import retrieval_recall

        images, _, captions = self._val
        if not captions:
            return
        model = self.eval_model()
        gallery = sorted(set(captions))
        with torch.no_grad():
            text = torch.cat([model.encode_text(model.tokenize(gallery[i:i + 256]).to(self.device)).float().cpu()
                              for i in range(0, len(gallery), 256)])
        scores = retrieval_recall(torch.cat(images), text, captions)
        for key in ("i2t_r1", "t2i_r1", "i2t_r5", "t2i_r5"):
            self.log(f"val/{key}", scores[key], prog_bar=key.endswith("r1"))


def trains(spec) -> bool:
    """Whether this task trains a model registered under another task: image-text models are registered as zero-shot
    classifiers (their builders say ``zero_shot``), and contrastive recipes train them."""
    return bool(getattr(spec.builder, "zero_shot", False))
