"""Budget search for elastic models: measure candidate sub-networks on this machine, keep the Pareto set of cost
against quality, choose the best one within a budget, and draw the result.

MatFormer's Mix'n'Match search (:mod:`zoo.matformer`) and Once-for-All's specialisation (:mod:`zoo.ofa`) are this one
loop with their own candidates, extraction and evaluation.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from zoo.errors import BadArgumentError

METRICS = ("latency_ms", "params", "macs")


def check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise BadArgumentError(f"metric must be one of {', '.join(METRICS)}, not {metric!r}")


def search(settings: Iterable, extract: Callable[[Any], Any], example, *, metric: str = "latency_ms",
           budget: float | None = None, evaluate: Callable[[Any, Any], dict] | None = None, quality: str = "params",
           describe: Callable[[Any], str] = str, runs: int = 20, threads: int | None = None,
           progress: bool = True) -> dict[str, Any]:
    """Measure every setting and choose one.

    ``extract(setting)`` gives the standalone model a setting means; its cost is ``metric``: ``latency_ms`` (batch-1
    p50 of ``runs`` calls on ``example``, on this machine), ``params`` or ``macs``. ``evaluate(setting, model)``
    optionally adds columns (top-1, loss); ``quality`` names the one to maximise (``loss`` is minimised; the default,
    ``params``, prefers the larger model when nothing was evaluated). ``best`` is the highest-quality setting whose
    cost is within ``budget`` (the cheaper on ties); ``pareto`` the settings no other beats on both, cheapest first.
    """
    import torch

    from zoo.bench import count_macs, time_calls

    check_metric(metric)
    if threads:
        torch.set_num_threads(threads)
    settings = list(settings)
    if progress:
        from rich.progress import track

        settings_iter = track(settings, description=f"measuring {len(settings)} settings", transient=True)
    else:
        settings_iter = settings
    results = []
    for setting in settings_iter:
        small = extract(setting).eval()
        row: dict[str, Any] = {"setting": setting, "params": sum(p.numel() for p in small.parameters())}
        if metric == "macs":
            row["macs"] = count_macs(small, example)
        if metric == "latency_ms":
            with torch.inference_mode():
                row["latency_ms"] = time_calls(functools.partial(small, example), runs, 3)["p50_ms"]
        if evaluate is not None:
            row.update(evaluate(setting, small))
        results.append(row)
    return choose(results, metric, budget, quality, describe)


def choose(results: list[dict], metric: str, budget: float | None, quality: str,
           describe: Callable[[Any], str] = str) -> dict[str, Any]:
    """The Pareto set of measured ``results`` and the best one within ``budget`` (see :func:`search`)."""
    sign = -1 if quality == "loss" else 1
    score = {id(r): sign * r[quality] for r in results}  # higher is better
    pareto = [r for r in results if not any(o[metric] <= r[metric] and score[id(o)] > score[id(r)]
                                            or o[metric] < r[metric] and score[id(o)] >= score[id(r)] for o in results)]
    for r in results:
        r["pareto"] = any(r is p for p in pareto)
    fitting = [r for r in results if budget is None or r[metric] <= budget]
    if not fitting:
        cheapest = min(results, key=lambda r: r[metric])
        raise BadArgumentError(f"no setting fits {metric} <= {budget}: the cheapest ({describe(cheapest['setting'])}) "
                               f"costs {cheapest[metric]:.4g}; raise the budget")
    best = max(fitting, key=lambda r: (score[id(r)], -r[metric]))
    return {"metric": metric, "budget": budget, "quality": quality, "results": results,
            "pareto": sorted(pareto, key=lambda r: r[metric]), "best": best}


def plot_search(found: dict[str, Any], path: str | Path, title: str = "", points: str = "settings") -> Path:
    """The measured settings, cost against quality, with the Pareto set drawn, rows that have a ``label`` named and
    the budget marked (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from zoo._io import atomic_write

    metric, quality = found["metric"], found["quality"]
    fig, ax = plt.subplots(figsize=(8, 5))
    rows = found["results"]
    ax.scatter([r[metric] for r in rows], [r[quality] for r in rows], c="tab:gray", s=14, label=points)
    front = found["pareto"]
    ax.plot([r[metric] for r in front], [r[quality] for r in front], "o-", c="tab:blue", label="Pareto set")
    for r in rows:
        if r.get("label"):
            ax.annotate(r["label"], (r[metric], r[quality]), textcoords="offset points", xytext=(4, 3))
    if found["budget"] is not None:
        ax.axvline(found["budget"], ls="--", c="tab:red", label=f"budget {found['budget']:g}")
    best = found["best"]
    ax.scatter([best[metric]], [best[quality]], marker="*", s=180, c="tab:red", zorder=5, label="chosen")
    ax.set_xlabel(metric)
    ax.set_ylabel(quality)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
    return path
