"""BatchNorm statistics recomputed from data, written once for the places that need it: sub-networks cut from a
Once-for-All supernet (whose running statistics belong to no single sub-network), and untrained models in export
checks (:func:`zoo.bench.settle_batchnorm`)."""
from __future__ import annotations


def recalibrate_batchnorm(model, inputs) -> None:
    """Recompute every BatchNorm layer's running statistics as the plain average over the batches ``inputs``
    (in place; the rest of the model keeps its mode, the norms are left in eval mode)."""
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a plain average over the batches
        m.train()
    with torch.no_grad():
        for x in inputs:
            model(x)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
        m.eval()
