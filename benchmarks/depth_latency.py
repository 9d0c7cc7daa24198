"""Frames per second of the zoo's depth models on this CPU at 224x224, batch 1, at 1 and 2 threads.

    python benchmarks/depth_latency.py [--models fastdepth fastdepth_pruned ...] [--threads 1 2] [--runs 100]
                                       [--update-readme]

Each model runs in eager PyTorch and as its verified exports in onnxruntime (thread spinning off) and OpenVINO, fp32
(zoo.export verifies each against PyTorch before it is timed). For each thread count every runner is timed in one
process in interleaved rounds (``zoo.bench.time_interleaved``), so load that comes and goes on a shared machine falls
on every runner alike; the ratio column is each row's fps over eager FastDepth's at the same thread count. The best
row per model is its fastest verified deploy form. Next to them, the Jetson TX2 figures the FastDepth authors report
for the released (pruned) model, labelled reported. Weights are untrained: latency does not depend on them. Writes
JSON to ``--out``; ``--update-readme`` puts the table into README.md between the depth-latency markers.
"""
from __future__ import annotations

import argparse
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
DEFAULT = ["fastdepth", "fastdepth_pruned", "fastdepth_mobilenetv3_large_100", "fastdepth_mobileone_s0"]
BASELINE = "fastdepth"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=DEFAULT)
    parser.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--imgsz", type=int, default=224)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--out", default="runs/bench/depth_latency.json")
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()
    models = [BASELINE, *(m for m in args.models if m != BASELINE)]

    import tempfile

    import onnxruntime as ort
    import openvino
    import torch

    import zoo
    from zoo._io import atomic_write_json, fill_marked_section
    from zoo.bench import count_macs, time_interleaved
    from zoo.environment import machine
    from zoo.export.onnx import session
    from zoo.export.openvino import runner as openvino_runner

    m = machine()
    x = torch.rand(1, 3, args.imgsz, args.imgsz, generator=torch.Generator().manual_seed(0))
    rows = []
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        loaded, paths = {}, {}
        for name in models:
            model = zoo.load(name).eval()
            loaded[name] = model
            for fmt, suffix in (("onnx", ".onnx"), ("openvino", ".openvino")):
                paths[(name, fmt)] = zoo.export(model, fmt, imgsz=args.imgsz, out=Path(tmp) / f"{name}{suffix}").path
            print(f"exported and verified {name}", flush=True)
        for threads in args.threads:
            torch.set_num_threads(threads)
            runners = {}
            for name, model in loaded.items():
                ort_session = session(paths[(name, "onnx")], threads, spinning=False)
                feed = {ort_session.get_inputs()[0].name: x.numpy()}
                ov = openvino_runner(paths[(name, "openvino")], threads)
                runners[(name, "eager")] = lambda model=model: model(x)
                runners[(name, "onnxruntime")] = lambda s=ort_session, f=feed: s.run(None, f)
                runners[(name, "openvino")] = lambda run=ov: run(x.numpy())
            times = time_interleaved(runners, args.runs, warmup=5, threads=threads)
            base = 1000 / times[(BASELINE, "eager")]["p50_ms"]
            for (name, backend), t in times.items():
                fps = 1000 / t["p50_ms"]
                rows.append({"model": name, "form": backend, "threads": threads, "p50_ms": t["p50_ms"], "fps": fps,
                             "vs_fastdepth_eager": fps / base})
            print(f"timed {threads} thread(s)", flush=True)
    sizes = {n: (sum(p.numel() for p in loaded[n].parameters()), count_macs(loaded[n], x)) for n in models}
    best = {(r["model"], r["threads"]): max((s for s in rows if (s["model"], s["threads"]) == (r["model"], r["threads"])),
                                            key=lambda s: s["fps"]) for r in rows}
    lines = [
        (f"Batch 1 at {args.imgsz}x{args.imgsz}, fp32, p50 of {args.runs} runs in interleaved rounds, measured by "
         f"`python benchmarks/depth_latency.py` on {m['cpu']}, torch {m['torch']}, onnxruntime {ort.__version__}, "
         f"OpenVINO {openvino.__version__.split('-')[0]}, {m['date']}; untrained weights. Each cell: frames per second of "
         "the fastest verified form (eager, onnxruntime, OpenVINO), and its speed against eager FastDepth at the same "
         "thread count:"),
        "",
        "| model | params | GMACs | " + " | ".join(f"{t} thread{'s' if t > 1 else ''}: fps (form, vs eager FastDepth)"
                                                 for t in args.threads) + " |",
        "|---|---:|---:|" + "---:|" * len(args.threads),
    ]
    for name in models:
        cells = []
        for t in args.threads:
            b = best[(name, t)]
            cells.append(f"{b['fps']:.0f} ({b['form']}, {b['vs_fastdepth_eager']:.2f}x)")
        lines.append(f"| `{name}` | {sizes[name][0] / 1e6:.2f}M | {sizes[name][1] / 1e9:.2f} | " + " | ".join(cells) + " |")
    spec = zoo.info("fastdepth_pruned")
    cpu, gpu, fps = (spec.reported_value(k) for k in ("latency_ms", "latency_ms_gpu", "fps"))
    lines += ["", (f"Reported for the released `fastdepth_pruned` ({cpu.source}): "
                   f"{1000 / cpu.value:.0f} fps on its CPU ({cpu.value} ms), {1000 / gpu.value:.0f} fps on its GPU "
                   f"({gpu.value} ms); its abstract gives 27 and {fps.value:g} fps.")]
    print("\n" + "\n".join(lines))
    atomic_write_json(Path(args.out), {"machine": m, "imgsz": args.imgsz, "runs": args.runs, "results": rows,
                                       "sizes": {n: {"params": p, "macs": mc} for n, (p, mc) in sizes.items()}})
    print(f"\nwrote {args.out}")
    if args.update_readme:
        print(f"updated {fill_marked_section(README, 'depth-latency', chr(10).join(lines))}")


if __name__ == "__main__":
    main()
