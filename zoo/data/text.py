"""Language-modelling data: byte-level text that exists offline, behind one LightningDataModule.

- ``stdlib``: the Python standard library's own ``.py`` sources (every Python install has them, no
  download; their bytes differ between Python versions, so a measured loss names the version).
- ``files``: ``data.root``, a text file or a folder scanned for ``data.pattern`` (default ``**/*.txt``).

Each file goes whole to train or val by a hash of its path (no file feeds both, so validation measures text
the model never saw); each split reads its files in sorted order up to its share of ``max_bytes``, as bytes: the
byte-level vocabulary of 256 (``zoo.models.matformer.encode_bytes``). Each split is cut into
non-overlapping windows of ``context + 1`` bytes (inputs and next-byte targets); an epoch visits every
training window once, in random order, so DDP's sampler shards it like any dataset.
"""
from __future__ import annotations

import sysconfig
import zlib
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from zoo.data import loader
from zoo.errors import DataError
from zoo.registry import ModelSpec

SOURCES = ("stdlib", "files")
SKIPPED_DIRS = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}


def text_files(source: str, root: str | None = None, pattern: str = "**/*.txt") -> tuple[Path, list[Path]]:
    """The folder and the sorted files of a text source."""
    if source == "stdlib":
        base = Path(sysconfig.get_paths()["stdlib"])
        files = [p for p in base.rglob("*.py") if not SKIPPED_DIRS & set(p.relative_to(base).parts[:-1])]
    elif source == "files":
        if not root:
            raise DataError("data.root is not set: point it at a text file or a folder of them (data.root=/path/to/text)")
        base = Path(root).expanduser()
        if base.is_file():
            return base.parent, [base]
        if not base.is_dir():
            raise DataError(f"data.root={root}: no such file or folder")
        files = [p for p in base.glob(pattern) if p.is_file()]
    else:
        raise DataError(f"unknown text source {source!r}; valid: {', '.join(SOURCES)}")
    if not files:
        raise DataError(f"no text files for source {source!r} under {base} (pattern {pattern!r})")
    return base, sorted(files)


def load_text_splits(source: str, root: str | None, pattern: str, max_bytes: int, val_fraction: float) -> tuple[bytes, bytes, int]:
    """Train and val bytes and the number of files read. Each file goes whole to one split (by a hash of its
    path); each split reads its files in sorted order up to its share of ``max_bytes``."""
    base, files = text_files(source, root, pattern)
    budgets = {"train": max_bytes - int(max_bytes * val_fraction), "val": int(max_bytes * val_fraction)}
    chunks: dict[str, list[bytes]] = {"train": [], "val": []}
    read = 0
    for path in files:
        relative = path.relative_to(base).as_posix() if path.is_relative_to(base) else path.name
        split = "val" if zlib.crc32(relative.encode()) % 10_000 < val_fraction * 10_000 else "train"
        if budgets[split] <= 0:
            continue
        data = path.read_bytes()[: budgets[split]]
        if data:
            chunks[split].append(data)
            budgets[split] -= len(data)
            read += 1
    for split, parts in chunks.items():
        if not parts:
            raise DataError(f"{source}: the {len(files)} file(s) under {base} give no {split} text; add files or change "
                            "data.val_fraction (each file goes whole to train or val)")
    return b"\n".join(chunks["train"]), b"\n".join(chunks["val"]), read


class Windows(Dataset):
    """Non-overlapping windows of ``context + 1`` bytes as (inputs, next-byte targets)."""

    def __init__(self, data: bytes, context: int, limit: int | None = None) -> None:
        self.tokens = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        self.context = context
        count = (len(self.tokens) - 1) // context
        self.count = min(count, limit) if limit else count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int):
        start = index * self.context
        window = self.tokens[start: start + self.context + 1].long()
        return window[:-1], window[1:]


class TextDataModule(L.LightningDataModule):
    def __init__(self, cfg: Any, spec: ModelSpec, seed: int = 0, *, with_train: bool = True) -> None:
        """``with_train`` is the task table's common signature; both splits come from one read of the text."""
        super().__init__()
        self.cfg, self.spec, self.seed = cfg, spec, seed
        self.train_bytes: bytes | None = None
        self.val_bytes = b""
        self.files = 0

    @property
    def context(self) -> int:
        context = int(self.cfg.get("context") or self.spec.input_size[0])
        if context > self.spec.input_size[0]:
            raise DataError(f"data.context={context} is longer than {self.spec.name}'s context of {self.spec.input_size[0]} "
                            "tokens; lower it or build the model with model.kwargs.context_length")
        return context

    @property
    def num_classes(self) -> int:
        return 256  # bytes

    @property
    def classes(self) -> list[str]:
        return [f"0x{i:02x}" for i in range(256)]

    def preprocessing(self) -> dict[str, Any]:
        return {"input_size": (self.context,)}

    def _load(self) -> None:
        if self.train_bytes is not None:
            return
        c = self.cfg
        self.train_bytes, self.val_bytes, self.files = load_text_splits(
            c.source, c.get("root"), c.get("pattern", "**/*.txt"), int(c.max_bytes), float(c.val_fraction))
        if len(self.val_bytes) <= self.context:
            raise DataError(f"the validation text ({len(self.val_bytes)} bytes) is shorter than one window of "
                            f"{self.context + 1}; raise data.max_bytes or data.val_fraction")

    def setup(self, stage: str | None = None) -> None:
        self._load()

    def train_dataloader(self) -> DataLoader:
        self._load()
        return self._loader(Windows(self.train_bytes, self.context), shuffle=True)

    def val_dataloader(self) -> DataLoader:
        self._load()
        return self._loader(Windows(self.val_bytes, self.context, self.cfg.get("val_windows")), shuffle=False)

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        return loader(dataset, self.cfg, shuffle=shuffle, drop_last=shuffle)

    def describe(self) -> str:
        self._load()
        return (f"{self.cfg.source}: {self.files} files, {len(self.train_bytes):,} train / {len(self.val_bytes):,} val bytes, "
                f"windows of {self.context}")
