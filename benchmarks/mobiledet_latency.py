"""CPU latency of the four MobileDets at 320x320 against torchvision's SSDLite-MobileNetV3-Large, the comparison
the MobileDets paper makes (there on phones, here on this machine).

    python benchmarks/mobiledet_latency.py [--imgsz 320] [--runs 20] [--threads N] [--update-readme]

Batch 1, p50 over ``--runs`` calls after 3 warm-up calls, every model and backend in this one process, on the
same input and the same threads. The baseline is ``torchvision.models.detection.ssdlite320_mobilenet_v3_large``
built from scratch (no weights: the network's latency does not depend on them). Two measurements each:

* **network**: backbone, extra layers and box/class predictors (what the paper's search optimised), eager and
  in onnxruntime (both exported here by the TorchScript exporter and checked against PyTorch first);
* **end to end**: post-processing included, eager and in onnxruntime: the MobileDets as loaded (sigmoid,
  per-class NMS on the top 1000 pairs, 100 detections, inside the graph; ONNX from ``zoo.export``, verified),
  torchvision's model as it runs (its transform, softmax, score threshold 0.001, per-class NMS, 300
  detections). Untrained, every one of torchvision's ~290k (anchor, class) scores clears its 0.001 threshold
  (softmax over 91 classes gives ~0.011), so its post-processing runs at its worst case: an upper bound.

The ratio column compares each model's network time in onnxruntime with the baseline's, measured in the same
run. MACs are counted here; COCO AP is reported (TF1 release for MobileDets; torchvision's weights table for
the baseline), not measured here. Writes JSON to ``--out``; ``--update-readme`` puts the table into README.md
between the mobiledet-latency markers.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"
MODELS = ["mobiledet_cpu", "mobiledet_edgetpu", "mobiledet_dsp", "mobiledet_gpu"]
BASELINE = "ssdlite320_mobilenet_v3_large"
BASELINE_AP = (21.3, "torchvision's weights table, COCO val2017")


class Network(torch.nn.Module):
    """A detector's backbone + predictors only: box regressions and class logits, no anchors or post-processing."""

    def __init__(self, detector) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, x):
        d = self.detector
        features = d.features(x) if hasattr(d, "features") else list(d.backbone(x).values())  # MobileDet / torchvision
        out = d.head(features)
        return out["bbox_regression"], out["cls_logits"]


class Detections(torch.nn.Module):
    """torchvision's detector, one image's boxes, scores and labels as tensors (for the exporter)."""

    def __init__(self, detector) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images):
        out = self.detector(images)[0]
        return out["boxes"], out["scores"], out["labels"]


def checked_session(module, x, threads: int, name: str, checked=None):
    """``module`` in onnxruntime (TorchScript exporter), its outputs (those at ``checked``: all by default)
    checked against PyTorch's first."""
    import numpy as np
    import onnxruntime as ort

    path = Path(tempfile.mkdtemp()) / f"{name}.onnx"
    torch.onnx.export(module, (x,), str(path), dynamo=False, opset_version=17)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x.numpy()}
    with torch.inference_mode():
        expected = [t.numpy() for t in module(x)]
    for i, (got, want) in enumerate(zip(session.run(None, feed), expected)):
        if checked is not None and i not in checked:
            continue
        if got.shape != want.shape or not np.allclose(got, want, atol=1e-3, rtol=1e-3):
            raise SystemExit(f"{name}: onnxruntime differs from PyTorch; not timing a wrong graph")
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
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    import zoo
    from zoo._io import atomic_write_json, fill_marked_section
    from zoo.bench import count_macs, time_calls
    from zoo.environment import machine
    from zoo.export.onnx import exported_session

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    m = machine()
    x = torch.rand(1, 3, args.imgsz, args.imgsz, generator=torch.Generator().manual_seed(0))

    def p50(fn) -> float:
        with torch.inference_mode():
            return time_calls(fn, args.runs, 3)["p50_ms"]

    def row(name, network, end_to_end, session, feed, macs, params, ap, source):
        net_session, net_feed = checked_session(network, x, threads, f"{name}_network")
        r = {"model": name, "network_eager_ms": p50(lambda: network(x)),
             "network_onnxruntime_ms": p50(lambda: net_session.run(None, net_feed)),
             "eager_ms": p50(lambda: end_to_end(x)), "onnxruntime_ms": p50(lambda: session.run(None, feed)),
             "macs": macs, "params": params, "reported_ap": ap, "ap_source": source}
        print(f"{name}: network {r['network_eager_ms']:.1f} / {r['network_onnxruntime_ms']:.1f} ms, end to end "
              f"{r['eager_ms']:.1f} / {r['onnxruntime_ms']:.1f} ms (eager / onnxruntime)", flush=True)
        return r

    torch.manual_seed(0)
    baseline = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None).eval()
    # untrained, torchvision's scores all tie at 1/91, so only they are compared (tied boxes may come in any order)
    session, feed = checked_session(Detections(baseline).eval(), x, threads, BASELINE, checked=(1,))
    rows = [row(BASELINE, Network(baseline).eval(), baseline, session, feed,
                count_macs(baseline, x), sum(p.numel() for p in baseline.parameters()), *BASELINE_AP)]
    for name in MODELS:
        model = zoo.load(name).eval()
        session = exported_session(model, model.zoo_spec, (3, args.imgsz, args.imgsz), threads=threads)
        feed = {session.get_inputs()[0].name: x.numpy()}
        ap = zoo.info(name).reported_value("box_ap")
        rows.append(row(name, Network(model).eval(), model, session, feed, count_macs(model, x),
                        sum(p.numel() for p in model.parameters()), ap.value, "TF1 release, COCO14 minival"))

    base = rows[0]
    lines = [
        f"Batch 1 at {args.imgsz}x{args.imgsz}, p50 of {args.runs} runs, measured by `python benchmarks/mobiledet_latency.py` "
        f"on {m['cpu']}, {threads} threads, torch {m['torch']}, onnxruntime {ort.__version__}, {m['date']}; untrained "
        "weights. Network: backbone + predictors; end to end: with each model's own post-processing (torchvision's at "
        "its untrained worst case, see the script). COCO AP is reported, not measured here:",
        "",
        f"| model | params | GMACs | network eager ms | network onnxruntime ms | network onnxruntime vs {BASELINE} | "
        "end to end eager ms | end to end onnxruntime ms | COCO AP (reported) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['params'] / 1e6:.2f}M | {r['macs'] / 1e9:.3f} | {r['network_eager_ms']:.1f} | "
                     f"{r['network_onnxruntime_ms']:.1f} | {r['network_onnxruntime_ms'] / base['network_onnxruntime_ms']:.2f}x | "
                     f"{r['eager_ms']:.1f} | {r['onnxruntime_ms']:.1f} | {r['reported_ap']} ({r['ap_source']}) |")
    print("\n" + "\n".join(lines))
    atomic_write_json(Path(args.out), {"machine": m, "threads": threads, "imgsz": args.imgsz, "runs": args.runs,
                                       "results": rows})
    print(f"\nwrote {args.out}")
    if args.update_readme:
        print(f"updated {fill_marked_section(README, 'mobiledet-latency', chr(10).join(lines))}")


if __name__ == "__main__":
    main()
