"""Datasets and LightningDataModules (imported on demand; ``import zoo`` does not load them)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def setting(cfg: Any, key: str, default: Any = None) -> Any:
    """``cfg.key`` of a data config, or ``default`` when absent, null or ``???`` (what every data module reads)."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        if key not in cfg or OmegaConf.is_missing(cfg, key):
            return default
    value = cfg.get(key, default)
    return default if value is None else value


def loader(dataset: Any, cfg: Any, *, shuffle: bool, drop_last: bool, collate_fn: Any = None,
           keep_workers: bool = True, batch_size: int | None = None) -> Any:
    """The DataLoader every data module builds: ``cfg.batch_size`` (unless ``batch_size`` is given), ``cfg.num_workers``
    (kept alive between epochs unless ``keep_workers`` is False), pinned memory when a GPU is there."""
    import torch
    from torch.utils.data import DataLoader

    workers = int(setting(cfg, "num_workers", 0))
    return DataLoader(dataset, batch_size=int(batch_size or cfg.batch_size), shuffle=shuffle, drop_last=drop_last,
                      collate_fn=collate_fn, num_workers=workers, persistent_workers=workers > 0 and keep_workers,
                      pin_memory=torch.cuda.is_available())


def image_counts(cfg: Any) -> tuple[int, int]:
    """``data.train_images`` and ``data.val_images`` of a generated set, each a positive whole number."""
    from zoo.errors import DataError

    counts = {k: setting(cfg, k, 0) for k in ("train_images", "val_images")}
    for key, count in counts.items():
        if not isinstance(count, int) or count < 1:
            raise DataError(f"data.{key} must be a positive number of images, not {count!r}")
    return counts["train_images"], counts["val_images"]


def hf_split(path: str, split: str, columns: Sequence[str]) -> Any:
    """Split ``split`` of a Hugging Face dataset (a Hub name or a ``save_to_disk`` folder), checked to have ``columns``."""
    from pathlib import Path

    import datasets

    from zoo.errors import DataError

    try:
        ds = datasets.load_from_disk(path) if Path(path).expanduser().exists() else datasets.load_dataset(path)
    except Exception as e:  # noqa: BLE001 - whatever datasets raises, one line naming the dataset
        raise DataError(f"cannot load Hugging Face dataset {path!r}: {type(e).__name__}: {e}") from None
    if not isinstance(ds, datasets.DatasetDict) or split not in ds:
        have = ", ".join(ds) if isinstance(ds, datasets.DatasetDict) else "none (a single Dataset)"
        raise DataError(f"dataset {path!r} has no split {split!r}; splits: {have} (set data.train_split / data.val_split)")
    rows = ds[split]
    for column in columns:
        if column not in rows.column_names:
            raise DataError(f"dataset {path!r} has no column {column!r}; columns: {', '.join(rows.column_names)}")
    return rows


def square_side(cfg: Any, spec: Any, smallest: int) -> int:
    """``data.img_size`` (the model's own input side when unset), checked to be a whole number >= ``smallest``."""
    from zoo.errors import ConfigError

    size = setting(cfg, "img_size") or spec.input_size[-1]
    if not isinstance(size, int) or size < smallest:
        raise ConfigError(f"data.img_size={size!r}: give the square side the model sees, at least {smallest} pixels")
    return size
