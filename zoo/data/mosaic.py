"""Mosaic and mixup for detection training: one training image made from several samples, boxes included.

torchvision's ``transforms.v2`` transform one sample at a time; these need other samples of the dataset, so they
are a dataset wrapper, :class:`MixedDetectionDataset`. The pasting is written here (torchvision has no mosaic);
everything after it is ``transforms.v2`` on ``tv_tensors``: the random affine, the centre crop back to the
input size, clamping boxes to the image and dropping the ones too small to learn from, with their labels.

- Mosaic (YOLOv4, Bochkovskiy et al., arXiv:2004.10934, Sec. 3.3): four images, each resized so its long side
  is the input size S, meet at a random centre on a 2S x 2S grey canvas; each box is clipped to its own image's
  tile. The canvas then gets the random affine (scale, shift, rotation, shear) and its central S x S is kept.
- Mixup for detection (Zhang et al., "Bag of Freebies for Training Object Detection Neural Networks",
  arXiv:1902.04103): two training images blended with a ratio drawn from Beta(32, 32), both sets of boxes kept.
- :class:`CloseMosaic`: mosaic and mixup off for the last N epochs, so the model ends on images like the ones
  it will see (YOLOv10's schedule closes mosaic for its last 10 epochs: docs/sources.md).

Randomness comes from torch's generator, which Lightning seeds per worker from the run's seed, so a run's
augmented images are the same every time it is repeated.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

FILL = 114  # the grey of letterbox padding and of the canvas around a mosaic


class MixedDetectionDataset(Dataset):
    """Training samples from ``base`` (items ``(uint8 image, {boxes, labels, image_id})``, untransformed), as a
    mosaic with probability ``mosaic``, else one letterboxed image; then mixed with a second such sample with
    probability ``mixup``; then ``finish`` (colour, flip, clamp, drop tiny boxes, to float).

    ``single(image, target)`` letterboxes one image to ``size`` and applies the random affine;
    ``mosaic_geometry(image, target)`` applies the random affine to a ``2 * size`` canvas and crops its centre."""

    def __init__(self, base: Dataset, size: int, *, mosaic: float, mixup: float, single: Callable,
                 mosaic_geometry: Callable, finish: Callable) -> None:
        self.base, self.size, self.mosaic, self.mixup = base, int(size), float(mosaic), float(mixup)
        self.single, self.mosaic_geometry, self.finish = single, mosaic_geometry, finish

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[Any, dict[str, Any]]:
        image, target = self.sample(index)
        if self.mixup > 0 and float(torch.rand(())) < self.mixup:
            other, other_target = self.sample(int(torch.randint(len(self.base), ())))
            ratio = float(torch.distributions.Beta(32.0, 32.0).sample())
            image = tv_tensors.wrap((image.float() * ratio + other.float() * (1 - ratio)).round().to(torch.uint8), like=image)
            boxes = torch.cat([target["boxes"].as_subclass(torch.Tensor), other_target["boxes"].as_subclass(torch.Tensor)])
            target = {**target, "boxes": tv_tensors.wrap(boxes, like=target["boxes"]),
                      "labels": torch.cat([target["labels"], other_target["labels"]])}
        return self.finish(image, target)

    def sample(self, index: int) -> tuple[Any, dict[str, Any]]:
        """One ``size x size`` image with its boxes, before mixup and the finishing steps."""
        if self.mosaic > 0 and float(torch.rand(())) < self.mosaic:
            return self.mosaic_geometry(*mosaic(self.base, index, self.size))
        return self.single(*self.base[index])


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


class CloseMosaic(Callback):
    """Mosaic and mixup off for the last ``epochs`` epochs of training (``data.augment.close_mosaic``)."""

    def __init__(self, epochs: int) -> None:
        self.epochs = int(epochs)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.max_epochs is None or trainer.max_epochs < 0 or trainer.current_epoch < trainer.max_epochs - self.epochs:
            return
        loader = trainer.train_dataloader
        dataset = getattr(loader, "dataset", None)
        if isinstance(dataset, MixedDetectionDataset) and (dataset.mosaic or dataset.mixup):
            dataset.mosaic = dataset.mixup = 0.0
            rank_zero_info(f"close_mosaic: mosaic and mixup off from epoch {trainer.current_epoch} (the last {self.epochs})")
