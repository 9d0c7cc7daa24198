"""Post-training int8 of trained models: accuracy against fp32 and speed against onnxruntime fp32, one row per model.

    python benchmarks/int8_accuracy.py --quantize RUN1.quantize.json ... [--deploy docs/deploy_benchmark.json] \\
        [--write docs/int8_accuracy.json] [--update-readme]

Each report is what `zoo quantize RUN --data DATA --format F` wrote beside its int8 export (accuracy on the
validation split of the data the run trained on, batch-1 latency at that resolution, interleaved against the
fp32 export of the same format). The deploy benchmark adds the same runtime's int8 speed-up over onnxruntime fp32
at the model's own input size (random calibration: speed only). ``--write`` keeps the reports together in one
file (README's table is rendered from it); every cell is read from these files.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
REPORTS = ROOT / "docs" / "int8_accuracy.json"
DEPLOY = ROOT / "docs" / "deploy_benchmark.json"
MAX_LOSS_PT = 1.0  # the accuracy a post-training int8 model may lose
MIN_SPEEDUP = 1.5  # over onnxruntime fp32


def deploy_speedup(deploy: dict, model: str, fmt: str, threads: str) -> float | None:
    """The int8 form's speed-up over onnxruntime fp32 in the deploy benchmark (None if absent)."""
    for r in deploy.get("results", []):
        if r["model"] == model:
            times = r["threads"].get(threads, {})
            base, int8 = times.get("onnxruntime fp32"), times.get(f"{fmt} int8")
            return base / int8 if base and int8 else None
    return None


def table(reports: list[dict], deploy: dict) -> str:
    first = reports[0]
    lines = [
        f"Post-training int8 (`zoo quantize`, {first['calibration_images']} calibration images) of models trained by the "
        f"digits and shapes_det recipes, for the runtime whose int8 form the deploy benchmark found fastest (and the next "
        f"one where that form loses accuracy); accuracy on the validation split against the fp32 export of the same "
        f"runtime; {first['threads']} threads, {first['date']}, measured on "
        f"{deploy.get('machine', {}).get('cpu', 'this machine')} (`python benchmarks/int8_accuracy.py`, from "
        f"docs/int8_accuracy.json and docs/deploy_benchmark.json):", "",
        "| model | data | runtime (quantizer) | fp32 | int8 | delta | int8 / fp32 here | int8 / ORT fp32, own size, 1 / 2 threads | kept in float |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in reports:
        a = r["accuracy"]
        quantizer = r["quantizer"] + (", NNCF's graph failed verification" if r.get("nncf_failed") else "")
        speed = [deploy_speedup(deploy, r["model"], r["format"], t) for t in ("1", "2")]
        shown = " / ".join(f"{s:.2f}x" if s else "-" for s in speed)
        lines.append(f"| {r['model']} | {r['data']} ({r['input_size'][-1]} px) | {r['format']} ({quantizer}) | "
                     f"{r['metric']} {100 * a['fp32']:.2f}% | {100 * a['int8']:.2f}% | {r['accuracy_delta_pt']:+.2f} pt | "
                     f"{r['speedup']:.2f}x | {shown} | {', '.join(r['float_types']) or '-'} |")
    models = list(dict.fromkeys(r["model"] for r in reports))
    met = [m for m in models if any(r["model"] == m and r["accuracy_delta_pt"] >= -MAX_LOSS_PT
                                    and (deploy_speedup(deploy, m, r["format"], "1") or 0) >= MIN_SPEEDUP for r in reports)]
    lines += ["", f"Models with an int8 form within {MAX_LOSS_PT:g} pt of fp32 and at least {MIN_SPEEDUP:g}x onnxruntime fp32 "
              f"(1 thread): {len(met)} of {len(models)} ({', '.join(met) or 'none'})."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quantize", nargs="*", default=[], help="EXPORT.quantize.json reports (default: docs/int8_accuracy.json)")
    parser.add_argument("--deploy", default=str(DEPLOY), help="the deploy benchmark's JSON")
    parser.add_argument("--write", action="store_true", help=f"keep the reports in {REPORTS.relative_to(ROOT)}")
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()
    reports = [json.loads(Path(p).read_text()) for p in args.quantize] or json.loads(REPORTS.read_text())
    deploy = json.loads(Path(args.deploy).read_text()) if Path(args.deploy).is_file() else {}
    text = table(reports, deploy)
    print(text)
    if args.write:
        from zoo._io import atomic_write_json

        kept = [{k: v for k, v in r.items() if k not in ("file", "source")} for r in reports]  # local paths stay local
        atomic_write_json(REPORTS, kept, indent=1)
        print(f"wrote {REPORTS}")
    if args.update_readme:
        from zoo._io import fill_marked_section

        print(f"updated {fill_marked_section(README, 'int8-accuracy', text)}")


if __name__ == "__main__":
    main()
