"""Once-for-All's claim on a small scale, on this CPU: a supernet whose sub-networks were trained together (the
``ofa`` plugin) against the same supernet trained only at its largest, each sub-network measured as extracted.

    python benchmarks/ofa_evidence.py [--epochs 12] [--reuse] [--update-readme]

Both runs use the recipe ``ofa_mbv3_w10_digits`` (same seed, data, optimizer and epochs): one with its ``ofa``
plugin (one sub-network drawn per step), one with ``plugins=[]`` (every step at the largest). Every sub-network in the
table is extracted from each supernet, its BatchNorm statistics recomputed on 8 training batches (as OFA does before
evaluating a sub-network; the same for both runs), and its top-1 measured on the recipe's 360 validation images.
Parameters and latency are those of the extracted network (eager PyTorch, batch 1 at the recipe's 64x64: the median
over 5 interleaved rounds of each network's p50 of 20 calls, so the rows compare on a shared machine). The last row is ``zoo.ofa.specialize`` on the plugin's
supernet with a latency budget of half the largest network's, choosing by top-1 on those training batches (not the
validation images). ``--update-readme`` writes the table into README.md between the ``ofa-evidence`` markers.
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
RECIPE = "ofa_mbv3_w10_digits"
UNIFORM = [(3, 3, 2), (5, 3, 2), (5, 4, 3), (7, 4, 3), (7, 6, 3), (7, 6, 4)]  # (kernel, expansion, depth) everywhere


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--out", default="runs/bench/ofa_evidence")
    parser.add_argument("--reuse", action="store_true", help="keep runs already in --out with the same epochs")
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()

    import torch

    import zoo
    from zoo._io import atomic_write_json, fill_marked_section
    from zoo.bench import time_calls
    from zoo.models._norm import recalibrate_batchnorm
    from zoo.evaluate import evaluate
    from zoo.train import compose, machine, prepare, run

    out = Path(args.out)
    common = ["trainer.enable_progress_bar=false", f"trainer.max_epochs={args.epochs}"]
    def train(name: str, overrides: list[str]) -> dict:
        done = out / name / "summary.json"
        if args.reuse and done.is_file() and json.loads(done.read_text())["epochs"] == args.epochs:
            return json.loads(done.read_text())
        return run(compose(RECIPE, [*common, *overrides]), out / name)

    summaries = {"ofa": train("ofa", []), "largest": train("largest", ["plugins=[]"])}
    supernets = {name: zoo.load(str(out / name)).eval() for name in summaries}

    data = prepare(compose(RECIPE, ["trainer.enable_progress_bar=false"]), out / "data").data
    data.setup("fit")
    calibration = [(images, labels) for images, labels in itertools.islice(data.train_dataloader(), 8)]
    loader, classes = data.val_dataloader(), data.classes
    x = torch.rand(1, *supernets["ofa"].zoo_spec.input_size)

    def top1(small) -> float:
        recalibrate_batchnorm(small, (images for images, _ in calibration))
        return evaluate(small.eval(), loader, classes, progress=False)["top1"]

    rows, networks = [], []
    for k, e, d in UNIFORM:
        setting = {"ks": [k] * 20, "e": [e] * 20, "d": [d] * 5}
        networks.append(zoo.ofa.extract(supernets["ofa"], setting).eval())
        rows.append({"label": f"kernel {k}, expansion {e}, depth {d}", "params": sum(p.numel() for p in networks[-1].parameters()),
                     "top1_ofa": top1(networks[-1]), "top1_largest": top1(zoo.ofa.extract(supernets["largest"], setting))})
        print(rows[-1], flush=True)
    rounds = _latencies(networks, x, time_calls)
    budget = round(rounds[-1] / 2, 1)
    chosen = zoo.ofa.specialize(supernets["ofa"], budget_ms=budget, data=calibration, progress=False).eval()
    networks.append(chosen)
    d = chosen.zoo_spec.default_kwargs["subnet"]["d"]
    rows.append({"label": f"`specialize(budget_ms={budget:g})`: depths {d}", "params": sum(p.numel() for p in chosen.parameters()),
                 "top1_ofa": evaluate(chosen, loader, classes, progress=False)["top1"], "top1_largest": None})
    print(rows[-1], flush=True)
    for row, latency in zip(rows, _latencies(networks, x, time_calls)):  # every network again, the chosen one too
        row["latency_ms"] = latency

    m = machine()
    lines = [
        f"`ofa_mbv3_w10` on `digits` (64x64, 360 val images), {args.epochs} epochs per run. Measured by "
        f"`python benchmarks/ofa_evidence.py` on {m['cpu']}, {m['threads']} threads, torch {m['torch']}, {m['date']} "
        f"(the plugin's run {summaries['ofa']['wall_time_s'] / 60:.0f} min, the largest-only run "
        f"{summaries['largest']['wall_time_s'] / 60:.0f} min). Every sub-network extracted, BatchNorm recomputed on 8 "
        "training batches; top-1 on the validation images, latency eager at batch 1:",
        "",
        "| sub-network (every block and stage) | params | latency | top-1, `ofa` plugin | top-1, trained at the largest only |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        largest = "-" if r["top1_largest"] is None else f"{r['top1_largest']:.2%}"
        lines.append(f"| {r['label']} | {r['params'] / 1e6:.2f}M | {r['latency_ms']:.2f} ms | {r['top1_ofa']:.2%} | {largest} |")
    print("\n" + "\n".join(lines))
    atomic_write_json(out / "evidence.json", {"machine": m, "epochs": args.epochs, "rows": rows,
                                              "runs": {k: {key: v.get(key) for key in ("val_top1", "wall_time_s")}
                                                       for k, v in summaries.items()}})
    if args.update_readme:
        print(f"updated {fill_marked_section(README, 'ofa-evidence', chr(10).join(lines))}")


def _latencies(networks: list, x, time_calls, rounds: int = 5) -> list[float]:
    """Each network's batch-1 latency: the median over ``rounds`` interleaved rounds of its p50 of 20 calls."""
    import torch

    seen: list[list[float]] = [[] for _ in networks]
    with torch.inference_mode():
        for _ in range(rounds):
            for times, network in zip(seen, networks):
                times.append(time_calls(lambda network=network: network(x), runs=20, warmup=3)["p50_ms"])
    return [statistics.median(times) for times in seen]


if __name__ == "__main__":
    main()
