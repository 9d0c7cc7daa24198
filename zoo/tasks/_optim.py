"""The optimizer and schedule every task uses, written once: timm's ``create_optimizer_v2`` (no weight
decay on norms and biases) and a linear warmup into a cosine decay (timm's ``CosineLRScheduler``),
stepped per update so short and long runs follow the same curve."""
from __future__ import annotations

from typing import Any


def configure_optimizers(model, trainer, optim: dict[str, Any]) -> dict[str, Any]:
    from timm.optim import create_optimizer_v2
    from timm.scheduler import CosineLRScheduler

    o = optim
    optimizer = create_optimizer_v2(
        model, opt=o["name"], lr=o["lr"], weight_decay=o.get("weight_decay", 0.0), momentum=o.get("momentum", 0.9)
    )
    total = max(int(trainer.estimated_stepping_batches), 1)
    epochs = max(int(trainer.max_epochs or 1), 1)
    warmup = min(int(round(o.get("warmup_epochs", 0) * total / epochs)), total - 1)
    scheduler = CosineLRScheduler(
        optimizer,
        t_initial=total - warmup,
        lr_min=o.get("min_lr", 0.0),
        warmup_t=warmup,
        warmup_lr_init=o["lr"] * o.get("warmup_start_factor", 0.01),
        warmup_prefix=True,
        t_in_epochs=False,
    )
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
