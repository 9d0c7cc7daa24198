"""Where a detector's training step spends its time: forward, loss (assignment included), backward, optimizer and EMA,
and the operators that cost most.

    python benchmarks/detection_train_profile.py [--model yolov10n] [--size 320] [--batch 8] [--steps 6] [--top 15]

One batch of the synthetic shapes (mosaic and HSV on, as ``detection_train_speed.py`` trains) goes through the same
parts ``DetectionTask`` uses: the model in train mode, its ``make_loss()`` criterion, timm's SGD as the recipes set it
and timm's ``ModelEmaV3``. Each phase is timed with ``time.perf_counter`` over ``--steps`` steps after two warm-up
steps (medians printed); one more step runs under ``torch.profiler`` for the operator table (self CPU time). The
numbers are shares of this machine's step, for finding what to make faster; ``detection_train_speed.py`` measures
throughput.
"""
from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="yolov10n")
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()

    import torch
    from omegaconf import OmegaConf
    from timm.optim import create_optimizer_v2
    from timm.utils import ModelEmaV3
    from torch.profiler import ProfilerActivity, profile

    import zoo
    from zoo.config import compose
    from zoo.data.detection import DetectionDataModule

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = compose("yolov10n_shapes", [f"data.img_size={args.size}", f"data.image_size={args.size}", f"data.batch_size={args.batch}",
                                      f"data.train_images={args.batch}", "data.val_images=1", "data.augment.mosaic=1.0",
                                      "data.augment.hsv=[0.015,0.7,0.4]"])
    data = DetectionDataModule(cfg.data, zoo.info(args.model), seed=0)
    images, targets = next(iter(data.train_dataloader()))
    model = zoo.load(args.model, num_classes=data.num_classes).train()
    criterion = model.make_loss()
    in_forward = getattr(criterion, "in_forward", False)
    optim = OmegaConf.to_container(compose("yolov10n_coco", []).optim, resolve=True)
    optimizer = create_optimizer_v2(model, opt=optim["name"], lr=1e-4, weight_decay=optim.get("weight_decay", 0.0),
                                    momentum=optim.get("momentum", 0.9))
    ema = ModelEmaV3(model, decay=0.9999, use_warmup=True)
    phases: dict[str, list[float]] = {"forward": [], "loss": [], "backward": [], "optimizer": [], "ema": []}

    def step(record: bool) -> None:
        marks = [time.perf_counter()]
        outputs = model(images, targets) if in_forward else model(images)
        marks.append(time.perf_counter())
        loss, _ = criterion(outputs, targets)
        marks.append(time.perf_counter())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        marks.append(time.perf_counter())
        optimizer.step()
        marks.append(time.perf_counter())
        ema.update(model)
        marks.append(time.perf_counter())
        if record:
            for name, a, b in zip(phases, marks, marks[1:]):
                phases[name].append(b - a)

    for i in range(args.steps + 2):
        step(record=i >= 2)
    total = sum(statistics.median(v) for v in phases.values())
    print(f"{args.model}, batch {args.batch} at {args.size}, {torch.get_num_threads()} threads: step {total * 1e3:.0f} ms "
          f"(medians of {args.steps} steps)")
    for name, values in phases.items():
        ms = statistics.median(values) * 1e3
        print(f"  {name:<9} {ms:8.1f} ms  {ms / (total * 1e3):6.1%}")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step(record=False)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))


if __name__ == "__main__":
    main()
