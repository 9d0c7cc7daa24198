"""Object-detection data.

Every detector in the zoo sees the same input: an RGB image letterboxed to a square of ``size`` pixels
(longest side resized to ``size``, aspect ratio kept, the rest padded with grey 114), as floats in
0..1, and returns boxes in that square's pixels. :func:`letterbox` makes that input and
:class:`Letterbox` records how to map boxes back to the original image.

Training data comes from one of three sources behind :class:`DetectionDataModule`:

- ``shapes``: synthetic, generated from a seed (:func:`zoo.data.shapes.detection_sample`), no download.
- ``coco``: COCO json (``images``/``annotations``/``categories``); category ids become 0..K-1 in id order.
- ``yolo``: ``root/images/<split>/*.jpg`` with ``root/labels/<split>/*.txt`` lines ``class cx cy w h``.

Labels are checked once, in the main process, before training: bad boxes (non-positive size, outside
the image, unknown class, malformed) and unreadable images are dropped and reported in one warning
naming the files, or, with ``strict: true``, stop the run with a :class:`~zoo.errors.DataError`.
Augmentation is torchvision's box-aware ``transforms.v2``, so boxes move with the pixels.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from zoo.errors import ConfigError, DataError, closest
from zoo.registry import ModelSpec

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
        nh, nw, top, left = _placement(height, width, size)
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
    nh, nw, top, left = _placement(h, w, size)
    if (nh, nw) != (h, w):
        x = F.interpolate(x[None], size=(nh, nw), mode="bilinear", align_corners=False, antialias=size < max(h, w))[0]
    x = F.pad(x, (left, size - nw - left, top, size - nh - top), value=PAD_VALUE)
    return x.clamp_(0, 1), Letterbox.fit(h, w, size)


def _placement(h: int, w: int, size: int) -> tuple[int, int, int, int]:
    """Resized ``(height, width)`` and ``(top, left)`` padding: one rule for inference and training."""
    scale = size / max(h, w, 1)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    return nh, nw, (size - nh) // 2, (size - nw) // 2


# -- transforms ------------------------------------------------------------------------------------


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
        nh, nw, top, left = _placement(h, w, self.size)
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


# -- label checking --------------------------------------------------------------------------------

CLIP_TOLERANCE = 1.0  # pixels a box may stick out before clipping it is worth a report


@dataclass(frozen=True)
class DataProblem:
    """One thing left out of (or changed in) the training data, and where it is."""

    file: str
    where: str  # "line 3", "annotation id 17", or "" for a whole image
    reason: str
    action: str  # "dropped" (a box), "clipped" (a box, kept), "skipped" (an image)

    def __str__(self) -> str:
        return f"{self.file}{', ' + self.where if self.where else ''}: {self.reason}"


def _checked_box(
    box: Sequence[float], height: int, width: int, file: str, where: str, problems: list[DataProblem]
) -> tuple[float, float, float, float] | None:
    """An xyxy pixel box clipped to the image, or None (and a problem noted) if it cannot be used."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        problems.append(DataProblem(file, where, f"malformed box (not finite: {_fmt(box)})", "dropped"))
        return None
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        problems.append(DataProblem(file, where, f"non-positive size (width {x1 - x0:g}, height {y1 - y0:g} px)", "dropped"))
        return None
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        problems.append(DataProblem(file, where, f"box {_fmt((x0, y0, x1, y1))} is outside the {width}x{height} image", "dropped"))
        return None
    clipped = (max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height)))
    if max(abs(a - b) for a, b in zip(clipped, (x0, y0, x1, y1))) > CLIP_TOLERANCE:
        problems.append(
            DataProblem(file, where, f"box {_fmt((x0, y0, x1, y1))} is partly outside the {width}x{height} image; clipped", "clipped")
        )
    return clipped


def _fmt(values: Sequence[Any]) -> str:
    try:
        return "[" + ", ".join(f"{float(v):.4g}" for v in values) + "]"
    except (TypeError, ValueError):
        return repr(values)


def report_problems(problems: Sequence[DataProblem], source: str, strict: bool) -> None:
    """Warn once about everything dropped, clipped or skipped, or raise on the first with ``strict``."""
    if not problems:
        return
    first = "; ".join(str(p) for p in problems[:5]) + ("; ..." if len(problems) > 5 else "")
    if strict:
        raise DataError(
            f"bad {source} data in {problems[0].file}: {len(problems)} problem(s) ({first}). "
            "Fix the file(s), or set data.strict=false to drop such boxes and images with a warning"
        )
    counts = {a: sum(p.action == a for p in problems) for a in ("dropped", "clipped", "skipped")}
    parts = [
        f"dropped {counts['dropped']} bad box(es)" if counts["dropped"] else "",
        f"clipped {counts['clipped']} box(es) partly outside their image" if counts["clipped"] else "",
        f"skipped {counts['skipped']} unreadable image(s)" if counts["skipped"] else "",
    ]
    warnings.warn(
        f"{source} data: {', '.join(p for p in parts if p)} (first: {first}). "
        "Fix the files, or set data.strict=true to stop on them",
        UserWarning,
        stacklevel=3,
    )


# -- sources ---------------------------------------------------------------------------------------

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
SOURCES = ("shapes", "coco", "yolo")


@dataclass
class Record:
    """One image file and its checked boxes, in the original image's pixels."""

    path: str
    boxes: np.ndarray  # float32 [n, 4] xyxy
    labels: np.ndarray  # int64 [n]
    image_id: int
    height: int
    width: int
    # COCO crowd regions: not objects to learn, but detections on them are not counted as false positives
    crowd_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    crowd_labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))


class FileSplit:
    """Images on disk with their labels (``coco`` and ``yolo``)."""

    def __init__(self, records: list[Record], problems: list[DataProblem] | None = None) -> None:
        self.records, self.problems = records, problems or []

    def __len__(self) -> int:
        return len(self.records)

    def annotations(self, index: int) -> tuple[np.ndarray, np.ndarray, int, tuple[int, int]]:
        r = self.records[index]
        return r.boxes, r.labels, r.image_id, (r.height, r.width)

    def crowd(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        r = self.records[index]
        return r.crowd_boxes, r.crowd_labels

    def load(self, index: int) -> tuple[Image.Image, np.ndarray, np.ndarray, int]:
        r = self.records[index]
        try:
            with Image.open(r.path) as image:
                rgb = image.convert("RGB")
        except Exception as e:  # damaged after the check: name the file, not a bare worker traceback
            raise DataError(f"cannot read image {r.path}: {type(e).__name__}: {e}") from None
        return rgb, r.boxes, r.labels, r.image_id


class ShapesSplit:
    """Synthetic images rendered on access (deterministic, so nothing is stored)."""

    def __init__(self, seed: int, split: str, count: int, size: int) -> None:
        self.seed, self.split, self.count, self.size = seed, split, count, size
        self.problems: list[DataProblem] = []

    def __len__(self) -> int:
        return self.count

    def load(self, index: int) -> tuple[Image.Image, np.ndarray, np.ndarray, int]:
        from zoo.data.shapes import detection_sample

        if not 0 <= index < self.count:
            raise IndexError(f"shapes {self.split} has {self.count} images, no index {index}")
        image, boxes, labels = detection_sample(self.seed, self.split, index, self.size)
        return image, boxes, labels, index

    def annotations(self, index: int) -> tuple[np.ndarray, np.ndarray, int, tuple[int, int]]:
        _, boxes, labels, image_id = self.load(index)
        return boxes, labels, image_id, (self.size, self.size)


def _image_size(path: Path, problems: list[DataProblem]) -> tuple[int, int] | None:
    """``(height, width)`` of a readable image; an unreadable one is noted as skipped."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            image.verify()
    except Exception as e:
        reason = "file does not exist" if isinstance(e, FileNotFoundError) else f"cannot read image ({type(e).__name__}: {e})"
        problems.append(DataProblem(str(path), "", reason, "skipped"))
        return None
    return int(height), int(width)


def _progress(items: Sequence[Any], what: str):
    if len(items) <= 2000:
        return items
    from rich.progress import track

    return track(items, description=f"checking {what}", transient=True)


def _read_json(path: Path, key: str) -> dict:
    import json

    if not path.is_file():
        raise DataError(f"COCO annotations {path} do not exist; set data.{key} to the instances_*.json file (relative to data.root or absolute)")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"COCO annotations {path} are not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data, dict) or k not in data]
    if missing:
        raise DataError(f"COCO annotations {path} lack {', '.join(repr(k) for k in missing)}; expected a COCO instances file")
    return data


def coco_categories(data: dict, path: Path) -> tuple[list[int], list[str]]:
    """Category ids in ascending order and their names: id ``ids[k]`` becomes label ``k``."""
    try:
        cats = sorted((int(c["id"]), str(c["name"])) for c in data["categories"])
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"COCO annotations {path}: every category needs an integer 'id' and a 'name' ({type(e).__name__}: {e})") from None
    if not cats:
        raise DataError(f"COCO annotations {path} have no categories")
    return [c[0] for c in cats], [c[1] for c in cats]


def load_coco_split(images_dir: Path, annotations: Path, category_ids: Sequence[int], key: str = "train_annotations") -> FileSplit:
    """Records for one COCO split; labels are positions in ``category_ids``; crowd boxes are kept apart
    (``Record.crowd_boxes``): never trained on, but evaluation ignores detections on them, as COCO does."""
    data = _read_json(annotations, key)
    to_label = {cid: k for k, cid in enumerate(category_ids)}
    file = str(annotations)
    problems: list[DataProblem] = []
    images: dict[int, dict] = {}
    for entry in data["images"]:
        try:
            images[int(entry["id"])] = entry
        except (KeyError, TypeError, ValueError):
            raise DataError(f"COCO annotations {annotations}: image entry {entry!r:.80} has no integer 'id'") from None
    per_image: dict[int, list[tuple[tuple[float, float, float, float], int, str]]] = {i: [] for i in images}
    crowds: dict[int, list[tuple[tuple[float, float, float, float], int, str]]] = {i: [] for i in images}
    pending: list[tuple[int, Any, Any, str, bool]] = []
    for n, ann in enumerate(data["annotations"]):
        where = f"annotation id {ann.get('id', f'#{n}')}" if isinstance(ann, dict) else f"annotation #{n}"
        if not isinstance(ann, dict):
            problems.append(DataProblem(file, where, f"malformed annotation {ann!r:.60}", "dropped"))
            continue
        image_id, category = ann.get("image_id"), ann.get("category_id")
        if image_id not in images:
            problems.append(DataProblem(file, where, f"image_id {image_id!r} is not in the file's 'images'", "dropped"))
            continue
        if category not in to_label:
            problems.append(DataProblem(file, where, f"unknown category_id {category!r} (categories: {_id_range(category_ids)})", "dropped"))
            continue
        pending.append((image_id, ann.get("bbox"), to_label[category], where, bool(ann.get("iscrowd"))))
    sizes: dict[int, tuple[int, int] | None] = {}
    ids = sorted(images)
    for image_id in _progress(ids, f"{images_dir.name} images"):
        sizes[image_id] = _image_size(images_dir / str(images[image_id].get("file_name", "")), problems)
    for image_id, bbox, label, where, crowd in pending:
        size = sizes[image_id]
        if size is None:
            continue  # the image itself is already reported
        where = f"{where} ({images[image_id].get('file_name')})"
        try:
            x, y, w, h = (float(v) for v in bbox)
        except (TypeError, ValueError):
            problems.append(DataProblem(file, where, f"malformed bbox {bbox!r:.60} (expected [x, y, width, height])", "dropped"))
            continue
        box = _checked_box((x, y, x + w, y + h), size[0], size[1], file, where, problems)
        if box is not None:
            (crowds if crowd else per_image)[image_id].append((box, label, where))
    records = []
    for image_id in ids:
        if sizes[image_id] is None:
            continue
        h, w = sizes[image_id]
        objects, crowd = per_image[image_id], crowds[image_id]
        records.append(
            Record(
                str(images_dir / str(images[image_id]["file_name"])),
                np.asarray([o[0] for o in objects], dtype=np.float32).reshape(-1, 4),
                np.asarray([o[1] for o in objects], dtype=np.int64),
                image_id,
                h,
                w,
                np.asarray([o[0] for o in crowd], dtype=np.float32).reshape(-1, 4),
                np.asarray([o[1] for o in crowd], dtype=np.int64),
            )
        )
    return _with_boxes(FileSplit(records, problems), f"COCO split {annotations}")


def _id_range(ids: Sequence[int]) -> str:
    return f"{len(ids)} ids from {min(ids)} to {max(ids)}" if ids else "none"


def yolo_class_names(root: Path, names: Any = None) -> list[str]:
    """Class names from ``names`` (list, or dict index -> name), else ``root/data.yaml``, else ``root/classes.txt``."""
    source = "data.names"
    if names is None and (root / "data.yaml").is_file():
        import yaml

        try:
            names = (yaml.safe_load((root / "data.yaml").read_text(encoding="utf-8")) or {}).get("names")
        except (yaml.YAMLError, AttributeError) as e:
            raise DataError(f"cannot read class names from {root / 'data.yaml'}: {e}") from None
        source = str(root / "data.yaml")
    if names is None and (root / "classes.txt").is_file():
        names = [line.strip() for line in (root / "classes.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
        source = str(root / "classes.txt")
    if names is None:
        raise DataError(
            f"no class names for YOLO data in {root}: set data.names=[cat,dog,...], "
            f"or write {root / 'data.yaml'} with a 'names:' list, or {root / 'classes.txt'} with one name a line"
        )
    if hasattr(names, "items"):  # {0: cat, 1: dog}
        try:
            by_index = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            raise DataError(f"class names in {source} must map integers to names, got {dict(names)!r:.80}") from None
        if sorted(by_index) != list(range(len(by_index))):
            raise DataError(f"class names in {source} must be numbered 0..{len(by_index) - 1} without gaps, got {sorted(by_index)}")
        names = [by_index[i] for i in range(len(by_index))]
    if isinstance(names, str) or not isinstance(names, Sequence) and not hasattr(names, "__iter__"):
        raise DataError(f"class names in {source} must be a list, got {names!r:.80}")
    names = [str(n) for n in names]
    if not names:
        raise DataError(f"the class name list in {source} is empty")
    return names


def load_yolo_split(root: Path, split: str, num_classes: int) -> FileSplit:
    """Records for ``root/images/<split>`` with ``root/labels/<split>/<same name>.txt`` (missing file: no objects)."""
    image_dir, label_dir = root / "images" / split, root / "labels" / split
    layout = f"expected {root}/images/{split}/*.jpg and {root}/labels/{split}/*.txt"
    if not image_dir.is_dir():
        raise DataError(f"YOLO image folder {image_dir} does not exist; {layout}")
    files = sorted(p for p in image_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"{image_dir} holds no images ({', '.join(IMAGE_SUFFIXES[:3])}, ...); {layout}")
    if not label_dir.is_dir():
        raise DataError(f"YOLO label folder {label_dir} does not exist, so every image would count as empty; {layout}")
    problems: list[DataProblem] = []
    records = []
    for image_id, path in enumerate(_progress(files, f"{split} images")):
        size = _image_size(path, problems)
        if size is None:
            continue
        label_file = (label_dir / path.relative_to(image_dir)).with_suffix(".txt")
        boxes, labels = _parse_yolo_labels(label_file, size, num_classes, problems)
        records.append(Record(str(path), boxes, labels, image_id, size[0], size[1]))
    return _with_boxes(FileSplit(records, problems), f"YOLO split {image_dir}")


def _with_boxes(split: FileSplit, where: str) -> FileSplit:
    """``split``, unless not one of its images has a usable box: a detector cannot learn (or be scored) on that."""
    if any(len(r.boxes) for r in split.records):
        return split
    dropped = [p for p in split.problems if p.action == "dropped"]
    why = (f"; {len(dropped)} label(s) were dropped, the first in {dropped[0].file} {dropped[0].where}: {dropped[0].reason}"
           if dropped else "")
    raise DataError(f"{where} has no usable boxes in its {len(split.records)} image(s){why}. Check the labels "
                    "(class ids 0..N-1 and normalised cx cy w h for YOLO; bbox [x, y, w, h] in pixels for COCO)")


def _parse_yolo_labels(
    label_file: Path, size: tuple[int, int], num_classes: int, problems: list[DataProblem]
) -> tuple[np.ndarray, np.ndarray]:
    height, width = size
    boxes, labels = [], []
    file = str(label_file)
    try:
        text = label_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""  # an image without a label file shows no objects
    except (OSError, UnicodeDecodeError) as e:
        problems.append(DataProblem(file, "", f"cannot read label file ({type(e).__name__}: {e}); its image counts as empty", "dropped"))
        text = ""
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        where = f"line {n}"
        if len(parts) != 5:
            problems.append(DataProblem(file, where, f"malformed line {line.strip()!r:.60} (expected 'class cx cy w h', got {len(parts)} values)", "dropped"))
            continue
        try:
            cls_value, cx, cy, w, h = (float(v) for v in parts)
        except ValueError:
            problems.append(DataProblem(file, where, f"malformed line {line.strip()!r:.60} (not numbers)", "dropped"))
            continue
        if not all(math.isfinite(v) for v in (cls_value, cx, cy, w, h)):
            problems.append(DataProblem(file, where, f"malformed line {line.strip()!r:.60} (NaN or infinite value)", "dropped"))
            continue
        if cls_value != int(cls_value) or not 0 <= cls_value < num_classes:
            problems.append(DataProblem(file, where, f"unknown class id {parts[0]} (valid: 0..{num_classes - 1})", "dropped"))
            continue
        if w <= 0 or h <= 0:
            problems.append(DataProblem(file, where, f"non-positive size (w {w:g}, h {h:g})", "dropped"))
            continue
        box = ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)
        checked = _checked_box(box, height, width, file, where, problems)
        if checked is not None:
            boxes.append(checked)
            labels.append(int(cls_value))
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4), np.asarray(labels, dtype=np.int64)


# -- dataset and DataModule ------------------------------------------------------------------------


class DetectionDataset(Dataset):
    """``(image uint8 [3, H, W], {boxes, labels, image_id})`` items, then ``transform(image, target)``."""

    def __init__(self, split: FileSplit | ShapesSplit, transform: Callable | None = None, with_crowd: bool = False) -> None:
        """``with_crowd`` (evaluation): targets also carry ``crowd_boxes``/``crowd_labels`` where the source has them."""
        self.split, self.transform, self.with_crowd = split, transform, with_crowd

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[Any, dict[str, Any]]:
        pil, boxes, labels, image_id = self.split.load(index)
        image = tv_tensors.Image(TF.pil_to_tensor(pil))
        target = {
            "boxes": tv_tensors.BoundingBoxes(
                torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4), format="XYXY", canvas_size=tuple(image.shape[-2:])
            ),
            "labels": torch.as_tensor(labels, dtype=torch.int64).reshape(-1),
            "image_id": int(image_id),
        }
        if self.with_crowd and hasattr(self.split, "crowd"):
            crowd_boxes, crowd_labels = self.split.crowd(index)
            target["crowd_boxes"] = tv_tensors.BoundingBoxes(torch.as_tensor(crowd_boxes, dtype=torch.float32).reshape(-1, 4),
                                                             format="XYXY", canvas_size=tuple(image.shape[-2:]))
            target["crowd_labels"] = torch.as_tensor(crowd_labels, dtype=torch.int64).reshape(-1)
        if self.transform is not None:
            image, target = self.transform(image, target)
        return image, target


def _value(cfg: Any, key: str, default: Any = None) -> Any:
    """``cfg.key``, or ``default`` when absent, null or ``???``."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        if key not in cfg or OmegaConf.is_missing(cfg, key):
            return default
    value = cfg.get(key, default)
    return default if value is None else value


def _path(root: Path, cfg: Any, key: str, default: str) -> Path:
    return (root / str(_value(cfg, key, default))).expanduser()


def _img_size(cfg: Any, spec: ModelSpec) -> int:
    return check_img_size(_value(cfg, "img_size") or spec.input_size[-1], "data.img_size")


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


class DetectionDataModule(L.LightningDataModule):
    """Train/val loaders of letterboxed images and box targets for one of :data:`SOURCES`."""

    def __init__(self, cfg: Any, spec: ModelSpec, seed: int = 0, *, with_train: bool = True) -> None:
        """``with_train=False`` (evaluation) reads only the val split: no train annotations or images needed."""
        super().__init__()
        self.cfg, self.spec, self.seed, self.with_train = cfg, spec, seed, with_train
        self._loaded = False
        self.img_size = _img_size(cfg, spec)  # checked now: a bad size should fail before any scan
        self.train_split: FileSplit | ShapesSplit | None = None
        self.val_split: FileSplit | ShapesSplit | None = None
        self._classes: tuple[str, ...] = ()
        self.problems: list[DataProblem] = []

    @property
    def classes(self) -> tuple[str, ...]:
        self._load()
        return self._classes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_size(self) -> tuple[int, int, int]:
        return (3, self.img_size, self.img_size)

    def preprocessing(self) -> dict[str, Any]:
        """What inference must do to match training (saved with the trained model)."""
        return {"input_size": self.input_size, "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0), "interpolation": "bilinear", "crop_pct": 1.0}

    def _load(self) -> None:
        if self._loaded:
            return
        c, source = self.cfg, _value(self.cfg, "source")
        if source == "shapes":
            from zoo.data.shapes import CLASSES

            seed, size = int(_value(c, "data_seed", self.seed)), int(_value(c, "image_size", 128))
            counts = {k: _value(c, k, 0) for k in ("train_images", "val_images")}
            for key, count in counts.items():
                if not isinstance(count, int) or count < 1:
                    raise DataError(f"data.{key} must be a positive number of images, not {count!r}")
            train = ShapesSplit(seed, "train", counts["train_images"], size)
            val = ShapesSplit(seed, "val", counts["val_images"], size)
            classes = tuple(CLASSES)
        elif source == "coco":
            root = self._root("a COCO folder, e.g. data.root=/data/coco with train2017/, val2017/ and annotations/")
            val_json = _path(root, c, "val_annotations", "annotations/instances_val2017.json")
            ids, names = coco_categories(_read_json(val_json, "val_annotations"), val_json)
            train = None
            if self.with_train:
                train_json = _path(root, c, "train_annotations", "annotations/instances_train2017.json")
                train_ids, train_names = coco_categories(_read_json(train_json, "train_annotations"), train_json)
                if (train_ids, train_names) != (ids, names):
                    raise DataError(
                        f"{val_json} and {train_json} define different categories "
                        f"({len(ids)} vs {len(train_ids)}); both splits must use one category list"
                    )
                train = load_coco_split(_path(root, c, "train_images", "train2017"), train_json, ids, "train_annotations")
            val = load_coco_split(_path(root, c, "val_images", "val2017"), val_json, ids, "val_annotations")
            classes = tuple(names)
        elif source == "yolo":
            root = self._root("a YOLO folder with images/{train,val}/ and labels/{train,val}/")
            classes = tuple(yolo_class_names(root, _value(c, "names")))
            train = load_yolo_split(root, str(_value(c, "train_dir", "train")), len(classes)) if self.with_train else None
            val = load_yolo_split(root, str(_value(c, "val_dir", "val")), len(classes))
        else:
            hint = closest(str(source), SOURCES)
            raise DataError(
                f"unknown detection data source {source!r}"
                + (f"; did you mean {', '.join(hint)}?" if hint else "")
                + f" Valid: {', '.join(SOURCES)} (set data.source=...)"
            )
        if not self.with_train:
            train = None
        problems = (train.problems if train is not None else []) + val.problems
        report_problems(problems, str(source), bool(_value(c, "strict", False)))
        for name, split in (("train", train), ("val", val)):
            if split is not None and len(split) == 0:
                raise DataError(f"the {source} {name} split has no readable images left (see the warning above for why)")
        self.train_split, self.val_split, self._classes, self.problems = train, val, classes, problems
        self._loaded = True

    def _root(self, what: str) -> Path:
        root = _value(self.cfg, "root")
        if not root:
            raise DataError(f"data.root is not set: point it at {what}")
        root = Path(str(root)).expanduser()
        if not root.is_dir():
            raise DataError(f"data.root {root} is not a folder; point it at {what}")
        return root

    def setup(self, stage: str | None = None) -> None:
        self._load()

    def transform(self, training: bool) -> v2.Compose:
        return detection_transforms(self.img_size, training, _value(self.cfg, "augment") if training else None)

    def train_dataset(self) -> DetectionDataset:
        self._load()
        if self.train_split is None:
            raise DataError("this data module reads only the val split (with_train=False, for evaluation)")
        return DetectionDataset(self.train_split, self.transform(True))

    def val_dataset(self) -> DetectionDataset:
        self._load()
        return DetectionDataset(self.val_split, self.transform(False), with_crowd=True)

    def train_dataloader(self) -> DataLoader:
        dataset = self.train_dataset()
        return self._loader(dataset, shuffle=True, drop_last=len(dataset) > int(self.cfg.batch_size))

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset(), shuffle=False, drop_last=False)

    def calibration_dataloader(self) -> DataLoader:
        """The training images with the evaluation transform, in order (int8 calibration: neither augmented at
        random nor the validation split)."""
        self._load()
        if self.train_split is None:
            raise DataError("this data module reads only the val split (with_train=False, for evaluation)")
        return self._loader(DetectionDataset(self.train_split, self.transform(False)), shuffle=False, drop_last=False)

    def _loader(self, dataset: Dataset, shuffle: bool, drop_last: bool) -> DataLoader:
        workers = int(_value(self.cfg, "num_workers", 0))
        return DataLoader(
            dataset,
            batch_size=int(self.cfg.batch_size),
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
            collate_fn=collate,
        )

    def val_annotations(self) -> list[dict[str, Any]]:
        """Val ground truth as the val loader's targets: boxes in input pixels (after letterbox).

        ``orig_size`` ``(h, w)`` lets an evaluator rebuild :class:`Letterbox` to map back.
        """
        self._load()
        out = []
        for i in range(len(self.val_split)):
            boxes, labels, image_id, (h, w) = self.val_split.annotations(i)
            placed = Letterbox.fit(h, w, self.img_size).to_input(torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4))
            out.append({"boxes": placed, "labels": torch.as_tensor(labels, dtype=torch.int64), "image_id": int(image_id), "orig_size": (h, w)})
        return out

    def describe(self) -> str:
        self._load()
        names = ", ".join(self._classes[:8]) + (", ..." if len(self._classes) > 8 else "")
        dropped = sum(p.action == "dropped" for p in self.problems)
        skipped = sum(p.action == "skipped" for p in self.problems)
        return (
            f"{_value(self.cfg, 'source')}: "
            + (f"{len(self.train_split)} train / " if self.train_split is not None else "")
            + f"{len(self.val_split)} val images, "
            f"{len(self._classes)} classes ({names}), img_size {self.img_size}, {dropped} bad boxes dropped"
            + (f", {skipped} unreadable images skipped" if skipped else "")
        )
