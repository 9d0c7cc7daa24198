"""Elastic MatFormer models, the public face of :mod:`zoo.models.matformer`.

``model.set_granularity("m")`` switches a loaded ``matvit_*`` model in place; :func:`extract` cuts out a
standalone smaller model with identical outputs, which ``zoo.save``/``zoo.load`` round-trip and
``zoo export`` exports; :func:`search` picks Mix'n'Match settings under a budget measured on this machine.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from zoo.errors import BadArgumentError
from zoo.models.matformer import GRANULARITIES, MatViT, NestedMlp, extract

__all__ = ["GRANULARITIES", "MatViT", "NestedMlp", "extract", "candidates", "search", "plot_search"]
METRICS = ("latency_ms", "params", "macs")


def candidates(depth: int, granularities: Sequence[str] = tuple(GRANULARITIES)) -> list[list[str]]:
    """The paper's Mix'n'Match heuristic: granularity non-decreasing with depth and changing little: every
    uniform setting, and every split of the layers into a first part at one granularity and the rest at the
    next larger one (``depth - 1`` split points per neighbouring pair)."""
    order = sorted(granularities, key=lambda g: -GRANULARITIES[g])  # s, m, l, xl
    settings = [[g] * depth for g in order]
    for small, large in zip(order, order[1:]):
        settings += [[small] * k + [large] * (depth - k) for k in range(1, depth)]
    return settings


def search(model: MatViT, budget: float | None = None, metric: str = "latency_ms", data: Iterable | None = None,
           *, runs: int = 20, threads: int | None = None) -> dict[str, Any]:
    """Measure every :func:`candidates` setting of ``model`` and return them with the Pareto set.

    ``metric``: the cost, ``latency_ms`` (batch-1 p50 of the extracted model on this machine, ``runs`` calls),
    ``params`` or ``macs``. ``data``: optional ``(images, labels)`` batches; each setting's top-1 and loss on
    them come from the nested model switched to it. ``budget``: the largest cost allowed; ``best`` is the
    most accurate setting within it (without ``data``: the one with the most parameters). The model is left
    at its full width.
    """
    import torch

    from zoo.bench import count_macs, time_calls

    if metric not in METRICS:
        raise BadArgumentError(f"metric must be one of {', '.join(METRICS)}, not {metric!r}")
    if threads:
        torch.set_num_threads(threads)
    batches = list(data) if data is not None else []
    c, h, w = model.zoo_spec.input_size if hasattr(model, "zoo_spec") else (3, *model.vit.patch_embed.img_size)
    x = torch.rand(1, c, h, w, generator=torch.Generator().manual_seed(0))
    full = model.granularity
    results = []
    try:
        for setting in candidates(len(model.mlps)):
            row: dict[str, Any] = {"setting": setting, "widths": model.widths(setting)}
            small = extract(model, setting).eval()
            row["params"] = sum(p.numel() for p in small.parameters())
            if metric == "macs":
                row["macs"] = count_macs(small, x)
            if metric == "latency_ms":
                with torch.inference_mode():
                    row["latency_ms"] = time_calls(lambda: small(x), runs, 3)["p50_ms"]
            if batches:
                model.eval().set_granularity(setting)
                hits = seen = 0
                loss = 0.0
                with torch.inference_mode():
                    for images, labels in batches:
                        logits = model(images).float()
                        loss += torch.nn.functional.cross_entropy(logits, labels, reduction="sum").item()
                        hits += (logits.argmax(-1) == labels).sum().item()
                        seen += labels.numel()
                row["top1"], row["loss"] = hits / max(seen, 1), loss / max(seen, 1)
            results.append(row)
    finally:
        model.set_granularity(full)
    quality = "top1" if batches else "params"  # without data, more parameters stand in for better
    pareto = [r for r in results if not any(o[metric] <= r[metric] and o[quality] > r[quality]
                                            or o[metric] < r[metric] and o[quality] >= r[quality] for o in results)]
    for r in results:
        r["pareto"] = r in pareto
    fitting = [r for r in results if budget is None or r[metric] <= budget]
    if budget is not None and not fitting:
        cheapest = min(results, key=lambda r: r[metric])
        raise BadArgumentError(f"no setting fits {metric} <= {budget}: the smallest ({cheapest['setting'][0]} everywhere) "
                               f"costs {cheapest[metric]:.4g}; raise the budget")
    best = max(fitting, key=lambda r: (r[quality], -r[metric]))
    return {"metric": metric, "budget": budget, "quality": quality, "results": results,
            "pareto": sorted(pareto, key=lambda r: r[metric]), "best": best}


def plot_search(found: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """The searched settings, cost against quality, with the Pareto set drawn and the budget marked (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from zoo._io import atomic_write

    metric, quality = found["metric"], found["quality"]
    fig, ax = plt.subplots(figsize=(8, 5))
    rows = found["results"]
    ax.scatter([r[metric] for r in rows], [r[quality] for r in rows], c="tab:gray", s=14, label="Mix'n'Match settings")
    front = found["pareto"]
    ax.plot([r[metric] for r in front], [r[quality] for r in front], "o-", c="tab:blue", label="Pareto set")
    for r in rows:
        if len(set(r["setting"])) == 1:
            ax.annotate(r["setting"][0], (r[metric], r[quality]), textcoords="offset points", xytext=(4, 3))
    if found["budget"] is not None:
        ax.axvline(found["budget"], ls="--", c="tab:red", label=f"budget {found['budget']:g}")
    best = found["best"]
    ax.scatter([best[metric]], [best[quality]], marker="*", s=180, c="tab:red", zorder=5, label="chosen")
    ax.set_xlabel(metric)
    ax.set_ylabel(quality)
    ax.set_title(title or "MatFormer Mix'n'Match search")
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
    return path
