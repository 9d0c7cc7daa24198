"""Elastic MatFormer models, the public face of :mod:`zoo.models.matformer`.

``model.set_granularity("m")`` switches a loaded ``matvit_*`` or ``matlm_*`` model in place; :func:`extract` cuts out a
standalone smaller model with identical outputs, which ``zoo.save``/``zoo.load`` round-trip and
``zoo export`` exports; :func:`search` picks Mix'n'Match settings under a budget measured on this machine.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from zoo.models.matformer import GRANULARITIES, MatLM, MatViT, Nested, NestedMlp, decode_bytes, encode_bytes, extract

__all__ = ["GRANULARITIES", "MatViT", "MatLM", "Nested", "NestedMlp", "extract", "encode_bytes", "decode_bytes",
           "candidates", "search", "plot_search"]


def candidates(depth: int, granularities: Sequence[str] = tuple(GRANULARITIES)) -> list[list[str]]:
    """The paper's Mix'n'Match heuristic: granularity non-decreasing with depth and changing little: every
    uniform setting, and every split of the layers into a first part at one granularity and the rest at the
    next larger one (``depth - 1`` split points per neighbouring pair)."""
    order = sorted(granularities, key=lambda g: -GRANULARITIES[g])  # s, m, l, xl
    settings = [[g] * depth for g in order]
    for small, large in zip(order, order[1:]):
        settings += [[small] * k + [large] * (depth - k) for k in range(1, depth)]
    return settings


def search(model: Nested, budget: float | None = None, metric: str = "latency_ms", data: Iterable | None = None,
           *, runs: int = 20, threads: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Measure every :func:`candidates` setting of ``model`` and return them with the Pareto set
    (:func:`zoo.search.search`).

    ``metric``: the cost, ``latency_ms`` (batch-1 p50 of the extracted model on this machine, ``runs`` calls),
    ``params`` or ``macs``. ``data``: optional ``(inputs, targets)`` batches (images and labels, or a language
    model's tokens and next tokens); each setting's top-1 and loss (or loss alone) on them come from the
    nested model switched to it. ``budget``: the largest cost allowed; ``best`` is the most accurate (lowest
    loss) setting within it (without ``data``: the one with the most parameters). The model is left at its
    full width.
    """
    import torch

    from zoo import search as budget_search

    budget_search.check_metric(metric)
    batches = list(data) if data is not None else []

    def evaluate(setting, small) -> dict[str, float]:
        model.eval().set_granularity(setting)
        hits = seen = 0
        loss = 0.0
        with torch.inference_mode():
            for inputs, targets in batches:
                logits = model(inputs).float().flatten(0, -2)  # language models: one row per token
                targets = targets.flatten()
                loss += torch.nn.functional.cross_entropy(logits, targets, reduction="sum").item()
                hits += (logits.argmax(-1) == targets).sum().item()
                seen += targets.numel()
        row = {"loss": loss / max(seen, 1)}
        if not isinstance(model, MatLM):
            row["top1"] = hits / max(seen, 1)
        return row

    quality = ("loss" if isinstance(model, MatLM) else "top1") if batches else "params"  # without data: more params
    full = model.granularity
    try:
        found = budget_search.search(candidates(len(model.mlps)), lambda setting: extract(model, setting),
                                     model.example_input(), metric=metric, budget=budget, runs=runs, threads=threads,
                                     evaluate=evaluate if batches else None, quality=quality, progress=progress,
                                     describe=lambda setting: " ".join(setting))
    finally:
        model.set_granularity(full)
    for r in found["results"]:
        r["widths"] = model.widths(r["setting"])
        if len(set(r["setting"])) == 1:
            r["label"] = r["setting"][0]
    return found


def plot_search(found: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """The searched settings, cost against quality, with the Pareto set drawn and the budget marked (PNG)."""
    from zoo import search as budget_search

    return budget_search.plot_search(found, path, title or "MatFormer Mix'n'Match search", "Mix'n'Match settings")
