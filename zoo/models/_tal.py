"""Task-aligned label assignment and the YOLOv10 dual-assignment detection loss.

Why this is hand-written: no permissively licensed library ships the task-aligned assigner together
with the distribution focal loss in the form the YOLOv8/YOLOv10 heads need; the reference
implementations (ultralytics, THU-MIG/yolov10) are AGPL-3.0, so this module is written from the papers
and was not derived from that code. Only ``torchvision.ops.complete_box_iou_loss`` is reused.

References:

* Task-aligned assignment (TAL): C. Feng, Y. Zhong, Y. Gao, M. R. Scott, W. Huang, "TOOD: Task-aligned
  One-stage Object Detection", ICCV 2021, arXiv:2108.07755. The alignment metric
  ``t = s**alpha * u**beta`` (``s`` = the predicted score of the object's class, ``u`` = the IoU of the
  predicted box with the object; measured as CIoU clamped at 0, as the YOLOv8/v10 recipes do) picks the
  top-k anchors per object, and the classification targets are the metric normalised so that the best
  anchor of an object gets that object's best overlap.
* Distribution focal loss (DFL): X. Li et al., "Generalized Focal Loss: Learning Qualified and
  Distributed Bounding Boxes for Dense Object Detection", NeurIPS 2020, arXiv:2006.04388. Each box side
  is a distance predicted as a discrete distribution over ``reg_max`` bins; the loss is a two-hot
  cross-entropy on the two bins around the real-valued target distance.
* Consistent dual assignments: A. Wang et al., "YOLOv10: Real-Time End-to-End Object Detection",
  NeurIPS 2024, arXiv:2405.14458. A one-to-many head (top-10) and a one-to-one head (top-1) are trained
  together with the same matching metric (alpha 0.5, beta 6), so that the NMS-free one-to-one head
  learns to pick the same anchor the one-to-many head ranks best.

Conventions. The head emits, per pyramid level, ``[B, 4 * reg_max + nc, H, W]``: channels
``0 .. 4*reg_max-1`` are box-distribution logits for the sides (left, top, right, bottom) with
``reg_max`` bins each (bin ``k`` means a distance of ``k`` strides), the rest are class logits. Levels
are flattened to ``[B, C, H*W]`` and concatenated in order (P3, P4, P5), giving ``A`` anchors; the
anchor at row ``i``, column ``j`` of a level with stride ``s`` sits at pixel ``((j+0.5)s, (i+0.5)s)``.
Boxes are ``xyxy`` in input pixels.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import complete_box_iou_loss

__all__ = [
    "make_anchors",
    "decode_distribution",
    "distances_to_boxes",
    "TaskAlignedAssigner",
    "DetectionLoss",
    "DualAssignmentLoss",
]


def make_anchors(
    sizes: Sequence[tuple[int, int]],
    strides: Sequence[int],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """Anchor points of every level, in pixels, and the stride of each.

    ``sizes`` are the ``(H, W)`` of each level, ``strides`` their strides. Returns ``points [A, 2]``
    (x, y of cell centres: ``((j + 0.5) * s, (i + 0.5) * s)``) and ``stride [A, 1]``, levels in the
    given order, row-major within a level (the order of ``feat.flatten(2)``). Only tensor ops, so it
    traces/exports; the Python loop is over levels, not pixels.
    """
    points, stride_list = [], []
    for (h, w), s in zip(sizes, strides):
        ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) * s
        xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) * s
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack((xx, yy), dim=-1).reshape(-1, 2))
        stride_list.append(torch.full_like(points[-1][:, :1], float(s)))  # no size arithmetic: exporters trace it
    return torch.cat(points, dim=0), torch.cat(stride_list, dim=0)


def decode_distribution(logits: Tensor, reg_max: int | None = None) -> Tensor:
    """Expected distance of each side: ``sum_k softmax(logits)_k * k``.

    ``logits`` is ``[B, 4, reg_max, A]`` or ``[B, 4 * reg_max, A]`` (then ``reg_max`` defaults to
    ``C // 4``). Returns ``[B, A, 4]`` (left, top, right, bottom) in stride units, in the input dtype.
    """
    if logits.dim() == 3:
        b, c, a = logits.shape
        reg_max = reg_max or c // 4
        logits = logits.reshape(b, 4, reg_max, a)
    elif logits.dim() != 4:
        raise ValueError(f"expected [B,4,R,A] or [B,4R,A] logits, got shape {tuple(logits.shape)}")
    r = logits.shape[2]
    probs = logits.softmax(dim=2)
    bins = torch.arange(r, device=logits.device, dtype=probs.dtype).view(1, 1, r, 1)
    return (probs * bins).sum(dim=2).transpose(1, 2)


def distances_to_boxes(distances: Tensor, points: Tensor, stride: Tensor) -> Tensor:
    """``[..., A, 4]`` ltrb distances in stride units + anchor ``points [A, 2]``, ``stride [A, 1]`` ->
    ``xyxy`` pixel boxes ``[..., A, 4]``."""
    d = distances * stride
    return torch.cat((points - d[..., :2], points + d[..., 2:]), dim=-1)


def _pairwise_ciou(gt: Tensor, pred: Tensor, eps: float = 1e-7) -> Tensor:
    """Complete IoU (Zheng et al., AAAI 2020, arXiv:1911.08287) of ``gt [B, M, 4]`` with ``pred [B, A, 4]``
    -> ``[B, M, A]``, clamped at 0: IoU minus the normalised centre distance and an aspect-ratio term.
    The task-aligned metric of the YOLOv8/v10 reference recipes measures overlap this way."""
    iou = _pairwise_iou(gt, pred)
    gx1, gy1, gx2, gy2 = (v.unsqueeze(2) for v in gt.unbind(-1))  # [B, M, 1] each
    px1, py1, px2, py2 = (v.unsqueeze(1) for v in pred.unbind(-1))  # [B, 1, A] each
    cw = torch.maximum(gx2, px2) - torch.minimum(gx1, px1)
    ch = torch.maximum(gy2, py2) - torch.minimum(gy1, py1)
    diagonal = cw.pow(2) + ch.pow(2) + eps
    centres = ((px1 + px2 - gx1 - gx2).pow(2) + (py1 + py2 - gy1 - gy2).pow(2)) / 4
    gw, gh = (gx2 - gx1).clamp(min=0), (gy2 - gy1).clamp(min=eps)
    pw, ph = (px2 - px1).clamp(min=0), (py2 - py1).clamp(min=eps)
    v = (4 / math.pi**2) * (torch.atan(pw / ph) - torch.atan(gw / gh)).pow(2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return (iou - (centres / diagonal + v * alpha)).clamp_(min=0.0)


def _pairwise_iou(gt: Tensor, pred: Tensor) -> Tensor:
    """IoU of ``gt [B, M, 4]`` with ``pred [B, A, 4]`` -> ``[B, M, A]``, clamped to ``[0, 1]``."""
    gx1, gy1, gx2, gy2 = (v.unsqueeze(2) for v in gt.unbind(-1))  # [B, M, 1] each
    px1, py1, px2, py2 = (v.unsqueeze(1) for v in pred.unbind(-1))  # [B, 1, A] each
    iw = (torch.minimum(gx2, px2) - torch.maximum(gx1, px1)).clamp_(min=0)
    ih = (torch.minimum(gy2, py2) - torch.maximum(gy1, py1)).clamp_(min=0)
    inter = iw.mul_(ih)
    area_g = (gx2 - gx1).clamp(min=0) * (gy2 - gy1).clamp(min=0)
    area_p = (px2 - px1).clamp(min=0) * (py2 - py1).clamp(min=0)
    union = (area_g + area_p - inter).clamp_(min=1e-9)
    return inter.div_(union).clamp_(0.0, 1.0)


class TaskAlignedAssigner(nn.Module):
    """Task-aligned one-to-many (``topk > 1``) or one-to-one (``topk = 1``) assignment (TOOD).

    For each ground-truth box, the candidates are the anchors whose point lies strictly inside it.
    Each candidate gets ``metric = score**alpha * IoU**beta`` (score: predicted probability of the
    gt's class at that anchor; IoU: CIoU of predicted box vs gt box, clamped at 0). Each gt keeps its
    ``topk`` candidates by metric; an anchor kept by several gts goes to the one it overlaps most.
    The classification target of a positive anchor is the one-hot of its gt's label times
    ``metric * (max IoU of the gt over its positives) / (max metric of the gt over its positives)``.

    Everything is batched over images and gts (``[B, M, A]`` intermediates); no gradients. Only when
    ``B * M * A`` exceeds ``max_elements`` (a very crowded batch) are images assigned in chunks, to
    bound memory.
    Background anchors get label ``num_classes``, a zero box and zero scores.
    """

    def __init__(
        self,
        topk: int = 10,
        num_classes: int = 80,
        alpha: float = 0.5,
        beta: float = 6.0,
        eps: float = 1e-9,
        max_elements: int = 1 << 27,
    ) -> None:
        super().__init__()
        self.max_elements = int(max_elements)
        self.topk = int(topk)
        self.num_classes = int(num_classes)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.eps = float(eps)

    @torch.no_grad()
    def forward(
        self,
        pred_scores: Tensor,
        pred_boxes: Tensor,
        anchor_points: Tensor,
        gt_labels: Tensor,
        gt_boxes: Tensor,
        gt_mask: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Assign anchors to gts.

        Args:
            pred_scores: ``[B, A, C]`` class probabilities (after sigmoid).
            pred_boxes: ``[B, A, 4]`` predicted ``xyxy`` boxes in pixels.
            anchor_points: ``[A, 2]`` anchor centres in pixels.
            gt_labels: ``[B, M]`` class indices (padding entries may hold anything).
            gt_boxes: ``[B, M, 4]`` ``xyxy`` pixels.
            gt_mask: ``[B, M]`` true for real gts, false for padding.

        Returns:
            ``target_labels [B, A]`` (long; ``num_classes`` on background), ``target_boxes [B, A, 4]``,
            ``target_scores [B, A, C]`` (float), ``fg_mask [B, A]`` (bool).
        """
        b, a, c = pred_scores.shape
        m = gt_boxes.shape[1]
        device = pred_scores.device
        pred_scores = pred_scores.float()
        pred_boxes = pred_boxes.float()
        gt_boxes = gt_boxes.float()
        anchor_points = anchor_points.float()
        gt_labels = gt_labels.long()
        if m == 0:
            return (
                torch.full((b, a), self.num_classes, dtype=torch.long, device=device),
                torch.zeros((b, a, 4), device=device),
                torch.zeros((b, a, c), device=device),
                torch.zeros((b, a), dtype=torch.bool, device=device),
            )
        gt_mask = gt_mask.bool()

        if b > 1 and b * m * a > self.max_elements:
            # Very crowded batch: bound the [B, M, A] intermediates by assigning image chunks in turn.
            step = max(1, self.max_elements // (m * a))
            parts = [
                self.forward(pred_scores[i : i + step], pred_boxes[i : i + step], anchor_points,
                             gt_labels[i : i + step], gt_boxes[i : i + step], gt_mask[i : i + step])
                for i in range(0, b, step)
            ]
            return tuple(torch.cat(t, dim=0) for t in zip(*parts))  # type: ignore[return-value]

        # Candidates: anchor point strictly inside the gt box (and the gt is real). [B, M, A]
        ax = anchor_points[:, 0].view(1, 1, a)
        ay = anchor_points[:, 1].view(1, 1, a)
        gx1, gy1, gx2, gy2 = (v.unsqueeze(2) for v in gt_boxes.unbind(-1))  # [B, M, 1] each
        candidate = (
            (ax - gx1 > self.eps) & (ay - gy1 > self.eps) & (gx2 - ax > self.eps) & (gy2 - ay > self.eps)
        ) & gt_mask[:, :, None]

        # Alignment metric on candidates. [B, M, A]
        iou = _pairwise_ciou(gt_boxes, pred_boxes) * candidate
        cls_index = gt_labels.clamp(0, c - 1)[:, :, None].expand(b, m, a)
        score = pred_scores.transpose(1, 2).gather(1, cls_index)  # [B, M, A]: score of the gt's class
        metric = score.clamp(min=0).pow(self.alpha) * iou.pow(self.beta) * candidate

        # Top-k candidates per gt. Non-candidates are pushed below every candidate so they are only
        # picked when a gt has fewer than k candidates, and are then removed by ``& candidate``.
        k = min(self.topk, a)
        ranked = torch.where(candidate, metric, torch.full_like(metric, -1.0))
        top_idx = ranked.topk(k, dim=-1).indices  # [B, M, k]
        pos = torch.zeros_like(candidate).scatter_(-1, top_idx, True) & candidate  # [B, M, A]

        # Resolve anchors claimed by several gts: keep the claiming gt with the highest IoU.
        claims = pos.sum(dim=1)  # [B, A]
        multi = claims > 1
        best_gt = torch.where(pos, iou, torch.full_like(iou, -1.0)).argmax(dim=1)  # [B, A]
        best_onehot = F.one_hot(best_gt, m).transpose(1, 2).bool()  # [B, M, A]
        pos = torch.where(multi[:, None, :], best_onehot, pos)
        fg = claims > 0  # [B, A]

        gt_idx = pos.to(torch.uint8).argmax(dim=1)  # [B, A]; 0 on background, masked below
        labels = gt_labels.gather(1, gt_idx)
        boxes = gt_boxes.gather(1, gt_idx[..., None].expand(b, a, 4))
        labels = torch.where(fg, labels.clamp(0, c - 1), torch.full_like(labels, self.num_classes))
        boxes = boxes * fg[..., None]

        # Soft targets: metric rescaled per gt so that its best positive gets its best IoU.
        metric = metric * pos
        max_metric = metric.amax(dim=-1, keepdim=True)  # [B, M, 1]
        max_iou = (iou * pos).amax(dim=-1, keepdim=True)  # [B, M, 1]
        weight = (metric * max_iou / (max_metric + self.eps)).amax(dim=1)  # [B, A]
        onehot = F.one_hot(labels.clamp(0, c - 1), c).float() * fg[..., None]
        scores = onehot * weight[..., None]
        return labels, boxes, scores, fg


def _pad_targets(targets: Sequence[dict], device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """List of ``{boxes [n, 4], labels [n]}`` -> ``labels [B, M]``, ``boxes [B, M, 4]``, ``mask [B, M]``."""
    b = len(targets)
    counts = [int(t["boxes"].shape[0]) for t in targets]
    m = max(counts, default=0)
    labels = torch.zeros((b, m), dtype=torch.long, device=device)
    boxes = torch.zeros((b, m, 4), dtype=torch.float32, device=device)
    mask = torch.zeros((b, m), dtype=torch.bool, device=device)
    for i, (t, n) in enumerate(zip(targets, counts)):
        if n:
            boxes[i, :n] = t["boxes"].to(device=device, dtype=torch.float32).reshape(n, 4)
            labels[i, :n] = t["labels"].to(device=device, dtype=torch.long).reshape(n)
            mask[i, :n] = True
    return labels, boxes, mask


class DetectionLoss(nn.Module):
    """Task-aligned detection loss for one head: BCE classification + CIoU box + DFL.

    * ``cls = BCEWithLogits(logits, target_scores).sum() / max(target_scores.sum(), 1)``
    * ``box = sum_fg (1 - CIoU(pred, gt)) * w / max(target_scores.sum(), 1)``, ``w`` = the anchor's
      summed target score
    * ``dfl`` = two-hot cross-entropy on the bins around each target side distance (stride units,
      clamped to ``[0, reg_max - 1.01]``), mean over sides, weighted by ``w``, same normaliser.

    ``forward`` returns ``(total, items)`` with
    ``total = (box_gain * box + cls_gain * cls + dfl_gain * dfl) * batch_size``. The multiplication
    by the batch size follows the official YOLOv8/YOLOv10 recipes (their per-image-mean losses are
    scaled by the batch size), so their SGD hyper-parameters (lr 0.01, momentum 0.937, weight decay
    5e-4 with a nominal batch of 64) transfer unchanged. ``items`` holds the gained components
    ``box``, ``cls``, ``dfl`` as detached 0-dim float32 tensors (their sum is ``total / batch_size``);
    they stay on the device so logging them does not force a sync.

    Computed in float32 with autocast disabled, whatever the dtype of the head outputs.
    """

    def __init__(
        self,
        num_classes: int,
        strides: Sequence[int] = (8, 16, 32),
        reg_max: int = 16,
        topk: int = 10,
        box_gain: float = 7.5,
        cls_gain: float = 0.5,
        dfl_gain: float = 1.5,
        alpha: float = 0.5,
        beta: float = 6.0,
    ) -> None:
        super().__init__()
        self.num_classes = int(num_classes)
        self.strides = tuple(int(s) for s in strides)
        self.reg_max = int(reg_max)
        self.box_gain = float(box_gain)
        self.cls_gain = float(cls_gain)
        self.dfl_gain = float(dfl_gain)
        self.assigner = TaskAlignedAssigner(topk=topk, num_classes=num_classes, alpha=alpha, beta=beta)

    def forward(
        self, feats: Sequence[Tensor], targets: Sequence[dict]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """``feats``: per-level head outputs ``[B, 4*reg_max + nc, H, W]`` (P3, P4, P5); ``targets``:
        one ``{"boxes": [n, 4] xyxy input pixels, "labels": [n]}`` per image (``n`` may be 0)."""
        if len(feats) != len(self.strides):
            raise ValueError(f"expected {len(self.strides)} feature maps, got {len(feats)}")
        device = feats[0].device
        with torch.autocast(device_type=device.type, enabled=False):
            return self._forward(feats, targets)

    def _forward(
        self, feats: Sequence[Tensor], targets: Sequence[dict]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        b = feats[0].shape[0]
        device = feats[0].device
        nc, r = self.num_classes, self.reg_max
        no = 4 * r + nc
        for f in feats:
            if f.shape[1] != no:
                raise ValueError(f"expected {no} channels (4*{r} + {nc}), got {f.shape[1]}")
        if len(targets) != b:
            raise ValueError(f"{len(targets)} targets for a batch of {b}")

        pred = torch.cat([f.float().flatten(2) for f in feats], dim=2)  # [B, no, A]
        a = pred.shape[2]
        dist_logits = pred[:, : 4 * r].reshape(b, 4, r, a)
        cls_logits = pred[:, 4 * r :].transpose(1, 2)  # [B, A, nc]
        points, stride = make_anchors(
            [tuple(f.shape[2:]) for f in feats], self.strides, device=device, dtype=torch.float32
        )
        pred_boxes = distances_to_boxes(decode_distribution(dist_logits), points, stride)  # [B, A, 4]

        gt_labels, gt_boxes, gt_mask = _pad_targets(targets, device)
        _, target_boxes, target_scores, fg = self.assigner(
            cls_logits.detach().sigmoid(), pred_boxes.detach(), points, gt_labels, gt_boxes, gt_mask
        )
        norm = target_scores.sum().clamp(min=1.0)

        cls = F.binary_cross_entropy_with_logits(cls_logits, target_scores, reduction="sum") / norm

        if bool(fg.any()):
            weight = target_scores.sum(-1)[fg]  # [N]
            pb = pred_boxes[fg]
            # A tiny pad keeps CIoU's aspect term (w / h) finite for a collapsed predicted box.
            pb = torch.cat((pb[:, :2], pb[:, 2:] + 1e-6), dim=-1)
            tb = target_boxes[fg]
            box = (complete_box_iou_loss(pb, tb, reduction="none") * weight).sum() / norm

            fg_points = points.unsqueeze(0).expand(b, a, 2)[fg]
            fg_stride = stride.unsqueeze(0).expand(b, a, 1)[fg]
            t = torch.cat((fg_points - tb[:, :2], tb[:, 2:] - fg_points), dim=-1) / fg_stride
            t = t.clamp(0.0, r - 1 - 0.01)  # [N, 4]
            left = t.floor().long()
            right = left + 1
            w_left = right.float() - t
            w_right = t - left.float()
            logits = dist_logits.permute(0, 3, 1, 2)[fg].reshape(-1, r)  # [N*4, r]
            ce_left = F.cross_entropy(logits, left.reshape(-1), reduction="none").view(-1, 4)
            ce_right = F.cross_entropy(logits, right.reshape(-1), reduction="none").view(-1, 4)
            dfl = (((ce_left * w_left + ce_right * w_right).mean(-1)) * weight).sum() / norm
        else:
            # Keep the box branch in the graph (zero gradient) so every parameter receives a grad.
            box = dist_logits.sum() * 0.0
            dfl = dist_logits.sum() * 0.0

        box = box * self.box_gain
        cls = cls * self.cls_gain
        dfl = dfl * self.dfl_gain
        total = (box + cls + dfl) * b
        items = {"box": box.detach(), "cls": cls.detach(), "dfl": dfl.detach()}
        return total, items


class DualAssignmentLoss(nn.Module):
    """YOLOv10 consistent dual assignments: a top-10 loss on ``outputs["one2many"]`` plus a top-1
    loss on ``outputs["one2one"]``, both with the same matching metric (alpha 0.5, beta 6).

    ``forward(outputs, targets)`` returns ``(total, items)``; ``total`` is the sum of the two
    ``DetectionLoss`` totals (each already scaled by the batch size), ``items`` has ``box_o2m``,
    ``cls_o2m``, ``dfl_o2m``, ``box_o2o``, ``cls_o2o``, ``dfl_o2o`` (detached 0-dim tensors).
    The one-to-one branch is fed detached neck features inside the model; nothing here depends on it.
    """

    def __init__(
        self,
        num_classes: int,
        strides: Sequence[int] = (8, 16, 32),
        reg_max: int = 16,
        box_gain: float = 7.5,
        cls_gain: float = 0.5,
        dfl_gain: float = 1.5,
    ) -> None:
        super().__init__()
        kw = dict(strides=strides, reg_max=reg_max, box_gain=box_gain, cls_gain=cls_gain, dfl_gain=dfl_gain)
        self.one2many = DetectionLoss(num_classes, topk=10, **kw)
        self.one2one = DetectionLoss(num_classes, topk=1, **kw)

    def forward(
        self, outputs: dict[str, Sequence[Tensor]], targets: Sequence[dict]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        loss_m, items_m = self.one2many(outputs["one2many"], targets)
        loss_o, items_o = self.one2one(outputs["one2one"], targets)
        items = {f"{k}_o2m": v for k, v in items_m.items()}
        items.update({f"{k}_o2o": v for k, v in items_o.items()})
        return loss_m + loss_o, items
