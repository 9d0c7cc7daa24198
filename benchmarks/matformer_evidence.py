"""MatFormer's claim on a small scale: one MatViT-Ti trained with all granularities nested against four ViT-Ti
trained independently at the S, M, L and XL MLP widths, on the embedded `digits` data, on this CPU.

    python benchmarks/matformer_evidence.py [--epochs 30] [--mode sample] [--out runs/bench/matformer] [--update-readme]

Every run uses recipe ``matvit_ti_digits`` (same seed, data, optimizer and number of epochs): the MatFormer run
with its ``matformer`` plugin (``--mode``: sample, one granularity per step, or sum, all every step), each
independent run without the plugin and with its MLPs built at one width (``model.kwargs.mlp_dims``). So each
independent model gets as many steps as the whole MatFormer run, which in sample mode spends about a quarter
of its steps on each granularity. Val top-1 of every model is measured here on the 360 val images, the
MatFormer model at each granularity and at Mix'n'Match settings between them (first half of the layers at
one granularity, second half at the next: non-decreasing with depth, as the paper's heuristic prefers).
Parameters are those of the extracted standalone model. ``--update-readme`` writes the table into README.md
between the matformer-evidence markers.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- matformer-evidence:start -->", "<!-- matformer-evidence:end -->"
ORDER = ["s", "m", "l", "xl"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--mode", default="sample", choices=["sample", "sum"])
    parser.add_argument("--out", default="runs/bench/matformer")
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()

    import zoo
    from zoo._io import atomic_write_text
    from zoo.data.classification import ClassificationDataModule
    from zoo.evaluate import evaluate
    from zoo.matformer import GRANULARITIES
    from zoo.train import compose, machine, run

    out = Path(args.out)
    common = ["trainer.enable_progress_bar=false", f"trainer.max_epochs={args.epochs}"]
    summaries = {"matformer": run(compose("matvit_ti_digits", [*common, f"plugins.matformer.mode={args.mode}"]), out / "matformer")}
    d_ff = zoo.load(str(out / "matformer")).d_ff
    for g in ORDER:
        widths = [d_ff // GRANULARITIES[g]] * 12
        summaries[g] = run(compose("matvit_ti_digits", [*common, "plugins=[]", f"+model.kwargs.mlp_dims={widths}"]), out / g)

    cfg = compose("matvit_ti_digits")
    data = ClassificationDataModule(cfg.data, zoo.info("matvit_ti"), seed=cfg.seed)
    data.setup("validate")
    loader, classes = data.val_dataloader(), data.classes

    def top1(model) -> float:
        return evaluate(model.eval(), loader, classes, progress=False)["top1"]

    nested = zoo.load(str(out / "matformer"))
    settings = {g: g for g in ORDER}
    for a, b in zip(ORDER, ORDER[1:]):
        settings[f"{a}/{b}"] = [a] * 6 + [b] * 6
    rows = []
    for label, setting in settings.items():
        small = zoo.matformer.extract(nested, setting)
        independent = zoo.load(str(out / label)) if label in ORDER else None
        rows.append({"setting": label, "params": sum(p.numel() for p in small.parameters()),
                     "matformer_top1": top1(nested.set_granularity(setting)),
                     "independent_top1": top1(independent) if independent is not None else None})
        shown = f"{rows[-1]['independent_top1']:.2%}" if independent is not None else "-"
        print(f"{label}: {rows[-1]['params']:,} params, MatFormer {rows[-1]['matformer_top1']:.2%}, independent {shown}", flush=True)
    rows.sort(key=lambda r: r["params"])

    m = machine()
    total = sum(s["wall_time_s"] for s in summaries.values())
    lines = [
        f"MatViT-Ti/16 on `digits` (64x64, 360 val images), {args.epochs} epochs per run, MatFormer objective "
        f"`mode={args.mode}`; measured by `python benchmarks/matformer_evidence.py` on {m['cpu']}, "
        f"{m['threads']} threads, torch {m['torch']}, {m['date']} ({total / 60:.0f} min for the five runs). "
        "s/m, m/l, l/xl: Mix'n'Match (first six layers at the first granularity, last six at the second), "
        "never trained as such:",
        "",
        "| MLP widths | params (extracted) | MatFormer top-1 | independently trained top-1 |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        independent = f"{r['independent_top1']:.2%}" if r["independent_top1"] is not None else "-"
        lines.append(f"| {r['setting']} | {r['params'] / 1e6:.3f}M | {r['matformer_top1']:.2%} | {independent} |")
    print("\n" + "\n".join(lines))
    atomic_write_text(out / "evidence.json", json.dumps({"machine": m, "epochs": args.epochs, "mode": args.mode, "rows": rows,
                                                          "runs": {k: {"val_top1": v.get("val_top1"), "wall_time_s": v["wall_time_s"]}
                                                                   for k, v in summaries.items()}}, indent=2) + "\n")
    if args.update_readme:
        from zoo._io import replace_marked_block

        print(f"updated {replace_marked_block(README, START, END, chr(10).join([START, *lines, END]))}")


if __name__ == "__main__":
    main()
