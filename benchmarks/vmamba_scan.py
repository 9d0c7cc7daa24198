"""EfficientVMamba's chunked selective scan against the step-by-step recurrence, on the inputs a real image gives.

    python benchmarks/vmamba_scan.py [--model efficientvmamba_tiny] [--size 224] [--runs 20] [--threads N] [--update-readme]

One forward pass of the model (untrained weights: the scan's cost does not depend on them) on a photo at ``--size``
records every EVSS block's scan inputs; then, for each block, ``zoo.models.efficientvmamba.selective_scan`` (chunked)
and ``selective_scan_reference`` (one step at a time) run on those inputs, timed in one process in interleaved rounds
(``zoo.bench.time_interleaved``), and their largest absolute difference is printed. The total row sums the blocks:
the scan time of one forward pass. A second table times the whole model with each scan. ``--update-readme`` puts
both into README.md between the vmamba-scan markers; JSON goes to ``--out``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientvmamba_tiny")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--out", default="runs/bench/vmamba_scan.json")
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()

    import torch

    import zoo
    import zoo.models.efficientvmamba as evm
    from zoo._io import atomic_write_json, fill_marked_section
    from zoo.bench import time_interleaved
    from zoo.environment import machine
    from zoo.export import sample_inputs

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    torch.manual_seed(0)
    model = zoo.load(args.model).eval()
    x = sample_inputs(model.zoo_spec, (3, args.size, args.size), 1)["real"]
    recorded = []

    def record(*inputs):
        recorded.append(inputs)
        return evm.selective_scan(*inputs)

    evm.SCANS["record"] = record
    model.set_scan("record")
    with torch.inference_mode():
        model(x)
    del evm.SCANS["record"]
    rows = []
    with torch.inference_mode():
        for i, inputs in enumerate(recorded):
            diff = (evm.selective_scan(*inputs) - evm.selective_scan_reference(*inputs)).abs().max().item()
            times = time_interleaved({"chunked": lambda inputs=inputs: evm.selective_scan(*inputs),
                                      "sequential": lambda inputs=inputs: evm.selective_scan_reference(*inputs)},
                                     args.runs, warmup=1, rounds=min(5, args.runs), threads=threads)
            u = inputs[0]
            rows.append({"block": i, "channels": u.shape[1], "length": u.shape[2], "max_abs_diff": diff,
                         "chunked_ms": times["chunked"]["p50_ms"], "sequential_ms": times["sequential"]["p50_ms"]})
            print(f"block {i}: L={u.shape[2]} channels={u.shape[1]} chunked {rows[-1]['chunked_ms']:.1f} ms, "
                  f"sequential {rows[-1]['sequential_ms']:.1f} ms, max |diff| {diff:.1e}", flush=True)
        whole = time_interleaved({scan: lambda scan=scan: (model.set_scan(scan), model(x)) for scan in ("chunked", "sequential")},
                                 max(3, args.runs // 4), warmup=1, rounds=3, threads=threads)
    chunked, sequential = (sum(r[f"{k}_ms"] for r in rows) for k in ("chunked", "sequential"))
    m = machine()
    lines = [
        (f"`{args.model}` at {args.size}x{args.size}, batch 1, p50 of {args.runs} runs in interleaved rounds, measured by "
         f"`python benchmarks/vmamba_scan.py` on {m['cpu']}, {threads} threads, torch {m['torch']}, {m['date']}; each "
         "EVSS block's scan on the inputs a photo gives it (four directions at once):"),
        "",
        "| block | sequence length | channels x directions | chunked ms | step by step ms | speed-up | max abs diff |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['block']} | {r['length']} | {r['channels']} | {r['chunked_ms']:.1f} | {r['sequential_ms']:.1f} | "
              f"{r['sequential_ms'] / r['chunked_ms']:.1f}x | {r['max_abs_diff']:.1e} |" for r in rows]
    lines += [f"| all | | | {chunked:.1f} | {sequential:.1f} | **{sequential / chunked:.1f}x** | |", "",
              (f"The whole model, eager: {whole['chunked']['p50_ms']:.0f} ms with the chunked scan, "
               f"{whole['sequential']['p50_ms']:.0f} ms step by step.")]
    print("\n" + "\n".join(lines))
    atomic_write_json(Path(args.out), {"machine": m, "threads": threads, "model": args.model, "size": args.size,
                                       "blocks": rows, "whole_ms": {k: v["p50_ms"] for k, v in whole.items()}})
    if args.update_readme:
        fill_marked_section(README, "vmamba-scan", "\n".join(lines))
        print(f"README.md updated ({README})")


if __name__ == "__main__":
    main()
