"""``zoo quickstart``: the main job end to end on this machine, in a few minutes on 2 CPU cores.

It trains a registered efficient model with the ``quickstart`` recipe on the embedded ``digits`` data,
evaluates it, saves it, checks that the saved model loads back with the same predictions, exports it to
ONNX verified against PyTorch, times it with ``zoo bench`` and writes its model card, and prints where
everything went.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from zoo._io import new_run_dir

TARGET_TOP1 = 0.95


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="zoo quickstart", add_help=False)
    parser.add_argument("--out-dir", default="runs")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    import zoo
    from zoo.train import compose, run

    started = time.perf_counter()
    overrides = [f"out_dir={args.out_dir}"]
    if args.epochs:
        overrides.append(f"trainer.max_epochs={args.epochs}")
    if args.no_progress:
        overrides.append("trainer.enable_progress_bar=false")
    cfg = compose("quickstart", overrides)
    run_dir = Path(new_run_dir(Path(args.out_dir) / "quickstart"))
    print(f"efficient-zoo quickstart: {cfg.model.name} on {cfg.data.source}, {cfg.trainer.max_epochs} epochs -> {run_dir}")
    summary = run(cfg, run_dir)

    # The saved model must load back and score exactly what the trained one scored in the run.
    from zoo.data.classification import ClassificationDataModule
    from zoo.evaluate import evaluate

    reloaded = zoo.load(str(run_dir)).eval()
    data = ClassificationDataModule(cfg.data, reloaded.zoo_spec, seed=cfg.seed)
    again = evaluate(reloaded, data.val_dataloader(), data.classes, progress=False)
    same = again["top1"] == summary["val_top1"] and abs(again["loss"] - summary["val_loss"]) < 1e-6

    # The last steps of a model's life here: a verified export, a latency measurement and a card citing both.
    from zoo.bench import bench
    from zoo.card import write_card
    from zoo.export import export

    exported = export(str(run_dir), "onnx")
    print(exported.summary())
    bench_dir = Path(args.out_dir) / "bench"
    bench([str(run_dir.resolve())], backends=("torch",), out_dir=bench_dir, progress=False)
    card = write_card(run_dir, bench_dirs=(bench_dir,))
    elapsed = time.perf_counter() - started
    verdict = "meets" if summary["val_top1"] >= TARGET_TOP1 else "MISSES"
    print(
        f"\nquickstart done in {elapsed:.0f} s: val top-1 {summary['val_top1']:.2%} ({verdict} the {TARGET_TOP1:.0%} target)\n"
        f"  run directory : {run_dir}\n"
        f"  trained model : {run_dir / 'model'}  (reloads with the same predictions: {'yes' if same else 'NO'})\n"
        f"  evaluation    : {run_dir / 'eval' / 'metrics.json'}, {run_dir / 'eval' / 'confusion_matrix.png'}\n"
        f"  ONNX export   : {exported.path}  (verified against PyTorch: max |diff| {exported.verification['real']['max_abs_diff']:.2g})\n"
        f"  model card    : {card}\n"
        f"  logs          : {run_dir / 'logs' / 'metrics.csv'}, tensorboard --logdir {run_dir / 'tensorboard'}\n"
        f"next:\n"
        f"  zoo eval {run_dir} data=digits\n"
        f"  zoo push {run_dir} --repo-id YOUR_ORG/digits-{cfg.model.name}   # publish it with its card\n"
        f"  python -c \"import zoo; m = zoo.load('{run_dir}'); print(m.zoo_spec.labels)\"\n"
        f"  zoo train recipe=quickstart model.name=mobileone_s0   # any model from `zoo list`\n"
        f"\nthe model card: {card}"
    )
    return 0 if same and summary["val_top1"] >= TARGET_TOP1 and exported.verification["real"]["ok"] else 1
