"""``matformer``: train every nested granularity of a MatFormer model (``matvit_*``, ``matlm_*``) in one run.

Two objectives, both from the official code (docs/sources.md, "MatFormer: training objectives"):

* ``mode=sample`` (default; the NeurIPS-version reference trainer): each training step runs one
  granularity, drawn with probabilities ``weights`` (uniform when null). One forward/backward per step.
* ``mode=sum`` (Scenic's MatViT trainer): each step runs the XL model (the task's own loss) and every other
  granularity on the same batch, adding their losses with ``weights`` relative to XL's (equal when null).
  About as many forwards as granularities; one optimizer step.

Validation, checkpoints and the saved model see the full (XL) model: it holds every granularity, and
``zoo.matformer.extract`` cuts out the smaller ones. Composes with the other plugins: ``distill``
distils into whichever granularity the step runs.
"""
from __future__ import annotations

import dataclasses
import random

from zoo.errors import ConfigError
from zoo.plugins.base import Plugin

MODES = ("sample", "sum")


@dataclasses.dataclass
class MatFormerConfig:
    mode: str = "sample"  # sample: one granularity per step; sum: all of them every step
    granularities: list = dataclasses.field(default_factory=lambda: ["s", "m", "l", "xl"])
    weights: list | None = None  # sample: probabilities; sum: loss weights relative to xl's; null: uniform / equal
    seed: int = 0  # for the granularity draws (each process offsets it by its rank)


class MatFormer(Plugin):
    name = "matformer"
    order = 5  # before distillation, which then distils into the granularity of the step
    Config = MatFormerConfig
    tasks = ("classification", "language-modeling")
    changes = "nothing: the full nested model is saved and exported; extract smaller ones with zoo.matformer.extract"

    def __init__(self, config: MatFormerConfig | None = None, **options) -> None:
        super().__init__(config, **options)
        c = self.config
        if c.mode not in MODES:
            raise ConfigError(f"plugins.matformer.mode must be one of {', '.join(MODES)}, not {c.mode!r}")
        from zoo.models.matformer import GRANULARITIES

        unknown = [g for g in c.granularities if g not in GRANULARITIES]
        if unknown or not c.granularities:
            raise ConfigError(f"plugins.matformer.granularities: choose among {', '.join(GRANULARITIES)}, not {unknown or 'none'}")
        if c.weights is not None and (len(c.weights) != len(c.granularities) or min(c.weights) < 0 or sum(c.weights) <= 0):
            raise ConfigError(f"plugins.matformer.weights needs {len(c.granularities)} non-negative numbers, one per "
                              f"granularity ({', '.join(c.granularities)}), not {c.weights}")
        if c.mode == "sum" and "xl" not in c.granularities:
            raise ConfigError("plugins.matformer.mode=sum trains xl with the task's loss: keep xl in granularities")
        self.weights = [float(w) for w in (c.weights or [1.0] * len(c.granularities))]
        self._random = random.Random(c.seed)

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit":
            return
        from zoo.contracts import Elastic

        if not isinstance(pl_module.model, Elastic):
            raise ConfigError(f"plugin 'matformer' trains nested models (matvit_*, matlm_*); {pl_module.model.zoo_spec.name} is not one")
        self._random.seed(self.config.seed + trainer.global_rank)
        if self.config.mode == "sum":
            pl_module.add_loss_term("matformer", self._other_granularities(pl_module))

    def _other_granularities(self, task):
        xl = self.weights[self.config.granularities.index("xl")]
        others = [(g, w / xl) for g, w in zip(self.config.granularities, self.weights) if g != "xl" and w > 0]

        def loss(images, outputs, targets):
            model, total, items = task.model, 0.0, {}
            try:
                for g, weight in others:
                    value = task.train_loss(model.set_granularity(g)(images), targets)
                    total = total + weight * value
                    items[g] = value.detach()
            finally:
                model.set_granularity("xl")
            return total, items

        return loss

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self.config.mode == "sample":
            granularity = self._random.choices(self.config.granularities, weights=self.weights)[0]
        else:
            granularity = "xl"
        pl_module.model.set_granularity(granularity)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        pl_module.model.set_granularity("xl")  # validation, checkpoints, the EMA update and the saved model see XL

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        pl_module.model.set_granularity("xl")
