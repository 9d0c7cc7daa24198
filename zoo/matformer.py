"""Elastic MatFormer models, the public face of :mod:`zoo.models.matformer`.

``model.set_granularity("m")`` switches a loaded ``matvit_*`` or ``matlm_*`` model in place; :func:`extract` cuts out a
standalone smaller model with identical outputs, which ``zoo.save``/``zoo.load`` round-trip and
``zoo export`` exports; :func:`search` picks Mix'n'Match settings under a budget measured on this machine.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from zoo.errors import BadArgumentError
from zoo.models.matformer import GRANULARITIES, MatLM, MatViT, Nested, NestedMlp, decode_bytes, encode_bytes, extract

__all__ = ["GRANULARITIES", "MatViT", "MatLM", "Nested", "NestedMlp", "extract", "encode_bytes", "decode_bytes",
           "candidates", "search", "plot_search"]
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


def search(model: Nested, budget: float | None = None, metric: str = "latency_ms", data: Iterable | None = None,
           *, runs: int = 20, threads: int | None = None) -> dict[str, Any]:
    """Measure every :func:`candidates` setting of ``model`` and return them with the Pareto set.

    ``metric``: the cost, ``latency_ms`` (batch-1 p50 of the extracted model on this machine, ``runs`` calls),
    ``params`` or ``macs``. ``data``: optional ``(inputs, targets)`` batches (images and labels, or a language
    model's tokens and next tokens); each setting's top-1 and loss (or loss alone) on them come from the
    nested model switched to it. ``budget``: the largest cost allowed; ``best`` is the most accurate (lowest
    loss) setting within it (without ``data``: the one with the most parameters). The model is left at its
    full width.
    """
    import torch

    from zoo.bench import count_macs, time_calls

    if metric not in METRICS:
        raise BadArgumentError(f"metric must be one of {', '.join(METRICS)}, not {metric!r}")
    if threads:
        torch.set_num_threads(threads)
    batches = list(data) if data is not None else []
    x = model.example_input()
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
                    for inputs, targets in batches:
                        logits = model(inputs).float().flatten(0, -2)  # language models: one row per token
                        targets = targets.flatten()
                        loss += torch.nn.functional.cross_entropy(logits, targets, reduction="sum").item()
                        hits += (logits.argmax(-1) == targets).sum().item()
                        seen += targets.numel()
                row["loss"] = loss / max(seen, 1)
                if not isinstance(model, MatLM):
                    row["top1"] = hits / max(seen, 1)
            results.append(row)
    finally:
        model.set_granularity(full)
    quality = ("loss" if isinstance(model, MatLM) else "top1") if batches else "params"  # without data: more params
    sign = -1 if quality == "loss" else 1
    for r in results:
        r["_score"] = sign * r[quality]  # higher is better
    pareto = [r for r in results if not any(o[metric] <= r[metric] and o["_score"] > r["_score"]
                                            or o[metric] < r[metric] and o["_score"] >= r["_score"] for o in results)]
    for r in results:
        r["pareto"] = r in pareto
    fitting = [r for r in results if budget is None or r[metric] <= budget]
    if budget is not None and not fitting:
        cheapest = min(results, key=lambda r: r[metric])
        raise BadArgumentError(f"no setting fits {metric} <= {budget}: the smallest ({cheapest['setting'][0]} everywhere) "
                               f"costs {cheapest[metric]:.4g}; raise the budget")
    best = max(fitting, key=lambda r: (r["_score"], -r[metric]))
    for r in results:
        del r["_score"]
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
