"""Box-aware training and validation transforms for detection (torchvision ``transforms.v2``).

:class:`LetterboxTransform` is :func:`~zoo.data.letterbox.letterbox` as a ``v2`` step, so boxes move with the
pixels through it and through the augmentation :func:`detection_transforms` builds; :func:`collate` batches
the results. Separate from :mod:`zoo.data.letterbox`, which inference uses without torchvision, and from the
data sources and the DataModule in :mod:`zoo.data.detection_sources` and :mod:`zoo.data.detection`.
"""
from __future__ import annotations

from collections.abc import Sequence
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
    "min_box_size": 2.0,  # boxes narrower or lower than this (input pixels, at least 1) after augmentation are dropped
    "degrees": 0.0,  # random rotation range (+-), part of the affine; rotated boxes are their corners' hull
    "shear": 0.0,  # random shear range in degrees (+-), part of the affine
    "hsv": None,  # [hue, saturation, value] jitter strengths (YOLO's hsv_h/s/v) instead of color_jitter
    "mosaic": 0.0,  # probability of a 4-image mosaic (zoo.data.mosaic)
    "mixup": 0.0,  # probability of blending with a second training image, boxes of both kept
    "copy_paste": 0.0,  # probability of pasting another image's objects (rectangular crops) into this one
    "close_mosaic": 0,  # the last N epochs train without mosaic, mixup, copy-paste, photometric, zoom-out, IoU crop, multi-scale
    "photometric": 0.0,  # probability of torchvision's RandomPhotometricDistort (the DETRs' colour step)
    "zoom_out": 0.0,  # probability of zooming out onto a canvas up to 4x the side (SSD, the DETRs)
    "iou_crop": 0.0,  # probability of SSD's random crop keeping boxes at a sampled minimum IoU (MobileDets, DETRs)
    "multi_scale": None,  # [low, high]: each batch resized to img_size x a factor in that range (a multiple of 32)
}


def augment_options(augment_cfg: Any) -> dict[str, Any]:
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
    hsv = opts["hsv"]
    if hsv is not None:
        if not (isinstance(hsv, Sequence) and len(hsv) == 3 and all(0 <= float(v) for v in hsv) and float(hsv[0]) <= 0.5):
            raise ConfigError(f"data.augment.hsv must be [hue <= 0.5, saturation, value], each >= 0 (e.g. [0.015, 0.7, 0.4]), not {hsv!r}")
        opts["hsv"] = tuple(float(v) for v in hsv)
    multi = opts["multi_scale"]
    if multi is not None:
        if not (isinstance(multi, Sequence) and len(multi) == 2 and 0 < float(multi[0]) <= float(multi[1])):
            raise ConfigError(f"data.augment.multi_scale must be [low, high] with 0 < low <= high (e.g. [0.5, 1.5]), not {multi!r}")
        opts["multi_scale"] = (float(multi[0]), float(multi[1]))
    for key in ("affine", "hflip", "mosaic", "mixup", "copy_paste", "photometric", "zoom_out", "iou_crop"):
        if not 0 <= float(opts[key]) <= 1:
            raise ConfigError(f"data.augment.{key} is a probability in [0, 1], not {opts[key]!r}")
    for key in ("color_jitter", "translate", "min_box_size", "degrees", "shear", "close_mosaic"):
        if float(opts[key]) < 0:
            raise ConfigError(f"data.augment.{key} must be >= 0, not {opts[key]!r}")
    if float(opts["close_mosaic"]) != int(opts["close_mosaic"]):
        raise ConfigError(f"data.augment.close_mosaic is a whole number of epochs, not {opts['close_mosaic']!r}")
    if float(opts["translate"]) > 1:
        raise ConfigError(f"data.augment.translate is a fraction of the side in [0, 1], not {opts['translate']!r}")
    return opts


def detection_transforms(img_size: int, train: bool, augment_cfg: Any = None) -> v2.Compose:
    """``(uint8 image, target) -> (float 0..1 [3, S, S], target)`` with boxes in input pixels.

    Train: colour jitter, letterbox, random affine (scale, shift, rotation, shear; grey fill), horizontal flip,
    then boxes that became too small or left the image are dropped with their labels. Val: letterbox only, so
    its boxes are exactly :meth:`DetectionDataModule.val_annotations`. Mosaic and mixup need other samples:
    :class:`~zoo.data.mosaic.TrainingDetectionDataset` builds them around these steps.
    """
    if not train:
        return v2.Compose([LetterboxTransform(img_size), v2.ToDtype(torch.float32, scale=True)])
    return training_steps(img_size, augment_options(augment_cfg))["plain"]


STRONG = ("mosaic", "mixup", "copy_paste", "photometric", "zoom_out", "iou_crop")  # what close_mosaic turns off (and multi_scale)


def training_steps(img_size: int, opts: dict[str, Any]) -> dict[str, v2.Compose]:
    """The steps :class:`~zoo.data.mosaic.TrainingDetectionDataset` runs: ``plain`` (:func:`detection_transforms`,
    when neither mosaic nor mixup is on), or ``single`` / ``mosaic_geometry`` to make one input-sized image and
    ``finish`` after mixing (colour after the mixing, as the images it mixes are letterboxed first)."""
    return {
        "plain": v2.Compose([*_colour(opts), *_crops(opts), LetterboxTransform(img_size), *_affine(opts), *_finish(opts)]),
        "single": v2.Compose([*_crops(opts), LetterboxTransform(img_size), *_affine(opts)]),
        "mosaic_geometry": v2.Compose([*_affine(opts, canvas=2), v2.CenterCrop(img_size)]),
        "finish": v2.Compose([*_colour(opts), *_finish(opts)]),
    }


def _colour(opts: dict[str, Any]) -> list[v2.Transform]:
    photometric = [v2.RandomPhotometricDistort(p=float(opts["photometric"]))] if float(opts["photometric"]) else []
    if opts["hsv"] is not None:
        hue, saturation, value = opts["hsv"]
        return [*photometric, v2.ColorJitter(brightness=value, saturation=saturation, hue=hue)]
    strength = float(opts["color_jitter"])
    jitter = v2.ColorJitter(brightness=strength, contrast=strength, saturation=strength, hue=min(strength / 4, 0.5))
    return [*photometric, *([jitter] if strength > 0 else [])]


def _crops(opts: dict[str, Any]) -> list[v2.Transform]:
    """Zoom-out then SSD's IoU crop (torchvision's own), on the image before it is letterboxed."""
    steps: list[v2.Transform] = []
    if float(opts["zoom_out"]):
        steps.append(v2.RandomZoomOut(fill={tv_tensors.Image: 114, "others": 0}, p=float(opts["zoom_out"])))
    if float(opts["iou_crop"]):
        steps += [v2.RandomApply([v2.RandomIoUCrop()], p=float(opts["iou_crop"])), v2.ClampBoundingBoxes(),
                  v2.SanitizeBoundingBoxes(min_size=1)]  # IoU crop leaves boxes outside its window: drop them now
    return steps


def _affine(opts: dict[str, Any], canvas: int = 1) -> list[v2.Transform]:
    """The random affine, its shift a fraction of the input side also on a ``canvas`` times larger mosaic."""
    shift = float(opts["translate"]) / canvas
    degrees, shear = float(opts["degrees"]), float(opts["shear"])
    if float(opts["affine"]) == 0 or (opts["scale"] == (1.0, 1.0) and shift == 0 and degrees == 0 and shear == 0):
        return []
    affine = v2.RandomAffine(
        degrees=degrees,
        translate=(shift, shift),
        scale=opts["scale"],
        shear=(-shear, shear, -shear, shear) if shear else None,
        interpolation=v2.InterpolationMode.BILINEAR,
        fill={tv_tensors.Image: 114, "others": 0},
    )
    return [v2.RandomApply([affine], p=float(opts["affine"]))]


def _finish(opts: dict[str, Any]) -> list[v2.Transform]:
    flip = [v2.RandomHorizontalFlip(float(opts["hflip"]))] if float(opts["hflip"]) > 0 else []
    return [*flip, v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(min_size=max(float(opts["min_box_size"]), 1.0)),
            v2.ToDtype(torch.float32, scale=True)]


class MultiScaleCollate:
    """:func:`collate`, then the whole batch resized to ``img_size`` times a random factor in ``[low, high]``, rounded
    to a multiple of ``stride`` (multi-scale training: one size per batch, so images still stack); boxes scale along."""

    def __init__(self, img_size: int, low: float, high: float, stride: int = 32) -> None:
        self.img_size = int(img_size)
        self.sizes = list(range(max(stride, int(img_size * low) // stride * stride), int(img_size * high) // stride * stride + 1, stride))
        if not self.sizes:
            raise ConfigError(f"data.augment.multi_scale [{low}, {high}] of img_size {img_size} holds no multiple of {stride}")

    def __call__(self, batch):
        images, targets = collate(batch)
        size = self.sizes[int(torch.randint(len(self.sizes), ()))]
        if size != images.shape[-1]:
            factor = size / images.shape[-1]
            images = torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=factor < 1)
            targets = [{**t, "boxes": t["boxes"] * factor} for t in targets]
        return images, targets


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
