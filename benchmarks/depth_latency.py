"""Frames per second of the zoo's depth models on this CPU at 224x224, batch 1, at 1 and 2 threads.

    python benchmarks/depth_latency.py [--models fastdepth fastdepth_pruned ...] [--threads 1 2] [--runs 100]
                                       [--update-readme]

Each model runs in eager PyTorch and as its verified exports in onnxruntime (thread spinning off) and OpenVINO, fp32
(zoo.export verifies each against PyTorch before it is timed). For each thread count every runner is timed in one
process in interleaved rounds (``zoo.bench.time_interleaved``), so load that comes and goes on a shared machine falls
on every runner alike; the ratio column is each row's fps over the first model's in eager PyTorch at the same thread
count. The best row per model is its fastest verified deploy form. Next to them, the Jetson TX2 figures the FastDepth
authors report for the released (pruned) model, labelled reported. Names are timed untrained (latency does not depend
on the weights).

A model may also be a trained run directory: its row then carries the run's validation delta1 and RMSE from its
``summary.json``, which makes the latency/accuracy trade-off of pruning one table (README, "Depth")::

    python benchmarks/depth_latency.py --models runs/fastdepth_shapes/A runs/fastdepth_shapes_pruned/B \
        --threads 2 --section depth-prune --update-readme

Writes JSON to ``--out``; ``--update-readme`` puts the table into README.md between the ``--section`` markers.
"""
from __future__ import annotations

import argparse
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
DEFAULT = ["fastdepth", "fastdepth_pruned", "fastdepth_mobilenetv3_large_100", "fastdepth_mobileone_s0"]


def describe_run(path: Path) -> tuple[str, dict]:
    """A trained run's label (its recipe, and the share pruning removed) and its validation results."""
    import json

    import yaml

    summary = json.loads((path / "summary.json").read_text())
    config = yaml.safe_load((path / "config.yaml").read_text()) or {}
    prune = (config.get("plugins") or {}).get("prune")
    label = summary["recipe"] + (f" (prune {prune.get('target', 'macs')} -{prune['ratio']:.0%})" if prune else "")
    return label, {"delta1": summary["val_delta1"], "rmse": summary["val_rmse"], "data": summary["data"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=DEFAULT)
    parser.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--imgsz", type=int, default=224)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--out", default="runs/bench/depth_latency.json")
    parser.add_argument("--section", default="depth-latency", help="the README markers --update-readme fills")
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()
    runs = {m: describe_run(Path(m)) for m in args.models if Path(m).is_dir()}
    labels = {m: runs[m][0] if m in runs else m for m in args.models}
    if len(set(labels.values())) < len(labels):
        parser.error("two models would share a row's label (the same recipe and prune ratio): give one of each")
    baseline = args.models[0]

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
        for i, name in enumerate(args.models):
            model = zoo.load(name).eval()
            loaded[name] = model
            for fmt, suffix in (("onnx", ".onnx"), ("openvino", ".openvino")):
                paths[(name, fmt)] = zoo.export(model, fmt, imgsz=args.imgsz, out=Path(tmp) / f"{i}{suffix}").path
            print(f"exported and verified {labels[name]}", flush=True)
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
            base = 1000 / times[(baseline, "eager")]["p50_ms"]
            for (name, backend), t in times.items():
                fps = 1000 / t["p50_ms"]
                rows.append({"model": labels[name], "form": backend, "threads": threads, "p50_ms": t["p50_ms"],
                             "fps": fps, "vs_baseline_eager": fps / base})
            print(f"timed {threads} thread(s)", flush=True)
    sizes = {labels[n]: (sum(p.numel() for p in m.parameters()), count_macs(m, x)) for n, m in loaded.items()}
    best = {(r["model"], r["threads"]): max((s for s in rows if (s["model"], s["threads"]) == (r["model"], r["threads"])),
                                            key=lambda s: s["fps"]) for r in rows}
    lines = [
        (f"Batch 1 at {args.imgsz}x{args.imgsz}, fp32, p50 of {args.runs} runs in interleaved rounds, measured by "
         f"`python benchmarks/depth_latency.py` on {m['cpu']}, torch {m['torch']}, onnxruntime {ort.__version__}, "
         f"OpenVINO {openvino.__version__.split('-')[0]}, {m['date']}; "
         + ("delta1 and RMSE: each trained run's validation, from its summary.json. " if runs else "untrained weights. ")
         + "Each cell: frames per second of the fastest verified form (eager, onnxruntime, OpenVINO), and its speed "
         f"against eager `{labels[baseline]}` at the same thread count:"),
        "",
        "| model | params | GMACs | " + ("delta1 | RMSE (m) | " if runs else "")
        + " | ".join(f"{t} thread{'s' if t > 1 else ''}: fps (form, vs eager)" for t in args.threads) + " |",
        "|---|---:|---:|" + ("---:|---:|" if runs else "") + "---:|" * len(args.threads),
    ]
    for name in args.models:
        label = labels[name]
        cells = []
        if runs:  # a name among trained runs has no accuracy of its own
            cells = [f"{runs[name][1]['delta1']:.3f}", f"{runs[name][1]['rmse']:.3f}"] if name in runs else ["-", "-"]
        for t in args.threads:
            b = best[(label, t)]
            cells.append(f"{b['fps']:.0f} ({b['form']}, {b['vs_baseline_eager']:.2f}x)")
        lines.append(f"| `{label}` | {sizes[label][0] / 1e6:.2f}M | {sizes[label][1] / 1e9:.2f} | " + " | ".join(cells) + " |")
    if runs:
        lines += ["", "Validation data: " + "; ".join(sorted({r["data"] for _, r in runs.values()})) + "."]
    spec = zoo.info("fastdepth_pruned")
    cpu, gpu, fps = (spec.reported_value(k) for k in ("latency_ms", "latency_ms_gpu", "fps"))
    lines += ["", (f"Reported for the released `fastdepth_pruned` ({cpu.source}): "
                   f"{1000 / cpu.value:.0f} fps on its CPU ({cpu.value} ms), {1000 / gpu.value:.0f} fps on its GPU "
                   f"({gpu.value} ms); its abstract gives 27 and {fps.value:g} fps.")]
    print("\n" + "\n".join(lines))
    atomic_write_json(Path(args.out), {"machine": m, "imgsz": args.imgsz, "runs": args.runs, "results": rows,
                                       "sizes": {n: {"params": p, "macs": mc} for n, (p, mc) in sizes.items()},
                                       "trained": {label: result for label, result in runs.values()}})
    print(f"\nwrote {args.out}")
    if args.update_readme:
        print(f"updated {fill_marked_section(README, args.section, chr(10).join(lines))}")


if __name__ == "__main__":
    main()
