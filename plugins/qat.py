"""``qat``: int8 quantization-aware training with torchao's PT2E flow (see :mod:`zoo.quantize`).

From epoch ``start`` (a share of the epochs; by default the first, or the epoch after the last pruning
round when ``prune`` runs too) the model trains as a captured graph with fake quantization: int8
per-channel weights and per-tensor activations, conv + BatchNorm trained as the folded conv they become.
Late in training, on a schedule, the observers stop (``freeze_observers``: the scales and zero points
stay where they are) and BatchNorm switches to its running statistics (``freeze_bn``; dropout stops with
it), so the last epochs fine-tune exactly the arithmetic the int8 model will run.

The EMA, when the recipe keeps one, is copied into the model when QAT starts and then dropped (its copy
is the uncaptured model, without fake quantization); the best checkpoint is chosen again from that epoch. The run saves the
QAT state (weights, BatchNorm statistics, scales, zero points) with the settings in ``config.json``;
``zoo.load`` returns the converted int8 reference model, which the run evaluates and ``zoo export``
writes as a Q/DQ ONNX graph verified in onnxruntime.
"""
from __future__ import annotations

import dataclasses
import math

from lightning.pytorch.utilities import rank_zero_info

from zoo.errors import ConfigError
from zoo.plugins.base import Plugin, restart_best
from zoo.registry import ModelState, state_of


@dataclasses.dataclass
class QATConfig:
    quantizer: str = "xnnpack"  # xnnpack (conv outputs quantized too: onnxruntime's QLinearConv) or x86 (inductor)
    activations: str = "uint8"  # uint8 (onnxruntime on x86) or int8 (XNNPACK/ARM); weights are always int8
    start: float | None = None  # share of the epochs before QAT begins; None: 0, or after prune's rounds
    freeze_bn: float = 0.9  # from this share of the epochs BatchNorm uses its running statistics
    freeze_observers: float = 0.8  # from this share of the epochs the scales and zero points stay fixed


class QAT(Plugin):
    name = "qat"
    order = 30
    Config = QATConfig
    tasks = ("classification", "segmentation")
    changes = "the saved model is int8-quantized (config.json records how); zoo export writes a Q/DQ ONNX graph"

    def __init__(self, config: QATConfig | None = None, **options) -> None:
        super().__init__(config, **options)
        from zoo.quantize import settings

        c = self.config
        self.settings = settings(c.quantizer, c.activations)
        for name in ("freeze_bn", "freeze_observers"):
            if not 0 <= getattr(c, name) <= 1:
                raise ConfigError(f"plugins.qat.{name} is a share of the epochs, between 0 and 1, not {getattr(c, name)}")
        if c.start is not None and not 0 <= c.start < 1:
            raise ConfigError(f"plugins.qat.start is a share of the epochs, in [0, 1), not {c.start}")
        self.after_prune: float | None = None
        self.started_at: int | None = None
        self.observers_frozen = False

    def check(self, plugins, task: str) -> None:
        super().check(plugins, task)
        for other in plugins:
            if other.name == "prune":
                self.after_prune = other.config.until
                if self.config.start is not None and self.config.start < other.config.until:
                    raise ConfigError(
                        f"plugins.qat.start={self.config.start} falls before pruning ends (plugins.prune.until="
                        f"{other.config.until}); QAT captures the model's final structure: drop qat.start or raise it"
                    )
            if other.name == "distill" and getattr(other, "pairs", None):
                raise ConfigError(
                    "feature distillation cannot be combined with qat: QAT trains a captured graph, which has no "
                    "modules to hook; keep logit distillation (drop plugins.distill.features)"
                )

    # -- schedule ---------------------------------------------------------------------------------
    def _epochs(self, trainer) -> tuple[int, int, int]:
        epochs = max(int(trainer.max_epochs or 1), 1)
        if self.config.start is not None:
            start = math.floor(epochs * self.config.start)
        elif self.after_prune is not None:
            start = max(1, math.floor(epochs * self.after_prune))  # the epoch after prune's last round
        else:
            start = 0
        start = min(start, epochs - 1)
        # observers see at least one epoch before they freeze (an observer that saw nothing has no range)
        bn = max(start, math.floor(epochs * self.config.freeze_bn))
        observers = max(start + 1, math.floor(epochs * self.config.freeze_observers))
        return start, bn, observers

    # -- Lightning hooks ---------------------------------------------------------------------------
    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit":
            return
        if pl_module.hparams.get("compile"):
            raise ConfigError("task.compile=true cannot be combined with plugins=[qat] (QAT trains a captured graph); drop one")
        self.start, self.bn_epoch, self.observer_epoch = self._epochs(trainer)
        if self.start > 0 and trainer.world_size > 1:
            raise ConfigError("with several processes QAT must start at the first epoch (plugins.qat.start=0, no prune)")
        if self.start == 0 and self.started_at is None:
            self._begin(trainer, pl_module, rebuild=False)  # before the optimizer and any DDP wrapper are built
        self.on_resume(pl_module, lambda state: self._resume(state, trainer, pl_module))

    def _resume(self, state: dict, trainer, pl_module) -> None:
        """A resumed run that had begun QAT captures the model again (after prune rebuilt its shapes), so the
        checkpoint's graph weights and observers fit; one that had not begun starts it on schedule."""
        if state.get("started_at") is None:
            return
        if self.started_at is None:
            self._begin(trainer, pl_module, rebuild=False, started_at=int(state["started_at"]))
        self.started_at, self.observers_frozen = int(state["started_at"]), bool(state.get("observers_frozen"))

    def state_dict(self) -> dict:
        return {**super().state_dict(), "started_at": self.started_at, "observers_frozen": self.observers_frozen}

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        epoch = trainer.current_epoch
        if self.started_at is None and epoch >= self.start:
            self._begin(trainer, pl_module, rebuild=True)
        if self.started_at is not None and epoch >= self.observer_epoch and not self.observers_frozen:
            from zoo.quantize import freeze_observers

            freeze_observers(pl_module.model)
            self.observers_frozen = True

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        # Lightning restores train mode after validation by flag only; the captured graph needs its ops switched
        if self.started_at is not None:
            from zoo.quantize import set_training_form

            set_training_form(pl_module.model, training=trainer.current_epoch < self.bn_epoch)

    def _begin(self, trainer, pl_module, rebuild: bool, started_at: int | None = None) -> None:
        from zoo.api import pruned_structure
        from zoo.quantize import prepare

        model = pl_module.model
        ema = getattr(pl_module, "ema", None)
        if ema is not None:  # start from the smoothed weights validation has been reporting
            model.load_state_dict(ema.module.state_dict())
        structure = pruned_structure(model) if state_of(model).pruned else None
        spec = model.zoo_spec
        trained = {id(p) for p in model.parameters()}
        prepared = prepare(model, self.settings, spec.input_size)
        prepared.zoo_spec = spec
        prepared.zoo_state = ModelState(pruned=structure is not None, structure=structure, quantization=dict(self.settings))
        pl_module.replace_model(prepared)
        self.started_at = trainer.current_epoch if started_at is None else started_at
        if rebuild:
            # The captured graph holds the very same Parameter objects, so the optimizer (and Adam's moments)
            # carries on unchanged; only if capture ever made new tensors is it rebuilt.
            if {id(p) for p in prepared.parameters()} != trained:
                trainer.strategy.setup_optimizers(trainer)
            restart_best(trainer)

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.started_at is not None:
            epochs = int(trainer.max_epochs or 1)

            def when(epoch: int) -> str:
                return f"from epoch {epoch}" if epoch < epochs else "never (too few epochs)"

            rank_zero_info(f"qat: {self.settings['quantizer']} int8 (activations {self.settings['activations']}) from epoch "
                           f"{self.started_at}; BatchNorm frozen {when(self.bn_epoch)}, observers frozen {when(self.observer_epoch)}")

