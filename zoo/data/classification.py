"""Image-classification data: four sources behind one LightningDataModule.

- ``folder``: ``root/train/<class>/*.jpg`` and ``root/val/<class>/*.jpg`` (torchvision's folder scan);
  unreadable images are skipped, counted and reported before training starts, never in a worker.
- ``hf``: a Hugging Face ``datasets`` dataset, by Hub name or ``save_to_disk`` path, with configurable
  image/label columns and splits.
- ``digits``: scikit-learn's bundled 8x8 handwritten digits (real data, no download), upsampled and
  split deterministically (stratified).
- ``shapes``: synthetic, generated from a seed (``zoo.data.shapes``).

Transforms are timm's ``create_transform`` with the model's own preprocessing (input size, mean/std,
interpolation), so a model sees in training what it will see in deployment.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from zoo.data import loader
from zoo.errors import DataError
from zoo.registry import ModelSpec

SOURCES = ("digits", "shapes", "folder", "hf")


@dataclass
class Split:
    """Images (PIL images, file paths, or a Hugging Face dataset) and their integer labels."""

    images: Sequence[Any]
    labels: Sequence[int]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) of unreadable files


class ImageDataset(Dataset):
    def __init__(self, split: Split, transform: Callable | None, image_key: str | None = None) -> None:
        self.split, self.transform, self.image_key = split, transform, image_key

    def __len__(self) -> int:
        return len(self.split.labels)

    def __getitem__(self, index: int):
        item = self.split.images[index]
        if self.image_key is not None:  # a Hugging Face dataset row
            item = item[self.image_key]
        image = open_image(item) if isinstance(item, (str, os.PathLike)) else item
        image = image.convert("RGB")
        return (self.transform(image) if self.transform else image), int(self.split.labels[index])


def open_image(path: str | os.PathLike) -> Image.Image:
    """The image file, read now (a damaged file fails here, named)."""
    try:
        image = Image.open(path)
        image.load()
        return image
    except Exception as e:  # damaged after the scan: name the file instead of a bare worker traceback
        raise DataError(f"cannot read image {path}: {e}") from None


# -- sources ---------------------------------------------------------------------------------------


def eval_transform(preprocessing: dict) -> Callable:
    """timm's evaluation transform for a model's preprocessing (resize, centre crop, normalise): a PIL image in, a
    tensor out, as ``zoo eval``, ``zoo predict`` and ``zoo embed`` show images to a classifier."""
    from timm.data import create_transform

    pre = preprocessing
    return create_transform(input_size=tuple(pre["input_size"]), interpolation=pre["interpolation"], mean=pre["mean"],
                            std=pre["std"], crop_pct=pre["crop_pct"], is_training=False)


def load_digits_splits(val_fraction: float, seed: int, upsample: int = 32) -> tuple[Split, Split, list[str]]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = [
        Image.fromarray((img * (255.0 / 16.0)).astype("uint8"), "L").resize((upsample, upsample), Image.BILINEAR)
        for img in digits.images
    ]
    index = list(range(len(images)))
    train_idx, val_idx = train_test_split(index, test_size=val_fraction, random_state=seed, stratify=digits.target)
    pick = lambda idx: Split([images[i] for i in idx], [int(digits.target[i]) for i in idx])  # noqa: E731
    return pick(sorted(train_idx)), pick(sorted(val_idx)), [str(c) for c in range(10)]


def load_shapes_splits(train_per_class: int, val_per_class: int, seed: int, size: int) -> tuple[Split, Split, list[str]]:
    from zoo.data.shapes import CLASSES, classification_sample

    def make(split: str, per_class: int) -> Split:
        samples = [classification_sample(seed, split, i, size) for i in range(per_class * len(CLASSES))]
        return Split([s[0] for s in samples], [s[1] for s in samples])

    return make("train", train_per_class), make("val", val_per_class), list(CLASSES)


def load_folder_splits(root: str | os.PathLike, train_dir: str = "train", val_dir: str = "val") -> tuple[Split, Split, list[str]]:
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    root = Path(root).expanduser()
    layout = f"expected {root}/{train_dir}/<class>/*.jpg and {root}/{val_dir}/<class>/*.jpg"
    for sub in (train_dir, val_dir):
        if not (root / sub).is_dir():
            raise DataError(f"image folder {root / sub} does not exist; {layout}")
    try:
        classes, class_to_idx = find_classes(str(root / train_dir))
    except FileNotFoundError:
        raise DataError(f"{root / train_dir} has no class folders; {layout}") from None
    val_classes, _ = find_classes(str(root / val_dir)) if any((root / val_dir).iterdir()) else ([], {})
    if sorted(val_classes) != sorted(classes):
        missing = sorted(set(classes) - set(val_classes))
        extra = sorted(set(val_classes) - set(classes))
        raise DataError(
            f"{root / val_dir} must have the same class folders as {root / train_dir}"
            + (f"; missing: {', '.join(missing[:5])}" if missing else "")
            + (f"; not in train: {', '.join(extra[:5])}" if extra else "")
        )
    splits = []
    for sub in (train_dir, val_dir):
        try:
            samples = make_dataset(str(root / sub), class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
        except FileNotFoundError as e:
            raise DataError(f"{e}; {layout}") from None
        if not samples:
            raise DataError(f"{root / sub} holds no images ({', '.join(IMG_EXTENSIONS[:4])}, ...); {layout}")
        splits.append(_verified(samples, root / sub))
    return splits[0], splits[1], classes


def _verified(samples: list[tuple[str, int]], where: Path) -> Split:
    """Drop files PIL cannot decode, remembering which and why."""
    from rich.progress import track

    keep_paths, keep_labels, skipped = [], [], []
    iterator = track(samples, description=f"checking {where.name} images", transient=True) if len(samples) > 2000 else samples
    for path, label in iterator:
        try:
            with Image.open(path) as image:
                image.verify()
        except Exception as e:
            skipped.append((path, f"{type(e).__name__}: {e}"))
            continue
        keep_paths.append(path)
        keep_labels.append(label)
    if not keep_paths:
        raise DataError(f"none of the {len(samples)} images in {where} could be read (first: {skipped[0][0]}: {skipped[0][1]})")
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} unreadable image(s) in {where} (first: {skipped[0][0]}: {skipped[0][1]})",
            UserWarning,
            stacklevel=2,
        )
    return Split(keep_paths, keep_labels, skipped)


def load_hf_splits(
    path: str, image_column: str, label_column: str, train_split: str, val_split: str | None, val_fraction: float, seed: int
) -> tuple[Split, Split, list[str]]:
    import datasets

    try:
        ds = datasets.load_from_disk(path) if Path(path).expanduser().exists() else datasets.load_dataset(path)
    except Exception as e:
        raise DataError(f"cannot load Hugging Face dataset {path!r}: {type(e).__name__}: {e}") from None
    if not isinstance(ds, datasets.DatasetDict):
        ds = datasets.DatasetDict({train_split: ds})
    if train_split not in ds:
        raise DataError(f"dataset {path!r} has no split {train_split!r}; splits: {', '.join(ds)}")
    train = ds[train_split]
    for column in (image_column, label_column):
        if column not in train.column_names:
            raise DataError(f"dataset {path!r} has no column {column!r}; columns: {', '.join(train.column_names)}")
    if val_split and val_split in ds:
        val = ds[val_split]
    elif val_split and val_split != "auto":
        raise DataError(f"dataset {path!r} has no split {val_split!r}; splits: {', '.join(ds)} (or data.val_split=auto)")
    else:
        parts = train.train_test_split(test_size=val_fraction, seed=seed)
        train, val = parts["train"], parts["test"]
    feature = train.features[label_column]
    classes = list(feature.names) if hasattr(feature, "names") else sorted({str(v) for v in train[label_column]})
    if not hasattr(feature, "names"):
        to_index = {c: i for i, c in enumerate(classes)}
        labels = lambda split: [to_index[str(v)] for v in split[label_column]]  # noqa: E731
    else:
        labels = lambda split: list(split[label_column])  # noqa: E731
    return Split(train, labels(train)), Split(val, labels(val)), classes


# -- the DataModule --------------------------------------------------------------------------------


class ClassificationDataModule(L.LightningDataModule):
    """Train/val loaders for one of :data:`SOURCES`, with transforms from the model's preprocessing."""

    def __init__(self, cfg: Any, spec: ModelSpec, seed: int = 0, *, with_train: bool = True) -> None:
        """``with_train`` is the task table's common signature; both splits come from one read here, so an evaluation
        that needs only the val split loses nothing by reading the train split too."""
        super().__init__()
        self.cfg, self.spec, self.seed = cfg, spec, seed
        self.train_split: Split | None = None
        self.val_split: Split | None = None
        self._classes: list[str] = []

    @property
    def classes(self) -> list[str]:
        self._load()
        return self._classes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_size(self) -> tuple[int, int, int]:
        size = self.cfg.get("img_size")
        return (3, int(size), int(size)) if size else tuple(self.spec.input_size)

    def preprocessing(self) -> dict[str, Any]:
        """The model's preprocessing as this data module applies it (saved with the trained model)."""
        pre = self.spec.preprocessing()
        pre["input_size"] = self.input_size
        if self.cfg.get("crop_pct") is not None:
            pre["crop_pct"] = float(self.cfg.crop_pct)
        return pre

    def _load(self) -> None:
        if self.train_split is not None:
            return
        c, source = self.cfg, self.cfg.source
        if source == "digits":
            splits = load_digits_splits(c.val_fraction, self.seed)
        elif source == "shapes":
            splits = load_shapes_splits(c.train_per_class, c.val_per_class, c.get("data_seed", self.seed), c.get("image_size", 64))
        elif source == "folder":
            if not c.get("root"):
                raise DataError("data.root is not set: point it at a folder with train/ and val/ (data.root=/path/to/images)")
            splits = load_folder_splits(c.root, c.get("train_dir", "train"), c.get("val_dir", "val"))
        elif source == "hf":
            if not c.get("path"):
                raise DataError("data.path is not set: a Hugging Face dataset name or a save_to_disk folder")
            splits = load_hf_splits(c.path, c.image_column, c.label_column, c.train_split, c.val_split, c.val_fraction, self.seed)
        else:
            raise DataError(f"unknown data source {source!r}; valid: {', '.join(SOURCES)}")
        if len(splits[2]) < 2:
            raise DataError(f"the {source} data has {len(splits[2])} class ({', '.join(map(str, splits[2]))}); a classifier needs at "
                            "least 2 (one folder per class under train/ and val/)")
        self.train_split, self.val_split, self._classes = splits

    def setup(self, stage: str | None = None) -> None:
        self._load()

    def transform(self, training: bool) -> Callable:
        from timm.data import create_transform

        pre, aug = self.preprocessing(), self.cfg.get("augment", {}) or {}
        if not training:
            return eval_transform(pre)
        common = dict(input_size=pre["input_size"], interpolation=pre["interpolation"], mean=pre["mean"], std=pre["std"])
        return create_transform(
            is_training=True,
            scale=tuple(aug.get("scale", (0.08, 1.0))),
            ratio=tuple(aug.get("ratio", (3 / 4, 4 / 3))),
            hflip=aug.get("hflip", 0.5),
            color_jitter=aug.get("color_jitter", 0.4),
            auto_augment=aug.get("auto_augment"),
            re_prob=aug.get("re_prob", 0.0),
            **common,
        )

    def _dataset(self, split: Split, training: bool) -> ImageDataset:
        key = self.cfg.image_column if self.cfg.source == "hf" else None
        return ImageDataset(split, self.transform(training), image_key=key)

    def train_dataloader(self) -> DataLoader:
        self._load()
        return self._loader(self._dataset(self.train_split, True), shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        self._load()
        return self._loader(self._dataset(self.val_split, False), shuffle=False, drop_last=False)

    def calibration_dataloader(self) -> DataLoader:
        """The training images with the evaluation transform, in order: for choosing thresholds (ANN-to-SNN
        conversion, early exit) on data that is neither augmented at random nor the validation split."""
        self._load()
        return self._loader(self._dataset(self.train_split, False), shuffle=False, drop_last=False)

    def _loader(self, dataset: Dataset, shuffle: bool, drop_last: bool) -> DataLoader:
        batch = min(int(self.cfg.batch_size), len(dataset)) if drop_last else int(self.cfg.batch_size)
        return loader(dataset, self.cfg, batch_size=batch, shuffle=shuffle, drop_last=drop_last)

    def describe(self) -> str:
        self._load()
        skipped = len(self.train_split.skipped) + len(self.val_split.skipped)
        return (
            f"{self.cfg.source}: {len(self.train_split.labels)} train / {len(self.val_split.labels)} val images, "
            f"{len(self.classes)} classes" + (f", {skipped} unreadable skipped" if skipped else "")
        )
