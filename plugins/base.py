"""The plugin API: one Lightning ``Callback`` per way of changing *how* a model is trained.

A plugin has a ``name`` (what recipes write: ``plugins=[distill]``), an ``order`` (plugins compose in
that order: prune, then distill, then QAT), a ``Config`` dataclass whose fields are its options, declared
there once: they are the keyword arguments of the callback (``Trainer(callbacks=[Prune(ratio=0.5)])`` in
plain Lightning code) and Hydra's ``plugins`` config group (``plugins.distill.teacher=...``), which
:func:`register_configs` generates from the dataclass; unknown or ill-typed options are refused by name.
It has a line saying what it changes in the saved model and the export. It reaches the run only
through Lightning hooks; to add to the training loss it registers a term with the task
(``task.add_loss_term``), and modules it trains (e.g. adapters) with ``task.add_trained_module``. Its schedule
lives in ``state_dict()`` (Lightning keeps it in every checkpoint); one that changes the model's structure rebuilds it
from there with :meth:`Plugin.on_resume` before a resumed run's weights load.

Every plugin, the built-ins included, is found through the entry-point group ``zoo.plugins`` (an entry
point names a ``Plugin`` subclass; efficient-zoo's own are declared in its ``pyproject.toml``), so another
package adds one exactly as the built-ins are added.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import lightning as L

from zoo.errors import ConfigError, closest


@dataclasses.dataclass
class NoOptions:
    """For plugins without options."""


class Plugin(L.Callback):
    name: ClassVar[str] = ""
    order: ClassVar[int] = 50  # lower first: prune 10, distill 20, qat 30
    Config: ClassVar[type] = NoOptions
    tasks: ClassVar[tuple[str, ...]] = ("classification", "detection")  # the model tasks it supports
    changes: ClassVar[str] = ""  # what it changes in the saved model and the export, in one line

    def __init__(self, config: Any = None, **options: Any) -> None:
        super().__init__()
        if config is not None and options:
            raise ConfigError(f"plugin {self.name!r}: pass its options as keywords or as one {self.Config.__name__}, not both")
        self.config = config if config is not None else self.checked_config(options)

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None) -> Plugin:
        """The plugin from a recipe's ``plugins.<name>`` node."""
        return cls(**dict(options or {}))

    @classmethod
    def config_node(cls) -> dict[str, Any]:
        """Its options with their defaults (``???``: required), as Hydra's ``plugins`` group holds them."""
        node = {}
        for f in dataclasses.fields(cls.Config):
            if f.default is not dataclasses.MISSING:
                node[f.name] = f.default
            else:
                node[f.name] = f.default_factory() if f.default_factory is not dataclasses.MISSING else "???"
        return node

    @classmethod
    def checked_config(cls, options: Mapping[str, Any]) -> Any:
        """``Config(**options)`` with the options checked first (names, required values, types), each refusal naming
        the option."""
        options = dict(options)
        fields = {f.name: f for f in dataclasses.fields(cls.Config)}
        for key in options:
            if key not in fields:
                hint = closest(key, list(fields), n=1)
                raise ConfigError(
                    f"plugin {cls.name!r} has no option {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                    + f". Options: {', '.join(fields) or 'none'}"
                )
        hints = typing.get_type_hints(cls.Config)
        for name, f in fields.items():
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if (required and name not in options) or options.get(name) == "???":
                raise ConfigError(f"plugin {cls.name!r} needs plugins.{cls.name}.{name}=... ({_describe(hints.get(name))}; "
                                  f"in Python: {cls.__name__}({name}=...))")
            if name in options:
                options[name] = _coerce(cls.name, name, options[name], hints.get(name))
        return cls.Config(**options)

    def check(self, plugins: Sequence[Plugin], task: str) -> None:
        """Refuse a combination this plugin cannot take part in (raise ConfigError with the reason)."""
        if task not in self.tasks:
            names = ", ".join(self.tasks[:-1]) + " and " * (len(self.tasks) > 1) + self.tasks[-1]
            raise ConfigError(f"plugin {self.name!r} supports {names} models, not {task}")

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to continue this plugin's schedule (Lightning keeps it in the checkpoint);
        subclasses add to it. The name alone says the run trained with this plugin."""
        return {"plugin": self.name}

    def on_resume(self, pl_module, fn: Callable[[dict[str, Any]], None]) -> None:
        """Call ``fn(state)`` with this plugin's ``state_dict()`` from the checkpoint when the run resumes, before
        Lightning loads the checkpoint's weights (call it from ``setup``): a plugin that changed the model's
        structure (pruned it, captured it for QAT) changes it again, so the saved weights fit."""
        def hook(checkpoint: dict[str, Any]) -> None:
            state = (checkpoint.get("callbacks") or {}).get(self.state_key)
            if state:
                fn(state)

        pl_module.before_weights_load(hook)

    def describe(self) -> str:
        options = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(self.config).items())
        return f"{self.name}({options})"


def _describe(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint)).replace("typing.", "")


def _coerce(plugin: str, name: str, value: Any, hint: Any) -> Any:
    """Hydra gives strings, numbers and lists; check each against the field's annotation."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    kinds = args if origin in (typing.Union, types.UnionType) else (hint,)
    if value is None and type(None) in kinds:
        return None
    for kind in kinds:
        base = typing.get_origin(kind) or kind
        if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if base in (list, tuple) and isinstance(value, (list, tuple)):
            return base(value)
        if isinstance(base, type) and isinstance(value, base) and not (base is int and isinstance(value, bool)):
            return value
    raise ConfigError(f"plugins.{plugin}.{name} must be {_describe(hint)}, not {value!r}")


def saved_plugins(path: str) -> list[str]:
    """The plugins a checkpoint's run trained with (a run resumed from it needs the same ones)."""
    import torch

    checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)  # mmap: the weights stay on disk
    return sorted(state["plugin"] for state in (checkpoint.get("callbacks") or {}).values()
                  if isinstance(state, dict) and isinstance(state.get("plugin"), str))


def restart_best(trainer) -> None:
    """Forget the best checkpoint so far: after a plugin changed the model's structure, older checkpoints
    no longer load into it, so the best is chosen again from here on."""
    for callback in trainer.checkpoint_callbacks:
        if callback.monitor is None:  # last.ckpt: the newest epoch, whatever its structure
            continue
        state = callback.state_dict()  # through the callback's own state API, the one Lightning resumes with
        state.update(best_model_score=None, best_model_path="", best_k_models={}, kth_best_model_path="", kth_value=None)
        callback.load_state_dict(state)


# -- discovery -------------------------------------------------------------------------------------

ENTRY_POINT_GROUP = "zoo.plugins"
DISTRIBUTION = "efficient-zoo"


def available() -> dict[str, type[Plugin]]:
    """Every plugin by name, from the ``zoo.plugins`` entry points: efficient-zoo's own first, then other packages'
    (a broken one only warns; one cannot take a built-in's name)."""
    import warnings
    from importlib.metadata import entry_points

    def builtin(ep) -> bool:
        return ep.dist is not None and ep.dist.name.replace("_", "-").lower() == DISTRIBUTION

    points = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: not builtin(ep))
    if not any(builtin(ep) for ep in points):
        raise ConfigError(f"{DISTRIBUTION}'s own plugins are not registered (its entry points are missing): "
                          "install the package, e.g. pip install -e . in a checkout")
    found: dict[str, type[Plugin]] = {}
    for ep in points:
        try:
            cls = ep.load()
        except Exception as e:  # noqa: BLE001 - someone else's package must not break training
            warnings.warn(f"plugin entry point {ep.name!r} ({ep.value}) failed to load: {type(e).__name__}: {e}", stacklevel=2)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Plugin)):
            warnings.warn(f"plugin entry point {ep.name!r} ({ep.value}) is not a zoo Plugin subclass; ignored", stacklevel=2)
            continue
        if ep.name in found:
            warnings.warn(f"plugin entry point {ep.name!r} ({ep.value}) takes a name already in use; ignored", stacklevel=2)
            continue
        found[ep.name] = cls
    return found


def register_configs() -> dict[str, type[Plugin]]:
    """Every plugin's options as Hydra's ``plugins`` config group (``plugins=[prune]``), generated from its ``Config``;
    returns the plugins, as :func:`available`."""
    from hydra.core.config_store import ConfigStore

    store, plugins = ConfigStore.instance(), available()
    for name, cls in plugins.items():
        store.store(group="plugins", name=name, node={name: cls.config_node()})
    return plugins


def build(options: Mapping[str, Mapping[str, Any] | None], task: str) -> list[Plugin]:
    """Plugins from ``{name: options}`` (a recipe's ``plugins`` node), in composition order, checked together."""
    known = available()
    plugins = []
    for name, opts in options.items():
        if name not in known:
            hint = closest(name, list(known), n=1)
            raise ConfigError(
                f"unknown plugin {name!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f". Plugins: {', '.join(sorted(known))}"
            )
        plugins.append(known[name].from_options(opts))
    plugins.sort(key=lambda p: p.order)
    for plugin in plugins:
        plugin.check(plugins, task)
    return plugins
