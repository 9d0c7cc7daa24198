"""Training throughput of the detectors: images/s of the full training step, without and with data loading.

    python benchmarks/detection_train_speed.py [--models yolov10n rtdetr_r18 mobiledet_cpu] [--sizes 320 640]
                                               [--batch 8] [--steps 6] [--workers 2] [--threads N] [--update-readme]

Each model trains through ``zoo train``'s own parts (the task's loss, optimizer, EMA; Lightning's loop) on the
synthetic shapes at each size, with the YOLOv10 recipe's strong augmentation on (mosaic, HSV, scale and shift)
so the data pipeline does the work it does in a real run. A callback stamps every batch: "step" is batch start
to batch end (forward, loss, backward, optimizer step, EMA: data loading excluded), "cycle" is one batch start to
the next (loading included, from ``--workers`` DataLoader workers, as far as they fall behind). The first two
steps warm up and are not counted; the medians of the rest are reported. All models run in this one process, one
after another. Writes JSON to ``--out``; ``--update-readme`` puts the table into README.md between the
detection-train-speed markers.

The issue's comparison with the reference trainer's step needs the reference package, which is AGPL and not
installed here: this script reports images/s alone.
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
AUGMENT = ["data.augment.mosaic=1.0", "data.augment.hsv=[0.015,0.7,0.4]"]


def measure(name: str, size: int, batch: int, steps: int, workers: int) -> dict:
    import lightning as L

    from zoo.config import compose
    from zoo.train import prepare

    stamps: list[tuple[float, float]] = []

    class Stamp(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            stamps.append((time.perf_counter(), float("nan")))

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            stamps[-1] = (stamps[-1][0], time.perf_counter())

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose("yolov10n_shapes", [
            f"model.name={name}", f"out_dir={tmp}", f"data.img_size={size}", f"data.image_size={size}",
            f"data.batch_size={batch}", f"data.num_workers={workers}", f"data.train_images={batch * (steps + 1)}",
            "data.val_images=8", "trainer.max_epochs=1", f"trainer.limit_train_batches={steps}", "trainer.limit_val_batches=0",
            "trainer.enable_progress_bar=false", *AUGMENT,
        ])
        prepared = prepare(cfg, Path(tmp) / "run", callbacks=[Stamp()])
        prepared.trainer.fit(prepared.task, datamodule=prepared.data)
    counted = stamps[2:]
    step = statistics.median(end - start for start, end in counted)
    cycle = statistics.median(b[0] - a[0] for a, b in itertools.pairwise(counted))
    return {"model": name, "size": size, "batch": batch, "step_ms": step * 1e3, "cycle_ms": cycle * 1e3,
            "images_per_s_step": batch / step, "images_per_s_cycle": batch / cycle, "steps_counted": len(counted)}


def table(rows: list[dict], where: str) -> str:
    lines = [(f"Training throughput ({where}; `python benchmarks/detection_train_speed.py`; batch {rows[0]['batch']}, "
              "synthetic shapes with mosaic and HSV on, untrained weights):"), "",
             "| model | input | step ms | images/s, step | images/s, with loading | loading keeps up |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        keeps = "yes" if r["cycle_ms"] <= 1.1 * r["step_ms"] else f"no ({r['cycle_ms'] / r['step_ms']:.2f}x the step)"
        lines.append(f"| {r['model']} | {r['size']} | {r['step_ms']:.0f} | {r['images_per_s_step']:.1f} | "
                     f"{r['images_per_s_cycle']:.1f} | {keeps} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["yolov10n", "rtdetr_r18", "mobiledet_cpu"])
    parser.add_argument("--sizes", nargs="*", type=int, default=[320, 640])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6, help="training steps per model and size (the first 2 warm up)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--out", default="runs/bench/detection_train_speed.json")
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()
    if args.steps < 4:
        parser.error("--steps must be at least 4 (two warm up, and a cycle needs two counted steps)")

    import torch

    from zoo._io import atomic_write_json, fill_marked_section
    from zoo.environment import machine

    if args.threads:
        torch.set_num_threads(args.threads)
    m = machine()
    rows = []
    for size in args.sizes:
        for name in args.models:
            rows.append(measure(name, size, args.batch, args.steps, args.workers))
            print(json.dumps(rows[-1]), flush=True)
    where = f"{m['cpu']}, {m['threads']} threads, torch {m['torch']}, {m['date']}"
    text = table(rows, where)
    print(text)
    atomic_write_json(Path(args.out), {"machine": m, "rows": rows})
    if args.update_readme:
        print(f"updated {fill_marked_section(README, 'detection-train-speed', text)}")


if __name__ == "__main__":
    main()
