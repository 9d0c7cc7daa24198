"""How an image encoder's cost grows with resolution: FastViTHD against a ViT-B/16 and FastViT MCi2 (FastVLM's point).

    python benchmarks/fastvithd_scaling.py [--sizes 256 512 1024] [--runs 6] [--threads N] [--update-readme]

A vision-language model reads the encoder's output tokens, so its cost is the encoder's latency plus what the
language model pays per token. FastVLM (arXiv:2412.13303) argues for FastViTHD because both grow slowly with the
input side: it downsamples 64x (256 tokens at 1024 px) where a ViT-B/16 keeps 16x (4096 tokens, with attention over
all of them). For each input side this measures, batch 1 in eager PyTorch on this CPU, each encoder's parameters,
GMACs (``zoo.bench.count_macs``), output tokens and p50 latency, all models of a side timed in one process in
interleaved rounds (``zoo.bench.time_interleaved``); the ratio column is each latency over FastViTHD's at the same
side. The encoders: ``fastvithd`` (the zoo's, timm's ``fastvit_mci3``), ``vit_base_mci_224`` (MobileCLIP-B's image
tower, timm, built for each side) and ``fastvit_mci2`` (MobileCLIP-S2's). Weights are untrained: latency does not
depend on them. Writes JSON to ``--out``; ``--update-readme`` puts the table into README.md between the
fastvithd-scaling markers.
"""
from __future__ import annotations

import argparse
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
ENCODERS = ("fastvithd", "vit_base_mci_224", "fastvit_mci2")
STRIDE = {"fastvithd": 64, "vit_base_mci_224": 16, "fastvit_mci2": 32}  # output tokens = (side / stride) ** 2


def encoder(name: str, side: int):
    """The encoder as a classifier-free feature model (pooled output), built for ``side`` when it must be."""
    import timm

    import zoo

    if name == "vit_base_mci_224":  # not a zoo model on its own: timm's, its position table sized for the side
        return timm.create_model(name, pretrained=False, num_classes=0, img_size=side).eval()
    return zoo.load(name, num_classes=0).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--out", default="runs/bench/fastvithd_scaling.json")
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()

    import torch

    from zoo._io import atomic_write_json, fill_marked_section
    from zoo.bench import count_macs, time_interleaved
    from zoo.environment import machine
    from timm.utils import reparameterize_model

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    m = machine()
    rows = []
    for side in args.sizes:
        x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
        models = {name: reparameterize_model(encoder(name, side)) for name in ENCODERS}
        with torch.inference_mode():
            times = time_interleaved({name: (lambda model=model: model(x)) for name, model in models.items()}, args.runs, warmup=1,
                                     rounds=min(3, args.runs), threads=threads)
        base = times["fastvithd"]["p50_ms"]
        for name, model in models.items():
            rows.append({"encoder": name, "side": side, "tokens": (side // STRIDE[name]) ** 2,
                         "params": sum(p.numel() for p in model.parameters()), "macs": count_macs(model, x),
                         "p50_ms": times[name]["p50_ms"], "vs_fastvithd": times[name]["p50_ms"] / base})
        print(f"{side}px: " + ", ".join(f"{r['encoder']} {r['p50_ms']:.0f} ms" for r in rows[-len(ENCODERS):]), flush=True)
    lines = [
        (f"Batch 1, eager PyTorch, p50 of {args.runs} runs in interleaved rounds, measured by "
         f"`python benchmarks/fastvithd_scaling.py` on {m['cpu']}, {threads} threads, torch {m['torch']}, {m['date']}; "
         "untrained weights, deploy form (re-parameterised):"),
        "",
        "| input | encoder | output tokens | params | GMACs | latency ms | vs FastViTHD |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['side']}x{r['side']} | {r['encoder']} | {r['tokens']} | {r['params'] / 1e6:.1f}M | {r['macs'] / 1e9:.1f} | "
              f"{r['p50_ms']:.0f} | {r['vs_fastvithd']:.2f}x |" for r in rows]
    print("\n" + "\n".join(lines))
    atomic_write_json(Path(args.out), {"machine": m, "threads": threads, "runs": args.runs, "results": rows})
    print(f"\nwrote {args.out}")
    if args.update_readme:
        print(f"updated {fill_marked_section(README, 'fastvithd-scaling', chr(10).join(lines))}")


if __name__ == "__main__":
    main()
