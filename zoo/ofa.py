"""Once-for-All supernets, the public face of the OFA part of :mod:`zoo.models.proxylessnas`.

``model.set_active_subnet(ks=..., e=..., d=...)`` switches a loaded ``ofa_*`` supernet in place (ofa's own method);
:func:`extract` cuts out a standalone sub-network with its weights, which ``zoo.save``/``zoo.load`` round-trip and
``zoo export`` exports; :func:`specialize` picks the sub-network for a budget measured on this machine (latency,
parameters or MACs), with :func:`search` giving every measured candidate and the Pareto set.
"""
from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from zoo.models.proxylessnas import (
    DEPTHS,
    EXPANSIONS,
    KERNELS,
    SPECIALIZED,
    active_setting,
    check_supernet,
    extract,
    subnet_setting,
)

__all__ = ["SPECIALIZED", "KERNELS", "EXPANSIONS", "DEPTHS", "active_setting", "subnet_setting", "extract",
           "candidates", "search", "specialize", "plot_search"]


def _space(model) -> tuple[int, list[int]]:
    """Elastic blocks, and how many blocks each stage holds."""
    return len(model.blocks) - 1, [len(group) for group in model.block_group_info]


def candidates(model, samples: int = 64, seed: int = 0) -> list[dict[str, Any]]:
    """Sub-networks to measure: the 27 uniform ones (one kernel, expansion and depth everywhere, labelled like
    ``k7 e6 d4``) and ``samples`` drawn at random (seeded), as OFA's search draws them: each block's kernel and
    expansion and each stage's depth independently."""
    check_supernet(model)
    blocks, stage_sizes = _space(model)

    def depths(d):
        return [min(d, size) for size in stage_sizes]  # a one-block stage keeps its block

    found = [{"setting": {"ks": [k] * blocks, "e": [e] * blocks, "d": depths(d)}, "label": f"k{k} e{e} d{d}"}
             for k in KERNELS for e in EXPANSIONS for d in DEPTHS]
    draw = random.Random(seed)
    for _ in range(samples):
        found.append({"setting": {"ks": [draw.choice(KERNELS) for _ in range(blocks)],
                                  "e": [draw.choice(EXPANSIONS) for _ in range(blocks)],
                                  "d": [min(draw.choice(DEPTHS), size) for size in stage_sizes]}})
    return found


def _describe(setting: dict) -> str:
    return f"depths {setting['d']}, kernels {sorted(set(setting['ks']))}, expansions {sorted(set(setting['e']))}"


def search(model, budget: float | None = None, metric: str = "latency_ms", data: Iterable | None = None, *,
           samples: int = 64, seed: int = 0, runs: int = 20, threads: int | None = None,
           progress: bool = True) -> dict[str, Any]:
    """Measure the :func:`candidates` of supernet ``model`` and choose one (:func:`zoo.search.search`).

    ``metric``: ``latency_ms`` (batch-1 p50 of the extracted sub-network at the model's input size, on this
    machine), ``params`` or ``macs``; ``budget``: the most it may cost. ``data``: optional ``(images, labels)``
    batches; each sub-network's BatchNorm statistics are recomputed on their images (a sub-network's activations
    differ from the supernet's, as OFA does before evaluating one) and its top-1 and loss measured on them, and
    ``best`` is the most accurate within the budget. Without data ``best`` is the one with the most parameters
    within it. Each row: ``setting``, ``params``, the metric, ``top1``/``loss`` with data, ``pareto``.
    """
    import torch

    from zoo import search as budget_search
    from zoo.models._norm import recalibrate_batchnorm

    budget_search.check_metric(metric)
    batches = list(data) if data is not None else []
    rows = candidates(model, samples, seed)
    labels = {id(row["setting"]): row.get("label") for row in rows}

    def evaluate(setting, small) -> dict[str, float]:
        recalibrate_batchnorm(small, (images for images, _ in batches))
        hits = seen = 0
        loss = 0.0
        with torch.inference_mode():
            for images, targets in batches:
                logits = small(images).float()
                loss += torch.nn.functional.cross_entropy(logits, targets, reduction="sum").item()
                hits += (logits.argmax(-1) == targets).sum().item()
                seen += targets.numel()
        return {"top1": hits / max(seen, 1), "loss": loss / max(seen, 1)}

    found = budget_search.search([row["setting"] for row in rows], lambda setting: extract(model, setting),
                                 torch.rand(1, *model.zoo_spec.input_size), metric=metric, budget=budget,
                                 evaluate=evaluate if batches else None, quality="top1" if batches else "params",
                                 describe=_describe, runs=runs, threads=threads, progress=progress)
    for r in found["results"]:
        if labels[id(r["setting"])]:
            r["label"] = labels[id(r["setting"])]
    return found


def specialize(model, budget_ms: float | None = None, *, metric: str = "latency_ms", budget: float | None = None,
               data: Iterable | None = None, **options) -> Any:
    """The sub-network of supernet ``model`` that :func:`search` chooses, extracted with its weights (BatchNorm
    statistics recomputed on ``data`` when given): ``specialize(model, budget_ms=5)`` is the most accurate (without
    data: the largest) sub-network within 5 ms per image here; ``metric="params", budget=4e6`` bounds its size
    instead. ``options`` go to :func:`search` (which gives every measured candidate, for a table or
    :func:`plot_search`)."""
    from zoo.errors import BadArgumentError
    from zoo.models._norm import recalibrate_batchnorm

    if budget_ms is not None:
        if metric != "latency_ms" or budget is not None:
            raise BadArgumentError("budget_ms bounds latency: give either budget_ms, or metric= with budget=")
        budget = budget_ms
    batches = list(data) if data is not None else []
    found = search(model, budget, metric, batches or None, **options)
    small = extract(model, found["best"]["setting"])
    if batches:
        recalibrate_batchnorm(small, (images for images, _ in batches))
    return small


def plot_search(found: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """The measured sub-networks, cost against quality, with the Pareto set and the budget (PNG)."""
    from zoo import search as budget_search

    return budget_search.plot_search(found, path, title or "Once-for-All sub-networks", "sub-networks")

