"""CPU latency of the four MobileDets at 320x320 against torchvision's SSDLite-MobileNetV3-Large, the comparison
the MobileDets paper makes (there on phones, here on this machine).

    python benchmarks/mobiledet_latency.py [--imgsz 320] [--runs 20] [--threads N] [--update-readme]

Batch 1, p50 over ``--runs`` calls after 3 warm-up calls, every model and backend in this one process, on the
same input and the same threads. The baseline is ``torchvision.models.detection.ssdlite320_mobilenet_v3_large``
built from scratch (no weights: latency does not depend on them), eager as torchvision runs it (its
transform, softmax scores, per-class NMS, 300 detections) and in onnxruntime from the TorchScript exporter
(torchvision's detection models do not go through the dynamo exporter); the MobileDets run as loaded (TF
post-processing: sigmoid, per-class NMS, 100 detections, inside the graph) and in onnxruntime from the
verified ``zoo.export`` ONNX. Both sides include their post-processing. The ratio columns compare each
model with the baseline, measured in the same run. MACs are counted here; COCO AP is reported (TF configs
and model zoo for MobileDets; torchvision's weights table for the baseline), not measured here. Writes JSON
to ``--out``; ``--update-readme`` puts the table into README.md between the mobiledet-latency markers.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- mobiledet-latency:start -->", "<!-- mobiledet-latency:end -->"
MODELS = ["mobiledet_cpu", "mobiledet_edgetpu", "mobiledet_dsp", "mobiledet_gpu"]
BASELINE = "ssdlite320_mobilenet_v3_large"
BASELINE_AP = (21.3, "torchvision's weights table, COCO val2017")


def baseline_session(model, x, threads: int):
    """torchvision's SSDLite in onnxruntime (TorchScript exporter), checked against its eager scores."""
    import numpy as np
    import onnxruntime as ort
    import torch

    class Outputs(torch.nn.Module):  # one image's boxes, scores, labels as tensors
        def __init__(self, detector):
            super().__init__()
            self.detector = detector

        def forward(self, images):
            out = self.detector(images)[0]
            return out["boxes"], out["scores"], out["labels"]

    wrapped = Outputs(model).eval()
    path = Path(tempfile.mkdtemp()) / f"{BASELINE}.onnx"
    torch.onnx.export(wrapped, (x,), str(path), dynamo=False, opset_version=17)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x.numpy()}
    with torch.inference_mode():
        expected = wrapped(x)[1].numpy()
    got = session.run(None, feed)[1]
    if got.shape != expected.shape or not np.allclose(got, expected, atol=1e-4):
        raise SystemExit(f"{BASELINE}: onnxruntime scores differ from PyTorch's; not timing a wrong graph")
    return session, feed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--out", default="runs/bench/mobiledet_latency.json")
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()

    import onnxruntime as ort
    import torch
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    import zoo
    from zoo._io import atomic_write_text
    from zoo.bench import count_macs, time_calls
    from zoo.export.onnx import exported_session
    from zoo.train import machine

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    m = machine()
    x = torch.rand(1, 3, args.imgsz, args.imgsz, generator=torch.Generator().manual_seed(0))

    def row(name, eager, session, feed, macs, params, ap, source):
        with torch.inference_mode():
            t_eager = time_calls(lambda: eager(x), args.runs, 3)["p50_ms"]
        t_ort = time_calls(lambda: session.run(None, feed), args.runs, 3)["p50_ms"]
        print(f"{name}: eager {t_eager:.1f} ms, onnxruntime {t_ort:.1f} ms", flush=True)
        return {"model": name, "eager_ms": t_eager, "onnxruntime_ms": t_ort, "macs": macs, "params": params,
                "reported_ap": ap, "ap_source": source}

    torch.manual_seed(0)
    baseline = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None).eval()
    session, feed = baseline_session(baseline, x, threads)
    with torch.inference_mode():
        macs = count_macs(baseline, x)
    rows = [row(BASELINE, baseline, session, feed, macs, sum(p.numel() for p in baseline.parameters()), *BASELINE_AP)]
    for name in MODELS:
        model = zoo.load(name).eval()
        session = exported_session(model, model.zoo_spec, (3, args.imgsz, args.imgsz), threads=threads)
        feed = {session.get_inputs()[0].name: x.numpy()}
        ap = zoo.info(name).reported_value("box_ap")
        rows.append(row(name, model, session, feed, count_macs(model, x), sum(p.numel() for p in model.parameters()),
                        ap.value, "TF1 release, COCO14 minival"))

    base = rows[0]
    lines = [
        f"Batch 1 at {args.imgsz}x{args.imgsz}, post-processing included, p50 of {args.runs} runs, measured by "
        f"`python benchmarks/mobiledet_latency.py` on {m['cpu']}, {threads} threads, torch {m['torch']}, "
        f"onnxruntime {ort.__version__}, {m['date']}; untrained weights. COCO AP is reported, not measured here:",
        "",
        f"| model | params | GMACs | eager ms | onnxruntime ms | eager vs {BASELINE} | onnxruntime vs {BASELINE} | COCO AP (reported) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['params'] / 1e6:.2f}M | {r['macs'] / 1e9:.3f} | {r['eager_ms']:.1f} | "
                     f"{r['onnxruntime_ms']:.1f} | {r['eager_ms'] / base['eager_ms']:.2f}x | "
                     f"{r['onnxruntime_ms'] / base['onnxruntime_ms']:.2f}x | {r['reported_ap']} ({r['ap_source']}) |")
    print("\n" + "\n".join(lines))
    atomic_write_text(Path(args.out), json.dumps({"machine": m, "threads": threads, "imgsz": args.imgsz, "runs": args.runs,
                                                  "results": rows}, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    if args.update_readme:
        from zoo._io import replace_marked_block

        print(f"updated {replace_marked_block(README, START, END, chr(10).join([START, *lines, END]))}")


if __name__ == "__main__":
    main()
