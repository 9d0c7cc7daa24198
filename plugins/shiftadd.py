"""``shiftadd``: ShiftAddViT's latency-aware load balancing of its mixtures of experts (``shiftaddvit_*``).

Every mixture (:class:`zoo.models.shiftaddvit.ShiftAddExperts`) routes each token to a multiplying or a shift expert.
This adds ``weight`` times, summed over the mixtures, the squared coefficient of variation of the experts'
latency-weighted importance (each expert's router probability summed over the batch's tokens, times its ``latency``)
to the training loss. Balancing weighted importance makes the cheaper expert take more tokens: with ``latency=[6, 4]``
(multiply, shift) the balance is 40% / 60%. The defaults are the release's code's (weights 6 and 4, coefficient 0.01),
which defines this loss but trains without it; the paper's own equation could not be read (docs/sources.md,
"ShiftAddViT"). Logged: ``train/shiftadd_balance`` and ``train/shiftadd_shift_share`` (the tokens sent to shift
experts).
"""
from __future__ import annotations

import dataclasses

from zoo.plugins.base import Plugin

from zoo.errors import ConfigError


@dataclasses.dataclass
class ShiftAddConfig:
    weight: float = 0.01  # the balancing loss's coefficient
    latency: list = dataclasses.field(default_factory=lambda: [6.0, 4.0])  # relative cost of the multiply, shift experts


class ShiftAdd(Plugin):
    name = "shiftadd"
    Config = ShiftAddConfig
    tasks = ("classification",)
    changes = "nothing in the saved model or the export: a loss term that steers the routers during training"

    def __init__(self, config: ShiftAddConfig | None = None, **options) -> None:
        super().__init__(config, **options)
        c = self.config
        if len(c.latency) != 2 or min(c.latency) <= 0:
            raise ConfigError(f"plugins.shiftadd.latency: two positive costs, multiply then shift, not {list(c.latency)}")
        if c.weight < 0:
            raise ConfigError(f"plugins.shiftadd.weight must be >= 0, not {c.weight}")

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit":
            return
        from zoo.models.shiftaddvit import ShiftAddExperts

        self._mixtures = [m for m in pl_module.model.modules() if isinstance(m, ShiftAddExperts)]
        if not self._mixtures:
            raise ConfigError(f"plugin 'shiftadd' balances ShiftAddViT's experts; {pl_module.model.zoo_spec.name} has "
                              "none (shiftaddvit_* with moe_attn or moe_mlp)")
        pl_module.add_loss_term(self.name, self.loss)

    def loss(self, images, outputs, targets):
        import torch

        balance, shifted, tokens = 0.0, 0, 0
        for mixture in self._mixtures:
            probabilities = mixture.probabilities
            if probabilities is None:
                continue
            importance = probabilities.sum(0) * probabilities.new_tensor(self.config.latency)
            balance = balance + importance.var() / (importance.mean() ** 2 + 1e-10)
            shifted += int((probabilities.argmax(-1) == 1).sum())
            tokens += probabilities.shape[0]
        balance = torch.as_tensor(balance, device=outputs.device)
        return self.config.weight * balance, {"balance": balance.detach(), "shift_share": torch.tensor(shifted / max(tokens, 1))}
