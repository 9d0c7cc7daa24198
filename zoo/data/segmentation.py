"""Semantic-segmentation data: an image and a class map of the same size, one class index per pixel.

Three sources behind :class:`SegmentationDataModule`:

- ``shapes``: the synthetic shapes scenes with every pixel labelled (:func:`zoo.data.shapes.segmentation_sample`:
  background and four shapes), generated from a seed, no download.
- ``folder``: the layout of ADE20K, Cityscapes-converted and VOC-style sets: ``root/images/{train,val}/NAME.jpg``
  with ``root/annotations/{train,val}/NAME.png`` label maps (one 8-bit class index per pixel), class names from
  ``data.names`` or ``root/classes.txt`` (one per line).
- ``hf``: a Hugging Face ``datasets`` dataset (Hub name or ``save_to_disk`` folder) with an image column and a
  mask column, class names from ``data.names``.

Pixels of ``data.ignore_index`` (255 by default: VOC's borders, Cityscapes' void) are left out of the loss and
the metrics. ``data.reduce_zero_label=true`` is ADE20K's convention: value 0 ("other") is ignored and 1..150 become
classes 0..149. Pairs are checked once, in the main process, before training: an image without its mask, a mask
of another size or a file that cannot be read is dropped and reported in one warning (``data.strict=true``: an
error), and a mask with values outside the classes stops the run naming the file and the fix, since that is a
setting to correct rather than a file to drop.

Augmentation is ``torchvision.transforms.v2`` on ``tv_tensors.Mask`` (resized with nearest neighbours, padded
with the ignore index): random scale, crop to the training size, flip, photometric distortion. Evaluation
resizes image and mask to the model's input size, so the metrics are those of the pixels the model sees.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from zoo.data import hf_split, image_counts, loader, setting, square_side
from zoo.data.detection_sources import IMAGE_SUFFIXES, DataProblem
from zoo.errors import ConfigError, DataError, closest
from zoo.registry import ModelSpec

SOURCES = ("shapes", "folder", "hf")
AUGMENT_DEFAULTS: dict[str, Any] = {
    "scale": (0.5, 2.0),  # random resize of the shorter side, as a factor of the crop size
    "hflip": 0.5,
    "photometric": 0.5,  # probability of torchvision's RandomPhotometricDistort
}


@dataclass
class Pairs:
    """Images and their masks: file paths, or rows of a Hugging Face dataset (``columns`` = image, mask)."""

    images: Sequence[Any]
    masks: Sequence[Any]
    columns: tuple[str, str] | None = None

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> tuple[Image.Image, np.ndarray, str]:
        """``(RGB image, mask as an integer array, a name for messages)``."""
        if self.columns is not None:
            row = self.images[index]
            return row[self.columns[0]].convert("RGB"), np.asarray(row[self.columns[1]]), f"row {index}"
        with Image.open(self.images[index]) as image:
            rgb = image.convert("RGB")
        with Image.open(self.masks[index]) as mask:
            return rgb, np.asarray(mask), str(self.masks[index])

    def probe(self, index: int) -> tuple[tuple[int, int], np.ndarray, str]:
        """``((width, height) of the image, mask, name)``; a file's image is not decoded, only its header read."""
        if self.columns is not None:
            image, mask, name = self.load(index)
            return image.size, mask, name
        with Image.open(self.images[index]) as image:
            size = image.size
        with Image.open(self.masks[index]) as mask:
            return size, np.asarray(mask), str(self.masks[index])


class ShapesPairs:
    """The synthetic shapes scenes with their class maps (background 0, shapes 1..4)."""

    def __init__(self, seed: int, split: str, count: int, size: int, scene: str) -> None:
        self.seed, self.split, self.count, self.size, self.scene = seed, split, count, size, scene

    def __len__(self) -> int:
        return self.count

    def load(self, index: int) -> tuple[Image.Image, np.ndarray, str]:
        from zoo.data.shapes import segmentation_sample

        image, mask = segmentation_sample(self.seed, self.split, index, self.size, self.scene)
        return image, mask, f"shapes {self.split} {index}"


def to_classes(mask: np.ndarray, num_classes: int, ignore_index: int, reduce_zero_label: bool, name: str) -> np.ndarray:
    """The stored mask as class indices (``ignore_index`` where unlabelled); values outside the classes stop the run."""
    if mask.ndim == 3:  # a mask saved as RGB/RGBA with equal channels
        if not (mask[..., :3] == mask[..., :1]).all():
            raise DataError(f"{name}: the mask is a colour image; save one 8-bit class index per pixel (mode L or P)")
        mask = mask[..., 0]
    out = mask.astype(np.int64)
    if reduce_zero_label:
        out = np.where(out == 0, ignore_index, out - 1)
        out[mask == ignore_index] = ignore_index
    bad = np.unique(out[(out != ignore_index) & ((out < 0) | (out >= num_classes))])
    if len(bad):
        fix = ("set data.reduce_zero_label=true if 0 means unlabelled (ADE20K)" if not reduce_zero_label and bad.max() == num_classes
               else f"name all classes in data.names, or mark unlabelled pixels {ignore_index} (data.ignore_index)")
        raise DataError(f"{name}: mask values {', '.join(map(str, bad[:8].tolist()))} are outside the {num_classes} classes "
                        f"0..{num_classes - 1} and the ignore index {ignore_index}; {fix}")
    return out


def check_pairs(pairs: Pairs, num_classes: int, ignore_index: int, reduce_zero_label: bool, split: str) -> tuple[Pairs, list[DataProblem]]:
    """Every pair read once: the usable ones, and a problem for each dropped one (unreadable, sizes differ)."""
    from rich.progress import track

    keep, problems = [], []
    steps = track(range(len(pairs)), description=f"checking {split} masks", transient=True) if len(pairs) > 500 else range(len(pairs))
    for i in steps:
        try:
            (width, height), mask, name = pairs.probe(i)
        except Exception as e:  # noqa: BLE001 - any unreadable pair is one entry of the report
            where = str(pairs.masks[i]) if pairs.columns is None else f"row {i}"
            problems.append(DataProblem(where, "", f"cannot be read ({type(e).__name__}: {e})", "skipped"))
            continue
        if mask.shape[:2] != (height, width):
            problems.append(DataProblem(name, "", f"mask is {mask.shape[1]}x{mask.shape[0]}, image {width}x{height}", "skipped"))
            continue
        to_classes(mask, num_classes, ignore_index, reduce_zero_label, name)
        keep.append(i)
    if len(keep) == len(pairs):
        return pairs, problems
    return Pairs([pairs.images[i] for i in keep], [pairs.masks[i] for i in keep], pairs.columns), problems


def folder_pairs(root: Path, split: str) -> tuple[Pairs, list[DataProblem]]:
    images_dir, masks_dir = root / "images" / split, root / "annotations" / split
    layout = f"expected {root}/images/{split}/NAME.jpg with {root}/annotations/{split}/NAME.png"
    if not images_dir.is_dir() or not masks_dir.is_dir():
        raise DataError(f"{images_dir if not images_dir.is_dir() else masks_dir} is not a folder; {layout}")
    masks = {p.stem: p for p in masks_dir.iterdir() if p.suffix.lower() == ".png"}
    images, paired, problems = [], [], []
    for path in sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        if path.stem in masks:
            images.append(str(path))
            paired.append(str(masks[path.stem]))
        else:
            problems.append(DataProblem(str(path), "", f"no mask {path.stem}.png in {masks_dir}", "skipped"))
    if not images:
        raise DataError(f"{images_dir} holds no images with masks ({', '.join(IMAGE_SUFFIXES[:3])}, ...); {layout}")
    return Pairs(images, paired), problems


def hf_pairs(path: str, image_column: str, mask_column: str, split: str) -> Pairs:
    rows = hf_split(path, split, (image_column, mask_column))
    return Pairs(rows, rows, (image_column, mask_column))


def report(problems: Sequence[DataProblem], source: str, strict: bool) -> None:
    if not problems:
        return
    first = "; ".join(str(p) for p in problems[:5]) + ("; ..." if len(problems) > 5 else "")
    if strict:
        raise DataError(f"bad {source} data: {len(problems)} pair(s) cannot be used ({first}). Fix the files, or set "
                        "data.strict=false to skip them with a warning")
    warnings.warn(f"{source} data: skipped {len(problems)} image/mask pair(s) (first: {first}). Fix the files, or set "
                  "data.strict=true to stop on them", UserWarning, stacklevel=3)


def segmentation_transforms(size: int, mean: Sequence[float], std: Sequence[float], ignore_index: int,
                            augment: Any | None) -> v2.Compose:
    """Training (``augment`` given): random scale of the shorter side, crop to ``size`` (padded with 0 and the ignore
    index), flip, photometric distortion. Evaluation (None): resize to ``size`` x ``size``. Then floats, normalised."""
    final = [v2.ToDtype({tv_tensors.Image: torch.float32, tv_tensors.Mask: torch.int64, "others": None}, scale=True),
             v2.Normalize(mean=list(mean), std=list(std))]
    if augment is None:
        return v2.Compose([v2.Resize((size, size), antialias=True), *final])
    options = {**AUGMENT_DEFAULTS, **{k: v for k, v in dict(augment).items() if v is not None}}
    unknown = sorted(set(options) - set(AUGMENT_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown data.augment option(s) {', '.join(unknown)}; segmentation has {', '.join(AUGMENT_DEFAULTS)}")
    low, high = (float(v) for v in options["scale"])
    if not 0 < low <= high:
        raise ConfigError(f"data.augment.scale={[low, high]} must be 0 < low <= high (factors of the crop size)")
    steps = [
        v2.RandomResize(max(1, int(size * low)), max(2, int(size * high) + 1), antialias=True),
        v2.RandomCrop(size, pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: ignore_index}),
        v2.RandomHorizontalFlip(float(options["hflip"])),
    ]
    if options["photometric"]:
        steps.append(v2.RandomPhotometricDistort(p=float(options["photometric"])))
    return v2.Compose([*steps, *final])


class SegmentationDataset(Dataset):
    """``(image float [3, H, W] normalised, mask int64 [H, W])`` items."""

    def __init__(self, pairs: Pairs | ShapesPairs, num_classes: int, ignore_index: int, reduce_zero_label: bool,
                 transform: v2.Compose) -> None:
        self.pairs, self.num_classes, self.ignore_index = pairs, num_classes, ignore_index
        self.reduce_zero_label, self.transform = reduce_zero_label, transform

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from torchvision.transforms.v2 import functional as TF

        image, mask, name = self.pairs.load(index)
        classes = to_classes(mask, self.num_classes, self.ignore_index, self.reduce_zero_label, name)
        return self.transform(tv_tensors.Image(TF.pil_to_tensor(image)), tv_tensors.Mask(torch.from_numpy(classes)))


class SegmentationDataModule(L.LightningDataModule):
    """Train/val loaders of images and class maps for one of :data:`SOURCES`."""

    def __init__(self, cfg: Any, spec: ModelSpec, seed: int = 0, *, with_train: bool = True) -> None:
        super().__init__()
        self.cfg, self.spec, self.seed, self.with_train = cfg, spec, seed, with_train
        self.img_size = square_side(cfg, spec, 32)
        self.ignore_index = int(setting(cfg, "ignore_index", 255))
        self.reduce_zero_label = bool(setting(cfg, "reduce_zero_label", False))
        self.train_pairs: Pairs | ShapesPairs | None = None
        self.val_pairs: Pairs | ShapesPairs | None = None
        self._classes: tuple[str, ...] = ()
        self.problems: list[DataProblem] = []
        self._loaded = False

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
        pre = self.spec.preprocessing()
        pre.update(input_size=self.input_size, crop_pct=1.0)
        return pre

    def _names(self, root: Path | None) -> tuple[str, ...]:
        names = setting(self.cfg, "names")
        if names:
            return tuple(str(n) for n in names)
        if root is not None and (root / "classes.txt").is_file():
            return tuple(line.strip() for line in (root / "classes.txt").read_text().splitlines() if line.strip())
        where = f" or write {root}/classes.txt (one name per line)" if root is not None else ""
        raise DataError(f"the segmentation classes are not named: set data.names=[background, ...]{where}")

    def _load(self) -> None:
        if self._loaded:
            return
        c, source = self.cfg, setting(self.cfg, "source")
        problems: list[DataProblem] = []
        if source == "shapes":
            from zoo.data.shapes import SCENES, SEGMENTATION_CLASSES

            seed, size, scene = int(setting(c, "data_seed", self.seed)), int(setting(c, "image_size", 128)), str(setting(c, "scene", "normal"))
            if scene not in SCENES:
                raise ConfigError(f"data.scene={scene!r}: the shapes scenes are {', '.join(SCENES)}")
            n_train, n_val = image_counts(c)
            classes = SEGMENTATION_CLASSES
            train = ShapesPairs(seed, "train", n_train, size, scene)
            val = ShapesPairs(seed, "val", n_val, size, scene)
        elif source in ("folder", "hf"):
            root = None
            if source == "folder":
                root = Path(str(setting(c, "root", ""))).expanduser()
                if not setting(c, "root") or not root.is_dir():
                    raise DataError(f"data.root {str(root) if setting(c, 'root') else 'is not set'}: point it at a folder with "
                                    "images/{train,val}/ and annotations/{train,val}/")
            classes = self._names(root)
            splits = {}
            for name in ("train", "val") if self.with_train else ("val",):
                split = str(setting(c, f"{name}_split", name))
                if source == "folder":
                    pairs, found = folder_pairs(root, split)
                else:
                    if not setting(c, "path"):
                        raise DataError("data.path is not set: a Hugging Face dataset name or a save_to_disk folder")
                    pairs, found = hf_pairs(str(c.path), str(setting(c, "image_column", "image")),
                                            str(setting(c, "mask_column", "annotation")), split), []
                pairs, bad = check_pairs(pairs, len(classes), self.ignore_index, self.reduce_zero_label, split)
                splits[name] = pairs
                problems += found + bad
            train, val = splits.get("train"), splits["val"]
        else:
            hint = closest(str(source), SOURCES)
            raise DataError(f"unknown segmentation data source {source!r}" + (f"; did you mean {', '.join(hint)}?" if hint else "")
                            + f" Valid: {', '.join(SOURCES)} (set data.source=...)")
        report(problems, str(source), bool(setting(c, "strict", False)))
        for name, pairs in (("train", train), ("val", val)):
            if pairs is not None and len(pairs) == 0:
                raise DataError(f"the {source} {name} split has no usable image/mask pairs left (see the warning above)")
        if len(classes) < 2:
            raise DataError(f"the {source} data names {len(classes)} class; segmentation needs at least 2 (background and one)")
        self.train_pairs = train if self.with_train else None
        self.val_pairs, self._classes, self.problems, self._loaded = val, tuple(classes), problems, True

    def setup(self, stage: str | None = None) -> None:
        self._load()

    def transform(self, training: bool) -> v2.Compose:
        pre = self.spec.preprocessing()
        augment = (setting(self.cfg, "augment") or {}) if training else None
        return segmentation_transforms(self.img_size, pre["mean"], pre["std"], self.ignore_index, augment)

    def _dataset(self, pairs, training: bool) -> SegmentationDataset:
        return SegmentationDataset(pairs, len(self._classes), self.ignore_index, self.reduce_zero_label, self.transform(training))

    def train_dataloader(self) -> DataLoader:
        self._load()
        if self.train_pairs is None:
            raise DataError("this data module reads only the val split (with_train=False, for evaluation)")
        dataset = self._dataset(self.train_pairs, True)
        return self._loader(dataset, shuffle=True, drop_last=len(dataset) > int(self.cfg.batch_size))

    def val_dataloader(self) -> DataLoader:
        self._load()
        return self._loader(self._dataset(self.val_pairs, False), shuffle=False, drop_last=False)

    def calibration_dataloader(self) -> DataLoader:
        """The training images with the evaluation transform, in order (int8 calibration)."""
        self._load()
        if self.train_pairs is None:
            raise DataError("this data module reads only the val split (with_train=False, for evaluation)")
        return self._loader(self._dataset(self.train_pairs, False), shuffle=False, drop_last=False)

    def _loader(self, dataset: Dataset, shuffle: bool, drop_last: bool) -> DataLoader:
        return loader(dataset, self.cfg, shuffle=shuffle, drop_last=drop_last)

    def describe(self) -> str:
        self._load()
        names = ", ".join(self._classes[:8]) + (", ..." if len(self._classes) > 8 else "")
        return (f"{setting(self.cfg, 'source')}: " + (f"{len(self.train_pairs)} train / " if self.train_pairs is not None else "")
                + f"{len(self.val_pairs)} val images, {len(self._classes)} classes ({names}), img_size {self.img_size}, "
                + f"ignore index {self.ignore_index}" + (f", {len(self.problems)} pairs skipped" if self.problems else ""))
