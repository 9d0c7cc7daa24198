"""Recipes and config groups: finding them, composing a recipe with overrides through Hydra, and checking what a
user typed before anything is built (unknown keys, group choices and plugins get one line with the choices).

A recipe in ``recipes/`` is a complete Hydra primary config composing the groups in ``conf/`` (model, data, task,
optim, trainer) and the plugins' generated group. ``zoo train``, ``zoo eval``, cards and ``zoo.lightning`` read
configs through here."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.errors import ConfigError, closest

GROUPS = ("model", "data", "task", "optim", "trainer")
SEARCHPATH = "hydra.searchpath=[pkg://zoo.conf]"


def recipes_dir() -> Path:
    import zoo.recipes

    return Path(zoo.recipes.__file__).parent


def conf_dir() -> Path:
    import zoo.conf

    return Path(zoo.conf.__file__).parent


def list_recipes() -> list[str]:
    return sorted(p.stem for p in recipes_dir().glob("*.yaml"))


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))


def recipe_path(recipe: str) -> Path:
    path = recipes_dir() / f"{recipe}.yaml"
    if not path.is_file():
        hints = closest(recipe, list_recipes(), n=3)
        raise ConfigError(
            f"unknown recipe {recipe!r}. Recipes: {', '.join(list_recipes())}"
            + (f" (did you mean {hints[0]!r}?)" if hints else "")
        )
    return path


def compose(recipe: str, overrides: Sequence[str] = ()):
    """The recipe's config with ``overrides`` applied (no run directory, no logging setup)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    recipe_path(recipe)
    check_overrides(recipe, overrides)
    with initialize_config_dir(config_dir=str(recipes_dir()), version_base="1.3"):
        return hydra_compose(recipe, overrides=[*overrides, SEARCHPATH])


def check_group_choice(group: str, value: str) -> None:
    """``group=value`` must name a config file of that group in ``conf/``."""
    if value not in group_options(group):
        raise ConfigError(
            f"unknown {group} config {value!r}; choices: {', '.join(group_options(group))} "
            f"(or set single keys, e.g. {group}.KEY=VALUE)"
        )


def check_overrides(recipe: str, overrides: Sequence[str]) -> None:
    """Reject unknown keys and group options with the valid choices, before Hydra's longer messages."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import DictConfig

    from zoo.plugins.base import register_configs

    plugins = register_configs()  # every compose and the Hydra entry point pass here first
    parser = OverridesParser.create()
    try:
        parsed = parser.parse_overrides([o for o in overrides if not o.startswith("hydra.")])
    except Exception as e:
        raise ConfigError(f"cannot parse override: {e}") from None
    checked = [o for o in parsed if not (o.is_add() or o.is_delete() or o.key_or_group.startswith("hydra") or o.key_or_group == "recipe")]
    chosen = []  # group choices (data=shapes) change which keys exist, so apply them before checking keys
    for override in checked:
        key = override.key_or_group
        if key == "plugins":  # a list of plugin configs: plugins=[distill,prune]
            names = override.value() if isinstance(override.value(), list) else [override.get_value_element_as_str()]
            for name in names:
                if str(name) not in plugins:
                    hints = closest(str(name), list(plugins), n=1)
                    raise ConfigError(
                        f"unknown plugin {name!r}" + (f" (did you mean {hints[0]!r}?)" if hints else "")
                        + f"; plugins: {', '.join(sorted(plugins))} (another package adds one through the entry-point "
                        "group zoo.plugins)"
                    )
            chosen.append(f"plugins=[{','.join(str(n) for n in names)}]")
            continue
        if key not in GROUPS:
            continue
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.get_value_element_as_str()]
        for value in values:
            check_group_choice(key, value)
        chosen.append(f"{key}={values[0]}")
    with initialize_config_dir(config_dir=str(recipes_dir()), version_base="1.3"):
        base = hydra_compose(recipe, overrides=[SEARCHPATH, *chosen])
    for override in checked:
        key = override.key_or_group
        if key in GROUPS or key == "plugins":
            continue
        node, parts = base, key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, DictConfig) or part not in node.keys():  # `in` is False for ??? values
                where = ".".join(parts[:i]) or "the top level"
                valid = sorted(node.keys()) if isinstance(node, DictConfig) else []
                hint = closest(part, valid, n=3)
                raise ConfigError(
                    f"unknown config key {key!r}: {where} has no {part!r}"
                    + (f" (did you mean {'.'.join(parts[:i] + [hint[0]])!r}?)" if hint else "")
                    + (f". Valid keys there: {', '.join(valid)}" if valid else "")
                    + f". To add a new key use +{key}=..."
                )
            if i < len(parts) - 1:  # the last part may be a required (???) value, which cannot be read
                node = node[part]


def check_values(cfg) -> None:
    """The values a typo most often breaks, checked before anything is built (Lightning and PyTorch would fail later,
    with a traceback far from the setting)."""
    import math

    def number(key: str, value: Any, *, whole: bool, least: float, allow: tuple = ()) -> None:
        ok = (value in allow) or (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                                  and (not whole or float(value).is_integer()) and value >= least)
        if not ok:
            kind = "a whole number" if whole else "a number"
            also = f" (or {', '.join(map(str, allow))})" if allow else ""
            raise ConfigError(f"{key}={value!r}: must be {kind} >= {least:g}{also}")

    number("trainer.max_epochs", cfg.trainer.get("max_epochs"), whole=True, least=1, allow=(None, -1))
    number("trainer.max_steps", cfg.trainer.get("max_steps", -1), whole=True, least=1, allow=(-1, None))
    if cfg.trainer.get("max_epochs") == -1 and cfg.trainer.get("max_steps", -1) in (-1, None):
        raise ConfigError("trainer.max_epochs=-1 trains forever unless trainer.max_steps is set; give one of them")
    number("optim.lr", cfg.optim.get("lr"), whole=False, least=1e-12)
    number("optim.weight_decay", cfg.optim.get("weight_decay", 0), whole=False, least=0)
    from zoo.tasks import SCHEDULES

    if cfg.optim.get("schedule", "cosine") not in SCHEDULES:
        raise ConfigError(f"optim.schedule={cfg.optim.get('schedule')!r}: must be {' or '.join(SCHEDULES)}")
    number("optim.power", cfg.optim.get("power", 0.9), whole=False, least=1e-6)
    number("data.batch_size", cfg.data.get("batch_size", 1), whole=True, least=1)
    number("seed", cfg.get("seed", 0), whole=True, least=0)


def data_config(name: str, **options: Any):
    """The data config ``conf/data/NAME.yaml`` (what a recipe's ``data=NAME`` picks), with ``options`` set: each must
    be a key it has. For building a DataModule outside ``zoo train``."""
    from omegaconf import OmegaConf

    check_group_choice("data", name)
    cfg = OmegaConf.load(conf_dir() / "data" / f"{name}.yaml")
    for key, value in options.items():
        if key not in cfg:
            hint = closest(key, list(cfg.keys()), n=1)
            raise ConfigError(f"data config {name!r} has no option {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                              + f"; options: {', '.join(cfg.keys())}")
        cfg[key] = value
    return cfg
