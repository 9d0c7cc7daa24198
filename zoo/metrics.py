"""Task metrics the libraries do not report in the zoo's form: COCO-style detection metrics (mAP@[.5:.95], mAP@.5,
..., per-class AP) and segmentation scores (mean IoU, pixel accuracy, per-class IoU from torchmetrics' confusion
matrix), image-text retrieval recall (torchmetrics' hit rate, over captions that may repeat) and monocular depth errors
(the NYU Depth v2 set of Eigen et al., which no library computes over valid pixels per image).

torchmetrics' ``MeanAveragePrecision`` does the work with the ``faster_coco_eval`` backend (a C++
reimplementation of pycocotools' ``COCOeval`` that gives the same numbers many times faster), and as a
torchmetrics ``Metric`` it gathers every process's detections itself under DDP. This module adapts it to the
zoo's conventions and checks its inputs: a prediction row is ``(x1, y1, x2, y2, score, class)`` with classes
``0..K-1``; rows with ``score <= 0`` are padding. Where COCOeval reports "undefined" (-1, e.g. no ground truth
of any size), these functions report 0.0; every one of the K classes gets a per-class AP (0.0 without ground
truth).
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import torch

from zoo.errors import BadArgumentError

_AREAS = ("small", "medium", "large")


def coco_detection_metrics(
    predictions: Sequence[torch.Tensor],
    targets: Sequence[dict[str, Any]],
    num_classes: int,
    class_names: Sequence[str] | None = None,
    *,
    max_dets: int = 100,
) -> dict[str, Any]:
    """COCO bbox metrics for per-image predictions against per-image targets (paired by position).

    Args:
        predictions: one ``[n, 6]`` tensor per image, ``(x1, y1, x2, y2, score, class)``; rows with
            ``score <= 0`` are ignored.
        targets: one dict per image with ``boxes`` (``[m, 4]`` xyxy, same pixels as the predictions) and
            ``labels`` (``[m]``, ``0..K-1``); ``image_id`` is optional and only informational: images are
            paired with predictions by position, so ids repeated across batches do no harm. Optional
            ``crowd_boxes``/``crowd_labels``: COCO crowd regions (``iscrowd=1``), where detections are
            neither matched nor counted as false positives.
        num_classes: K. Every class is a COCO category, whether or not the data contains it.
        class_names: names for ``per_class`` (default ``"0"``, ``"1"``, ...).
        max_dets: detections kept per image, highest scores first (COCO's standard 100; the AR key is
            ``f"mar{max_dets}"``).

    Returns ``map`` (AP@[.5:.95]), ``map50``, ``map75``, ``map_small``/``_medium``/``_large``,
    ``mar100``, ``per_class`` ({name: AP@[.5:.95]}, 0.0 for classes without ground truth), ``images``
    and ``objects`` (ground-truth boxes).
    """
    if len(predictions) != len(targets):
        raise BadArgumentError(f"got predictions for {len(predictions)} images but targets for {len(targets)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise BadArgumentError(f"num_classes must be a whole number >= 1, not {num_classes!r}")
    if isinstance(max_dets, bool) or not isinstance(max_dets, int) or max_dets < 1:
        raise BadArgumentError(f"max_dets must be a whole number >= 1, not {max_dets!r}")
    names = [str(i) for i in range(num_classes)] if class_names is None else [str(n) for n in class_names]
    if len(names) != num_classes:
        raise BadArgumentError(f"{len(names)} class_names for {num_classes} classes")

    metric = DetectionMetric(num_classes, names, max_dets=max_dets, sync_on_compute=False)
    metric.update(list(predictions), list(targets))
    return metric.compute()


def _mean_average_precision(max_dets: int):
    import numpy as np
    from torchmetrics.detection import MeanAveragePrecision

    # COCOeval's own thresholds, in float64: torchmetrics' defaults come from a float32 linspace (0.550000011...),
    # which moves matches that sit on a threshold.
    return MeanAveragePrecision(box_format="xyxy", iou_type="bbox", class_metrics=True, backend="faster_coco_eval",
                                max_detection_thresholds=sorted({1, 10, max_dets}), sync_on_compute=False,
                                iou_thresholds=np.linspace(0.5, 0.95, 10).tolist(), rec_thresholds=np.linspace(0.0, 1.0, 101).tolist())


def _result(metric, names: Sequence[str], max_dets: int, *, images: int, objects: int) -> dict[str, Any]:
    result: dict[str, Any] = {"map": 0.0, "map50": 0.0, "map75": 0.0, **{f"map_{a}": 0.0 for a in _AREAS},
                              f"mar{max_dets}": 0.0, "per_class": {n: 0.0 for n in names},
                              "images": images, "objects": objects}
    if not objects:  # nothing to find: every COCO number is undefined
        return result
    import logging

    quiet = logging.getLogger("faster_coco_eval")  # it logs COCOeval's summary table at INFO
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # setLevel, not the attribute: it also clears the loggers' cached levels
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            stats = metric.compute()
    finally:
        quiet.setLevel(level)
    result.update(
        map=_defined(stats["map"]), map50=_defined(stats["map_50"]), map75=_defined(stats["map_75"]),
        **{f"map_{a}": _defined(stats[f"map_{a}"]) for a in _AREAS},
        **{f"mar{max_dets}": _defined(stats[f"mar_{max_dets}"])},
    )
    classes = stats["classes"].reshape(-1).tolist()
    for k, ap in zip(classes, stats["map_per_class"].reshape(-1).tolist()):
        result["per_class"][names[int(k)]] = _defined(ap)
    return result


def _defined(value) -> float:
    value = float(value)
    return 0.0 if value < 0 else value


def _target_arrays(target: dict[str, Any], i: int, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        boxes = torch.as_tensor(target["boxes"]).detach().cpu().float().reshape(-1, 4)
        labels = torch.as_tensor(target["labels"]).detach().cpu().long().reshape(-1)
    except (KeyError, TypeError, RuntimeError) as e:
        raise BadArgumentError(f"target {i} must be a dict with boxes [m, 4] and labels [m] ({e})") from None
    if len(boxes) != len(labels):
        raise BadArgumentError(f"target {i} has {len(boxes)} boxes but {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise BadArgumentError(f"target {i} has label {int(labels.max())} outside 0..{num_classes - 1}")
    return boxes, labels


def _prediction_rows(pred: torch.Tensor, i: int, num_classes: int, max_dets: int) -> torch.Tensor:
    pred = torch.as_tensor(pred).detach().cpu().float()
    if pred.numel() == 0:
        return pred.reshape(0, 6)
    if pred.ndim != 2 or pred.shape[1] != 6:
        raise BadArgumentError(f"predictions for image {i} must be [n, 6] (x1, y1, x2, y2, score, class), not {tuple(pred.shape)}")
    pred = pred[pred[:, 4] > 0]
    pred = pred[pred[:, 4].argsort(descending=True, stable=True)[:max_dets]]
    classes = pred[:, 5]
    if len(classes) and (classes.min() < 0 or classes.max() >= num_classes):
        raise BadArgumentError(f"predictions for image {i} have class {int(classes.max())} outside 0..{num_classes - 1}")
    return pred


def _metric_base():
    from torchmetrics import Metric

    return Metric


class DetectionMetric(_metric_base()):
    """A validation loop's COCO metrics: ``update`` per batch, ``compute`` at the end over everything seen (COCO AP
    ranks detections over the whole dataset, so it cannot be averaged over batches).

    A torchmetrics ``Metric``: under DDP, ``compute`` gathers every process's images first. Lightning's distributed
    sampler repeats a few images to give every rank as many steps, so there an image is counted once by its
    ``image_id`` (targets without one are all counted); in one process every image counts, whatever its id."""

    full_state_update = False

    def __init__(self, num_classes: int, class_names: Sequence[str] | None = None, *, max_dets: int = 100,
                 sync_on_compute: bool = True) -> None:
        """``sync_on_compute=False``: this process's images only (an evaluation that runs on one rank)."""
        super().__init__(sync_on_compute=sync_on_compute)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise BadArgumentError(f"num_classes must be a whole number >= 1, not {num_classes!r}")
        self.num_classes, self.max_dets = num_classes, max_dets
        self.names = [str(i) for i in range(num_classes)] if class_names is None else [str(n) for n in class_names]
        # One row per detection / ground-truth box, keyed by image: concatenated, so DDP gathers each in one call.
        self.add_state("detections", [], dist_reduce_fx="cat")  # slot, x1, y1, x2, y2, score, class
        self.add_state("truths", [], dist_reduce_fx="cat")  # slot, x1, y1, x2, y2, label, iscrowd
        self.add_state("images", [], dist_reduce_fx="cat")  # slot (unique to this update), image key
        self._updates = 0

    def update(self, detections: torch.Tensor | Sequence[torch.Tensor], targets: Sequence[dict[str, Any]]) -> None:
        """``detections``: ``[B, K, 6]`` (or B tensors ``[n, 6]``); ``targets``: B dicts (boxes, labels, optional
        image_id and crowd_boxes/crowd_labels)."""
        if len(detections) != len(targets):
            raise BadArgumentError(f"update got detections for {len(detections)} images but {len(targets)} targets")
        for i, (det, target) in enumerate(zip(detections, targets)):
            boxes, labels = _target_arrays(target, i, self.num_classes)
            crowd = {"boxes": target.get("crowd_boxes", torch.zeros(0, 4)), "labels": target.get("crowd_labels", torch.zeros(0))}
            crowd_boxes, crowd_labels = _target_arrays(crowd, i, self.num_classes)
            det = _prediction_rows(det, i, self.num_classes, self.max_dets)
            slot = float(self._updates * self.world_size + self.rank)
            self._updates += 1
            shared = self.sync_on_compute and self.world_size > 1 and "image_id" in target  # another rank may have it too
            key = float(target["image_id"]) if shared else -1.0 - slot
            truth = torch.cat([torch.cat([boxes, labels[:, None].float(), torch.zeros(len(labels), 1)], 1),
                               torch.cat([crowd_boxes, crowd_labels[:, None].float(), torch.ones(len(crowd_labels), 1)], 1)])
            self.detections.append(torch.cat([torch.full((len(det), 1), slot), det], 1).to(self.device, torch.float64))
            self.truths.append(torch.cat([torch.full((len(truth), 1), slot), truth], 1).to(self.device, torch.float64))
            self.images.append(torch.tensor([[slot, key]], dtype=torch.float64, device=self.device))

    @property
    def rank(self) -> int:
        return torch.distributed.get_rank() if torch.distributed.is_available() and torch.distributed.is_initialized() else 0

    @property
    def world_size(self) -> int:
        return torch.distributed.get_world_size() if torch.distributed.is_available() and torch.distributed.is_initialized() else 1

    def compute(self) -> dict[str, Any]:
        def rows(state, width: int) -> torch.Tensor:  # a list before any sync, one tensor after it
            if not torch.is_tensor(state):
                state = torch.cat(state) if state else torch.zeros(0)
            return state.cpu().reshape(-1, width)

        def by_slot(table: torch.Tensor) -> dict[float, torch.Tensor]:  # one sort, not one scan per image
            table = table[table[:, 0].argsort(stable=True)]
            slots, counts = torch.unique_consecutive(table[:, 0], return_counts=True)
            return dict(zip(slots.tolist(), table.split(counts.tolist())))

        images, detections, truths = rows(self.images, 2), by_slot(rows(self.detections, 7)), by_slot(rows(self.truths, 7))
        metric, seen, objects, none = _mean_average_precision(self.max_dets), set(), 0, torch.zeros(0, 7, dtype=torch.float64)
        for slot, key in images.tolist():
            if key in seen:  # the same image from another rank
                continue
            seen.add(key)
            det, truth = detections.get(slot, none), truths.get(slot, none)
            crowd = truth[:, 6] > 0
            metric.update([{"boxes": det[:, 1:5].float(), "scores": det[:, 5].float(), "labels": det[:, 6].long()}],
                          [{"boxes": truth[:, 1:5].float(), "labels": truth[:, 5].long(), "iscrowd": crowd.long()}])
            objects += int((~crowd).sum())
        return _result(metric, self.names, self.max_dets, images=len(seen), objects=objects)

    def __len__(self) -> int:
        return len(self.images)


def segmentation_scores(confusion: torch.Tensor, class_names: Sequence[str]) -> dict[str, Any]:
    """Mean IoU, pixel accuracy and per-class IoU/accuracy from a ``[K, K]`` confusion matrix (rows: truth, columns:
    prediction; ignored pixels already left out), as mmsegmentation reports them: a class that appears neither in
    the ground truth nor in the predictions has no IoU and is left out of the mean."""
    confusion = confusion.double().cpu()
    if confusion.shape != (len(class_names), len(class_names)):
        raise BadArgumentError(f"a {tuple(confusion.shape)} confusion matrix for {len(class_names)} classes")
    hits, truth, predicted = confusion.diag(), confusion.sum(1), confusion.sum(0)
    union = truth + predicted - hits
    iou = torch.where(union > 0, hits / union.clamp(min=1), torch.full_like(hits, float("nan")))
    accuracy = torch.where(truth > 0, hits / truth.clamp(min=1), torch.full_like(hits, float("nan")))
    present = ~iou.isnan()
    return {
        "miou": float(iou[present].mean()) if present.any() else 0.0,
        "pixel_acc": float(hits.sum() / confusion.sum().clamp(min=1)),
        "mean_acc": float(accuracy[~accuracy.isnan()].mean()) if (~accuracy.isnan()).any() else 0.0,
        "pixels": int(confusion.sum()),
        "per_class_iou": {str(n): float(v) for n, v, ok in zip(class_names, iou, present) if ok},
        "per_class_acc": {str(n): float(v) for n, v in zip(class_names, accuracy) if not v.isnan()},
    }


def retrieval_recall(image_embeddings: torch.Tensor, text_embeddings: torch.Tensor, captions: Sequence[str],
                     ks: Sequence[int] = (1, 5, 10)) -> dict[str, Any]:
    """Recall@k both ways for N (image, caption) pairs whose captions may repeat (a synthetic set's do).

    ``text_embeddings`` holds one row per *distinct* caption, in ``sorted(set(captions))`` order: the text gallery.
    Image to text: an image hits when its own caption is among its k most similar distinct captions. Text to image:
    each distinct caption queries the N images and hits when any image it captions is among its k most similar. With
    unique captions these are the usual CLIP retrieval recalls."""
    from torchmetrics.retrieval import RetrievalHitRate

    gallery = sorted(set(captions))
    if text_embeddings.shape[0] != len(gallery):
        raise BadArgumentError(f"text_embeddings has {text_embeddings.shape[0]} rows for {len(gallery)} distinct captions")
    position = {c: i for i, c in enumerate(gallery)}
    similarity = image_embeddings.float().cpu() @ text_embeddings.float().cpu().T  # [N, U]
    relevant = torch.zeros_like(similarity, dtype=torch.bool)
    relevant[torch.arange(len(captions)), torch.tensor([position[c] for c in captions])] = True

    def hit_rate(scores: torch.Tensor, targets: torch.Tensor, k: int) -> float:  # one query per row
        queries = torch.arange(scores.shape[0])[:, None].expand_as(scores)
        return RetrievalHitRate(top_k=k)(scores.flatten(), targets.flatten(), indexes=queries.flatten()).item()

    result: dict[str, Any] = {"pairs": len(captions), "captions": len(gallery)}
    for k in ks:
        result[f"i2t_r{k}"] = hit_rate(similarity, relevant, k)
        result[f"t2i_r{k}"] = hit_rate(similarity.T, relevant.T, k)
    return result


DEPTH_METRICS = ("rmse", "mae", "absrel", "log10", "delta1", "delta2", "delta3")


def depth_errors(pred: torch.Tensor, target: torch.Tensor, min_depth: float = 1e-3) -> dict[str, torch.Tensor]:
    """Each image's depth errors over its valid pixels (``target > 0``), as Eigen et al. (arXiv:1406.2283) defined them
    and FastDepth reports them: RMSE and mean absolute error in metres, mean absolute relative error ``|p - t| / t``,
    mean ``|log10 p - log10 t|``, and the fraction of pixels with ``max(p / t, t / p)`` below 1.25, 1.25^2, 1.25^3.
    ``pred`` and ``target`` are ``[B, 1, H, W]`` metres; predictions are clamped to ``min_depth`` first (logs and
    ratios need them positive). Returns ``{name: [B]}``; an image without valid pixels gets NaN."""
    if pred.shape != target.shape:
        raise BadArgumentError(f"depth prediction {tuple(pred.shape)} and ground truth {tuple(target.shape)} differ in shape")
    p = pred.detach().double().flatten(1).clamp(min=min_depth)
    t = target.detach().double().flatten(1)
    valid = t > 0
    count = valid.sum(1).double()
    t = torch.where(valid, t, torch.ones_like(t))

    def mean(x: torch.Tensor) -> torch.Tensor:
        return torch.where(valid, x, torch.zeros_like(x)).sum(1) / count

    ratio = torch.maximum(p / t, t / p)
    errors = {
        "rmse": mean((p - t) ** 2).sqrt(),
        "mae": mean((p - t).abs()),
        "absrel": mean((p - t).abs() / t),
        "log10": mean((p.log10() - t.log10()).abs()),
        **{f"delta{k}": mean((ratio < 1.25 ** k).double()) for k in (1, 2, 3)},
    }
    return {k: v.float() for k, v in errors.items()}
