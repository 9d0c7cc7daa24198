"""``ann2snn``: train the ANN twin of a spiking architecture, then convert it to an SNN (:func:`zoo.snn.convert`).

The recipe's model is a registered spiking architecture built with ``neuron: relu`` (its ANN twin: same
modules, ReLUs where the neurons go). At ``start`` (a share of the epochs) each ReLU becomes a soft-reset IF
neuron whose threshold is the ``percentile`` of its outputs on ``calibration_batches`` batches of training
images (with the evaluation transform).

* ``start: 1.0`` (default): the ANN trains for the whole run and the best ANN is converted after the last
  epoch, without any SNN training; the run saves and evaluates the SNN at ``timesteps``, and writes
  ``ann2snn.json`` and ``ann2snn.png`` (ANN accuracy against the SNN's as ``T`` grows, at each ``evaluate`` T).
* ``start < 1``: conversion at that epoch, then the SNN trains (with ``learn: true`` its thresholds and
  leaks too) for the remaining epochs: the one-timestep recipe, with the ``timesteps`` plugin lowering ``T``.
"""
from __future__ import annotations

import dataclasses
import json
import math

from lightning.pytorch.utilities import rank_zero_info

from zoo.errors import ConfigError
from zoo.plugins.base import Plugin, restart_best


@dataclasses.dataclass
class ANN2SNNConfig:
    start: float = 1.0  # share of the epochs the ANN trains before conversion; 1.0: after the last one
    timesteps: int = 32  # T of the converted SNN
    percentile: float = 99.9  # of each ReLU's positive outputs: its IF neuron's threshold
    v_init: float = 0.5  # initial membrane, a share of the threshold
    learn: bool = False  # trainable thresholds and leaks (when the SNN trains after conversion)
    calibration_batches: int = 10  # training batches whose activations set the thresholds
    evaluate: list = dataclasses.field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64])  # T values for ann2snn.json


class ANN2SNN(Plugin):
    name = "ann2snn"
    order = 40
    Config = ANN2SNNConfig
    tasks = ("classification",)
    changes = "the saved model is the converted SNN (IF neurons, soft reset, thresholds in the weights) at `timesteps`"

    def __init__(self, config: ANN2SNNConfig | None = None, **options) -> None:
        super().__init__(config, **options)
        c = self.config
        if not 0 < c.start <= 1:
            raise ConfigError(f"plugins.ann2snn.start is a share of the epochs in (0, 1], not {c.start}")
        if c.timesteps < 1 or not 0 < c.percentile <= 100 or c.calibration_batches < 1:
            raise ConfigError("plugins.ann2snn needs timesteps >= 1, 0 < percentile <= 100 and calibration_batches >= 1")
        self.converted_at: int | None = None
        self.ann_top1: float | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit":
            return
        from torch import nn

        from zoo.models.snn import SpikingModel

        model = pl_module.model
        if not isinstance(model, SpikingModel) or not any(isinstance(m, nn.ReLU) for m in model.modules()):
            raise ConfigError(f"plugin 'ann2snn' converts the ANN twin of a spiking architecture: use e.g. model=sew_resnet18 "
                              f"with model.kwargs.neuron=relu (got {model.zoo_spec.name} without ReLUs)")
        self.on_resume(pl_module, self._refuse_resume)
        epochs = max(int(trainer.max_epochs or 1), 1)
        self.start_epoch = math.floor(epochs * self.config.start) if self.config.start < 1 else None
        if self.start_epoch is not None and not 0 < self.start_epoch < epochs:
            raise ConfigError(f"plugins.ann2snn.start={self.config.start} of {epochs} epochs leaves no ANN or no SNN epoch")

    @staticmethod
    def _refuse_resume(state: dict) -> None:
        raise ConfigError("resuming a run with plugins=[ann2snn] is not supported (the conversion is not in the checkpoint); "
                          "start the run again")

    def _convert(self, trainer, pl_module) -> None:
        from zoo.snn import convert

        model = pl_module.eval_model()
        c = self.config
        self.ann_top1 = _top1(model, trainer.datamodule.val_dataloader())
        data = trainer.datamodule  # training images, un-augmented where the data module can give them
        batches = getattr(data, "calibration_dataloader", data.train_dataloader)()
        snn = convert(model, batches, timesteps=c.timesteps, percentile=c.percentile, v_init=c.v_init, learn=c.learn,
                      max_batches=c.calibration_batches)
        snn.train(pl_module.model.training)
        pl_module.replace_model(snn)
        self.converted_at = trainer.current_epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if self.converted_at is None and self.start_epoch is not None and trainer.current_epoch >= self.start_epoch:
            self._convert(trainer, pl_module)
            trainer.strategy.setup_optimizers(trainer)  # thresholds and leaks may train; the EMA (if any) is gone
            restart_best(trainer)

    def on_fit_end(self, trainer, pl_module) -> None:
        import torch

        from zoo.snn import accuracy_over_timesteps
        from zoo.tasks.base import last_checkpoint

        val = trainer.datamodule.val_dataloader()
        best = trainer.checkpoint_callback
        path = (best.best_model_path if best is not None else "") or last_checkpoint(trainer)
        if path:  # the weights the run saves: the best ANN to convert, or the best SNN of the last stage
            pl_module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["state_dict"])
        if self.converted_at is None:
            self._convert(trainer, pl_module)  # the run then saves and evaluates the SNN in the ANN's place
            if path:
                trainer.save_checkpoint(path, weights_only=True)
        if not trainer.is_global_zero:
            return
        snn = pl_module.model.eval()
        steps = sorted({int(t) for t in self.config.evaluate} | {self.config.timesteps if self.converted_at is None else snn.timesteps})
        result = {"ann_top1": self.ann_top1, "converted_at_epoch": self.converted_at, "percentile": self.config.percentile,
                  "snn_top1": {str(t): v for t, v in accuracy_over_timesteps(snn, val, steps).items()}}
        _write(trainer.default_root_dir, result)
        rank_zero_info("ann2snn: ANN top-1 " + (f"{100 * self.ann_top1:.2f}%" if self.ann_top1 is not None else "n/a") + "; SNN "
                       + ", ".join(f"T={t} {100 * v:.2f}%" for t, v in result["snn_top1"].items()))


def _top1(model, batches) -> float:
    """Top-1 of ``model`` in eval mode on ``batches``; the model's train/eval mode is left as it was."""
    import torch

    was_training = model.training
    model.eval()
    correct = total = 0
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            for x, y in batches:
                correct += int((model(x.to(device)).argmax(-1).cpu() == y).sum())
                total += len(y)
    finally:
        model.train(was_training)
    return correct / max(total, 1)


def _write(run_dir, result: dict) -> None:
    from pathlib import Path

    from zoo._io import atomic_write, atomic_write_text

    out = Path(run_dir)
    atomic_write_text(out / "ann2snn.json", json.dumps(result, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [int(t) for t in result["snn_top1"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, [100 * v for v in result["snn_top1"].values()], "o-", label="converted SNN")
    if result["ann_top1"] is not None:
        ax.axhline(100 * result["ann_top1"], color="k", linestyle="--", label=f"ANN ({100 * result['ann_top1']:.2f}%)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(steps, [str(t) for t in steps])
    ax.set_ylim(top=101)
    ax.set_xlabel("timesteps T")
    ax.set_ylabel("top-1 (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title("ANN-to-SNN conversion: accuracy as T grows")
    fig.tight_layout()
    atomic_write(out / "ann2snn.png", lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
