"""Batch-1 CPU latency of every classification model: onnxruntime and torch.compile against torch eager.

    python benchmarks/backend_latency.py [--threads N] [--update-readme]

Runs `zoo bench --all --backends torch,compile,onnxruntime` (p50 over 50 runs after 10 warm-up runs, each
model's own input size, the verified ONNX export for onnxruntime) and prints the ratios to eager, all
backends measured in this one process. Target: onnxruntime no slower than eager for every
model (ratio <= 1.00). ``--update-readme`` writes the table into README.md between the backend-latency
markers.
"""
from __future__ import annotations

import argparse
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--models", nargs="*")
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()

    import zoo
    from zoo.bench import bench

    names = args.models or zoo.list_models(task="classification")
    doc = bench(names, backends=("torch", "compile", "onnxruntime"), threads=args.threads, out_dir=args.out)
    m = doc["machine"]
    p50 = {(r["model"], r["backend"]): r.get("p50_ms") for r in doc["results"] if r["batch"] == 1 and r["model"] in names}
    lines = [
        f"Batch 1, each model's input size, p50 of 50 runs, measured by `python benchmarks/backend_latency.py` on "
        f"{m['cpu']}, {m['threads']} threads, torch {m['torch']}, {m['date']} (JSON and Pareto plot: `zoo bench`):",
        "",
        "| model | eager ms | compile ms | onnxruntime ms | compile / eager | onnxruntime / eager |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    slower = []
    for name in names:
        eager, comp, ort = (p50.get((name, b)) for b in ("torch", "compile", "onnxruntime"))
        cell = lambda v: f"{v:.2f}" if v else "failed"  # noqa: E731
        ratio = lambda v: f"{v / eager:.2f}" if v and eager else "-"  # noqa: E731
        lines.append(f"| {name} | {cell(eager)} | {cell(comp)} | {cell(ort)} | {ratio(comp)} | {ratio(ort)} |")
        if not ort or not eager or ort > eager:
            slower.append(name)
    table = "\n".join(lines)
    print(table)
    print(f"\nonnxruntime slower than eager (or failed) for: {', '.join(slower) or 'none'}")
    print(f"wrote {doc['path']} and {doc['plot']}")
    if args.update_readme:
        from zoo._io import fill_marked_section

        print(f"updated {fill_marked_section(README, 'backend-latency', table)}")


if __name__ == "__main__":
    main()
