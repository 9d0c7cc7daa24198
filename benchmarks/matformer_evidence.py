"""MatFormer's claim on a small scale, on this CPU: one nested model trained with all granularities against
four models trained independently at the S, M, L and XL MLP widths.

    python benchmarks/matformer_evidence.py --model vit [--epochs 30] [--mode sample] [--update-readme]
    python benchmarks/matformer_evidence.py --model lm  [--epochs 3]  [--mode sample] [--update-readme]

``--model vit``: MatViT-Ti on the embedded `digits` data (recipe ``matvit_ti_digits``), val top-1.
``--model lm``: MatLM-nano on the Python standard library's sources (recipe ``matlm_nano_stdlib``), val loss.

Every run uses the recipe (same seed, data, optimizer and number of epochs): the MatFormer run with its
``matformer`` plugin (``--mode``: sample, one granularity per step, or sum, all every step), each independent
run without the plugin and with its MLPs built at one width (``model.kwargs.mlp_dims``). So each independent
model gets as many steps as the whole MatFormer run, which in sample mode spends about a quarter of its steps
on each granularity. Every model is measured here on the recipe's validation data, the MatFormer model at
each granularity and at Mix'n'Match settings between them (first half of the layers at one granularity,
second half at the next: non-decreasing with depth, as the paper's heuristic prefers). Parameters are those
of the extracted standalone model, and so is the latency (eager PyTorch, batch 1, p50 of 200 calls on this
machine: the whole table comes from one process, so its rows compare). ``--update-readme`` writes the table
into README.md between the markers ``matformer-evidence`` (vit) or ``matlm-evidence`` (lm), with ``-sum``
appended for ``--mode sum``. ``--reuse`` keeps finished runs, so a second mode retrains only the MatFormer run.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
ORDER = ["s", "m", "l", "xl"]
SETUPS = {
    "vit": {"recipe": "matvit_ti_digits", "epochs": 30, "marker": "matformer-evidence", "metric": "top-1",
            "what": "MatViT-Ti/16 on `digits` (64x64, 360 val images)"},
    "lm": {"recipe": "matlm_nano_stdlib", "epochs": 3, "marker": "matlm-evidence", "metric": "val loss (nats/byte)",
           "what": "MatLM-nano (byte-level, d_model 128, 4 layers, 128-byte windows) on the Python standard library's sources"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="vit", choices=list(SETUPS))
    parser.add_argument("--epochs", type=int, help="per run (default: 30 for vit, 3 for lm)")
    parser.add_argument("--mode", default="sample", choices=["sample", "sum"])
    parser.add_argument("--out", help="runs go here (default: runs/bench/matformer_<model>)")
    parser.add_argument("--reuse", action="store_true", help="keep runs already in --out (e.g. the independent ones, "
                                                                 "when only --mode changed)")
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()
    setup = SETUPS[args.model]
    epochs = args.epochs or setup["epochs"]

    import zoo
    from zoo._io import atomic_write_json, fill_marked_section
    from zoo.matformer import GRANULARITIES
    from zoo.train import compose, machine, prepare, run

    out = Path(args.out or f"runs/bench/matformer_{args.model}")
    recipe = setup["recipe"]
    common = ["trainer.enable_progress_bar=false", f"trainer.max_epochs={epochs}"]

    def train(name: str, overrides: list[str]) -> dict:
        done = out / name / "summary.json"
        if args.reuse and done.is_file() and json.loads(done.read_text())["epochs"] == epochs:
            return json.loads(done.read_text())
        return run(compose(recipe, [*common, *overrides]), out / name)

    matformer = f"matformer_{args.mode}"
    summaries = {matformer: train(matformer, [f"plugins.matformer.mode={args.mode}"])}
    nested = zoo.load(str(out / matformer))
    depth = len(nested.mlps)
    for g in ORDER:
        summaries[g] = train(g, ["plugins=[]", f"+model.kwargs.mlp_dims={[nested.d_ff // GRANULARITIES[g]] * depth}"])

    data = prepare(compose(recipe, ["trainer.enable_progress_bar=false"]), out / "data").data  # the recipe's val data
    data.setup("validate")
    measure = _measure(args.model, data)

    settings = {g: g for g in ORDER}
    half = depth // 2
    for a, b in zip(ORDER, ORDER[1:]):
        settings[f"{a}/{b}"] = [a] * half + [b] * (depth - half)
    rows = []
    for label, setting in settings.items():
        small = zoo.matformer.extract(nested, setting).eval()
        independent = zoo.load(str(out / label)) if label in ORDER else None
        rows.append({"setting": label, "params": sum(p.numel() for p in small.parameters()), "latency_ms": _latency(small),
                     "matformer": measure(nested.set_granularity(setting)),
                     "independent": measure(independent) if independent is not None else None})
        print(f"{label}: {rows[-1]['params']:,} params, MatFormer {_fmt(args.model, rows[-1]['matformer'])}, "
              f"independent {_fmt(args.model, rows[-1]['independent'])}", flush=True)
    rows.sort(key=lambda r: r["params"])

    m = machine()
    total = sum(s["wall_time_s"] for s in summaries.values())
    better = "higher" if args.model == "vit" else "lower"
    lines = [
        f"{setup['what']}, {epochs} epoch{'s' * (epochs != 1)} per run, MatFormer objective `mode={args.mode}`; {setup['metric']}, "
        f"{better} is better. Measured by `python benchmarks/matformer_evidence.py --model {args.model}` on {m['cpu']}, "
        f"{m['threads']} threads, Python {m['python']}, torch {m['torch']}, {m['date']} ({total / 60:.0f} min for the five runs; the MatFormer run alone {summaries[matformer]['wall_time_s'] / 60:.0f} min). "
        f"s/m, m/l, l/xl: Mix'n'Match (first {half} layers at the first granularity, last {depth - half} at the second), "
        "never trained as such:",
        "",
        f"| MLP widths | params (extracted) | latency (extracted, eager, batch 1) | MatFormer {setup['metric']} | "
        f"independently trained {setup['metric']} |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['setting']} | {r['params'] / 1e6:.3f}M | {r['latency_ms']:.2f} ms | {_fmt(args.model, r['matformer'])} | "
                     f"{_fmt(args.model, r['independent'])} |")
    print("\n" + "\n".join(lines))
    runs = {k: {key: v.get(key) for key in ("val_top1", "val_loss", "wall_time_s")} for k, v in summaries.items()}
    atomic_write_json(out / "evidence.json", {"machine": m, "model": args.model, "epochs": epochs, "mode": args.mode,
                                              "rows": rows, "runs": runs})
    if args.update_readme:
        marker = setup["marker"] + ("" if args.mode == "sample" else f"-{args.mode}")  # one README block per mode
        print(f"updated {fill_marked_section(README, marker, chr(10).join(lines))}")


def _latency(model) -> float:
    """p50 of 200 batch-1 calls on the model's own example input (eager PyTorch, this machine's threads)."""
    import torch

    from zoo.bench import time_calls

    x = model.example_input()
    with torch.inference_mode():
        return time_calls(lambda: model(x), runs=200, warmup=10)["p50_ms"]


def _measure(model: str, data):
    """model -> its val top-1 (vit) or val loss (lm) on the recipe's validation data."""
    if model == "vit":
        from zoo.evaluate import evaluate

        loader, classes = data.val_dataloader(), data.classes
        return lambda m: evaluate(m.eval(), loader, classes, progress=False)["top1"]
    from zoo.evaluate import evaluate_language_model

    loader = data.val_dataloader()
    return lambda m: evaluate_language_model(m.eval(), loader, progress=False, granularities=False)["loss"]


def _fmt(model: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2%}" if model == "vit" else f"{value:.4f}"


if __name__ == "__main__":
    main()
