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
