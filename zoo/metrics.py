"""COCO-style detection metrics (mAP@[.5:.95], mAP@.5, ..., per-class AP).

The numbers come from ``faster-coco-eval``: a C++ reimplementation of pycocotools' ``COCOeval`` that gives
the same numbers (it is a drop-in replacement, ``init_as_pycocotools``) many times faster, so a full
validation pass can run every epoch without pycocotools' Python per-image loop being the bottleneck.
Everything is built in memory; nothing is written to disk.

Conventions (the zoo's detector output): a prediction row is ``(x1, y1, x2, y2, score, class)`` with
classes ``0..K-1``; rows with ``score <= 0`` are padding. COCO category ids are ``class + 1``. Where
COCOeval reports "undefined" (-1, e.g. no ground truth of any size), these functions report 0.0.
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

    images, gts, dts, objects = [], [], [], 0
    for i, (pred, target) in enumerate(zip(predictions, targets)):
        image_id = i + 1  # our own ids: COCO wants them unique, callers' ids often restart per batch
        images.append({"id": image_id})
        boxes, labels = _target_arrays(target, i, num_classes)
        crowd = {"boxes": target.get("crowd_boxes", torch.zeros(0, 4)), "labels": target.get("crowd_labels", torch.zeros(0))}
        crowd_boxes, crowd_labels = _target_arrays(crowd, i, num_classes)
        for is_crowd, group_boxes, group_labels in ((0, boxes, labels), (1, crowd_boxes, crowd_labels)):
            for (x1, y1, x2, y2), label in zip(group_boxes.tolist(), group_labels.tolist()):
                w, h = x2 - x1, y2 - y1
                gts.append({"id": len(gts) + 1, "image_id": image_id, "category_id": label + 1,
                            "bbox": [x1, y1, w, h], "area": w * h, "iscrowd": is_crowd})
                objects += 1 - is_crowd
        for x1, y1, x2, y2, score, cls in _prediction_rows(pred, i, num_classes, max_dets).tolist():
            dts.append({"image_id": image_id, "category_id": int(cls) + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "score": score})

    result: dict[str, Any] = {"map": 0.0, "map50": 0.0, "map75": 0.0, **{f"map_{a}": 0.0 for a in _AREAS},
                              f"mar{max_dets}": 0.0, "per_class": {n: 0.0 for n in names},
                              "images": len(images), "objects": objects}
    if not objects:  # nothing to find: every COCO number is undefined
        return result

    from faster_coco_eval import COCO, COCOeval_faster

    def silent(*args, **kwargs) -> None:
        return None

    categories = [{"id": k + 1, "name": name} for k, name in enumerate(names)]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO({"images": images, "annotations": gts, "categories": categories}, print_function=silent)
        coco_dt = coco_gt.loadRes(dts)
        coco_dt.print_function = silent
        evaluator = COCOeval_faster(coco_gt, coco_dt, iouType="bbox", print_function=silent)
        if max_dets != 100:
            evaluator.params.maxDets = sorted({1, 10, max_dets})
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats_as_dict
    last = evaluator.params.maxDets[-1]
    ar_key = "AR_third" if evaluator.params.maxDets == [1, 10, 100] else f"AR_{last}"
    result.update(
        map=_defined(stats["AP_all"]), map50=_defined(stats["AP_50"]), map75=_defined(stats["AP_75"]),
        **{f"map_{a}": _defined(stats[f"AP_{a}"]) for a in _AREAS},
        **{f"mar{max_dets}": _defined(stats[ar_key])},
    )
    precision = evaluator.eval["precision"]  # [IoU thresholds, recall points, K, area ranges, maxDets]
    for k, name in enumerate(names):
        p = precision[:, :, k, 0, -1]
        valid = p[p > -1]
        result["per_class"][name] = float(valid.mean()) if valid.size else 0.0
    return result


def _defined(value: float) -> float:
    return 0.0 if value < 0 else float(value)


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


class DetectionMetric:
    """Collects a validation loop's detections and targets (on the CPU) and scores them at the end.

    COCO AP ranks detections over the whole dataset, so it cannot be averaged over batches: ``update``
    only stores, ``compute`` evaluates everything at once. Plain Python, so it works in any loop.
    """

    def __init__(self, num_classes: int, class_names: Sequence[str] | None = None, *, max_dets: int = 100) -> None:
        self.num_classes, self.class_names, self.max_dets = num_classes, class_names, max_dets
        self.reset()

    def reset(self) -> None:
        self.predictions: list[torch.Tensor] = []
        self.targets: list[dict[str, Any]] = []

    def update(self, detections: torch.Tensor | Sequence[torch.Tensor], targets: Sequence[dict[str, Any]]) -> None:
        """``detections``: ``[B, K, 6]`` (or B tensors ``[n, 6]``); ``targets``: B dicts (boxes, labels)."""
        if len(detections) != len(targets):
            raise BadArgumentError(f"update got detections for {len(detections)} images but {len(targets)} targets")
        for det, target in zip(detections, targets):
            det = torch.as_tensor(det).detach().float().reshape(-1, 6)
            det = det[det[:, 4] > 0]  # drop padding before it reaches host memory
            det = det[det[:, 4].argsort(descending=True, stable=True)[: self.max_dets]].cpu()
            kept = {"boxes": torch.as_tensor(target["boxes"]).detach().cpu().float(),
                    "labels": torch.as_tensor(target["labels"]).detach().cpu().long()}
            if "crowd_boxes" in target:  # regions whose detections COCO neither rewards nor penalises
                kept["crowd_boxes"] = torch.as_tensor(target["crowd_boxes"]).detach().cpu().float()
                kept["crowd_labels"] = torch.as_tensor(target["crowd_labels"]).detach().cpu().long()
            if "image_id" in target:
                image_id = target["image_id"]
                kept["image_id"] = image_id.cpu() if torch.is_tensor(image_id) else image_id
            self.predictions.append(det)
            self.targets.append(kept)

    def compute(self) -> dict[str, Any]:
        return coco_detection_metrics(self.predictions, self.targets, self.num_classes, self.class_names,
                                      max_dets=self.max_dets)

    def __len__(self) -> int:
        return len(self.targets)
