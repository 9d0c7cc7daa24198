"""``ofa``: train the sub-networks of a Once-for-All supernet (``ofa_*``) together, one drawn per training step.

Each step runs a sub-network drawn as OFA's trainer draws them: every elastic block's kernel from ``kernels`` and
expansion from ``expansions``, every stage's depth from ``depths``, independently and uniformly. OFA's progressive
shrinking (docs/sources.md, "ProxylessNAS and Once-for-All") is successive runs that widen the choices: the largest
network first (no plugin), then ``expansions=[6] depths=[4]`` with every kernel, then depths, then expansions, each
run starting from the last one's weights (``model.weights=...``) and distilled from the largest network (the
``distill`` plugin). Validation, checkpoints and the saved model see the largest sub-network. BatchNorm's running
statistics mix every drawn sub-network's, which fit none of them, so before each validation they are recomputed for
the largest on ``calibration_batches`` training batches, as OFA does before evaluating a sub-network;
``zoo.ofa.specialize(..., data=...)`` recomputes them for the one it picks.
"""
from __future__ import annotations

import dataclasses
import random

from zoo.errors import ConfigError
from zoo.plugins.base import Plugin


@dataclasses.dataclass
class OFAConfig:
    kernels: list = dataclasses.field(default_factory=lambda: [3, 5, 7])  # depthwise kernel sizes to draw from
    expansions: list = dataclasses.field(default_factory=lambda: [3, 4, 6])  # expansion ratios to draw from
    depths: list = dataclasses.field(default_factory=lambda: [2, 3, 4])  # blocks per stage to draw from
    seed: int = 0  # for the draws (each process offsets it by its rank)
    calibration_batches: int = 8  # training batches that recompute BatchNorm statistics before each validation


class OFA(Plugin):
    name = "ofa"
    order = 5  # before distillation, which then distils into the step's sub-network
    Config = OFAConfig
    tasks = ("classification",)
    changes = "nothing: the whole supernet is saved and exported at its largest; zoo.ofa.specialize extracts smaller ones"

    def __init__(self, config: OFAConfig | None = None, **options) -> None:
        super().__init__(config, **options)
        from zoo.models.proxylessnas import DEPTHS, EXPANSIONS, KERNELS

        c = self.config
        for key, values, allowed in (("kernels", c.kernels, KERNELS), ("expansions", c.expansions, EXPANSIONS),
                                     ("depths", c.depths, DEPTHS)):
            if not values or any(v not in allowed for v in values):
                raise ConfigError(f"plugins.ofa.{key}: choose among {', '.join(map(str, allowed))}, not {list(values)}")
        self._random = random.Random(c.seed)

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit":
            return
        from zoo.contracts import Supernet

        if not isinstance(pl_module.model, Supernet):
            raise ConfigError(f"plugin 'ofa' trains Once-for-All supernets (ofa_mbv3_*, ofa_proxyless_*); "
                              f"{pl_module.model.zoo_spec.name} is not one")
        self._random.seed(self.config.seed + trainer.global_rank)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        model, c, draw = pl_module.model, self.config, self._random
        blocks = len(model.blocks) - 1
        model.set_active_subnet(ks=[draw.choice(c.kernels) for _ in range(blocks)],
                                e=[draw.choice(c.expansions) for _ in range(blocks)],
                                d=[draw.choice(c.depths) for _ in model.block_group_info])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        pl_module.model.set_max_net()  # validation, checkpoints, the EMA update and the saved model see the largest

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        import itertools

        from torch.utils.data import DataLoader

        from zoo.models._norm import recalibrate_batchnorm

        pl_module.model.set_max_net()
        training = getattr(trainer.train_dataloader, "dataset", None)
        if trainer.state.fn != "fit" or training is None or not self.config.calibration_batches:
            return  # the sanity check before training, or a validation of its own: the statistics as they are
        model = pl_module.eval_model()
        model.set_max_net()
        loader = trainer.train_dataloader  # its own iterator, so a validation inside an epoch leaves the epoch's alone
        batches = DataLoader(training, batch_size=loader.batch_size, shuffle=True, collate_fn=loader.collate_fn)
        recalibrate_batchnorm(model, (batch[0].to(pl_module.device)
                                      for batch in itertools.islice(batches, self.config.calibration_batches)))
