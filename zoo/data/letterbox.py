"""The square input every detector in the zoo takes, and how to map boxes back from it.

An RGB image letterboxed to a square of ``size`` pixels (longest side resized to ``size``, aspect ratio kept,
the rest padded with grey 114), as floats in 0..1; detectors return boxes in that square's pixels.
:func:`letterbox` makes that input, :class:`Letterbox` records how to map boxes back to the original image,
and :func:`placement` is the one placement rule training (:mod:`zoo.data.detection_transforms`) shares.

Separate from :mod:`zoo.data.detection` so that inference and export (``zoo predict``, ``zoo export``) can
letterbox an image with torch alone: importing this module loads neither Lightning nor torchvision.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

from zoo.errors import DataError

PAD_VALUE = 114 / 255  # the grey YOLO-family detectors are trained with around letterboxed images


@dataclass(frozen=True)
class Letterbox:
    """How an image of ``(height, width)`` was placed in the square input: scale, then offset."""

    scale: float
    pad_x: float
    pad_y: float
    height: int
    width: int

    @classmethod
    def fit(cls, height: int, width: int, size: int) -> Letterbox:
        """The placement :func:`letterbox` uses for an image of ``(height, width)`` in a ``size`` square."""
        nh, nw, top, left = placement(height, width, size)
        return cls(scale=nw / width if width else size / max(height, width, 1), pad_x=left, pad_y=top, height=height, width=width)

    def to_original(self, boxes: torch.Tensor) -> torch.Tensor:
        """xyxy boxes in input pixels -> xyxy boxes in the original image's pixels (clipped to it)."""
        out = boxes.clone()
        out[..., 0::2] = ((out[..., 0::2] - self.pad_x) / self.scale).clamp(0, self.width)
        out[..., 1::2] = ((out[..., 1::2] - self.pad_y) / self.scale).clamp(0, self.height)
        return out

    def to_input(self, boxes: torch.Tensor) -> torch.Tensor:
        """xyxy boxes in the original image's pixels -> input pixels."""
        out = boxes.clone().float()
        out[..., 0::2] = out[..., 0::2] * self.scale + self.pad_x
        out[..., 1::2] = out[..., 1::2] * self.scale + self.pad_y
        return out


def letterbox(image: torch.Tensor, size: int) -> tuple[torch.Tensor, Letterbox]:
    """A ``[3, H, W]`` image (uint8 0..255 or float 0..1) -> ``[3, size, size]`` float 0..1, centred."""
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"letterbox takes a [3, H, W] RGB image tensor, not shape {tuple(image.shape)}")
    x = image.float() / 255 if image.dtype == torch.uint8 else image.float()
    h, w = int(x.shape[1]), int(x.shape[2])
    nh, nw, top, left = placement(h, w, size)
    if (nh, nw) != (h, w):
        x = F.interpolate(x[None], size=(nh, nw), mode="bilinear", align_corners=False, antialias=size < max(h, w))[0]
    x = F.pad(x, (left, size - nw - left, top, size - nh - top), value=PAD_VALUE)
    return x.clamp_(0, 1), Letterbox.fit(h, w, size)


def placement(h: int, w: int, size: int) -> tuple[int, int, int, int]:
    """Resized ``(height, width)`` and ``(top, left)`` padding: one rule for inference and training."""
    scale = size / max(h, w, 1)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    return nh, nw, (size - nh) // 2, (size - nw) // 2


def check_img_size(size: Any, option: str = "imgsz") -> int:
    """A detector input side: a whole number of pixels, a multiple of 32 (the coarsest stride)."""
    try:
        size = int(size)
    except (TypeError, ValueError):
        raise DataError(f"{option} must be a whole number of pixels (a multiple of 32, e.g. 640), not {size!r}") from None
    if size < 32 or size % 32:
        low = max(32, size // 32 * 32)
        high = low + 32 if low < size else low
        valid = f"{low} or {high}" if high != low else str(low)
        raise DataError(
            f"detection {option} {size} is not a multiple of 32 (the detector's coarsest stride); "
            f"nearest valid: {valid} (set {option}={low if size - low <= high - size else high})"
        )
    return size
