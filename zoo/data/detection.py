"""Object-detection data.

Every detector in the zoo sees the same input: an RGB image letterboxed to a square of ``size`` pixels
(longest side resized to ``size``, aspect ratio kept, the rest padded with grey 114), as floats in
0..1, and returns boxes in that square's pixels. :func:`letterbox` makes that input and
:class:`Letterbox` records how to map boxes back to the original image.

Training data comes from one of four sources behind :class:`DetectionDataModule`:

- ``shapes``: synthetic, generated from a seed (:func:`zoo.data.shapes.detection_sample`), no download.
- ``doc_pages``: synthetic document pages with DocStructBench's layout classes (:func:`zoo.data.doc_pages.page_sample`).
- ``coco``: COCO json (``images``/``annotations``/``categories``); category ids become 0..K-1 in id order.
- ``yolo``: ``root/images/<split>/*.jpg`` with ``root/labels/<split>/*.txt`` lines ``class cx cy w h``.

Labels are checked once, in the main process, before training: bad boxes (non-positive size, outside
the image, unknown class, malformed) and unreadable images are dropped and reported in one warning
naming the files, or, with ``strict: true``, stop the run with a :class:`~zoo.errors.DataError`.
Augmentation is torchvision's box-aware ``transforms.v2``, so boxes move with the pixels.

The parts live in their own modules; this one holds :class:`DetectionDataset` and
:class:`DetectionDataModule` and re-exports the rest, so ``from zoo.data.detection import ...`` still works:

- :mod:`zoo.data.letterbox`: the input geometry (:func:`letterbox`, :class:`Letterbox`, :func:`check_img_size`),
  torch only, for inference and export.
- :mod:`zoo.data.detection_transforms`: the ``transforms.v2`` steps (:class:`LetterboxTransform`,
  :func:`detection_transforms`) and :func:`collate`.
- :mod:`zoo.data.detection_sources`: label checking (:class:`DataProblem`, :func:`report_problems`) and the
  sources (:class:`ShapesSplit`, :func:`load_coco_split`, :func:`load_yolo_split`, ...).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from zoo.data import image_counts, loader, setting
from zoo.data.detection_sources import (
    CLIP_TOLERANCE,
    IMAGE_SUFFIXES,
    SOURCES,
    DataProblem,
    FileSplit,
    Record,
    DocPagesSplit,
    ShapesSplit,
    coco_categories,
    load_coco_split,
    load_yolo_split,
    read_json,
    report_problems,
    yolo_class_names,
)
from zoo.data.detection_transforms import (
    AUGMENT_DEFAULTS,
    LetterboxTransform,
    MultiScaleCollate,
    augment_options,
    collate,
    detection_transforms,
)
from zoo.data.letterbox import PAD_VALUE, Letterbox, check_img_size, letterbox
from zoo.errors import ConfigError, DataError, closest
from zoo.registry import ModelSpec

__all__ = [
    "AUGMENT_DEFAULTS",
    "CLIP_TOLERANCE",
    "IMAGE_SUFFIXES",
    "PAD_VALUE",
    "SOURCES",
    "DataProblem",
    "DetectionDataModule",
    "DetectionDataset",
    "FileSplit",
    "Letterbox",
    "LetterboxTransform",
    "Record",
    "DocPagesSplit",
    "ShapesSplit",
    "check_img_size",
    "coco_categories",
    "collate",
    "detection_transforms",
    "letterbox",
    "load_coco_split",
    "load_yolo_split",
    "report_problems",
    "yolo_class_names",
]


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


def _path(root: Path, cfg: Any, key: str, default: str) -> Path:
    return (root / str(setting(cfg, key, default))).expanduser()


def _img_size(cfg: Any, spec: ModelSpec) -> int:
    return check_img_size(setting(cfg, "img_size") or spec.input_size[-1], "data.img_size")


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
        c, source = self.cfg, setting(self.cfg, "source")
        if source == "shapes":
            from zoo.data.shapes import CLASSES, SCENES

            seed, size = int(setting(c, "data_seed", self.seed)), int(setting(c, "image_size", 128))
            n_train, n_val = image_counts(c)
            scene = str(setting(c, "scene", "normal"))
            if scene not in SCENES:
                raise ConfigError(f"data.scene={scene!r}: the shapes scenes are {', '.join(SCENES)}")
            train = ShapesSplit(seed, "train", n_train, size, scene)
            val = ShapesSplit(seed, "val", n_val, size, scene)
            classes = tuple(CLASSES)
        elif source == "doc_pages":
            from zoo.labels import DOCSTRUCTBENCH_CLASSES

            seed, size = int(setting(c, "data_seed", self.seed)), int(setting(c, "image_size", 320))
            n_train, n_val = image_counts(c)
            train, val = DocPagesSplit(seed, "train", n_train, size), DocPagesSplit(seed, "val", n_val, size)
            classes = DOCSTRUCTBENCH_CLASSES
        elif source == "coco":
            root = self._root("a COCO folder, e.g. data.root=/data/coco with train2017/, val2017/ and annotations/")
            val_json = _path(root, c, "val_annotations", "annotations/instances_val2017.json")
            ids, names = coco_categories(read_json(val_json, "val_annotations"), val_json)
            train = None
            if self.with_train:
                train_json = _path(root, c, "train_annotations", "annotations/instances_train2017.json")
                train_ids, train_names = coco_categories(read_json(train_json, "train_annotations"), train_json)
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
            classes = tuple(yolo_class_names(root, setting(c, "names")))
            train = load_yolo_split(root, str(setting(c, "train_dir", "train")), len(classes)) if self.with_train else None
            val = load_yolo_split(root, str(setting(c, "val_dir", "val")), len(classes))
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
        report_problems(problems, str(source), bool(setting(c, "strict", False)))
        for name, split in (("train", train), ("val", val)):
            if split is not None and len(split) == 0:
                raise DataError(f"the {source} {name} split has no readable images left (see the warning above for why)")
        self.train_split, self.val_split, self._classes, self.problems = train, val, classes, problems
        self._loaded = True

    def _root(self, what: str) -> Path:
        root = setting(self.cfg, "root")
        if not root:
            raise DataError(f"data.root is not set: point it at {what}")
        root = Path(str(root)).expanduser()
        if not root.is_dir():
            raise DataError(f"data.root {root} is not a folder; point it at {what}")
        return root

    def setup(self, stage: str | None = None) -> None:
        self._load()

    def transform(self, training: bool) -> v2.Compose:
        return detection_transforms(self.img_size, training, setting(self.cfg, "augment") if training else None)

    def train_dataset(self) -> Dataset:
        self._load()
        if self.train_split is None:
            raise DataError("this data module reads only the val split (with_train=False, for evaluation)")
        from zoo.data.mosaic import TrainingDetectionDataset

        return TrainingDetectionDataset(DetectionDataset(self.train_split), self.img_size, setting(self.cfg, "augment"))

    @property
    def close_mosaic(self) -> int:
        """Epochs at the end trained without the strong augmentations (``augment.close_mosaic``; the task adds the callback)."""
        return int(augment_options(setting(self.cfg, "augment"))["close_mosaic"])

    def val_dataset(self) -> DetectionDataset:
        self._load()
        return DetectionDataset(self.val_split, self.transform(False), with_crowd=True)

    def train_dataloader(self) -> DataLoader:
        dataset = self.train_dataset()
        multi = augment_options(setting(self.cfg, "augment"))["multi_scale"]
        batches = MultiScaleCollate(self.img_size, *multi) if multi else collate
        return self._loader(dataset, shuffle=True, drop_last=len(dataset) > int(self.cfg.batch_size), collate_fn=batches)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset(), shuffle=False, drop_last=False)

    def calibration_dataloader(self) -> DataLoader:
        """The training images with the evaluation transform, in order (int8 calibration: neither augmented at
        random nor the validation split)."""
        self._load()
        if self.train_split is None:
            raise DataError("this data module reads only the val split (with_train=False, for evaluation)")
        return self._loader(DetectionDataset(self.train_split, self.transform(False)), shuffle=False, drop_last=False)

    def _loader(self, dataset: Dataset, shuffle: bool, drop_last: bool, collate_fn: Callable = collate) -> DataLoader:
        return loader(dataset, self.cfg, shuffle=shuffle, drop_last=drop_last, collate_fn=collate_fn,
                      keep_workers=not self.close_mosaic)  # CloseMosaic reaches new workers only

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
            f"{setting(self.cfg, 'source')}: "
            + (f"{len(self.train_split)} train / " if self.train_split is not None else "")
            + f"{len(self.val_split)} val images, "
            f"{len(self._classes)} classes ({names}), img_size {self.img_size}, {dropped} bad boxes dropped"
            + (f", {skipped} unreadable images skipped" if skipped else "")
        )
