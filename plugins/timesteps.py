"""``timesteps``: fine-tune a spiking model on a decreasing schedule of timesteps (one-timestep training).

Chowdhury, Rathi and Roy ("One Timestep is All You Need", arXiv:2110.05929) train an SNN at T=5 and retrain it
at T-1 from the T-step weights, down to T=1: training at T=1 directly fails as spikes vanish layer by layer.
This plugin splits the epochs from ``start`` to the end equally over ``schedule`` (5, 4, 3, 2, 1 by default);
each stage starts from the previous one's weights, and the best checkpoint is chosen again in each stage, so
the run saves the model at the last ``T``. With ``ann2snn`` (``start < 1``) the schedule starts when the
converted SNN does.
"""
from __future__ import annotations

import dataclasses
import math

from lightning.pytorch.utilities import rank_zero_info

from zoo.errors import ConfigError
from zoo.plugins.base import Plugin, restart_best


@dataclasses.dataclass
class TimestepsConfig:
    schedule: list = dataclasses.field(default_factory=lambda: [5, 4, 3, 2, 1])  # T per stage, in order
    start: float | None = None  # share of the epochs before the first stage; None: 0, or when ann2snn converts


class Timesteps(Plugin):
    name = "timesteps"
    order = 45  # after ann2snn, which makes the spiking model this plugin steps down
    Config = TimestepsConfig
    tasks = ("classification",)
    changes = "the saved model runs at the schedule's last T (config.json records it)"

    def __init__(self, config: TimestepsConfig | None = None, **options) -> None:
        super().__init__(config, **options)
        c = self.config
        if not c.schedule or any(int(t) < 1 for t in c.schedule):
            raise ConfigError(f"plugins.timesteps.schedule needs timesteps >= 1, e.g. [5, 4, 3, 2, 1]; got {c.schedule}")
        if c.start is not None and not 0 <= c.start < 1:
            raise ConfigError(f"plugins.timesteps.start is a share of the epochs in [0, 1), not {c.start}")
        self.after_conversion: float | None = None
        self.stage: int | None = None

    def check(self, plugins, task: str) -> None:
        super().check(plugins, task)
        for other in plugins:
            if other.name == "ann2snn":
                if other.config.start >= 1:
                    raise ConfigError("plugins.timesteps needs an SNN to train: with ann2snn, set plugins.ann2snn.start < 1")
                self.after_conversion = other.config.start

    def _stages(self, epochs: int) -> list[int]:
        share = self.config.start if self.config.start is not None else (self.after_conversion or 0.0)
        first = math.floor(epochs * share)
        n = len(self.config.schedule)
        if epochs - first < n:
            raise ConfigError(f"plugins.timesteps: {n} stages need at least {n} epochs after epoch {first}; "
                              f"trainer.max_epochs={epochs}")
        return [first + (epochs - first) * i // n for i in range(n)]

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit":
            return
        self.starts = self._stages(max(int(trainer.max_epochs or 1), 1))
        self.on_resume(pl_module, lambda state: self._resume(state, pl_module))

    def state_dict(self) -> dict:
        return {**super().state_dict(), "stage": self.stage}

    def _resume(self, state: dict, pl_module) -> None:
        if state.get("stage") is not None:  # a resumed run continues at the stage it reached
            self.stage = int(state["stage"])
            self._set(pl_module, int(self.config.schedule[self.stage]))

    @staticmethod
    def _set(pl_module, timesteps: int) -> None:
        from zoo.snn import with_timesteps

        with_timesteps(pl_module.model, timesteps)
        if getattr(pl_module, "ema", None) is not None:
            with_timesteps(pl_module.ema.module, timesteps)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        from zoo.snn import is_spiking

        epoch = trainer.current_epoch
        stage = max((i for i, s in enumerate(self.starts) if epoch >= s), default=None)
        if stage is None or stage == self.stage:
            return
        if not is_spiking(pl_module.model):
            raise ConfigError(f"plugin 'timesteps' steps down a spiking model; {pl_module.model.zoo_spec.name} has no neurons "
                              "at this epoch (an ANN twin needs plugins=[ann2snn,timesteps])")
        self.stage = stage
        timesteps = int(self.config.schedule[stage])
        self._set(pl_module, timesteps)
        restart_best(trainer)  # the saved model is chosen among the last stage's epochs
        rank_zero_info(f"timesteps: epoch {epoch}: T={timesteps}")
