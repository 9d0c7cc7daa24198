"""CPU latency of every YOLOv10 scale at 640: eager, fused eager (deploy form) and onnxruntime.

    python benchmarks/yolov10_latency.py [--scales n s m b l x] [--imgsz 640] [--runs 10] [--threads N] [--update-readme]

Batch 1, p50 over ``--runs`` calls after 2 warm-up calls, all backends in this one process and on the same
input. "eager" is the model as loaded (eval mode: the one-to-many head is skipped but BatchNorm is a
separate op); "fused" is ``zoo.export.deploy_form`` (one-to-one head only, BatchNorm and RepVGGDW folded);
"onnxruntime" runs the verified ONNX export of the fused form. Prints a Markdown table with the ratios
fused / eager and onnxruntime / eager, and writes it as JSON to ``--out``; ``--update-readme`` puts the
table into README.md between the yolov10-latency markers.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- yolov10-latency:start -->", "<!-- yolov10-latency:end -->"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", nargs="*", default=list("nsmblx"))
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--out", default="runs/bench/yolov10_latency.json")
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()

    import onnxruntime as ort
    import torch

    import zoo
    from zoo._io import atomic_write_text
    from zoo.bench import time_calls
    from zoo.export import deploy_form
    from zoo.export.onnx import exported_session
    from zoo.train import machine

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    m = machine()
    x = torch.rand(1, 3, args.imgsz, args.imgsz, generator=torch.Generator().manual_seed(0))
    rows = []
    for scale in args.scales:
        name = f"yolov10{scale}"
        eager = zoo.load(name).eval()
        fused = deploy_form(eager)
        with torch.inference_mode():
            t_eager = time_calls(lambda: eager(x), args.runs, 2)["p50_ms"]
            t_fused = time_calls(lambda: fused(x), args.runs, 2)["p50_ms"]
        session = exported_session(fused, fused.zoo_spec, (3, args.imgsz, args.imgsz), threads=threads)
        feed = {session.get_inputs()[0].name: x.numpy()}
        t_ort = time_calls(lambda: session.run(None, feed), args.runs, 2)["p50_ms"]
        rows.append({"model": name, "eager_ms": t_eager, "fused_ms": t_fused, "onnxruntime_ms": t_ort,
                     "params_eager": sum(p.numel() for p in eager.parameters()),
                     "params_fused": sum(p.numel() for p in fused.parameters())})
        print(f"{name}: eager {t_eager:.1f} ms, fused {t_fused:.1f} ms, onnxruntime {t_ort:.1f} ms", flush=True)

    lines = [
        f"Batch 1 at {args.imgsz}x{args.imgsz}, p50 of {args.runs} runs, measured by `python benchmarks/yolov10_latency.py` on "
        f"{m['cpu']}, {threads} threads, torch {m['torch']}, onnxruntime {ort.__version__}, {m['date']}:",
        "",
        "| model | eager ms | fused ms | onnxruntime ms | fused / eager | onnxruntime / eager |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['eager_ms']:.1f} | {r['fused_ms']:.1f} | {r['onnxruntime_ms']:.1f} | "
                     f"{r['fused_ms'] / r['eager_ms']:.2f} | {r['onnxruntime_ms'] / r['eager_ms']:.2f} |")
    print("\n" + "\n".join(lines))
    atomic_write_text(Path(args.out), json.dumps({"machine": m, "threads": threads, "imgsz": args.imgsz, "runs": args.runs,
                                                  "results": rows}, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    if args.update_readme:
        from zoo._io import replace_marked_block

        print(f"updated {replace_marked_block(README, START, END, chr(10).join([START, *lines, END]))}")


if __name__ == "__main__":
    main()
