"""What every task shares, written once: the optimizer and schedule (timm's ``create_optimizer_v2``
with no weight decay on norms and biases, a linear warmup into a cosine decay with timm's
``CosineLRScheduler``, or the polynomial decay segmentation papers train with, timm's ``PolyLRScheduler``;
stepped per update) and the seams plugins use (extra loss terms, extra trained modules such as distillation
adapters)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import nn

from zoo.tasks import SCHEDULES


class DivergenceGuard(L.Callback):
    """Ends a run whose loss has not been finite for ``steps`` consecutive steps, before a checkpoint or the
    saved model can take its NaN weights: an fp32 run does not recover from a NaN step, and a short streak
    (mixed precision skips an overflowing step) is allowed."""

    def __init__(self, steps: int = 3, configured_lr: float | None = None) -> None:
        self.steps, self.streak, self.configured_lr = steps, 0, configured_lr

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor) or bool(torch.isfinite(loss.detach()).all()):
            self.streak = 0
            return
        self.streak += 1
        if self.streak >= self.steps:
            self._stop(trainer)

    def on_validation_start(self, trainer, pl_module) -> None:  # the epoch's checkpoint follows validation
        if self.streak and not trainer.sanity_checking:
            self._stop(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.streak:
            self._stop(trainer)

    def _stop(self, trainer) -> None:
        from zoo.errors import TrainingDivergedError

        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
        setting = f" (optim.lr={self.configured_lr:g})" if self.configured_lr is not None else ""
        last = last_checkpoint(trainer)
        then = f"train again, or go on from the last good checkpoint with resume={last}" if last else "train again"
        raise TrainingDivergedError(
            f"training diverged: the loss was NaN or inf for {self.streak} consecutive step{'s' * (self.streak != 1)} "
            f"up to step {trainer.global_step} (epoch {trainer.current_epoch}) at learning rate {lr:.3g}{setting}; no "
            f"model was saved. Lower optim.lr or set trainer.gradient_clip_val=1.0, then {then}"
        )


def last_checkpoint(trainer) -> str:
    """The path of the run's last.ckpt (the newest epoch's), or "" before the first one is written."""
    return next((cb.best_model_path for cb in trainer.checkpoint_callbacks if cb.monitor is None and cb.best_model_path), "")


class RandomStateInCheckpoint(L.Callback):
    """Keeps the global random generators (torch, NumPy, Python) in every checkpoint and restores them on resume,
    which Lightning's checkpoints do not: a resumed run then draws the shuffles, augmentations and dropout masks the
    uninterrupted run drew, and a killed run ends with the model (and the pruning choices) an uninterrupted one would.
    With several processes each rank keeps its own generators, so nothing is restored there."""

    _ranks = 1

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._ranks = trainer.world_size

    def state_dict(self) -> dict[str, Any]:
        import random

        import numpy as np

        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        version, internal, py_gauss = random.getstate()
        return {"torch": torch.get_rng_state(),
                "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
                "python": [version, torch.tensor(internal, dtype=torch.int64), py_gauss]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        import random

        import numpy as np

        if self._ranks > 1 or not state:
            return
        torch.set_rng_state(state["torch"])
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        version, internal, py_gauss = state["python"]
        random.setstate((version, tuple(int(v) for v in internal.tolist()), py_gauss))


def default_optim() -> dict[str, Any]:
    """What a task trains with when no optimizer is given: the recipes' default, ``conf/optim/adamw.yaml``."""
    from importlib.resources import files

    import yaml

    return yaml.safe_load((files("zoo.conf") / "optim" / "adamw.yaml").read_text())


def model_of(model: str | nn.Module, num_classes: int | None, pretrained: bool) -> nn.Module:
    """A task's model: a module as given, or a zoo model by name (``zoo.load`` source) with ``num_classes`` outputs."""
    if isinstance(model, nn.Module):
        return model
    from zoo.api import load

    return load(model, pretrained=pretrained, **({"num_classes": num_classes} if num_classes is not None else {}))


def classes_of(model: nn.Module, num_classes: int | None) -> int:
    if num_classes:
        return num_classes
    spec = getattr(model, "zoo_spec", None)
    if spec is None:
        from zoo.errors import BadArgumentError

        raise BadArgumentError(f"num_classes is needed for a {type(model).__name__} not made by zoo.load (it carries no zoo_spec)")
    return spec.num_classes


class TaskBase(L.LightningModule):
    """Base of the classification, detection and language-modeling tasks; subclasses set ``self.model``,
    ``self.optim`` and ``self.ema`` (:meth:`make_ema`); those names are where checkpoints keep the weights
    (:data:`zoo.contracts.CHECKPOINT_WEIGHTS`, which ``zoo.load`` reads).

    Each is built from plain arguments too, for a user's own Lightning code or ``LightningCLI``: the model as a
    module or a zoo name, ``optim`` as timm optimizer settings (default :func:`default_optim`)."""

    def __init__(self) -> None:
        super().__init__()
        self.plugin_modules = nn.ModuleDict()  # trained with the model, never saved with it
        self.__dict__["_loss_terms"] = {}  # name -> fn(images, outputs, targets) -> (loss, {item: value})
        self.__dict__["_before_weights_load"] = []  # fn(checkpoint), in plugin order

    @classmethod
    def for_data(cls, model: nn.Module, data, optim: dict[str, Any], **options: Any) -> TaskBase:
        """The task that trains ``model`` on ``data`` (its task's DataModule): how ``zoo train`` builds it."""
        return cls(model, data.num_classes, optim=optim, **options)

    def add_loss_term(self, name: str, fn: Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]) -> None:
        """A plugin's addition to the training loss, logged as ``train/<name>_<item>``."""
        self._loss_terms[name] = fn

    def add_trained_module(self, name: str, module: nn.Module) -> None:
        """A plugin's module whose parameters the optimizer trains with the model's."""
        self.plugin_modules[name] = module

    def before_weights_load(self, fn: Callable[[dict[str, Any]], None]) -> None:
        """A plugin's step when a run resumes, before the checkpoint's weights load into this module: ``fn(checkpoint)``
        rebuilds what the plugin changed in the model (pruned shapes, the QAT graph) so that those weights fit."""
        self._before_weights_load.append(fn)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        for fn in self._before_weights_load:
            fn(checkpoint)

    def make_ema(self, decay: float | None):
        """timm's ``ModelEmaV3`` of the model (its decay ramps up early on), or None when ``decay`` is unset."""
        if not decay:
            return None
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(self.model, decay=decay, use_warmup=True)
        ema.requires_grad_(False)
        return ema

    def eval_model(self) -> nn.Module:
        """The weights to validate and to ship: the EMA when enabled."""
        return self.ema.module if getattr(self, "ema", None) is not None else self.model

    def on_train_start(self) -> None:
        self.__dict__["_ema_step"] = self.global_step

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        # Once per optimizer step, not per micro-batch: with gradient accumulation the weights change only when
        # ``global_step`` moves, and an EMA fed every micro-batch would average in the same weights several times.
        if getattr(self, "ema", None) is not None and self.global_step != self.__dict__.get("_ema_step"):
            self.__dict__["_ema_step"] = self.global_step
            self.ema.update(self.model, step=self.global_step)

    def reset_ema(self) -> None:
        """Restart the EMA from the current weights (after a plugin changed the model's structure)."""
        if getattr(self, "ema", None) is not None:
            from timm.utils import ModelEmaV3

            self.ema = ModelEmaV3(self.model, decay=self.ema.decay, use_warmup=True)
            self.ema.requires_grad_(False)

    def replace_model(self, model: nn.Module) -> None:
        """Train ``model`` from now on in place of ``self.model`` (a plugin's rewritten graph, e.g. QAT's).

        The EMA is dropped: its copy has the old structure (the caller copies the EMA weights in first)."""
        if getattr(self, "hparams", {}).get("compile"):
            from zoo.errors import ConfigError

            raise ConfigError("task.compile=true cannot be combined with a plugin that rewrites the model (qat); drop one")
        self.model = model
        self.__dict__["_train_forward"] = model
        if getattr(self, "ema", None) is not None:
            self.ema = None

    def plugin_losses(self, images: torch.Tensor, outputs: Any, targets: Any, n: int) -> torch.Tensor | float:
        total = 0.0
        for name, fn in self._loss_terms.items():
            loss, items = fn(images, outputs, targets)
            total = total + loss
            self.log_dict({f"train/{name}_{k}": v for k, v in items.items()}, on_step=False, on_epoch=True,
                          sync_dist=True, batch_size=n)
        return total

    def configure_optimizers(self):
        trained = nn.ModuleDict({"model": self.model, **self.plugin_modules}) if len(self.plugin_modules) else self.model
        return configure_optimizers(trained, self.trainer, self.optim)

    def lr_scheduler_step(self, scheduler, metric) -> None:  # timm schedulers count updates themselves
        scheduler.step_update(num_updates=self.global_step)


def configure_optimizers(model, trainer, optim: dict[str, Any]) -> dict[str, Any]:
    from timm.optim import create_optimizer_v2
    from timm.scheduler import CosineLRScheduler, PolyLRScheduler

    from zoo.errors import ConfigError

    o = optim
    schedule = o.get("schedule", "cosine")
    if schedule not in SCHEDULES:
        raise ConfigError(f"optim.schedule must be one of {', '.join(SCHEDULES)}, not {schedule!r}")
    optimizer = create_optimizer_v2(
        model, opt=o["name"], lr=o["lr"], weight_decay=o.get("weight_decay", 0.0), momentum=o.get("momentum", 0.9)
    )
    total = max(int(trainer.estimated_stepping_batches), 1)
    epochs = max(int(trainer.max_epochs or 1), 1)
    warmup = min(int(round(o.get("warmup_epochs", 0) * total / epochs)), total - 1)
    common = dict(t_initial=total - warmup, lr_min=o.get("min_lr", 0.0), warmup_t=warmup,
                  warmup_lr_init=o["lr"] * o.get("warmup_start_factor", 0.01), warmup_prefix=True, t_in_epochs=False)
    if schedule == "poly":  # lr_min + (lr - lr_min) * (1 - t / T) ** power
        scheduler = PolyLRScheduler(optimizer, power=float(o.get("power", 0.9)), **common)
    else:
        scheduler = CosineLRScheduler(optimizer, **common)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
