"""Datasets and LightningDataModules (imported on demand; ``import zoo`` does not load them)."""
from __future__ import annotations

from typing import Any


def data_config(name: str, **options: Any):
    """The data config ``conf/data/NAME.yaml`` (what a recipe's ``data=NAME`` picks), with ``options`` set: each must
    be a key it has. For building a DataModule outside ``zoo train``."""
    from importlib.resources import files

    from omegaconf import OmegaConf

    from zoo.errors import ConfigError, closest

    folder = files("zoo.conf") / "data"
    names = sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))
    if name not in names:
        hint = closest(name, names, n=1)
        raise ConfigError(f"unknown data config {name!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "") + f"; choices: {', '.join(names)}")
    cfg = OmegaConf.create((folder / f"{name}.yaml").read_text())
    for key, value in options.items():
        if key not in cfg:
            hint = closest(key, list(cfg.keys()), n=1)
            raise ConfigError(f"data config {name!r} has no option {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                              + f"; options: {', '.join(cfg.keys())}")
        cfg[key] = value
    return cfg
