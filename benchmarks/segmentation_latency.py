"""CPU latency of the zoo's segmentation models at 512x512 against torchvision's mobile segmentation models.

    python benchmarks/segmentation_latency.py [--models lraspp_mobilenetv3_large semfpn_nextvit_small ...]
                                              [--imgsz 512] [--runs 20] [--threads N] [--update-readme]

The baselines are torchvision's ``lraspp_mobilenet_v3_large`` and ``deeplabv3_mobilenet_v3_large`` (built from
scratch, 21 classes, auxiliary head off). Every model runs batch 1 in eager PyTorch and as its verified ONNX export
in onnxruntime (thread spinning off), all timed in one process in interleaved rounds (``zoo.bench.time_interleaved``),
so load that comes and goes on a shared machine falls on every model alike; the ratio column is each model's
onnxruntime p50 over torchvision LR-ASPP's in the same run. Params and MACs are counted at the same input
(``zoo.bench.count_macs``); reported mIoU is the source's (labelled, with its dataset, not measured here). Weights
are untrained: latency does not depend on them. Writes JSON to ``--out``; ``--update-readme`` puts the table into
README.md between the segmentation-latency markers.
"""
from __future__ import annotations

import argparse
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
DEFAULT = ["lraspp_mobilenetv3_large", "semfpn_nextvit_small"]
BASELINES = ("lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large")


def torchvision_model(name: str):
    """A torchvision segmentation model from scratch, returning its ``out`` logits as a plain tensor (for export)."""
    import torch
    from torchvision.models import segmentation

    class Logits(torch.nn.Module):
        def __init__(self, model) -> None:
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model(x)["out"]

    return Logits(getattr(segmentation, name)(weights=None, weights_backbone=None, num_classes=21, aux_loss=False)).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=DEFAULT)
    parser.add_argument("--imgsz", type=int, default=512)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--out", default="runs/bench/segmentation_latency.json")
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()

    import dataclasses
    import tempfile

    import onnxruntime as ort
    import torch

    import zoo
    from zoo._io import atomic_write_json, fill_marked_section
    from zoo.bench import count_macs, time_interleaved
    from zoo.environment import machine
    from zoo.export.onnx import export_onnx, session

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    m = machine()
    x = torch.rand(1, 3, args.imgsz, args.imgsz, generator=torch.Generator().manual_seed(0))
    models, rows, runners = {}, {}, {}
    for name in [*BASELINES, *args.models]:
        model = torchvision_model(name) if name in BASELINES else zoo.load(name).eval()
        models[name] = model
        miou = None if name in BASELINES else zoo.info(name).reported_value("miou")
        rows[name] = {"model": name if name not in BASELINES else f"torchvision {name}",
                      "params": sum(p.numel() for p in model.parameters()), "macs": count_macs(model, x),
                      "reported_miou": f"{miou.value} ({miou.dataset})" if miou else "-"}
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        for name, model in models.items():
            path = Path(tmp) / f"{name}.onnx"
            # torchvision's models carry no spec: export checks them as the zoo's LR-ASPP (same task, input and classes)
            spec = getattr(model, "zoo_spec", None) or dataclasses.replace(zoo.info("lraspp_mobilenetv3_large"), name=name)
            export_onnx(model, spec, path, (3, args.imgsz, args.imgsz))
            ort_session = session(path, threads, spinning=False)
            feed = {ort_session.get_inputs()[0].name: x.numpy()}
            runners[(name, "eager")] = lambda model=model: model(x)
            runners[(name, "onnxruntime")] = lambda s=ort_session, f=feed: s.run(None, f)
            print(f"exported {name}", flush=True)
        times = time_interleaved(runners, args.runs, warmup=2, threads=threads)
    base = times[(BASELINES[0], "onnxruntime")]["p50_ms"]
    for name, row in rows.items():
        row.update(eager_ms=times[(name, "eager")]["p50_ms"], onnxruntime_ms=times[(name, "onnxruntime")]["p50_ms"])
    lines = [
        (f"Batch 1 at {args.imgsz}x{args.imgsz}, p50 of {args.runs} runs in interleaved rounds, measured by "
         f"`python benchmarks/segmentation_latency.py` on {m['cpu']}, {threads} threads, torch {m['torch']}, onnxruntime "
         f"{ort.__version__}, {m['date']}; untrained weights. mIoU is the source's reported number, not measured here:"),
        "",
        "| model | params | GMACs | eager ms | onnxruntime ms | onnxruntime vs torchvision LR-ASPP | mIoU (reported) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    lines += [f"| {r['model']} | {r['params'] / 1e6:.2f}M | {r['macs'] / 1e9:.2f} | {r['eager_ms']:.1f} | "
              f"{r['onnxruntime_ms']:.1f} | {r['onnxruntime_ms'] / base:.2f}x | {r['reported_miou']} |" for r in rows.values()]
    print("\n" + "\n".join(lines))
    atomic_write_json(Path(args.out), {"machine": m, "threads": threads, "imgsz": args.imgsz, "runs": args.runs,
                                       "results": list(rows.values())})
    print(f"\nwrote {args.out}")
    if args.update_readme:
        print(f"updated {fill_marked_section(README, 'segmentation-latency', chr(10).join(lines))}")


if __name__ == "__main__":
    main()
