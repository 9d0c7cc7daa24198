"""Where an int8 graph's time goes in onnxruntime, op type by op type, next to its fp32 graph.

    python benchmarks/int8_profile.py [--model mobilenetv3_small_100] [--imgsz 224] [--threads 2] [--write]

Exports the model's fp32 ONNX and onnxruntime's int8 Q/DQ graph of it (``quantize_static``, calibrated on
random inputs: timing only), runs each 200 times with onnxruntime's profiler on, and sums kernel time per op
type (per run). ``--write`` saves the table to ``docs/int8_profile.md``: the evidence behind README's account of
why int8 does or does not pay for a model in onnxruntime.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = 200


def profile(path: Path, x, threads: int) -> dict[str, float]:
    """Kernel milliseconds per run, by op type (fused kernels keep their fused name, e.g. QLinearConv)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_profiling = True
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for _ in range(RUNS):
        session.run(None, {name: x})
    events = json.loads(Path(session.end_profiling()).read_text())
    totals: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            totals[e["args"]["op_name"]] += e["dur"] / 1e3 / RUNS
    return dict(totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mobilenetv3_small_100")
    parser.add_argument("--imgsz", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    import torch

    import zoo
    from zoo.export import export
    from zoo.environment import machine

    model = zoo.load(args.model).eval()
    x = torch.randn(1, 3, args.imgsz, args.imgsz, generator=torch.Generator().manual_seed(0))
    calibration = [torch.randn(1, 3, args.imgsz, args.imgsz, generator=torch.Generator().manual_seed(i)) for i in range(8)]
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export(model, "onnx", imgsz=args.imgsz, out=Path(tmp) / "fp32.onnx").path
        int8 = export(model, "onnx", imgsz=args.imgsz, precision="int8", calibration=calibration, out=Path(tmp) / "int8.onnx").path
        times = {"fp32": profile(fp32, x.numpy(), args.threads), "int8": profile(int8, x.numpy(), args.threads)}
    m = machine()
    ops = sorted(set(times["fp32"]) | set(times["int8"]), key=lambda o: -max(times["fp32"].get(o, 0), times["int8"].get(o, 0)))
    total = {k: sum(v.values()) for k, v in times.items()}
    lines = [f"# int8 in onnxruntime: where the time goes ({args.model})", "",
             f"Kernel time per run by op type, batch 1 at {args.imgsz}x{args.imgsz}, {args.threads} threads, {RUNS} runs with "
             f"onnxruntime's profiler, measured by `python benchmarks/int8_profile.py --model {args.model}` on {m['cpu']}, "
             f"torch {m['torch']}, {m['date']}. int8: onnxruntime's `quantize_static` Q/DQ graph (per-channel int8 weights, "
             "uint8 activations), which onnxruntime fuses into QLinear* kernels where it can; what it cannot fuse runs as "
             "DequantizeLinear -> float op -> QuantizeLinear.", "",
             "| op type | fp32 ms | share | int8 ms | share |", "|---|---:|---:|---:|---:|"]
    for op in ops:
        cells = []
        for k in ("fp32", "int8"):
            v = times[k].get(op)
            cells += [f"{v:.3f}", f"{100 * v / total[k]:.1f}%"] if v else ["-", "-"]
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    lines.append(f"| **total** | {total['fp32']:.3f} | 100% | {total['int8']:.3f} | 100% |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        from zoo._io import atomic_write_text

        print(f"wrote {atomic_write_text(ROOT / 'docs' / 'int8_profile.md', text)}")


if __name__ == "__main__":
    main()
