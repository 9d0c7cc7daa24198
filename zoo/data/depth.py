"""Monocular depth data: an RGB image and its depth map in metres, 0 where the sensor gave no depth.

Three sources behind :class:`DepthDataModule`:

- ``shapes``: synthetic rooms (:func:`zoo.data.shapes.depth_sample`: a floor, a back wall and shapes standing at
  known distances, exact depth), generated from a seed, no download.
- ``folder``: NYU Depth v2 exported the usual way: ``root/images/{train,val}/NAME.jpg|png`` with
  ``root/depth/{train,val}/NAME.png`` or ``NAME.npy``.
- ``hf``: a Hugging Face ``datasets`` dataset with an image column and a depth column (an image or an array).

Integer depth maps (16-bit PNGs) are divided by ``data.depth_scale``, their units per metre (1000 for millimetres);
float maps (``.npy``, 32-bit images) are metres already.

A pixel is valid when its depth is finite, above 0 and at most ``data.max_depth``; the loss and the metrics use valid
pixels only. Training augmentation is FastDepth's (Wofk et al., arXiv:1903.03273, after Ma and Karaman): a random
scale ``s`` of image and depth with the depth divided by ``s`` (the scene moves closer as it grows), a small rotation,
a crop to the training size, a flip and colour jitter, written with ``torchvision.transforms.v2`` on the depth as a
``tv_tensors.Mask`` (nearest-neighbour resampling, so no depth is invented between an object and the wall behind it,
and pixels the rotation uncovers are 0: invalid). Evaluation resizes image and depth to the model's input size.
"""
from __future__ import annotations

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
from torchvision.transforms.v2 import functional as TF

from zoo.data import hf_split, image_counts, loader, setting, square_side
from zoo.data.detection_sources import IMAGE_SUFFIXES, DataProblem
from zoo.errors import ConfigError, DataError, closest
from zoo.registry import ModelSpec

SOURCES = ("shapes", "folder", "hf")
AUGMENT_DEFAULTS: dict[str, Any] = {
    "scale": (1.0, 1.5),  # FastDepth's random scale; the depth is divided by the factor
    "rotate": 5.0,  # degrees, either way
    "hflip": 0.5,
    "jitter": 0.4,  # brightness, contrast and saturation jitter (FastDepth's 0.4)
}


def to_metres(depth: np.ndarray, scale: float | None, name: str) -> np.ndarray:
    """A stored depth map as float32 metres: integer maps (16-bit PNGs) divided by ``scale``, float maps as they are."""
    depth = np.asarray(depth)
    if depth.ndim == 3:
        if depth.shape[-1] != 1 and not (depth[..., :3] == depth[..., :1]).all():
            raise DataError(f"{name}: the depth map is a colour image; store one depth value per pixel (16-bit PNG or .npy)")
        depth = depth[..., 0]
    if depth.ndim != 2:
        raise DataError(f"{name}: a depth map is 2-D (H x W), not shaped {depth.shape}")
    if np.issubdtype(depth.dtype, np.integer):
        if not scale:
            raise DataError(f"{name}: an integer depth map needs data.depth_scale (units per metre: 1000 for millimetres)")
        return depth.astype(np.float32) / float(scale)
    return depth.astype(np.float32)


@dataclass
class DepthPairs:
    """Images and their depth maps: file paths, or rows of a Hugging Face dataset (``columns`` = image, depth)."""

    images: Sequence[Any]
    depths: Sequence[Any]
    scale: float | None
    columns: tuple[str, str] | None = None

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> tuple[Image.Image, np.ndarray, str]:
        """``(RGB image, depth in metres, a name for messages)``."""
        if self.columns is not None:
            row = self.images[index]
            name = f"row {index}"
            return row[self.columns[0]].convert("RGB"), to_metres(np.asarray(row[self.columns[1]]), self.scale, name), name
        with Image.open(self.images[index]) as image:
            rgb = image.convert("RGB")
        path = Path(self.depths[index])
        raw = np.load(path, allow_pickle=False) if path.suffix == ".npy" else np.asarray(Image.open(path))
        return rgb, to_metres(raw, self.scale, str(path)), str(path)


class ShapesDepth:
    """The synthetic rooms with their exact depth."""

    def __init__(self, seed: int, split: str, count: int, size: int) -> None:
        self.seed, self.split, self.count, self.size = seed, split, count, size

    def __len__(self) -> int:
        return self.count

    def load(self, index: int) -> tuple[Image.Image, np.ndarray, str]:
        from zoo.data.shapes import depth_sample

        image, depth = depth_sample(self.seed, self.split, index, self.size)
        return image, depth, f"shapes_depth {self.split} {index}"


def folder_pairs(root: Path, split: str, scale: float | None) -> tuple[DepthPairs, list[DataProblem]]:
    images_dir, depth_dir = root / "images" / split, root / "depth" / split
    layout = f"expected {root}/images/{split}/NAME.jpg with {root}/depth/{split}/NAME.png (16-bit) or NAME.npy"
    if not images_dir.is_dir() or not depth_dir.is_dir():
        raise DataError(f"{images_dir if not images_dir.is_dir() else depth_dir} is not a folder; {layout}")
    depths = {p.stem: p for p in depth_dir.iterdir() if p.suffix.lower() in (".png", ".npy")}
    images, paired, problems = [], [], []
    for path in sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        if path.stem in depths:
            images.append(str(path))
            paired.append(str(depths[path.stem]))
        else:
            problems.append(DataProblem(str(path), "", f"no depth map {path.stem}.png/.npy in {depth_dir}", "skipped"))
    if not images:
        raise DataError(f"{images_dir} holds no images with depth maps; {layout}")
    return DepthPairs(images, paired, scale), problems


def hf_pairs(path: str, image_column: str, depth_column: str, split: str, scale: float | None) -> DepthPairs:
    rows = hf_split(path, split, (image_column, depth_column))
    return DepthPairs(rows, rows, scale, (image_column, depth_column))


class DepthTransform:
    """Image and depth together: FastDepth's training augmentation (``augment`` given) or a plain resize, then the
    image as normalised floats and the depth as ``[1, H, W]`` metres (0: invalid)."""

    def __init__(self, size: int, mean: Sequence[float], std: Sequence[float], augment: Any | None) -> None:
        self.size, self.augment = size, augment is not None
        self.normalize = v2.Normalize(mean=list(mean), std=list(std))
        if augment is None:
            return
        options = {**AUGMENT_DEFAULTS, **{k: v for k, v in dict(augment).items() if v is not None}}
        unknown = sorted(set(options) - set(AUGMENT_DEFAULTS))
        if unknown:
            raise ConfigError(f"unknown data.augment option(s) {', '.join(unknown)}; depth has {', '.join(AUGMENT_DEFAULTS)}")
        self.low, self.high = (float(v) for v in options["scale"])
        if not 0 < self.low <= self.high:
            raise ConfigError(f"data.augment.scale={[self.low, self.high]} must be 0 < low <= high")
        jitter = float(options["jitter"])
        self.geometry = v2.Compose([v2.RandomRotation(float(options["rotate"])), v2.RandomCrop(size, pad_if_needed=True),
                                    v2.RandomHorizontalFlip(float(options["hflip"]))])
        self.colour = v2.ColorJitter(jitter, jitter, jitter) if jitter else None

    def __call__(self, image: Image.Image, depth: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        img = tv_tensors.Image(TF.pil_to_tensor(image))
        dep = tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(depth))[None])
        if not self.augment:
            img = TF.resize(img, [self.size, self.size], antialias=True)
            dep = TF.resize(dep, [self.size, self.size])
        else:
            s = float(torch.empty(()).uniform_(self.low, self.high))
            side = max(self.size, round(self.size * s))  # the shorter side, scaled past the crop
            img, dep = TF.resize(img, side, antialias=True), TF.resize(dep, side)
            dep = tv_tensors.Mask(dep / s)
            img, dep = self.geometry(img, dep)
            if self.colour is not None:
                img = self.colour(img)
        pixels = self.normalize(TF.to_dtype(img, torch.float32, scale=True))
        return pixels.as_subclass(torch.Tensor), dep.as_subclass(torch.Tensor).float()


class DepthDataset(Dataset):
    """``(image float [3, H, W] normalised, depth float [1, H, W] metres, 0 invalid)`` items."""

    def __init__(self, pairs: DepthPairs | ShapesDepth, transform: DepthTransform, max_depth: float) -> None:
        self.pairs, self.transform, self.max_depth = pairs, transform, max_depth

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, depth, _ = self.pairs.load(index)
        depth = np.where(np.isfinite(depth) & (depth > 0) & (depth <= self.max_depth), depth, 0).astype(np.float32)
        return self.transform(image, depth)


class DepthDataModule(L.LightningDataModule):
    """Train/val loaders of images and depth maps for one of :data:`SOURCES`."""

    def __init__(self, cfg: Any, spec: ModelSpec, seed: int = 0, *, with_train: bool = True) -> None:
        super().__init__()
        self.cfg, self.spec, self.seed, self.with_train = cfg, spec, seed, with_train
        self.img_size = square_side(cfg, spec, 32)
        self.max_depth = float(setting(cfg, "max_depth", 10.0))
        if self.max_depth <= 0:
            raise ConfigError(f"data.max_depth={self.max_depth}: the farthest valid depth in metres, above 0")
        self.train_pairs = self.val_pairs = None
        self.problems: list[DataProblem] = []
        self._loaded = False

    classes = ("depth",)  # one output channel; depth has no classes
    num_classes = 1

    @property
    def input_size(self) -> tuple[int, int, int]:
        return (3, self.img_size, self.img_size)

    def preprocessing(self) -> dict[str, Any]:
        pre = self.spec.preprocessing()
        pre.update(input_size=self.input_size, crop_pct=1.0)
        return pre

    def _load(self) -> None:
        if self._loaded:
            return
        c, source = self.cfg, setting(self.cfg, "source")
        problems: list[DataProblem] = []
        if source == "shapes":
            seed, size = int(setting(c, "data_seed", self.seed)), int(setting(c, "image_size", 128))
            n_train, n_val = image_counts(c)
            train = ShapesDepth(seed, "train", n_train, size)
            val = ShapesDepth(seed, "val", n_val, size)
        elif source in ("folder", "hf"):
            scale = setting(c, "depth_scale")
            scale = float(scale) if scale else None
            splits = {}
            for name in ("train", "val") if self.with_train else ("val",):
                split = str(setting(c, f"{name}_split", name))
                if source == "folder":
                    root = Path(str(setting(c, "root", ""))).expanduser()
                    if not setting(c, "root") or not root.is_dir():
                        raise DataError(f"data.root {str(root) if setting(c, 'root') else 'is not set'}: point it at a folder "
                                        "with images/{train,val}/ and depth/{train,val}/")
                    pairs, found = folder_pairs(root, split, scale)
                else:
                    if not setting(c, "path"):
                        raise DataError("data.path is not set: a Hugging Face dataset name or a save_to_disk folder")
                    pairs, found = hf_pairs(str(c.path), str(setting(c, "image_column", "image")),
                                            str(setting(c, "depth_column", "depth")), split, scale), []
                splits[name] = pairs
                problems += found
            train, val = splits.get("train"), splits["val"]
        else:
            hint = closest(str(source), SOURCES)
            raise DataError(f"unknown depth data source {source!r}" + (f"; did you mean {', '.join(hint)}?" if hint else "")
                            + f" Valid: {', '.join(SOURCES)} (set data.source=...)")
        if problems:
            import warnings

            first = "; ".join(str(p) for p in problems[:5]) + ("; ..." if len(problems) > 5 else "")
            warnings.warn(f"{source} data: skipped {len(problems)} image(s) without depth (first: {first})", UserWarning, stacklevel=3)
        self.train_pairs = train if self.with_train else None
        self.val_pairs, self.problems, self._loaded = val, problems, True

    def setup(self, stage: str | None = None) -> None:
        self._load()

    def transform(self, training: bool) -> DepthTransform:
        pre = self.spec.preprocessing()
        augment = (setting(self.cfg, "augment") or {}) if training else None
        return DepthTransform(self.img_size, pre["mean"], pre["std"], augment)

    def _dataset(self, pairs, training: bool) -> DepthDataset:
        return DepthDataset(pairs, self.transform(training), self.max_depth)

    def train_dataloader(self) -> DataLoader:
        self._load()
        if self.train_pairs is None:
            raise DataError("this data module reads only the val split (with_train=False, for evaluation)")
        dataset = self._dataset(self.train_pairs, True)
        return loader(dataset, self.cfg, shuffle=True, drop_last=len(dataset) > int(self.cfg.batch_size))

    def val_dataloader(self) -> DataLoader:
        self._load()
        return loader(self._dataset(self.val_pairs, False), self.cfg, shuffle=False, drop_last=False)

    def calibration_dataloader(self) -> DataLoader:
        """The training images with the evaluation transform, in order (int8 calibration)."""
        self._load()
        if self.train_pairs is None:
            raise DataError("this data module reads only the val split (with_train=False, for evaluation)")
        return loader(self._dataset(self.train_pairs, False), self.cfg, shuffle=False, drop_last=False)

    def describe(self) -> str:
        self._load()
        return (f"{setting(self.cfg, 'source')}: " + (f"{len(self.train_pairs)} train / " if self.train_pairs is not None else "")
                + f"{len(self.val_pairs)} val images with depth up to {self.max_depth:g} m, img_size {self.img_size}"
                + (f", {len(self.problems)} images skipped" if self.problems else ""))
