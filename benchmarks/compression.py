"""Compression plugins measured on the `quickstart` recipe: distillation, pruning, QAT and all three together.

    python benchmarks/compression.py [--epochs 12] [--qat-epochs 4] [--teacher mobilenetv3_large_100] [--model NAME] [--update-readme]

Trains, with the same recipe, seed and data: the student as it is (the baseline), a teacher, the student
with logit distillation from that teacher, the student pruned to half its MACs (`plugins=[prune]`, 4
rounds in the first half, then fine-tuning), the baseline fine-tuned with int8 quantization-aware
training (`plugins=[qat]`, `--qat-epochs` at a tenth of the learning rate: the usual way to quantize a
trained model), and recipe `quickstart_compressed` (`plugins=[prune,distill,qat]`) from scratch in one run. Reports each run's val top-1
(digits, 64 px, as the recipe trains; int8 runs are evaluated as the converted int8 model), MACs and
batch-1 onnxruntime latency at 224 px of the exported model (fp32 ONNX, or the int8 Q/DQ ONNX, which
onnxruntime fuses into QLinearConv), median of 7 alternating rounds of 40 runs, all in this one process.
``--update-readme`` writes the table into README.md.
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
ROUNDS, RUNS = 7, 40


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--qat-epochs", type=int, default=4)
    parser.add_argument("--teacher", default="mobilenetv3_large_100")
    parser.add_argument("--model", default=None, help="the student (default: the recipe's, mobilenetv3_small_100)")
    parser.add_argument("--out", default="runs/bench/compression")
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()

    import torch

    import zoo
    from zoo.bench import count_macs, time_calls
    from zoo.environment import machine
    from zoo.export import deploy_form
    from zoo.export.onnx import exported_session
    from zoo.train import compose, run

    if args.model and args.update_readme:
        parser.error("--update-readme writes README's table for the recipe's own model; drop --model or --update-readme")
    student = [f"model.name={args.model}"] if args.model else []
    settings = [f"out_dir={args.out}", "trainer.enable_progress_bar=false", f"trainer.max_epochs={args.epochs}"]
    common = [*settings, *student]
    results = {
        "baseline": run(compose("quickstart", common), Path(args.out) / "baseline"),
        "teacher": run(compose("quickstart", [*settings, f"model.name={args.teacher}"]), Path(args.out) / "teacher"),
    }
    teacher_dir = results["teacher"]["run_dir"]
    results["distill"] = run(compose("quickstart", [*common, "plugins=[distill]", f"plugins.distill.teacher={teacher_dir}"]),
                             Path(args.out) / "distill")
    results["prune"] = run(compose("quickstart", [*common, "plugins=[prune]", "plugins.prune.ratio=0.5"]), Path(args.out) / "prune")
    baseline_weights = Path(results["baseline"]["model_dir"]) / "model.safetensors"
    lr = compose("quickstart").optim.lr
    results["qat"] = run(compose("quickstart", [
        f"out_dir={args.out}", "trainer.enable_progress_bar=false", f"trainer.max_epochs={args.qat_epochs}", *student,
        f"model.weights={baseline_weights}", f"optim.lr={lr / 10}", "optim.warmup_epochs=0", "plugins=[qat]",
        "plugins.qat.freeze_observers=0.5", "plugins.qat.freeze_bn=0.75"]), Path(args.out) / "qat")
    results["all"] = run(compose("quickstart_compressed", [*common, f"plugins.distill.teacher={teacher_dir}"]), Path(args.out) / "all")

    threads = torch.get_num_threads()
    x = torch.rand(1, 3, 224, 224)

    def session(run_dir: str):
        model = deploy_form(zoo.load(run_dir))
        return count_macs(model, x), exported_session(model, model.zoo_spec, (3, 224, 224), threads=threads)

    # Rounds that alternate between the models, so drift of this shared machine hits all of them alike;
    # each model's latency is the median of its per-round p50s.
    m = machine()
    sessions = {name: session(r["run_dir"]) for name, r in results.items()}
    rounds: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(ROUNDS):
        for name, (_, s) in sessions.items():
            feed = {s.get_inputs()[0].name: x.numpy()}
            rounds[name].append(time_calls(lambda: s.run(None, feed), RUNS, 5)["p50_ms"])
    measured = {name: (sessions[name][0], statistics.median(rounds[name])) for name in sessions}
    base_macs, base_ms = measured["baseline"]
    lines = [
        f"Recipe `quickstart` ({results['baseline']['model']}, digits, {args.epochs} epochs each unless noted, seed 0), measured by "
        f"`python benchmarks/compression.py` on {m['cpu']}, {threads} threads, torch {m['torch']}, {m['date']}. "
        f"Top-1 on the 360 val images at 64 px; MACs and onnxruntime latency at 224 px (batch 1; median over {ROUNDS} "
        f"alternating rounds of the p50 of {RUNS} runs):",
        "",
        "| run | val top-1 | vs baseline | MACs at 224 | onnxruntime ms at 224 | latency vs baseline |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    labels = {
        "baseline": f"baseline ({results['baseline']['model']})",
        "teacher": f"teacher ({args.teacher})",
        "distill": "student + distill (logit KD from the teacher)",
        "prune": "student + prune (50% of MACs)",
        "qat": f"baseline + QAT, int8 ({args.qat_epochs} fine-tuning epochs)",
        "all": "student + prune + distill + QAT, int8 (recipe quickstart_compressed)",
    }
    for name, label in labels.items():
        r = results[name]
        macs, ms = measured[name]
        lines.append(f"| {label} | {r['val_top1']:.2%} | {100 * (r['val_top1'] - results['baseline']['val_top1']):+.2f} pt | "
                     f"{macs / 1e6:.1f}M ({macs / base_macs:.0%}) | {ms:.2f} | {ms / base_ms:.2f} |")
    lines += ["", "Against the targets of the compression issue, from the rows above:", ""]
    prune_speed, qat_speed = 1 - measured["prune"][1] / base_ms, base_ms / measured["qat"][1]
    qat_delta = 100 * (results["qat"]["val_top1"] - results["baseline"]["val_top1"])
    prune_delta = 100 * (results["prune"]["val_top1"] - results["baseline"]["val_top1"])
    lines += [
        f"- pruning, at most 2 pt lost: {prune_delta:+.2f} pt ({'met' if prune_delta >= -2 else 'not met'}); "
        f"latency at least 30% lower: {prune_speed:.0%} lower ({'met' if prune_speed >= 0.3 else 'not met'})",
        f"- QAT, int8 within 1 pt of fp32: {qat_delta:+.2f} pt ({'met' if qat_delta >= -1 else 'not met'}); "
        f"int8 at least 1.5x faster: {qat_speed:.2f}x ({'met' if qat_speed >= 1.5 else 'not met'})",
    ]
    table = "\n".join(lines)
    print("\n" + table)
    if args.update_readme:
        from zoo._io import fill_marked_section

        print(f"updated {fill_marked_section(README, 'compression', table)}")


if __name__ == "__main__":
    main()
