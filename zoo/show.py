"""``zoo data show recipe=NAME [KEY=VALUE ...]``: a PNG sheet of training samples as the detector sees them.

The recipe's training data goes through its augmentation (mosaic, mixup, affine, colour) under the run's seed,
and each sample is drawn with its boxes and class names: what a setting does is easier to judge by looking than
by reading its value, and a box that came loose from its object shows here before a long run does.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from zoo._io import atomic_write
from zoo.errors import BadArgumentError

USAGE = "usage: zoo data show recipe=NAME [KEY=VALUE ...] [--out PNG] [--count N]"


def show(recipe: str, overrides: Sequence[str] = (), out: str | Path | None = None, count: int = 16) -> Path:
    """Draw the first ``count`` training samples of ``recipe`` (with ``overrides``) into ``out``; return its path."""
    import lightning as L
    import torch

    from zoo.config import compose
    from zoo.registry import get_spec, split_name
    from zoo.task_table import TASKS

    if count < 1:
        raise BadArgumentError(f"--count must be at least 1, not {count}")
    cfg = compose(recipe, overrides)
    spec = get_spec(split_name(str(cfg.model.name))[0])
    if spec.task != "detection":
        raise BadArgumentError(f"zoo data show draws detection data; {recipe!r} trains a {spec.task} model ({spec.name})")
    L.seed_everything(int(cfg.seed), verbose=False)
    data = TASKS["detection"].part("data_module")(cfg.data, spec, seed=int(cfg.seed))
    dataset = data.train_dataset()
    samples = [dataset[i] for i in range(min(count, len(dataset)))]
    path = Path(out) if out else Path(f"{recipe}_data.png")
    title = f"{recipe}: {len(samples)} training samples as augmented ({data.describe()})"
    return draw_sheet([(image, target["boxes"].as_subclass(torch.Tensor), target["labels"]) for image, target in samples],
                      data.classes, path, title)


def draw_sheet(samples, class_names: Sequence[str], path: Path, title: str) -> Path:
    """Images (float 0..1 ``[3, H, W]``) with their boxes in per-class colours and names, four to a row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from torchvision.utils import draw_bounding_boxes

    from zoo.predict import PALETTE

    cols = min(4, len(samples))
    rows = -(-len(samples) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (image, boxes, labels) in zip(axes.flat, samples):
        pixels = (image.clamp(0, 1) * 255).to(torch.uint8)
        if len(boxes):
            names = [class_names[int(k)] if 0 <= int(k) < len(class_names) else str(int(k)) for k in labels]
            pixels = draw_bounding_boxes(pixels, boxes.float(), labels=names, colors=[PALETTE[int(k) % len(PALETTE)] for k in labels])
        ax.imshow(pixels.permute(1, 2, 0).numpy())
        ax.set_title(f"{len(boxes)} boxes", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return path


def main(argv: Sequence[str]) -> int:
    """``zoo data show ...`` (the CLI passes everything after ``data``)."""
    argv = list(argv)
    if not argv or argv[0] != "show":
        raise BadArgumentError(f"zoo data takes one command, show. {USAGE}")
    out, count, rest = None, 16, []
    args = iter(argv[1:])
    for arg in args:
        if arg in ("--out", "--count"):
            value = next(args, None)
            if value is None:
                raise BadArgumentError(f"{arg} needs a value. {USAGE}")
            if arg == "--out":
                out = value
            elif not value.isdigit():
                raise BadArgumentError(f"--count takes a whole number of samples, not {value!r}")
            else:
                count = int(value)
        else:
            rest.append(arg)
    recipes = [a for a in rest if a.startswith("recipe=")]
    if len(recipes) != 1:
        raise BadArgumentError(f"name one recipe. {USAGE}")
    path = show(recipes[0].partition("=")[2], [a for a in rest if not a.startswith("recipe=")], out, count)
    print(f"wrote {path}", file=sys.stdout)
    return 0
