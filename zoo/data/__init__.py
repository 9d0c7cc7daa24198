"""Datasets and LightningDataModules (imported on demand; ``import zoo`` does not load them)."""
from __future__ import annotations

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
