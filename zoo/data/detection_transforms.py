"""Box-aware training and validation transforms for detection (torchvision ``transforms.v2``).

:class:`LetterboxTransform` is :func:`~zoo.data.letterbox.letterbox` as a ``v2`` step, so boxes move with the
pixels through it and through the augmentation :func:`detection_transforms` builds; :func:`collate` batches
the results. Separate from :mod:`zoo.data.letterbox`, which inference uses without torchvision, and from the
data sources and the DataModule in :mod:`zoo.data.detection_sources` and :mod:`zoo.data.detection`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from zoo.data.letterbox import PAD_VALUE, Letterbox, placement
from zoo.errors import ConfigError, DataError, closest


class LetterboxTransform(v2.Transform):
    """:func:`letterbox` as a ``transforms.v2`` step: image, boxes and masks move together.

    Boxes use :meth:`Letterbox.to_input`, the exact mapping inference uses to go back, so ground truth
    and predictions agree to the float. The image stays in its dtype (uint8 pads with 114).
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = int(size)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = _canvas(flat_inputs)
        nh, nw, top, left = placement(h, w, self.size)
        return {"resized": [nh, nw], "padding": [left, top, self.size - nw - left, self.size - nh - top], "box": Letterbox.fit(h, w, self.size)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.BoundingBoxes):
            boxes = inpt if inpt.is_floating_point() else inpt.to(torch.float32)  # int formats would round
            xyxy = TF.convert_bounding_box_format(boxes, new_format=tv_tensors.BoundingBoxFormat.XYXY)
            moved = params["box"].to_input(xyxy.as_subclass(torch.Tensor)).to(boxes.dtype)
            out = tv_tensors.wrap(moved, like=xyxy, canvas_size=(self.size, self.size))
            return TF.convert_bounding_box_format(out, new_format=inpt.format)
        if isinstance(inpt, tv_tensors.Mask):
            out = TF.resize(inpt, params["resized"], interpolation=v2.InterpolationMode.NEAREST)
            return TF.pad(out, params["padding"], fill=0)
        if isinstance(inpt, (Image.Image, tv_tensors.Image)) or type(inpt) is torch.Tensor:
            out = TF.resize(inpt, params["resized"], interpolation=v2.InterpolationMode.BILINEAR, antialias=True)
            floating = isinstance(out, torch.Tensor) and out.is_floating_point()
            return TF.pad(out, params["padding"], fill=PAD_VALUE if floating else 114)
        return inpt  # videos, keypoints: not used by the zoo's detectors

    def extra_repr(self) -> str:
        return f"size={self.size}"


def _canvas(flat_inputs: list[Any]) -> tuple[int, int]:
    """``(height, width)`` of the sample: the image's, else the boxes' canvas."""
    for x in flat_inputs:
        if isinstance(x, (Image.Image, tv_tensors.Image)) or type(x) is torch.Tensor:
            h, w = TF.get_size(x)
            return int(h), int(w)
    for x in flat_inputs:
        if isinstance(x, tv_tensors.BoundingBoxes):
            return tuple(int(v) for v in x.canvas_size)
    raise TypeError("LetterboxTransform needs an image (PIL, tensor or tv_tensors.Image) or BoundingBoxes in its input")


AUGMENT_DEFAULTS: dict[str, Any] = {
    "color_jitter": 0.3,  # brightness/contrast/saturation strength; hue gets a quarter of it
    "scale": (0.5, 1.5),  # zoom range of the random affine (scale jitter)
    "translate": 0.1,  # random shift, as a fraction of the side
    "affine": 1.0,  # probability of applying the scale/shift
    "hflip": 0.5,
    "min_box_size": 2.0,  # boxes narrower or lower than this (input pixels) after augmentation are dropped
}


def _augment_options(augment_cfg: Any) -> dict[str, Any]:
    """``augment_cfg`` (dict, DictConfig or None) over the defaults, with each value checked."""
    if augment_cfg is None:
        given: dict[str, Any] = {}
    else:
        try:
            from omegaconf import DictConfig, OmegaConf

            given = OmegaConf.to_container(augment_cfg, resolve=True) if isinstance(augment_cfg, DictConfig) else dict(augment_cfg)
        except (TypeError, ValueError):
            raise ConfigError(f"data.augment must be a mapping of options ({', '.join(AUGMENT_DEFAULTS)}), not {augment_cfg!r}") from None
    for key in given:
        if key not in AUGMENT_DEFAULTS:
            hint = closest(str(key), AUGMENT_DEFAULTS)
            raise ConfigError(
                f"unknown detection augment option data.augment.{key}"
                + (f"; did you mean {', '.join(hint)}?" if hint else "")
                + f" Valid: {', '.join(AUGMENT_DEFAULTS)}"
            )
    opts = {**AUGMENT_DEFAULTS, **{k: v for k, v in given.items() if v is not None}}
    scale = opts["scale"]
    if not (isinstance(scale, Sequence) and len(scale) == 2 and 0 < float(scale[0]) <= float(scale[1])):
        raise ConfigError(f"data.augment.scale must be [low, high] with 0 < low <= high (e.g. [0.5, 1.5]), not {scale!r}")
    opts["scale"] = (float(scale[0]), float(scale[1]))
    for key in ("affine", "hflip"):
        if not 0 <= float(opts[key]) <= 1:
            raise ConfigError(f"data.augment.{key} is a probability in [0, 1], not {opts[key]!r}")
    for key in ("color_jitter", "translate", "min_box_size"):
        if float(opts[key]) < 0:
            raise ConfigError(f"data.augment.{key} must be >= 0, not {opts[key]!r}")
    if float(opts["translate"]) > 1:
        raise ConfigError(f"data.augment.translate is a fraction of the side in [0, 1], not {opts['translate']!r}")
    return opts


def detection_transforms(img_size: int, train: bool, augment_cfg: Any = None) -> v2.Compose:
    """``(uint8 image, target) -> (float 0..1 [3, S, S], target)`` with boxes in input pixels.

    Train: colour jitter, letterbox, scale/shift jitter (grey fill), horizontal flip, then boxes that
    became too small or left the image are dropped with their labels. Val: letterbox only, so its boxes
    are exactly :meth:`DetectionDataModule.val_annotations`.
    """
    steps: list[Callable] = []
    if train:
        opts = _augment_options(augment_cfg)
        strength = float(opts["color_jitter"])
        if strength > 0:
            steps.append(v2.ColorJitter(brightness=strength, contrast=strength, saturation=strength, hue=min(strength / 4, 0.5)))
    steps.append(LetterboxTransform(img_size))
    if train:
        shift = float(opts["translate"])
        if float(opts["affine"]) > 0 and (opts["scale"] != (1.0, 1.0) or shift > 0):
            affine = v2.RandomAffine(
                degrees=0,  # rotation would loosen the boxes
                translate=(shift, shift),
                scale=opts["scale"],
                interpolation=v2.InterpolationMode.BILINEAR,
                fill={tv_tensors.Image: 114, "others": 0},
            )
            steps.append(v2.RandomApply([affine], p=float(opts["affine"])))
        if float(opts["hflip"]) > 0:
            steps.append(v2.RandomHorizontalFlip(float(opts["hflip"])))
        steps.append(v2.ClampBoundingBoxes())
        steps.append(v2.SanitizeBoundingBoxes(min_size=max(float(opts["min_box_size"]), 1e-3)))
    steps.append(v2.ToDtype(torch.float32, scale=True))
    return v2.Compose(steps)


def collate(batch: Sequence[tuple[torch.Tensor, dict[str, Any]]]) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Images stacked to ``[B, 3, S, S]``; targets stay a list (each image has its own box count)."""
    if not batch:
        raise DataError("collate got an empty batch")
    shapes = {tuple(image.shape) for image, _ in batch}
    if len(shapes) > 1:
        raise DataError(
            f"collate needs images of one size, got {sorted(shapes)}; "
            "transform them with detection_transforms(img_size, ...) so they are letterboxed to one square"
        )
    images = torch.stack([image.as_subclass(torch.Tensor) for image, _ in batch])
    targets = []
    for _, target in batch:
        plain = {
            "boxes": target["boxes"].as_subclass(torch.Tensor).float().reshape(-1, 4),
            "labels": torch.as_tensor(target["labels"]).long().reshape(-1),
            "image_id": int(target["image_id"]),
        }
        if "crowd_boxes" in target:
            plain["crowd_boxes"] = target["crowd_boxes"].as_subclass(torch.Tensor).float().reshape(-1, 4)
            plain["crowd_labels"] = torch.as_tensor(target["crowd_labels"]).long().reshape(-1)
        targets.append(plain)
    return images, targets
