"""Image-text data: images with a caption each, for contrastive training and retrieval evaluation.

Two sources behind :class:`CaptionDataModule`:

- ``shape_captions``: one shape of a named colour in one of five places on grey noise, captioned "a red circle at
  the top left" (:func:`zoo.data.shapes.caption_sample`: 120 distinct captions), generated from a seed, no download.
- ``caption_folder``: ``root/{train,val}.jsonl``, one ``{"image": "relative/path.jpg", "text": "..."}`` per line
  (the layout of COCO Captions or Flickr30k once flattened); images are checked when the split is read.

A batch is ``(images [B, 3, S, S], captions: list[str])``: the task tokenizes with its model's tokenizer, so the data
stays model-agnostic. Images get the model's evaluation transform (resize, centre crop, normalise); training adds no
geometric augmentation, since a flip or crop would change what the caption says (left, right, top).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from zoo.data import image_counts, loader, setting, square_side
from zoo.errors import DataError
from zoo.registry import ModelSpec

SOURCES = ("shape_captions", "caption_folder")


class ShapeCaptions:
    """``count`` generated (image, caption) pairs of one split, made on access."""

    def __init__(self, seed: int, split: str, count: int, size: int) -> None:
        self.seed, self.split, self.count, self.size = seed, split, count, size

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int):
        from zoo.data.shapes import caption_sample

        return caption_sample(self.seed, self.split, index, self.size)


class FolderCaptions:
    """The pairs listed in ``root/<split>.jsonl``."""

    def __init__(self, root: Path, split: str) -> None:
        listing = root / f"{split}.jsonl"
        if not listing.is_file():
            raise DataError(f"{listing} does not exist: write one JSON object per line, "
                            '{"image": "path/relative/to/root.jpg", "text": "a caption"}')
        self.items: list[tuple[Path, str]] = []
        for number, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                path, text = root / str(entry["image"]), str(entry["text"]).strip()
            except (ValueError, KeyError, TypeError):
                raise DataError(f"{listing}:{number} is not {{\"image\": ..., \"text\": ...}}: {line[:80]!r}") from None
            if not path.is_file() or not text:
                raise DataError(f"{listing}:{number}: " + (f"no image at {path}" if not path.is_file() else "the caption is empty"))
            self.items.append((path, text))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        from zoo.data.classification import open_image

        path, text = self.items[index]
        return open_image(path), text


class CaptionDataset(Dataset):
    def __init__(self, pairs, transform) -> None:
        self.pairs, self.transform = pairs, transform

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        image, text = self.pairs[index]
        return self.transform(image.convert("RGB")), text


def collate(batch: list[tuple[torch.Tensor, str]]) -> tuple[torch.Tensor, list[str]]:
    return torch.stack([image for image, _ in batch]), [text for _, text in batch]


class CaptionDataModule(L.LightningDataModule):
    """Train/val loaders of (image, caption) pairs for one of :data:`SOURCES`."""

    def __init__(self, cfg: Any, spec: ModelSpec, seed: int = 0, *, with_train: bool = True) -> None:
        super().__init__()
        self.cfg, self.spec, self.seed, self.with_train = cfg, spec, seed, with_train
        self.img_size = square_side(cfg, spec, 16)
        self.train_pairs = self.val_pairs = None
        self._loaded = False

    classes: tuple[str, ...] = ()  # captions, not classes: retrieval ranks every caption against every image
    num_classes = 0

    def preprocessing(self) -> dict[str, Any]:
        pre = self.spec.preprocessing()
        pre.update(input_size=(3, self.img_size, self.img_size), crop_pct=1.0)
        return pre

    def _load(self) -> None:
        if self._loaded:
            return
        c, source = self.cfg, setting(self.cfg, "source")
        if source == "shape_captions":
            seed, size = int(setting(c, "data_seed", self.seed)), int(setting(c, "image_size", 64))
            n_train, n_val = image_counts(c)
            train = ShapeCaptions(seed, "train", n_train, size)
            val = ShapeCaptions(seed, "val", n_val, size)
        elif source == "caption_folder":
            root = Path(str(setting(c, "root", ""))).expanduser()
            if not setting(c, "root") or not root.is_dir():
                raise DataError(f"data.root {str(root) if setting(c, 'root') else 'is not set'}: point it at a folder with "
                                "train.jsonl and val.jsonl")
            train = FolderCaptions(root, "train") if self.with_train else None
            val = FolderCaptions(root, "val")
        else:
            raise DataError(f"unknown image-text data source {source!r}; valid: {', '.join(SOURCES)} (set data.source=...)")
        self.train_pairs = train if self.with_train else None
        self.val_pairs, self._loaded = val, True

    def setup(self, stage: str | None = None) -> None:
        self._load()

    def transform(self):
        from zoo.data.classification import eval_transform

        return eval_transform(self.preprocessing())

    def train_dataloader(self) -> DataLoader:
        self._load()
        if self.train_pairs is None:
            raise DataError("this data module reads only the val split (with_train=False, for evaluation)")
        dataset = CaptionDataset(self.train_pairs, self.transform())
        return self._loader(dataset, shuffle=True, drop_last=len(dataset) > int(self.cfg.batch_size))

    def val_dataloader(self) -> DataLoader:
        self._load()
        return self._loader(CaptionDataset(self.val_pairs, self.transform()), shuffle=False, drop_last=False)

    def _loader(self, dataset: Dataset, shuffle: bool, drop_last: bool) -> DataLoader:
        return loader(dataset, self.cfg, shuffle=shuffle, drop_last=drop_last, collate_fn=collate)

    def describe(self) -> str:
        self._load()
        return (f"{setting(self.cfg, 'source')}: " + (f"{len(self.train_pairs)} train / " if self.train_pairs is not None else "")
                + f"{len(self.val_pairs)} val image-caption pairs, img_size {self.img_size}")
