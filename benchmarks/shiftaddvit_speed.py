"""ShiftAddViT's speed on this CPU against the PVTv2 it is built from, eager and in onnxruntime.

    python benchmarks/shiftaddvit_speed.py [--variant b0] [--size 224] [--runs 20] [--threads N] [--update-readme]

Three models at ``--size``, batch 1, untrained weights (routers split tokens about evenly): timm's PVTv2 (softmax
attention over spatially reduced keys), ShiftAddViT with its binary-code attention only (``moe_attn=False,
moe_mlp=False``), and the whole ShiftAddViT (every MLP and stage 1-3 attention linear a multiply/shift mixture). Each
runs eager (PyTorch) and as its ONNX export in onnxruntime (thread spinning off), all six timed in one process in
interleaved rounds (``zoo.bench.time_interleaved``); ratios are against PVTv2 eager. Shift experts run here as float
matmuls with power-of-two weights and binary products as float matmuls, so this measures what the paper's
reformulation costs without its TVM kernels, not the speed-up those kernels give. ``--update-readme`` puts the table
into README.md between the shiftaddvit-speed markers; JSON goes to ``--out``.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="b0", choices=("b0", "b1", "b2"))
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--out", default="runs/bench/shiftaddvit_speed.json")
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()

    import timm
    import torch

    import zoo
    from zoo._io import atomic_write_json, fill_marked_section
    from zoo.bench import open_runtime, time_interleaved
    from zoo.environment import machine
    from zoo.export import export

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    torch.manual_seed(0)
    name = f"shiftaddvit_pvt_v2_{args.variant}"
    models = {
        f"PVTv2-{args.variant.upper()} (timm)": timm.create_model(f"pvt_v2_{args.variant}").eval(),
        "ShiftAddViT, binary-code attention only": zoo.load(name, moe_attn=False, moe_mlp=False).eval(),
        "ShiftAddViT (attention + mixtures of experts)": zoo.load(name).eval(),
    }
    x = torch.randn(1, 3, args.size, args.size)
    runners, files = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, model in models.items():
            path = Path(tmp) / f"{len(files)}.onnx"
            if hasattr(model, "zoo_spec"):
                export(model, "onnx", imgsz=args.size, out=path)  # verified against eager
            else:
                torch.onnx.export(model, (x,), str(path), dynamo=True, opset_version=18)
            files[label] = path
            runners[(label, "eager")] = lambda model=model: model(x)
            session, feed = open_runtime("onnx", path, threads), x.numpy()
            runners[(label, "onnxruntime")] = lambda session=session, feed=feed: session(feed)
        with torch.inference_mode():
            times = time_interleaved(runners, args.runs, warmup=2, rounds=min(5, args.runs), threads=threads)
    base = times[(next(iter(models)), "eager")]["p50_ms"]
    m = machine()
    lines = [
        (f"`{name}` at {args.size}x{args.size}, batch 1, untrained weights, p50 of {args.runs} runs in interleaved rounds, "
         f"measured by `python benchmarks/shiftaddvit_speed.py` on {m['cpu']}, {threads} threads, torch {m['torch']}, "
         f"{m['date']}:"),
        "",
        "| model | params | eager ms | onnxruntime ms | eager vs PVTv2 eager |",
        "|---|---:|---:|---:|---:|",
    ]
    rows = []
    for label, model in models.items():
        eager, ort = times[(label, "eager")]["p50_ms"], times[(label, "onnxruntime")]["p50_ms"]
        params = sum(p.numel() for p in model.parameters())
        rows.append({"model": label, "params": params, "eager_ms": eager, "onnxruntime_ms": ort})
        lines.append(f"| {label} | {params / 1e6:.2f}M | {eager:.1f} | {ort:.1f} | {eager / base:.2f}x |")
    print("\n".join(lines))
    atomic_write_json(Path(args.out), {"machine": m, "threads": threads, "size": args.size, "rows": rows})
    if args.update_readme:
        fill_marked_section(README, "shiftaddvit-speed", "\n".join(lines))
        print(f"README.md updated ({README})")


if __name__ == "__main__":
    main()
