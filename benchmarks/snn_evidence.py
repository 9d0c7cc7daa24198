"""Spiking networks on this CPU: direct training, Dynamic Confidence, ANN-to-SNN conversion, one timestep.

    python benchmarks/snn_evidence.py [--reuse] [--record] [--update-readme]

Runs three recipes on the embedded `digits` data (32x32, 1437 train / 360 val images), into runs/bench/snn/:

- ``sew_resnet18_digits``: SEW-ResNet-18 trained through time at T=4. Dynamic Confidence is then measured on
  it by 2-fold cross-validation on the val images: each half is judged with the threshold chosen on the other
  half (the fewest average steps whose accuracy there equals the full run's);
- ``spiking_resnet18_ann2snn_digits``: its ANN twin trained, then converted (threshold balancing), no SNN
  training; top-1 at T = 1 ... 64 from the run's ``ann2snn.json``, and Dynamic Confidence on the T=32 SNN;
- ``spiking_resnet18_one_timestep_digits``: converted at T=5, fine-tuned down to T=1.

Energy per image is :func:`zoo.snn.energy` on the first 64 val images (synaptic operations priced at 0.9 pJ,
MACs at 4.6 pJ: Horowitz, ISSCC 2014, 45 nm), against the ANN twin's MACs. ``--update-readme`` writes the table
into README.md between the ``snn-evidence`` markers and the two curves into ``docs/images/``.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
IMAGES = ROOT / "docs" / "images"
RECIPES = ("sew_resnet18_digits", "spiking_resnet18_ann2snn_digits", "spiking_resnet18_one_timestep_digits")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/bench/snn", help="runs go here")
    parser.add_argument("--reuse", action="store_true", help="keep finished runs in --out")
    parser.add_argument("--update-readme", action="store_true")
    parser.add_argument("--record", action="store_true", help="also write each run's result into its recipe's header "
                                                               "(as `zoo train recipe=NAME record_result=true` would)")
    args = parser.parse_args()

    import torch

    import zoo
    from zoo import snn
    from zoo._io import atomic_write_json, fill_marked_section
    from zoo.environment import machine
    from zoo.train import compose, prepare, record_result, run

    out = Path(args.out)
    summaries = {}
    for recipe in RECIPES:
        done = out / recipe / "summary.json"
        if args.reuse and done.is_file():
            summaries[recipe] = json.loads(done.read_text())
        else:
            summaries[recipe] = run(compose(recipe, ["trainer.enable_progress_bar=false"]), out / recipe)
            if args.record:
                record_result(recipe, summaries[recipe], f"zoo train recipe={recipe} record_result=true "
                                                         "trainer.enable_progress_bar=false")
    data = prepare(compose(RECIPES[0], ["trainer.enable_progress_bar=false"]), out / "data").data
    data.setup("fit")
    val = data.val_dataloader()
    first_val = next(iter(val))[0][:64]

    def energy(model) -> dict:
        report = snn.energy(model.eval(), first_val)
        return {"energy_mj": report.snn_energy_mj, "ann_energy_mj": report.ann_energy_mj,
                "rate": sum(report.spike_rates.values()) / len(report.spike_rates)}

    direct = zoo.load(str(out / RECIPES[0])).eval()
    dc = snn.evaluate_dynamic_confidence(direct, val, out_dir=out / "dynamic_confidence")  # 2-fold cross-validated
    converted = zoo.load(str(out / RECIPES[1])).eval()
    conversion = json.loads((out / RECIPES[1] / "ann2snn.json").read_text())
    dc_converted = snn.evaluate_dynamic_confidence(converted, val, out_dir=out / "dynamic_confidence_converted")
    one = zoo.load(str(out / RECIPES[2])).eval()
    with torch.no_grad():
        one_top1 = snn.accuracy_over_timesteps(one, val, [1])[1]

    ann_mj = energy(direct)["ann_energy_mj"]
    rows = [
        ("SEW-ResNet-18, trained through time (BPTT), recipe `sew_resnet18_digits`", "4", dc.full_accuracy, energy(direct)),
        (f"the same with Dynamic Confidence (thresholds {'/'.join(f'{t:g}' for t in dc.fold_thresholds)})",
         f"{dc.average_steps:.2f} average (-{100 * dc.saving:.0f}%)", dc.accuracy, None),
        ("ANN twin of Spiking ResNet-18 (ReLU, same modules)", "-", conversion["ann_top1"], None),
        ("that ANN converted (IF neurons, soft reset, thresholds at the 99.9th percentile), recipe "
         "`spiking_resnet18_ann2snn_digits`", "32", conversion["snn_top1"]["32"], energy(converted)),
        (f"the converted SNN with Dynamic Confidence (thresholds {'/'.join(f'{t:g}' for t in dc_converted.fold_thresholds)})",
         f"{dc_converted.average_steps:.2f} average (-{100 * dc_converted.saving:.0f}%)", dc_converted.accuracy, None),
        ("one timestep: converted at T=5, fine-tuned 5 -> 4 -> 3 -> 2 -> 1, recipe `spiking_resnet18_one_timestep_digits`",
         "1", one_top1, energy(one)),
    ]

    m = machine()
    minutes = sum(s["wall_time_s"] for s in summaries.values()) / 60
    lines = [
        f"`digits` (32x32, 360 val images), top-1 on the val images. Measured by `python benchmarks/snn_evidence.py` on "
        f"{m['cpu']}, {m['threads']} threads, Python {m['python']}, torch {m['torch']}, {m['date']} ({minutes:.0f} min for "
        "the three recipes). Energy per image on 64 val images: synaptic operations x 0.9 pJ + MACs x 4.6 pJ (45 nm, "
        f"Horowitz 2014); the same network as an ANN: {ann_mj:.3f} mJ. Dynamic Confidence: 2-fold cross-validation on "
        "the val images (each half judged with the threshold that lost no accuracy in the fewest average steps on the "
        "other half):",
        "",
        "| model | timesteps | top-1 | mean spike rate | energy per image |",
        "|---|---:|---:|---:|---:|",
    ]
    for what, steps, top1, e in rows:
        rate = f"{e['rate']:.3f}" if e else ""
        mj = f"{e['energy_mj']:.3f} mJ" if e else ""
        lines.append(f"| {what} | {steps} | {100 * top1:.2f}% | {rate} | {mj} |")
    ts = list(conversion["snn_top1"])
    lines += [
        "",
        f"The converted SNN as T grows (no SNN training; its ANN: {100 * conversion['ann_top1']:.2f}%):",
        "",
        "| T | " + " | ".join(ts) + " |",
        "|---|" + "---:|" * len(ts),
        "| top-1 | " + " | ".join(f"{100 * v:.2f}%" for v in conversion["snn_top1"].values()) + " |",
    ]
    print("\n".join(lines))
    atomic_write_json(out / "evidence.json", {"machine": m, "rows": [
        {"model": r[0], "timesteps": r[1], "top1": r[2], "energy": r[3]} for r in rows]})
    if args.update_readme:
        IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / "dynamic_confidence" / "dynamic_confidence.png", IMAGES / "snn_dynamic_confidence.png")
        shutil.copyfile(out / RECIPES[1] / "ann2snn.png", IMAGES / "snn_ann2snn.png")
        print(f"updated {fill_marked_section(README, 'snn-evidence', chr(10).join(lines))}")


if __name__ == "__main__":
    main()
