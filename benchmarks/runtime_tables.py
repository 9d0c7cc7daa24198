"""README's compression tables across runtimes, written from what `zoo bench` and `zoo quantize` recorded.

    python benchmarks/runtime_tables.py --bench runs/bench/MACHINE.json \\
        --run baseline=runs/quickstart/<time> --run "pruned 50% MACs=RUN" --run "QAT int8=RUN" \\
        --quantize EXPORT.quantize.json ... [--update-readme]

The first table: each run's batch-1 p50 per (runtime, precision) from one `zoo bench` document (run it as
`zoo bench BASE PRUNED QAT --imgsz 224 --backends torch,onnxruntime,openvino,executorch,litert
--precision fp32,bf16,int8 --best`), with each run's fastest form and the pruned/QAT runs' latency against the
baseline on that same form. The second: the accuracy and latency `zoo quantize` reported per format. No
number is typed in: every cell is read from those files.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FORMS = [("torch", "fp32"), ("torch", "int8"), ("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "fp32"),
         ("openvino", "bf16"), ("openvino", "int8"), ("executorch", "fp32"), ("executorch", "int8"), ("litert", "fp32"),
         ("litert", "int8")]


def runtime_table(bench: dict, runs: dict[str, str]) -> str:
    rows = {}
    for r in bench["results"]:
        if "p50_ms" in r and r["batch"] == 1:
            rows[(str(Path(r["model"]).resolve()), r["backend"], r.get("precision", "fp32"))] = r["p50_ms"]
    m = bench["machine"]
    present = [f for f in FORMS if any((str(Path(d).resolve()), *f) in rows for d in runs.values())]
    lines = [f"p50 ms at batch 1, 224x224, {m['threads']} threads, {m['cpu']}, torch {m['torch']}, {m['date']}:", "",
             "| run | " + " | ".join(f"{b} {p}" for b, p in present) + " | fastest |", "|---|" + "---:|" * len(present) + "---|"]
    base_dir = str(Path(next(iter(runs.values()))).resolve())
    base_best = min(((rows[(base_dir, *f)], f) for f in present if (base_dir, *f) in rows), default=None)
    for label, run in runs.items():
        d = str(Path(run).resolve())
        cells = [f"{rows[(d, *f)]:.2f}" if (d, *f) in rows else "-" for f in present]
        best = min(((rows[(d, *f)], f) for f in present if (d, *f) in rows), default=None)
        lines.append(f"| {label} | " + " | ".join(cells) + (f" | {' '.join(best[1])} {best[0]:.2f} ms |" if best else " | - |"))
    lines.append("")
    base_ort = rows.get((base_dir, "onnxruntime", "fp32"))
    for label, run in list(runs.items())[1:]:
        d = str(Path(run).resolve())
        best = min(((rows[(d, *f)], f) for f in present if (d, *f) in rows), default=None)
        if not best:
            continue
        backend, precision = best[1]
        same = rows.get((base_dir, backend, "fp32"))
        parts = [f"- {label}: fastest on {backend} {precision}, {best[0]:.2f} ms"]
        if same:
            parts.append(f"{_change(best[0], same)} the baseline's {backend} fp32 ({same:.2f} ms)")
        if base_best:
            parts.append(f"{_change(best[0], base_best[0])} the baseline's fastest form ({' '.join(base_best[1])}, {base_best[0]:.2f} ms)")
        if base_ort:
            parts.append(f"{base_ort / best[0]:.2f}x the baseline's onnxruntime fp32 ({base_ort:.2f} ms)")
        lines.append(", ".join(parts) + ".")
    return "\n".join(lines)


def _change(new: float, old: float) -> str:
    return f"{100 * (1 - new / old):.0f}% below" if new < old else f"{100 * (new / old - 1):.0f}% above"


def quantize_table(reports: list[dict]) -> str:
    first = reports[0]
    lines = [f"{first['model']} on `{first['data']}`, {first['calibration_images']} calibration images, {first['threads']} threads, "
             f"batch 1 at {first['input_size'][-1]} px, {first['date']} (`zoo quantize`; each row read from its EXPORT.quantize.json):", "",
             f"| format | quantizer | fp32 {first['metric']} | int8 {first['metric']} | delta | fp32 ms | int8 ms | int8 speed-up | kept in float |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in reports:
        a, t = r["accuracy"], r["latency_ms"]
        quantizer = r["quantizer"] + (" (NNCF's graph failed verification)" if r.get("nncf_failed") else "")
        lines.append(f"| {r['format']} | {quantizer} | {100 * a['fp32']:.2f}% | {100 * a['int8']:.2f}% | {r['accuracy_delta_pt']:+.2f} pt "
                     f"| {t['fp32']:.3f} | {t['int8']:.3f} | {r['speedup']:.2f}x | {', '.join(r['float_types']) or '-'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", required=True, help="the zoo bench JSON document of the runs")
    parser.add_argument("--run", action="append", required=True, help="LABEL=RUN_DIR, the baseline first")
    parser.add_argument("--quantize", nargs="*", default=[], help="EXPORT.quantize.json reports of zoo quantize")
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()
    runs = dict(item.split("=", 1) for item in args.run)
    first = runtime_table(json.loads(Path(args.bench).read_text()), runs)
    print(first + "\n")
    second = quantize_table([json.loads(Path(p).read_text()) for p in args.quantize]) if args.quantize else None
    if second:
        print(second)
    if args.update_readme:
        from zoo._io import fill_marked_section

        for name, text in (("compression-runtimes", first), ("ptq-quickstart", second)):
            if text:
                fill_marked_section(README, name, text)
        print(f"updated {README}")


if __name__ == "__main__":
    main()
