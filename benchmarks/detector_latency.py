"""CPU latency of the zoo's real-time detectors at 640, in one table: YOLOv10 next to RT-DETR, RT-DETRv2 and D-FINE.

    python benchmarks/detector_latency.py [--models yolov10n rtdetr_r18 dfine_n ...] [--imgsz 640] [--runs 10]
                                          [--threads N] [--update-readme]

Batch 1, p50 over ``--runs`` calls after 2 warm-up calls, every model and backend in this one process and on
the same input. "eager" is the model as loaded (eval mode); "deploy" is ``zoo.export.deploy_form`` (YOLOv10:
one-to-one head only, BatchNorm and RepVGGDW folded; the DETRs have no separate deploy form, so it is
the same network, timed again); "onnxruntime" runs the verified ONNX export of the deploy form. The weights are untrained;
the DETRs get BatchNorm statistics from random batches (``zoo.bench.settle_batchnorm``), which latency does
not depend on but their export check needs (see there). Every model returns the same
``[1, 300, 6]`` detections, post-processing included. The ratio column compares each model's onnxruntime
latency with the first model's (by default YOLOv10-N), measured in the same run. Reported COCO AP is the
papers' (labelled, not measured here). Writes JSON to ``--out``; ``--update-readme`` puts the table into
README.md between the detector-latency markers.
"""
from __future__ import annotations

import argparse
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
DEFAULT = ["yolov10n", "yolov10s", "yolov10m", "rtdetr_r18", "rtdetrv2_r18", "rtdetr_r50",
           "dfine_n", "dfine_s", "dfine_m"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=DEFAULT)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--out", default="runs/bench/detector_latency.json")
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()

    import onnxruntime as ort
    import torch

    import zoo
    from zoo._io import atomic_write_json, fill_marked_section
    from zoo.bench import settle_batchnorm, time_calls
    from zoo.environment import machine
    from zoo.export import deploy_form
    from zoo.export.onnx import exported_session

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    m = machine()
    x = torch.rand(1, 3, args.imgsz, args.imgsz, generator=torch.Generator().manual_seed(0))
    rows = []
    for name in args.models:
        eager = zoo.load(name).eval()
        settle_batchnorm(eager, args.imgsz)  # untrained DETRs: activations at a trained model's scale
        deploy = deploy_form(eager)
        with torch.inference_mode():
            t_eager = time_calls(lambda: eager(x), args.runs, 2)["p50_ms"]
            t_deploy = t_eager if deploy is eager else time_calls(lambda: deploy(x), args.runs, 2)["p50_ms"]
        session = exported_session(deploy, deploy.zoo_spec, (3, args.imgsz, args.imgsz), threads=threads)
        feed = {session.get_inputs()[0].name: x.numpy()}
        t_ort = time_calls(lambda: session.run(None, feed), args.runs, 2)["p50_ms"]
        ap = zoo.info(name).reported_value("box_ap")
        rows.append({"model": name, "eager_ms": t_eager, "deploy_ms": t_deploy, "onnxruntime_ms": t_ort,
                     "params": sum(p.numel() for p in deploy.parameters()), "reported_ap": ap.value if ap else None})
        print(f"{name}: eager {t_eager:.1f} ms, deploy {t_deploy:.1f} ms, onnxruntime {t_ort:.1f} ms", flush=True)

    base = rows[0]
    lines = [
        f"Batch 1 at {args.imgsz}x{args.imgsz}, p50 of {args.runs} runs, measured by `python benchmarks/detector_latency.py` on "
        f"{m['cpu']}, {threads} threads, torch {m['torch']}, onnxruntime {ort.__version__}, {m['date']}. "
        "COCO AP is the papers' reported number, not measured here:",
        "",
        f"| model | params (deploy) | eager ms | deploy ms | onnxruntime ms | onnxruntime vs {base['model']} | COCO AP (reported) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ap = f"{r['reported_ap']}" if r["reported_ap"] is not None else "-"
        lines.append(f"| {r['model']} | {r['params'] / 1e6:.1f}M | {r['eager_ms']:.1f} | {r['deploy_ms']:.1f} | "
                     f"{r['onnxruntime_ms']:.1f} | {r['onnxruntime_ms'] / base['onnxruntime_ms']:.2f}x | {ap} |")
    print("\n" + "\n".join(lines))
    atomic_write_json(Path(args.out), {"machine": m, "threads": threads, "imgsz": args.imgsz, "runs": args.runs,
                                       "results": rows})
    print(f"\nwrote {args.out}")
    if args.update_readme:
        print(f"updated {fill_marked_section(README, 'detector-latency', chr(10).join(lines))}")


if __name__ == "__main__":
    main()
