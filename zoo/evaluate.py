"""Evaluation: classifiers (top-1/top-5, loss, per-class accuracy, confusion matrix), detectors (COCO
mAP@[.5:.95], mAP@.5, per-class AP, a sheet of predictions), segmenters (mIoU), depth models (RMSE, AbsRel, delta1..3,
a sheet in metres), image-text models (retrieval recall) and language models (loss, bits per token, perplexity; per
granularity for MatFormer models), as JSON and PNGs; and ``zoo eval``."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from zoo._io import atomic_write, atomic_write_json


def _batches(loader: DataLoader, progress: bool):
    """The loader, behind a transient progress bar when asked."""
    if not progress:
        return loader
    from rich.progress import track

    return track(loader, description="evaluating", transient=True)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    class_names: Sequence[str],
    out_dir: str | Path | None = None,
    *,
    title: str = "",
    progress: bool = True,
) -> dict[str, Any]:
    """Run ``model`` over ``loader``; optionally write ``metrics.json`` and ``confusion_matrix.png``."""
    model.eval()
    device = next(model.parameters()).device
    n = len(class_names)
    confusion = torch.zeros(n, n, dtype=torch.long)
    loss_sum, top5_hits, count = 0.0, 0, 0
    k = min(5, n)
    for x, y in _batches(loader, progress):
        x, y = x.to(device), y.to(device)
        logits = model(x).float()
        if logits.shape[-1] != n:
            from zoo.errors import DataError

            raise DataError(f"the model predicts {logits.shape[-1]} classes but the data has {n} ({', '.join(class_names[:5])}, ...)")
        loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        top5_hits += (logits.topk(k, dim=-1).indices == y[:, None]).any(-1).sum().item()
        confusion += torch.bincount(y.cpu() * n + logits.argmax(-1).cpu(), minlength=n * n).reshape(n, n)
        count += y.numel()
    per_class_total = confusion.sum(1)
    per_class = (confusion.diag() / per_class_total.clamp(min=1)).tolist()
    metrics = {
        "samples": count,
        "top1": confusion.diag().sum().item() / max(count, 1),
        f"top{k}": top5_hits / max(count, 1),
        "loss": loss_sum / max(count, 1),
        "per_class_accuracy": {name: acc for name, acc, total in zip(class_names, per_class, per_class_total.tolist()) if total},
        "classes": list(class_names),
        "confusion_matrix": confusion.tolist(),
    }
    if out_dir is not None:
        out = Path(out_dir)
        atomic_write_json(out / "metrics.json", metrics)
        plot_confusion(confusion, class_names, out / "confusion_matrix.png", title=title or f"top-1 {metrics['top1']:.2%} on {count} images")
        metrics["files"] = {"metrics": str(out / "metrics.json"), "confusion_matrix": str(out / "confusion_matrix.png")}
    metrics["headline"] = f"top-1 {metrics['top1']:.2%}   top-{k} {metrics[f'top{k}']:.2%}   loss {metrics['loss']:.4f}   ({count} images)"
    return metrics


def plot_confusion(confusion: torch.Tensor, class_names: Sequence[str], path: Path, title: str = "") -> Path:
    """A row-normalised confusion matrix with counts, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(class_names)
    rates = confusion.float() / confusion.sum(1, keepdim=True).clamp(min=1)
    size = min(max(4.0, 0.45 * n + 2), 20)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    image = ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels=list(class_names), rotation=45 if n > 6 else 0, ha="right" if n > 6 else "center")
    ax.set_yticks(range(n), labels=list(class_names))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if confusion[i, j]:
                    ax.text(j, i, str(int(confusion[i, j])), ha="center", va="center", fontsize=8,
                            color="white" if rates[i, j] > 0.5 else "black")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


@torch.no_grad()
def evaluate_language_model(
    model: nn.Module, loader: DataLoader, class_names: Sequence[str] | None = None, out_dir: str | Path | None = None, *,
    title: str = "", progress: bool = True, granularities: bool = True,
) -> dict[str, Any]:
    """Mean next-token loss (nats), bits per token and perplexity over ``loader``; a full nested (MatFormer)
    model is measured at every granularity too (``granularities``), with ``granularities.png``. Optionally
    ``metrics.json``. ``class_names`` (the vocabulary) is not needed; it is there so that every task's evaluation
    is called alike."""
    import math

    def measure() -> dict[str, float]:
        loss_sum, count = 0.0, 0
        for x, y in _batches(loader, progress):
            logits = model(x.to(device)).float()
            loss_sum += nn.functional.cross_entropy(logits.flatten(0, -2), y.to(device).flatten(), reduction="sum").item()
            count += y.numel()
        loss = loss_sum / max(count, 1)
        return {"tokens": count, "loss": loss, "bits_per_token": loss / math.log(2), "perplexity": math.exp(min(loss, 50.0))}

    model.eval()
    device = next(model.parameters()).device
    metrics: dict[str, Any] = measure()
    mlps = getattr(model, "mlps", None) if granularities else None
    if mlps and all(m.max_width == model.d_ff for m in mlps):  # a full nested model (not an extracted one)
        from zoo.models.matformer import GRANULARITIES

        full, losses = model.granularity, {}
        try:
            for g in GRANULARITIES:
                if model.widths(g) == full:  # the setting just measured
                    losses[g] = metrics["loss"]
                    continue
                model.set_granularity(g)
                losses[g] = measure()["loss"]
        finally:
            model.set_granularity(full)
        metrics["granularities"] = losses
    if out_dir is not None:
        out = Path(out_dir)
        atomic_write_json(out / "metrics.json", metrics)
        metrics["files"] = {"metrics": str(out / "metrics.json")}
        if "granularities" in metrics:
            plot_granularities(metrics["granularities"], out / "granularities.png", title=title)
            metrics["files"]["granularities"] = str(out / "granularities.png")
    per = metrics.get("granularities")
    metrics["headline"] = (f"loss {metrics['loss']:.4f} nats/token   {metrics['bits_per_token']:.3f} bits/token   perplexity "
                           f"{metrics['perplexity']:.2f}   ({metrics['tokens']:,} tokens)"
                           + ("\nper granularity: " + ", ".join(f"{g} {v:.4f}" for g, v in per.items()) if per else ""))
    return metrics


def plot_granularities(losses: dict[str, float], path: Path, title: str = "") -> Path:
    """Validation loss of each nested granularity, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(list(losses), list(losses.values()), marker="o")
    for name, loss in losses.items():
        ax.annotate(f"{loss:.3f}", (name, loss), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.set_xlabel("granularity (MLP width d_ff/8, /4, /2, full)")
    ax.set_ylabel("validation loss (nats per token)")
    ax.set_title(title or "one nested model, four granularities", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


@torch.no_grad()
def evaluate_detection(
    model: nn.Module,
    loader: DataLoader,
    class_names: Sequence[str],
    out_dir: str | Path | None = None,
    *,
    title: str = "",
    progress: bool = True,
    conf: float = 0.25,
) -> dict[str, Any]:
    """COCO metrics of a detector over ``loader``; optionally ``metrics.json``, ``per_class_ap.png`` and
    ``predictions.png`` (the first images with their detections above ``conf``, ground truth in white)."""
    from zoo.errors import DataError
    from zoo.metrics import DetectionMetric

    model.eval()
    device = next(model.parameters()).device
    metric = DetectionMetric(len(class_names), class_names, sync_on_compute=False)
    shown: list[tuple[torch.Tensor, torch.Tensor, dict]] = []
    for images, targets in _batches(loader, progress):
        detections = model(images.to(device)).float().cpu()
        if detections.ndim != 3 or detections.shape[-1] != 6:
            raise DataError(f"{getattr(model, 'zoo_spec', None) and model.zoo_spec.name} is not a detector (output {tuple(detections.shape)})")
        metric.update(detections, targets)
        for image, det, target in zip(images, detections, targets):
            if len(shown) < 8:
                shown.append((image, det[det[:, 4] >= conf], target))
    metrics = metric.compute()
    metrics["classes"] = list(class_names)
    if out_dir is not None:
        out = Path(out_dir)
        atomic_write_json(out / "metrics.json", metrics)
        heading = title or f"mAP@.5 {metrics['map50']:.3f}, mAP@[.5:.95] {metrics['map']:.3f}"
        plot_per_class(metrics["per_class"], metrics["map"], "AP@[.5:.95]", out / "per_class_ap.png", title=heading)
        plot_predictions(shown, class_names, out / "predictions.png", title=heading)
        metrics["files"] = {name: str(out / f"{name}.{ext}") for name, ext in
                            (("metrics", "json"), ("per_class_ap", "png"), ("predictions", "png"))}
    metrics["headline"] = (f"mAP@[.5:.95] {metrics['map']:.4f}   mAP@.5 {metrics['map50']:.4f}   mAP@.75 {metrics['map75']:.4f}   "
                           f"({metrics['images']} images, {metrics['objects']} objects)")
    return metrics


@torch.no_grad()
def evaluate_segmentation(
    model: nn.Module,
    loader: DataLoader,
    class_names: Sequence[str],
    out_dir: str | Path | None = None,
    *,
    title: str = "",
    progress: bool = True,
    ignore_index: int | None = None,
) -> dict[str, Any]:
    """Mean IoU, pixel accuracy and per-class IoU of a segmentation model over ``loader`` (pixels of the ignore index
    left out); optionally ``metrics.json``, ``per_class.md``, ``per_class_iou.png`` and ``predictions.png`` (the first
    images, their ground truth and the prediction, coloured by class with a legend)."""
    from torchmetrics.classification import MulticlassConfusionMatrix

    from zoo.errors import DataError
    from zoo.metrics import segmentation_scores
    from zoo.tasks.segmentation import upsample_to

    model.eval()
    device = next(model.parameters()).device
    n = len(class_names)
    if ignore_index is None:
        ignore_index = getattr(getattr(loader, "dataset", None), "ignore_index", 255)
    confusion = MulticlassConfusionMatrix(n, ignore_index=ignore_index)
    shown: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    for images, masks in _batches(loader, progress):
        logits = model(images.to(device)).float().cpu()
        if logits.ndim != 4 or logits.shape[1] != n:
            name = getattr(getattr(model, "zoo_spec", None), "name", type(model).__name__)
            raise DataError(f"{name} returns {tuple(logits.shape)}, not [B, {n}, H, W] logits for the data's {n} classes "
                            f"({', '.join(class_names[:5])}{', ...' if n > 5 else ''})")
        predicted = upsample_to(logits, masks.shape[-2:]).argmax(1)
        confusion.update(predicted, masks)
        for image, mask, pred in zip(images, masks, predicted):
            if len(shown) < 6:
                shown.append((image, mask, pred))
    metrics = segmentation_scores(confusion.compute(), class_names)
    metrics["classes"], metrics["images"], metrics["ignore_index"] = list(class_names), len(loader.dataset), ignore_index
    if out_dir is not None:
        out = Path(out_dir)
        heading = title or f"mIoU {metrics['miou']:.3f}, pixel accuracy {metrics['pixel_acc']:.3f}"
        atomic_write_json(out / "metrics.json", metrics)
        rows = ["| class | IoU | accuracy |", "|---|---|---|"] + [
            f"| {c} | {metrics['per_class_iou'][c]:.4f} | {metrics['per_class_acc'].get(c, float('nan')):.4f} |"
            for c in class_names if c in metrics["per_class_iou"]]
        atomic_write(out / "per_class.md", lambda tmp: Path(tmp).write_text(
            f"{heading}\n\n" + "\n".join(rows) + f"\n\nmean IoU {metrics['miou']:.4f} over {len(metrics['per_class_iou'])} "
            "classes present in the ground truth or the predictions\n", encoding="utf-8"))
        plot_per_class(metrics["per_class_iou"], metrics["miou"], "IoU", out / "per_class_iou.png", title=heading)
        mean, std = _normalisation(model)
        plot_segmentations(shown, class_names, mean, std, out / "predictions.png", title=heading)
        metrics["files"] = {name: str(out / f"{name}.{ext}") for name, ext in
                            (("metrics", "json"), ("per_class", "md"), ("per_class_iou", "png"), ("predictions", "png"))}
    metrics["headline"] = (f"mIoU {metrics['miou']:.4f}   pixel accuracy {metrics['pixel_acc']:.4f}   "
                           f"mean accuracy {metrics['mean_acc']:.4f}   ({metrics['images']} images)")
    return metrics


def evaluate_depth(
    model: nn.Module,
    loader: DataLoader,
    class_names: Sequence[str] = (),
    out_dir: str | Path | None = None,
    *,
    title: str = "",
    progress: bool = True,
    max_depth: float | None = None,
) -> dict[str, Any]:
    """Depth errors of a depth model over ``loader``, each image's over its valid pixels, averaged over the images
    (:func:`zoo.metrics.depth_errors`); optionally ``metrics.json`` and ``predictions.png`` (the first images, their
    ground truth and the prediction in one colour scale with a colour bar in metres)."""
    from zoo.errors import DataError
    from zoo.metrics import DEPTH_METRICS, depth_errors
    from zoo.tasks.depth import MIN_DEPTH, upsample_depth

    model.eval()
    device = next(model.parameters()).device
    if max_depth is None:
        max_depth = getattr(getattr(loader, "dataset", None), "max_depth", 10.0)
    per_image: dict[str, list[torch.Tensor]] = {k: [] for k in DEPTH_METRICS}
    shown: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    for images, depth in _batches(loader, progress):
        with torch.no_grad():
            pred = model(images.to(device)).float().cpu()
        if pred.ndim != 4 or pred.shape[1] != 1:
            name = getattr(getattr(model, "zoo_spec", None), "name", type(model).__name__)
            raise DataError(f"{name} returns {tuple(pred.shape)}, not [B, 1, H, W] depth: evaluate it on data of its own task")
        pred = upsample_depth(pred, depth.shape[-2:]).clamp(MIN_DEPTH, max_depth)
        for name, values in depth_errors(pred, depth).items():
            per_image[name].append(values)
        shown.extend(zip(images, depth[:, 0], pred[:, 0]))
        shown = shown[:6]
    values = {k: torch.cat(v) for k, v in per_image.items()}
    scored = ~values["rmse"].isnan()
    metrics: dict[str, Any] = {k: float(v[scored].mean()) if scored.any() else float("nan") for k, v in values.items()}
    metrics.update(images=len(loader.dataset), images_with_depth=int(scored.sum()), max_depth=max_depth, unit="metres")
    heading = title or f"RMSE {metrics['rmse']:.3f} m, delta1 {metrics['delta1']:.3f}"
    if out_dir is not None:
        out = Path(out_dir)
        atomic_write_json(out / "metrics.json", metrics)
        mean, std = _normalisation(model)
        plot_depths(shown, mean, std, max_depth, out / "predictions.png", title=heading)
        metrics["files"] = {"metrics": str(out / "metrics.json"), "predictions": str(out / "predictions.png")}
    metrics["headline"] = (f"RMSE {metrics['rmse']:.4f} m   AbsRel {metrics['absrel']:.4f}   delta1 {metrics['delta1']:.4f}   "
                           f"delta2 {metrics['delta2']:.4f}   ({metrics['images_with_depth']} images with depth)")
    return metrics


def plot_depths(samples, mean: Sequence[float], std: Sequence[float], max_depth: float, path: Path, title: str = "") -> Path:
    """One row per image: the image, its ground truth and the prediction in one perceptual colour map (near: dark,
    far: bright; pixels without ground truth grey), one colour bar in metres for the sheet."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(len(samples), 1)
    fig, axes = plt.subplots(rows, 3, figsize=(9.6, 3 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, column in zip(axes[0], ("image", "ground truth", "prediction")):
        ax.set_title(column, fontsize=9)
    cmap = matplotlib.colormaps["magma"].with_extremes(bad="0.6")
    shown = None
    for row, (image, truth, pred) in zip(axes, samples):
        pixels = (image * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]).clamp(0, 1)
        row[0].imshow(pixels.permute(1, 2, 0).numpy())
        row[1].imshow(torch.where(truth > 0, truth, torch.nan).numpy(), cmap=cmap, vmin=0, vmax=max_depth)
        shown = row[2].imshow(pred.numpy(), cmap=cmap, vmin=0, vmax=max_depth)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.9, 1 - 0.35 / fig.get_figheight()))
    if shown is not None:
        bar = fig.colorbar(shown, cax=fig.add_axes((0.91, 0.15, 0.02, 0.7)))
        bar.set_label("depth (m)")
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


def _normalisation(model: nn.Module) -> tuple[Sequence[float], Sequence[float]]:
    """The mean and std the model's inputs were normalised with (to show them as pictures again)."""
    from zoo.registry import IMAGENET_MEAN, IMAGENET_STD

    spec = getattr(model, "zoo_spec", None)
    return (spec.mean, spec.std) if spec is not None else (IMAGENET_MEAN, IMAGENET_STD)


def plot_segmentations(samples, class_names: Sequence[str], mean: Sequence[float], std: Sequence[float], path: Path,
                       title: str = "") -> Path:
    """One row per image: the image, its ground truth and the prediction as class colours over it, and a legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from zoo.predict import overlay_classes, palette

    colours = palette(class_names)
    rows = max(len(samples), 1)
    fig, axes = plt.subplots(rows, 3, figsize=(9, 3 * rows + 0.8), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, column in zip(axes[0], ("image", "ground truth", "prediction")):
        ax.set_title(column, fontsize=9)
    for row, (image, mask, pred) in zip(axes, samples):
        pixels = (image * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]).clamp(0, 1)
        pixels = (pixels * 255).to(torch.uint8)
        for ax, shown in zip(row, (pixels, overlay_classes(pixels, mask, colours), overlay_classes(pixels, pred, colours))):
            ax.imshow(shown.permute(1, 2, 0).numpy())
    fig.legend(handles=[Patch(color=[v / 255 for v in colours[k]], label=name) for k, name in enumerate(class_names[:40])],
               loc="lower center", ncol=min(len(class_names), 6), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    legend_rows = -(-min(len(class_names), 40) // 6)
    fig.tight_layout(rect=(0, (0.25 + 0.2 * legend_rows) / fig.get_figheight(), 1, 1 - 0.35 / fig.get_figheight()))
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


def plot_per_class(values: dict[str, float], mean: float, name: str, path: Path, title: str = "") -> Path:
    """A per-class score as horizontal bars, worst at the top: where to look first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(values.items(), key=lambda kv: kv[1], reverse=True)  # barh draws bottom-up
    fig, ax = plt.subplots(figsize=(7, min(max(2.5, 0.3 * len(items) + 1.5), 24)))
    ax.barh([k for k, _ in items], [v for _, v in items], color="#3b7dd8")
    ax.set_xlim(0, 1)
    ax.set_xlabel(name)
    ax.axvline(mean, color="black", linestyle="--", linewidth=1, label=f"mean {mean:.3f}")
    ax.legend(loc="lower right")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


def plot_predictions(samples, class_names: Sequence[str], path: Path, title: str = "") -> Path:
    """A sheet of images with their detections (coloured, with scores) and ground truth (white)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torchvision.utils import draw_bounding_boxes

    from zoo.predict import draw_detections

    cols = min(4, max(len(samples), 1))
    rows = max(1, -(-len(samples) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (image, det, target) in zip(axes.flat, samples):
        pixels = (image.clamp(0, 1) * 255).to(torch.uint8)
        if len(target["boxes"]):
            pixels = draw_bounding_boxes(pixels, target["boxes"].float(), colors="white", width=1)
        pixels = draw_detections(pixels, det[:, :4], det[:, 4], det[:, 5].long(), list(class_names))
        ax.imshow(pixels.permute(1, 2, 0).numpy())
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


# -- `zoo eval` -------------------------------------------------------------------------------------


@torch.no_grad()
def evaluate_retrieval(
    model: nn.Module,
    loader: DataLoader,
    class_names: Sequence[str] = (),
    out_dir: str | Path | None = None,
    *,
    title: str = "",
    progress: bool = True,
) -> dict[str, Any]:
    """Embed every (image, caption) pair of ``loader`` with an image-text model; retrieval recall@1/5/10 both ways over
    the distinct captions (:func:`zoo.metrics.retrieval_recall`); optionally write ``metrics.json`` and
    ``retrievals.png`` (the first images, each with its caption and the three captions it retrieves)."""
    from zoo.metrics import retrieval_recall

    model.eval()
    device = next(model.parameters()).device
    images, captions, shown = [], [], []
    for x, texts in _batches(loader, progress):
        images.append(model.encode_image(x.to(device)).float().cpu())
        captions.extend(texts)
        if len(shown) < 8:
            shown.extend(x[: 8 - len(shown)].cpu())
    gallery = sorted(set(captions))
    text = torch.cat([model.encode_text(model.tokenize(gallery[i:i + 256]).to(device)).float().cpu()
                      for i in range(0, len(gallery), 256)])
    image_rows = torch.cat(images)
    metrics = retrieval_recall(image_rows, text, captions)
    metrics["headline"] = (f"image-to-text R@1 {metrics['i2t_r1']:.2%}  R@5 {metrics['i2t_r5']:.2%}   text-to-image R@1 "
                           f"{metrics['t2i_r1']:.2%}  R@5 {metrics['t2i_r5']:.2%}   ({metrics['pairs']} pairs, {metrics['captions']} captions)")
    if out_dir is not None:
        out = Path(out_dir)
        files = {"metrics": str(out / "metrics.json"), "retrievals": str(out / "retrievals.png")}
        atomic_write_json(out / "metrics.json", {k: v for k, v in metrics.items() if k != "headline"})
        top = (image_rows[: len(shown)] @ text.T).topk(min(3, len(gallery)), dim=1).indices
        pre = model.zoo_spec.preprocessing() if hasattr(model, "zoo_spec") else {}
        _plot_retrievals(shown, captions[: len(shown)], [[gallery[j] for j in row] for row in top.tolist()], pre,
                         out / "retrievals.png", title or metrics["headline"])
        metrics["files"] = files
    return metrics


def _plot_retrievals(images, truths, retrieved, pre: dict, path: Path, title: str) -> None:
    """One row per image: the image (un-normalised) beside its caption and the captions it retrieved, the right one in
    green."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mean = torch.tensor(pre.get("mean", (0.0, 0.0, 0.0))).view(3, 1, 1)
    std = torch.tensor(pre.get("std", (1.0, 1.0, 1.0))).view(3, 1, 1)
    fig, axes = plt.subplots(len(images), 2, figsize=(7, 1.3 * len(images)), gridspec_kw={"width_ratios": [1, 4]}, squeeze=False)
    for (ax_image, ax_text), image, truth, found in zip(axes, images, truths, retrieved):
        ax_image.imshow((image * std + mean).clamp(0, 1).permute(1, 2, 0).numpy())
        ax_image.axis("off")
        ax_text.axis("off")
        ax_text.text(0, 0.85, f"caption: {truth}", fontsize=8, weight="bold", transform=ax_text.transAxes)
        for rank, text in enumerate(found, 1):
            ax_text.text(0, 0.85 - 0.25 * rank, f"{rank}. {text}", fontsize=8, transform=ax_text.transAxes,
                         color="tab:green" if text == truth else "tab:red")
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def eval_row(spec, source: str):
    """The task-table row that evaluates ``spec`` on data of ``source``: its own task's, or a task that also takes it
    (an image-text model on captions: retrieval)."""
    from zoo.task_table import TASKS

    row = TASKS[spec.task]
    if source in row.part("data_sources"):
        return row
    return next((r for r in TASKS.values() if r.trains(spec) and source in r.part("data_sources")),
                row)


def data_module(spec, overrides: Sequence[str], *, with_train: bool = True, match_classes: bool = True):
    """The data module ``zoo eval`` (and ``zoo quantize``) builds for ``spec`` from ``data=NAME data.KEY=VALUE``
    overrides, in the model's own preprocessing unless asked otherwise; checked against the model's classes (unless
    ``match_classes=False``: a zero-shot model takes the data's). Returns ``(data, cfg)``."""
    from hydra import compose, initialize_config_dir

    from zoo.config import check_group_choice, conf_dir
    from zoo.errors import ConfigError, DataError
    from zoo.task_table import TASKS

    row = TASKS[spec.task]
    overrides = list(overrides)
    for o in overrides:
        if o.startswith("data="):
            check_group_choice("data", o.split("=", 1)[1])
    if not any(o.startswith("data=") for o in overrides):
        overrides = [f"data={row.default_data}", *overrides]
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = compose("eval", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(f"data overrides {' '.join(overrides)!r}: {' '.join(str(e).split())} "
                          "(keys of a data config: `zoo train recipe=quickstart --cfg job`)") from None
    given = {o.split("=", 1)[0].lstrip("+") for o in overrides}
    for key in ("img_size", "crop_pct"):  # the model's own preprocessing unless asked otherwise
        if f"data.{key}" not in given and key in cfg.data:
            cfg.data[key] = None
    row = eval_row(spec, cfg.data.source)
    sources = row.part("data_sources")
    if cfg.data.source not in sources:
        raise DataError(f"{spec.name} is a {spec.task} model; evaluate it on {row.data_kind} (a data config whose source "
                        f"is {', '.join(sources)}; e.g. data={row.default_data}), not data={cfg.data.source}")
    DataModule = row.part("data_module")
    data = DataModule(cfg.data, spec, seed=cfg.seed, with_train=with_train)
    if not match_classes:
        return data, cfg
    if spec.num_classes != data.num_classes:  # a language model's vocabulary against the data's
        raise DataError(f"{spec.name} predicts {spec.num_classes} classes but the data has {data.num_classes}; evaluate on matching data")
    if spec.labels is not None and list(spec.labels) != list(data.classes):
        raise DataError(f"the model's labels ({', '.join(spec.labels[:5])}, ...) differ from the data's ({', '.join(data.classes[:5])}, ...)")
    return data, cfg


def main(argv: list[str]) -> int:
    """``zoo eval MODEL_OR_RUN [data=NAME] [data.KEY=VALUE ...] [--out DIR]``."""
    import argparse
    from datetime import datetime

    import zoo

    parser = argparse.ArgumentParser(prog="zoo eval", add_help=False)
    parser.add_argument("source")
    parser.add_argument("--out")
    parser.add_argument("--labels")
    args, overrides = parser.parse_known_args(argv)
    model = zoo.load(args.source).eval()
    spec = model.zoo_spec
    from zoo.api import zero_shot
    from zoo.errors import DataError

    zero = zero_shot(model) and (not spec.num_classes or args.labels is not None)
    data, cfg = data_module(spec, overrides, with_train=False, match_classes=not zero)
    row = eval_row(spec, cfg.data.source)
    zero = zero and row.name == "classification"
    if zero:  # an image-text model classifies into the data's classes, prompted by their names (or --labels)
        names = [n.strip() for n in args.labels.split(",")] if args.labels else list(data.classes)
        if len(names) != data.num_classes or not all(names):
            raise DataError(f"--labels must name the data's {data.num_classes} classes in order ({', '.join(data.classes[:10])}), "
                            f"comma-separated; got {len(names)} names")
        model = zoo.load(args.source, labels=names).eval()
        print(f"zero-shot: {data.num_classes} classes prompted as " + ", ".join(names[:10]) + (", ..." if len(names) > 10 else ""))
        spec = model.zoo_spec
    source = Path(args.source)
    if args.out:
        out = Path(args.out)
    elif source.is_dir():
        out = source / f"eval-{cfg.data.source}"
    else:
        out = Path("runs") / "eval" / spec.name / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    title = f"{spec.name} on {cfg.data.source} (val)"
    print(f"{spec.name} on {data.describe()}")
    metrics = row.part("evaluate")(model, data.val_dataloader(), data.classes, out, title=title)
    print(metrics["headline"])
    print("wrote " + ", ".join(metrics["files"].values()))
    return 0
