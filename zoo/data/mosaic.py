"""Mosaic and mixup for detection training: one training image made from several samples, boxes included.

torchvision's ``transforms.v2`` transform one sample at a time; these need other samples of the dataset, so they
are a dataset wrapper, :class:`TrainingDetectionDataset`. The pasting is written here (torchvision has no mosaic);
everything after it is ``transforms.v2`` on ``tv_tensors``: the random affine, the centre crop back to the
input size, clamping boxes to the image and dropping the ones too small to learn from, with their labels.

- Mosaic (YOLOv4, Bochkovskiy et al., arXiv:2004.10934, Sec. 3.3): four images, each resized so its long side
  is the input size S, meet at a random centre on a 2S x 2S grey canvas; each box is clipped to its own image's
  tile. The canvas then gets the random affine (scale, shift, rotation, shear) and its central S x S is kept.
- Mixup for detection (Zhang et al., "Bag of Freebies for Training Object Detection Neural Networks",
  arXiv:1902.04103): two training images blended with a ratio drawn from Beta(32, 32), both sets of boxes kept.
- Copy-paste (Ghiasi et al., "Simple Copy-Paste is a Strong Data Augmentation Method for Instance
  Segmentation", arXiv:2012.07177), boxes-only: another image's objects pasted as rectangular crops (no instance
  masks in box datasets), objects they hide dropped.
- :class:`CloseMosaic`: the strong augmentations off for the last N epochs, so the model ends on images like
  the ones it will see (YOLOv10 closes mosaic for its last 10 epochs, RT-DETRv2 stops its crops and multi-scale
  at epoch 71: docs/sources.md).

Randomness comes from torch's generator, which Lightning seeds per worker from the run's seed, so a run's
augmented images are the same every time it is repeated.
"""
from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from zoo.data.detection_transforms import STRONG, MultiScaleCollate, augment_options, training_steps

FILL = 114  # the grey of letterbox padding and of the canvas around a mosaic


class TrainingDetectionDataset(Dataset):
    """Training samples from ``base`` (items ``(uint8 image, {boxes, labels, image_id})``, untransformed) augmented
    as ``augment_cfg`` says (``data.augment``): a mosaic with probability ``mosaic``, else one letterboxed image;
    another image's objects pasted in with probability ``copy_paste``; mixed with a second sample with probability
    ``mixup``; then colour, flip, clamping, dropping tiny boxes. With none of the three on, exactly
    :func:`~zoo.data.detection_transforms.detection_transforms`."""

    def __init__(self, base: Dataset, size: int, augment_cfg: Any = None) -> None:
        self.base, self.size = base, int(size)
        self.options = augment_options(augment_cfg)
        self.steps = training_steps(self.size, self.options)

    def close(self) -> bool:
        """Turn off mosaic, mixup, copy-paste, photometric distort, zoom-out and IoU crop; False when none was on."""
        if not any(float(self.options[k]) for k in STRONG):
            return False
        self.options = {**self.options, **dict.fromkeys(STRONG, 0.0)}
        self.steps = training_steps(self.size, self.options)
        return True

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[Any, dict[str, Any]]:
        mosaic_p, mixup_p, paste_p = (float(self.options[k]) for k in ("mosaic", "mixup", "copy_paste"))
        if not (mosaic_p or mixup_p or paste_p):
            return self.steps["plain"](*self.base[index])
        image, target = self.sample(index)
        if paste_p > 0 and float(torch.rand(())) < paste_p:
            image, target = copy_paste(image, target, *self.steps["single"](*self.base[int(torch.randint(len(self.base), ()))]))
        if mixup_p > 0 and float(torch.rand(())) < mixup_p:
            other, other_target = self.sample(int(torch.randint(len(self.base), ())))
            ratio = float(torch.distributions.Beta(32.0, 32.0).sample())
            image = tv_tensors.wrap((image.float() * ratio + other.float() * (1 - ratio)).round().to(torch.uint8), like=image)
            boxes = torch.cat([target["boxes"].as_subclass(torch.Tensor), other_target["boxes"].as_subclass(torch.Tensor)])
            target = {**target, "boxes": tv_tensors.wrap(boxes, like=target["boxes"]),
                      "labels": torch.cat([target["labels"], other_target["labels"]])}
        return self.steps["finish"](image, target)

    def sample(self, index: int) -> tuple[Any, dict[str, Any]]:
        """One ``size x size`` image with its boxes, before mixup and the finishing steps."""
        mosaic_p = float(self.options["mosaic"])
        if mosaic_p > 0 and float(torch.rand(())) < mosaic_p:
            return self.steps["mosaic_geometry"](*mosaic(self.base, index, self.size))
        return self.steps["single"](*self.base[index])


def mosaic(base: Dataset, index: int, size: int) -> tuple[tv_tensors.Image, dict[str, Any]]:
    """Sample ``index`` and three random others on a ``2 * size`` square canvas, meeting at a random centre in
    its middle half; boxes moved with their pixels and clipped to their own tile (beyond it is another image)."""
    s, canvas_side = size, 2 * size
    canvas = torch.full((3, canvas_side, canvas_side), FILL, dtype=torch.uint8)
    xc, yc = (int(v) for v in torch.randint(s // 2, s + s // 2 + 1, (2,)))
    boxes, labels = [], []
    first = None
    for k, j in enumerate([index, *torch.randint(len(base), (3,)).tolist()]):
        image, target = base[j]
        first = first or target
        h, w = image.shape[-2:]
        r = s / max(h, w)
        nh, nw = max(1, round(h * r)), max(1, round(w * r))
        image = TF.resize(image.as_subclass(torch.Tensor), [nh, nw], antialias=True)
        # the tile on the canvas (x1, y1, x2, y2), the tile's corner touching (xc, yc), cut at the canvas edge
        x1 = max(xc - nw, 0) if k in (0, 2) else xc
        x2 = xc if k in (0, 2) else min(xc + nw, canvas_side)
        y1 = max(yc - nh, 0) if k in (0, 1) else yc
        y2 = yc if k in (0, 1) else min(yc + nh, canvas_side)
        # the part of the resized image that lands there: the side facing the centre
        ix = nw - (x2 - x1) if k in (0, 2) else 0
        iy = nh - (y2 - y1) if k in (0, 1) else 0
        canvas[:, y1:y2, x1:x2] = image[:, iy:iy + (y2 - y1), ix:ix + (x2 - x1)]
        moved = target["boxes"].as_subclass(torch.Tensor).float() * r + torch.tensor([x1 - ix, y1 - iy] * 2, dtype=torch.float32)
        clipped = torch.stack([moved[:, 0].clamp(x1, x2), moved[:, 1].clamp(y1, y2), moved[:, 2].clamp(x1, x2),
                               moved[:, 3].clamp(y1, y2)], 1)
        keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
        boxes.append(clipped[keep])
        labels.append(target["labels"][keep])
    target = {"boxes": tv_tensors.BoundingBoxes(torch.cat(boxes).reshape(-1, 4), format="XYXY",
                                                canvas_size=(canvas_side, canvas_side)),
              "labels": torch.cat(labels), "image_id": first["image_id"]}
    return tv_tensors.Image(canvas), target


def copy_paste(image: tv_tensors.Image, target: dict[str, Any], donor: tv_tensors.Image, donor_target: dict[str, Any],
               covered: float = 0.6) -> tuple[tv_tensors.Image, dict[str, Any]]:
    """The donor's objects pasted as rectangular crops at random places of ``image`` (boxes only: without instance
    masks a crop carries its background along), never onto each other; an object of ``image`` whose box ends up more
    than ``covered`` hidden is dropped with its label."""
    side_h, side_w = image.shape[-2:]
    pixels = image.as_subclass(torch.Tensor).clone()
    pasted = torch.zeros(side_h, side_w, dtype=torch.bool)
    boxes, labels = [], []
    for box, label in zip(donor_target["boxes"].as_subclass(torch.Tensor).round().int().tolist(), donor_target["labels"].tolist(), strict=True):
        x1, y1, x2, y2 = box
        w, h = x2 - x1, y2 - y1
        if w < 2 or h < 2 or w > side_w or h > side_h:
            continue
        px, py = int(torch.randint(side_w - w + 1, ())), int(torch.randint(side_h - h + 1, ()))
        if pasted[py:py + h, px:px + w].any():
            continue
        pixels[:, py:py + h, px:px + w] = donor.as_subclass(torch.Tensor)[:, y1:y2, x1:x2]
        pasted[py:py + h, px:px + w] = True
        boxes.append([px, py, px + w, py + h])
        labels.append(label)
    if not boxes:
        return image, target
    own = target["boxes"].as_subclass(torch.Tensor)
    keep = torch.tensor([not _hidden(pasted, b, covered) for b in own.tolist()], dtype=torch.bool).reshape(-1)
    merged = torch.cat([own[keep], torch.tensor(boxes, dtype=own.dtype)])
    return tv_tensors.wrap(pixels, like=image), {**target, "boxes": tv_tensors.wrap(merged, like=target["boxes"]),
                                                 "labels": torch.cat([target["labels"][keep], torch.tensor(labels, dtype=target["labels"].dtype)])}


def _hidden(pasted: torch.Tensor, box: list[float], covered: float) -> bool:
    x1, y1, x2, y2 = (round(v) for v in box)
    area = pasted[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)]
    return area.numel() > 0 and int(area.sum()) > covered * area.numel()  # counts: no float32 rounding at the line


class CloseMosaic(Callback):
    """The last ``epochs`` epochs train without the strong augmentations (``data.augment.close_mosaic``): mosaic,
    mixup, photometric distort, zoom-out, IoU crop and multi-scale batches, as YOLO's ``close_mosaic`` and
    RT-DETR's ``stop_epoch`` do."""

    def __init__(self, epochs: int) -> None:
        self.epochs = int(epochs)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.max_epochs is None or trainer.max_epochs < 0 or trainer.current_epoch < trainer.max_epochs - self.epochs:
            return
        loader = trainer.train_dataloader
        dataset, batches = getattr(loader, "dataset", None), getattr(loader, "collate_fn", None)
        closed = isinstance(dataset, TrainingDetectionDataset) and dataset.close()
        if isinstance(batches, MultiScaleCollate) and batches.sizes != [batches.img_size]:
            batches.sizes, closed = [batches.img_size], True
        if closed:
            rank_zero_info(f"close_mosaic: strong augmentation off from epoch {trainer.current_epoch} (the last {self.epochs})")
