"""Training-loop overhead: the recipe's Lightning loop against a plain PyTorch loop, in one process.

    python benchmarks/train_overhead.py [--recipe quickstart] [--epochs 3] [--repeats 2] [--update-readme]

Both loops train the same model (the recipe's, freshly built for each run) on the same DataLoader,
batch size, optimizer and schedule, with the same threads; validation is off in both. The first epoch
of each run is warm-up and not timed. The recipe loop keeps what a recipe run has: logging, LR
monitoring, checkpointing, the progress bar (timed with and without it). Target: the recipe
loop reaches at least 0.90 of the plain loop's images/s. ``--update-readme`` writes the table into
README.md between the train-overhead markers.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def build(recipe: str, epochs: int, progress: bool, out: Path):
    from zoo.train import compose, prepare

    overrides = [f"trainer.max_epochs={epochs}", "trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0",
                 f"trainer.enable_progress_bar={str(progress).lower()}", "early_stopping.patience=null"]
    cfg = compose(recipe, overrides)
    return cfg, prepare(cfg, out)


def timed_epochs_lightning(recipe: str, epochs: int, progress: bool) -> tuple[float, int]:
    import lightning as L

    class EpochTimer(L.Callback):
        def __init__(self):
            self.times, self.start = [], 0.0

        def on_train_epoch_start(self, trainer, pl_module):
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):
            self.times.append(time.perf_counter() - self.start)

    with tempfile.TemporaryDirectory() as tmp:
        cfg, p = build(recipe, epochs, progress, Path(tmp))
        timer = EpochTimer()
        p.trainer.callbacks.append(timer)
        p.trainer.fit(p.task, datamodule=p.data)
        images = len(p.data.train_dataloader()) * cfg.data.batch_size
    return statistics.mean(timer.times[1:]), images


def timed_epochs_plain(recipe: str, epochs: int) -> tuple[float, int]:
    """The same work written as the shortest correct PyTorch loop."""
    from timm.optim import create_optimizer_v2
    from timm.scheduler import CosineLRScheduler

    with tempfile.TemporaryDirectory() as tmp:
        cfg, p = build(recipe, epochs, False, Path(tmp))
    model, loader, o = p.task.model, p.data.train_dataloader(), cfg.optim
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=cfg.task.label_smoothing)
    optimizer = create_optimizer_v2(model, opt=o.name, lr=o.lr, weight_decay=o.weight_decay, momentum=o.momentum)
    total = epochs * len(loader)
    warmup = int(round(o.warmup_epochs * len(loader)))
    scheduler = CosineLRScheduler(optimizer, t_initial=total - warmup, lr_min=o.min_lr, warmup_t=warmup,
                                  warmup_lr_init=o.lr * o.warmup_start_factor, warmup_prefix=True, t_in_epochs=False)
    model.train()
    times, step = [], 0
    for _ in range(epochs):
        start = time.perf_counter()
        for x, y in loader:
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            scheduler.step_update(num_updates=step)
        times.append(time.perf_counter() - start)
    return statistics.mean(times[1:]), len(loader) * cfg.data.batch_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="quickstart")
    parser.add_argument("--epochs", type=int, default=3, help="per run; the first is warm-up")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each loop, interleaved; medians reported")
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()

    from zoo.environment import machine

    rates: dict[str, list[float]] = {"plain PyTorch loop": [], "recipe loop (Lightning)": [], "recipe loop + progress bar": []}
    for _ in range(args.repeats):
        seconds, images = timed_epochs_plain(args.recipe, args.epochs)
        rates["plain PyTorch loop"].append(images / seconds)
        seconds, images = timed_epochs_lightning(args.recipe, args.epochs, progress=False)
        rates["recipe loop (Lightning)"].append(images / seconds)
        seconds, images = timed_epochs_lightning(args.recipe, args.epochs, progress=True)
        rates["recipe loop + progress bar"].append(images / seconds)
    m = machine()
    baseline = statistics.median(rates["plain PyTorch loop"])
    lines = [
        f"Recipe `{args.recipe}`, {args.epochs - 1} timed epochs x {args.repeats} runs each (median), "
        f"measured by `python benchmarks/train_overhead.py` on {m['cpu']}, {m['threads']} threads, "
        f"torch {m['torch']}, lightning {m['lightning']}, {m['date']}:",
        "",
        "| loop | images/s | ratio to plain |",
        "|---|---:|---:|",
    ]
    for name, values in rates.items():
        rate = statistics.median(values)
        lines.append(f"| {name} | {rate:.0f} | {rate / baseline:.2f} |")
    table = "\n".join(lines)
    print(table)
    ratio = statistics.median(rates["recipe loop (Lightning)"]) / baseline
    print(f"\nrecipe/plain ratio {ratio:.2f} (target >= 0.90): {'ok' if ratio >= 0.9 else 'BELOW TARGET'}")
    if args.update_readme:
        from zoo._io import fill_marked_section

        print(f"updated {fill_marked_section(README, 'train-overhead', table)}")


if __name__ == "__main__":
    main()
