"""MobileDets: the CPU, EdgeTPU, DSP and GPU backbones with the SSDLite detector, written from the paper's facts.

Why hand-written: MobileDets exist only in the TF1 Object Detection API (Apache-2.0, TensorFlow); no
maintained PyTorch library ships the backbones. The block tables, widths, residual flags, BatchNorm
settings, extra layers, anchors, box coder, loss and post-processing follow ``tensorflow/models``
research/object_detection (docs/sources.md, "MobileDets"). The generic parts come from libraries:
torchvision's ``SSDLiteHead`` (depthwise 3x3 + BN + ReLU6, then a 1x1 predictor per level, the same as
TF's SSDLite predictor), its ``BoxCoder`` (weights 10, 10, 5, 5), ``SSDMatcher`` (IoU 0.5 + best anchor
per box), ``sigmoid_focal_loss`` and ``batched_nms``; timm's ``create_conv2d(padding="same")`` gives TF's
asymmetric "SAME" padding for stride-2 convs. Written here: the blocks (TF's residual flags are explicit,
some same-shape blocks have none), the anchors (TF's 3 anchors on the first level, which torchvision's
``DefaultBoxGenerator`` cannot express) and TF's loss (sigmoid focal, alpha 0.75, no hard-negative mining).

The detector takes RGB in [0, 1] (letterboxed, like every zoo detector) and scales it to [-1, 1] itself,
as TF's preprocessing does. Class slot 0 is TF's background slot (trained towards 0, dropped at
inference), so ``num_classes=90`` has 91 slots, the paper's COCO set-up. Eval mode returns
``[B, max_det, 6]`` detections (x1, y1, x2, y2, score, class; score-0 rows pad) after TF's
post-processing: sigmoid scores, per-class NMS at IoU 0.6, 100 detections; the NMS runs inside the graph,
on the ``topk_candidates`` best (anchor, class) pairs per image.

Each backbone is also a classifier (``mobiledet_cpu_cls``, ...: global average pool + linear on the last
feature map), so it can be pretrained on classification data; a classifier's weights load into the
detector's backbone (``weights=`` in :func:`zoo.load` or ``model.weights=`` in a recipe), the SSD part
starting fresh.

Paper: Xiong et al., "MobileDets: Searching for Object Detection Architectures for Mobile Accelerators",
CVPR 2021, arXiv:2004.14525.
"""
from __future__ import annotations

import math
import warnings
from functools import partial

import torch
from torch import nn
from torch.nn import functional as F

from zoo.registry import ModelSpec, Paper, Reported, register_spec

BACKBONE_BN = dict(eps=0.01, momentum=0.01)  # TF decay 0.99
HEAD_BN = dict(eps=0.001, momentum=0.03)  # TF decay 0.97 (extra layers and the box predictor)
EXTRA_DEPTHS = (512, 256, 256, 128)
ASPECT_RATIOS = (1.0, 2.0, 0.5, 3.0, 0.3333)
MIN_SCALE, MAX_SCALE = 0.2, 0.95
MIN_SIDE = 33  # TF's check_min_image_dim
BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # TF's faster_rcnn_box_coder scales (y, x, h, w), as torchvision's (x, y, w, h)


def scale_filters(filters: int, multiplier: float, base: int = 8) -> int:
    """TF's ``_scale_filters``: round half up to a multiple of ``base``, at least ``base`` (no 90% guard)."""
    return max(base, int(filters * multiplier / base + 0.5) * base)


def _conv(c1: int, c2: int, k: int = 1, s: int = 1, groups: int = 1) -> nn.Module:
    """A bias-free conv with TF "SAME" padding (asymmetric for stride 2, computed from the input size)."""
    from timm.layers import create_conv2d

    conv = create_conv2d(c1, c2, k, stride=s, padding="same", groups=groups, bias=False)
    # TF: he_normal (a truncated normal, std sqrt(2 / fan_in) / 0.8796); depthwise convs use fan_in = k*k.
    std = math.sqrt(2.0 / (k * k * c1 // groups)) / 0.87962566
    nn.init.trunc_normal_(conv.weight, std=std, a=-2 * std, b=2 * std)
    return conv


class ConvBN(nn.Sequential):
    """Conv -> BatchNorm (eps 0.01, momentum 0.01) -> activation (``None``: linear, for projections)."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, groups: int = 1, act: type[nn.Module] | None = nn.ReLU6) -> None:
        super().__init__(_conv(c1, c2, k, s, groups), nn.BatchNorm2d(c2, **BACKBONE_BN), act() if act else nn.Identity())


class SqueezeExcite(nn.Module):
    """Global pool -> 1x1 (bias) -> act -> 1x1 (bias) -> sigmoid gate (TF's, not a hard sigmoid)."""

    def __init__(self, channels: int, act: type[nn.Module]) -> None:
        super().__init__()
        hidden = scale_filters(channels, 0.25)
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.act = act()
        self.expand = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.expand(self.act(self.reduce(x.mean((2, 3), keepdim=True)))))


class Block(nn.Module):
    """One searched block: ``layers`` then a linear 1x1 projection, plus the input if ``residual``.

    TF decides the shortcut per block, not from shapes: some blocks keep their shape and have none.
    """

    def __init__(self, layers: list[nn.Module], project: nn.Module, residual: bool) -> None:
        super().__init__()
        self.layers = nn.Sequential(*layers)
        self.project = project
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.layers(x))
        return x + y if self.residual else y


def make_block(kind: str, c1: int, c2: int, k: int, s: int, ratio, residual: bool, act: type[nn.Module], se: bool) -> Block:
    """``kind``: "ibn" (expand, depthwise, project), "ibn1" (IBN without expansion: depthwise, project),
    "fused" (full kxk expand, project) or "tucker" (1x1 down, full kxk, 1x1 up; ``ratio`` = (in, out) ranks)."""
    if residual and (c1 != c2 or s != 1):
        raise ValueError(f"a residual block must keep its shape ({c1}->{c2}, stride {s})")
    if kind == "tucker":
        r_in, r_out = scale_filters(c1, ratio[0]), scale_filters(c2, ratio[1])
        layers = [ConvBN(c1, r_in, 1, act=act), ConvBN(r_in, r_out, k, s, act=act)]
        return Block(layers, ConvBN(r_out, c2, 1, act=None), residual)
    if kind == "ibn1":
        if residual:
            raise ValueError("TF's IBN without expansion never has a residual")
        layers, mid = [ConvBN(c1, c1, k, s, groups=c1, act=act)], c1
    elif kind == "ibn":
        mid = c1 * ratio
        layers = [ConvBN(c1, mid, 1, act=act), ConvBN(mid, mid, k, s, groups=mid, act=act)]
    elif kind == "fused":
        mid = c1 * ratio
        layers = [ConvBN(c1, mid, k, s, act=act)]
    else:
        raise ValueError(f"unknown MobileDet block kind {kind!r}")
    if se:
        layers.append(SqueezeExcite(mid, act))
    return Block(layers, ConvBN(mid, c2, 1, act=None), residual)


# Per variant: stem width, then blocks as (kind, kernel, expansion or (in, out) Tucker ranks, out, stride,
# residual, repeats), as in the TF1 feature extractor (docs/sources.md, "MobileDets: backbone blocks"; TF1's
# residual flag on DSP block 20, where the Model Garden re-spec has none).
T25_75, T25_25, T75_75 = (0.25, 0.75), (0.25, 0.25), (0.75, 0.75)
VARIANTS = {
    "cpu": (16, [
        ("ibn1", 3, 1, 8, 1, False, 1),
        ("ibn", 3, 4, 16, 2, False, 1),
        ("ibn", 3, 8, 32, 2, False, 1), ("ibn", 3, 4, 32, 1, True, 3),
        ("ibn", 5, 8, 72, 2, False, 1), ("ibn", 3, 8, 72, 1, True, 1), ("ibn", 5, 4, 72, 1, True, 1),
        ("ibn", 3, 4, 72, 1, True, 1), ("ibn", 3, 8, 72, 1, False, 1), ("ibn", 3, 8, 72, 1, True, 3),
        ("ibn", 5, 8, 104, 2, False, 1), ("ibn", 5, 4, 104, 1, True, 2), ("ibn", 3, 4, 104, 1, True, 1),
        ("ibn", 3, 8, 144, 1, False, 1),
    ]),
    "edgetpu": (32, [
        ("tucker", 3, T25_75, 16, 1, False, 1),
        ("fused", 3, 8, 16, 2, False, 1), ("fused", 3, 4, 16, 1, True, 1), ("fused", 3, 8, 16, 1, True, 1),
        ("fused", 3, 4, 16, 1, True, 1),
        ("fused", 5, 8, 40, 2, False, 1), ("fused", 3, 4, 40, 1, True, 3),
        ("ibn", 3, 8, 72, 2, False, 1), ("ibn", 3, 8, 72, 1, True, 1), ("fused", 3, 4, 72, 1, True, 2),
        ("ibn", 5, 8, 96, 1, False, 1), ("ibn", 5, 8, 96, 1, True, 1), ("ibn", 3, 8, 96, 1, True, 2),
        ("ibn", 5, 8, 120, 2, False, 1), ("ibn", 3, 8, 120, 1, True, 1), ("ibn", 5, 4, 120, 1, True, 1),
        ("ibn", 3, 8, 120, 1, True, 1), ("ibn", 5, 8, 384, 1, False, 1),
    ]),
    "dsp": (32, [
        ("ibn1", 3, 1, 24, 1, False, 1),
        ("fused", 3, 4, 32, 2, False, 1), ("fused", 3, 4, 32, 1, True, 1), ("ibn", 3, 4, 32, 1, True, 1),
        ("tucker", 3, T25_75, 32, 1, True, 1),
        ("fused", 3, 8, 64, 2, False, 1), ("ibn", 3, 4, 64, 1, True, 1), ("fused", 3, 4, 64, 1, True, 2),
        ("fused", 3, 8, 120, 2, False, 1), ("ibn", 3, 4, 120, 1, True, 1), ("ibn", 3, 8, 120, 1, True, 2),
        ("fused", 3, 8, 144, 1, False, 1), ("ibn", 3, 8, 144, 1, True, 3),
        ("ibn", 3, 4, 160, 2, False, 1), ("ibn", 3, 4, 160, 1, True, 1), ("fused", 3, 4, 160, 1, True, 1),
        ("tucker", 3, T75_75, 160, 1, True, 1), ("ibn", 3, 8, 240, 1, False, 1),
    ]),
    "gpu": (32, [
        ("tucker", 3, T25_25, 16, 1, False, 1),
        ("fused", 3, 8, 32, 2, False, 1), ("tucker", 3, T25_25, 32, 1, True, 3),
        ("fused", 3, 8, 64, 2, False, 1), ("fused", 3, 8, 64, 1, True, 2), ("fused", 3, 4, 64, 1, True, 1),
        ("fused", 3, 8, 128, 2, False, 1), ("fused", 3, 4, 128, 1, True, 3), ("fused", 3, 8, 128, 1, False, 1),
        ("fused", 3, 8, 128, 1, True, 3),
        ("fused", 3, 4, 128, 2, False, 1), ("fused", 3, 4, 128, 1, True, 3), ("ibn", 3, 8, 384, 1, False, 1),
    ]),
}


class MobileDetBackbone(nn.Module):
    """The searched backbone of one variant; ``forward`` returns the C4 and C5 maps (strides 16, 32) the SSD
    head reads, :meth:`forward_intermediates` any of C1..C5 (timm's feature-map seam)."""

    def __init__(self, variant: str) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown MobileDet variant {variant!r}; variants: {', '.join(VARIANTS)}")
        cpu = variant == "cpu"
        act = nn.Hardswish if cpu else nn.ReLU6  # TF's swish6 is x * relu6(x + 3) / 6, i.e. hard-swish
        stem, table = VARIANTS[variant]
        blocks, channels, strides = [ConvBN(3, stem, 3, 2, act=act)], [stem], [2]
        for kind, k, ratio, out, s, residual, repeats in table:
            for i in range(repeats):
                stride = s if i == 0 else 1
                blocks.append(make_block(kind, channels[-1], out, k, stride, ratio, residual, act, se=cpu and kind != "tucker"))
                channels.append(out)
                strides.append(strides[-1] * stride)
        self.blocks = nn.Sequential(*blocks)
        # C1..C5 (TF's endpoints): the last block at each resolution
        self.endpoints = [i for i in range(1, len(strides)) if i == len(strides) - 1 or strides[i + 1] != strides[i]]
        self.feature_info = [{"num_chs": channels[i], "reduction": strides[i], "module": f"blocks.{i}"} for i in self.endpoints]

    def forward_intermediates(self, x: torch.Tensor, indices=None, norm: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = True, **_) -> list[torch.Tensor]:
        """The endpoint maps at ``indices`` (None: all five; an int: the last n; negatives count from the end)."""
        from timm.models._features import feature_take_indices

        take, last = feature_take_indices(len(self.endpoints), indices)
        wanted = {self.endpoints[t] for t in take}
        out = []
        for i, block in enumerate(self.blocks[: self.endpoints[last] + 1]):
            x = block(x)
            if i in wanted:
                out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.forward_intermediates(x, indices=(3, 4))


class MobileDetClassifier(nn.Module):
    """A MobileDet backbone with a classification head (global average pool, dropout, linear)."""

    def __init__(self, variant: str, num_classes: int = 1000, drop_rate: float = 0.2) -> None:
        super().__init__()
        self.variant, self.num_classes = variant, num_classes
        self.backbone = MobileDetBackbone(variant)
        self.feature_info = self.backbone.feature_info
        self.num_features = self.feature_info[-1]["num_chs"]
        self.dropout = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(self.num_features, num_classes)

    def forward_intermediates(self, x: torch.Tensor, indices=None, **kwargs) -> list[torch.Tensor]:
        return self.backbone.forward_intermediates(x, indices, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone.forward_intermediates(x, indices=1)[0]
        return self.classifier(self.dropout(features.mean((2, 3))))


def _extra_block(c1: int, c2: int) -> nn.Sequential:
    """TF's SSDLite extra layer (as torchvision's): 1x1 to c2/2, depthwise 3x3 stride 2, 1x1 to c2; BN + ReLU6 each."""
    norm = partial(nn.BatchNorm2d, **HEAD_BN)
    mid = c2 // 2
    layers = []
    for a, b, k, s, g in ((c1, mid, 1, 1, 1), (mid, mid, 3, 2, mid), (mid, c2, 1, 1, 1)):
        conv = _conv(a, b, k, s, g)
        nn.init.trunc_normal_(conv.weight, std=0.03, a=-0.06, b=0.06)  # TF: truncated normal, std 0.03
        layers += [conv, norm(b), nn.ReLU6(inplace=True)]
    return nn.Sequential(*layers)


def anchor_shapes() -> list[list[tuple[float, float]]]:
    """Per level, the (width, height) of each anchor as a fraction of the image, in TF's order.

    TF's ``create_ssd_anchors`` (min 0.2, max 0.95, 6 levels): the first level has 3 anchors (0.1 at 1:1,
    0.2 at 2:1 and 1:2), the others the 5 aspect ratios at their scale plus a square at the geometric mean
    of their scale and the next.
    """
    scales = [MIN_SCALE + (MAX_SCALE - MIN_SCALE) * i / 5 for i in range(6)] + [1.0]
    levels = [[(0.1, 1.0), (scales[0], 2.0), (scales[0], 0.5)]]
    for i in range(1, 6):
        levels.append([(scales[i], ar) for ar in ASPECT_RATIOS] + [(math.sqrt(scales[i] * scales[i + 1]), 1.0)])
    return [[(s * math.sqrt(ar), s / math.sqrt(ar)) for s, ar in level] for level in levels]


def make_anchors(sizes: list[tuple[int, int]], image: tuple[int, int], device=None, dtype=torch.float32) -> torch.Tensor:
    """``[A, 4]`` xyxy anchors in input pixels, ordered (level, row, column, anchor) like the head's outputs."""
    height, width = float(image[0]), float(image[1])
    out = []
    for (h, w), shapes in zip(sizes, anchor_shapes()):
        wh = torch.tensor(shapes, device=device, dtype=dtype) * torch.tensor([width, height], device=device, dtype=dtype)
        ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) * (height / h)
        xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) * (width / w)
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        centres = torch.stack((xx, yy), -1).reshape(-1, 1, 2)  # [h*w, 1, 2]
        out.append(torch.cat((centres - wh / 2, centres + wh / 2), -1).reshape(-1, 4))
    return torch.cat(out, 0)


class MobileDet(nn.Module):
    """SSDLite with a MobileDet backbone: C4, C5 and four extra layers, 3 + 5 x 6 anchors per location."""

    def __init__(self, variant: str = "cpu", num_classes: int = 90, max_det: int = 100, iou_threshold: float = 0.6,
                 score_threshold: float = 1e-8, topk_candidates: int = 1000, class_prior: float | None = None) -> None:
        super().__init__()
        from torchvision.models.detection.ssdlite import SSDLiteHead

        self.variant, self.num_classes, self.max_det = variant, num_classes, max_det
        self.iou_threshold, self.score_threshold, self.topk_candidates = iou_threshold, score_threshold, topk_candidates
        self.backbone = MobileDetBackbone(variant)
        # C4, C5, then the extra layers (TF's min_depth 16 does not bind at depth multiplier 1)
        channels = [self.backbone.feature_info[i]["num_chs"] for i in (3, 4)] + list(EXTRA_DEPTHS)
        self.extras = nn.ModuleList(_extra_block(a, b) for a, b in zip(channels[1:-1], channels[2:]))
        self.num_anchors = [len(level) for level in anchor_shapes()]
        self.head = SSDLiteHead(channels, self.num_anchors, num_classes + 1, partial(nn.BatchNorm2d, **HEAD_BN))
        # TF's depthwise predictor leaves the class bias at 0 (docs/sources.md, "MobileDets: class bias")
        if class_prior is not None:
            for conv in self.head.classification_head.module_list:
                nn.init.constant_(conv[-1].bias, -math.log((1 - class_prior) / class_prior))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.backbone(x * 2.0 - 1.0)  # [0, 1] -> TF's [-1, 1]
        for extra in self.extras:
            feats.append(extra(feats[-1]))
        return feats

    def forward(self, x: torch.Tensor):
        if x.ndim != 4 or min(x.shape[-2:]) < MIN_SIDE:
            raise ValueError(f"MobileDet takes [B, 3, H, W] images with sides of at least {MIN_SIDE}, not {tuple(x.shape)}")
        feats = self.features(x)
        out = self.head(feats)
        anchors = make_anchors([f.shape[-2:] for f in feats], x.shape[-2:], x.device)
        if self.training:
            return {**out, "anchors": anchors}
        return self.detect(out["bbox_regression"], out["cls_logits"], anchors)

    def detect(self, regression: torch.Tensor, logits: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """TF's post-processing -> ``[B, max_det, 6]``: sigmoid scores (background slot dropped), the
        ``topk_candidates`` best (anchor, class) pairs, per-class NMS, the ``max_det`` best survivors."""
        from torchvision.models.detection._utils import BoxCoder
        from torchvision.ops import batched_nms

        dtype = logits.dtype
        regression, logits = regression.float(), logits.float()
        batch, num_anchors, nc = logits.shape[0], logits.shape[1], self.num_classes
        boxes = BoxCoder(BOX_WEIGHTS).decode_single(regression.reshape(-1, 4), anchors.repeat(batch, 1))
        boxes = boxes.reshape(batch, num_anchors, 4)
        scores = logits[..., 1:].sigmoid().flatten(1)  # [B, A * nc]
        k = min(self.topk_candidates, scores.shape[1])
        top, index = scores.topk(k, dim=1)
        labels = index % nc
        anchor = torch.div(index, nc, rounding_mode="floor")
        boxes = boxes.gather(1, anchor.unsqueeze(-1).expand(-1, -1, 4))  # [B, k, 4]
        groups = labels + nc * torch.arange(batch, device=labels.device).unsqueeze(1)  # NMS within image and class
        keep = batched_nms(boxes.reshape(-1, 4), top.reshape(-1), groups.reshape(-1), self.iou_threshold)
        kept = torch.zeros_like(top).reshape(-1).scatter(0, keep, 1.0).reshape(batch, k)
        top = top * kept * (top > self.score_threshold)
        m = min(self.max_det, k)
        best, order = top.topk(m, dim=1)  # survivors first, by score; score-0 rows pad
        boxes = boxes.gather(1, order.unsqueeze(-1).expand(-1, -1, 4)) * (best > 0).unsqueeze(-1)
        labels = labels.gather(1, order)
        detections = torch.cat((boxes, best.unsqueeze(-1), labels.unsqueeze(-1).to(boxes.dtype)), -1)
        if m < self.max_det:
            detections = F.pad(detections, (0, 0, 0, self.max_det - m))
        return detections.to(dtype)

    def make_loss(self) -> SSDFocalLoss:
        """The training criterion for :class:`~zoo.tasks.detection.DetectionTask` (TF's SSD focal loss)."""
        return SSDFocalLoss()


class SSDFocalLoss(nn.Module):
    """TF's MobileDet loss: anchors matched at IoU 0.5 (plus each box's best anchor), sigmoid focal loss
    (alpha 0.75, gamma 2) over all class slots with the background slot always targeted 0, smooth L1
    (delta 1) on the encoded boxes of matched anchors divided by the code size 4; both divided by the
    number of matched anchors in the batch. No hard-negative mining (torchvision's SSD loss has it)."""

    reduction = "mean"  # already normalised: the task neither sums over images nor scales by world size

    def __init__(self, alpha: float = 0.75, gamma: float = 2.0, iou_threshold: float = 0.5) -> None:
        super().__init__()
        self.alpha, self.gamma, self.iou_threshold = alpha, gamma, iou_threshold

    def forward(self, outputs: dict[str, torch.Tensor], targets: list[dict]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        from torchvision.models.detection._utils import BoxCoder, SSDMatcher
        from torchvision.ops import box_iou, sigmoid_focal_loss

        logits, regression, anchors = outputs["cls_logits"].float(), outputs["bbox_regression"].float(), outputs["anchors"]
        matcher, coder = SSDMatcher(self.iou_threshold), BoxCoder(BOX_WEIGHTS)
        cls_targets = torch.zeros_like(logits)
        box_loss = logits.new_zeros(())
        matches = 0
        for i, t in enumerate(targets):
            boxes = t["boxes"].to(anchors).reshape(-1, 4)
            if boxes.shape[0] == 0:
                continue
            matched = matcher(box_iou(boxes, anchors))
            positive = torch.nonzero(matched >= 0).squeeze(1)
            gt = matched[positive]
            cls_targets[i, positive, t["labels"].to(logits.device).long().reshape(-1)[gt] + 1] = 1.0
            encoded = coder.encode_single(boxes[gt], anchors[positive])
            box_loss = box_loss + F.smooth_l1_loss(regression[i, positive], encoded, beta=1.0, reduction="sum") / 4
            matches += positive.numel()
        normaliser = max(matches, 1)
        cls_loss = sigmoid_focal_loss(logits, cls_targets, alpha=self.alpha, gamma=self.gamma, reduction="sum") / normaliser
        box_loss = box_loss / normaliser
        return cls_loss + box_loss, {"focal": cls_loss.detach(), "box": box_loss.detach()}


# -- classifier weights into the detector ------------------------------------------------------------


def backbone_from_classifier(state_dict: dict, model: nn.Module) -> dict:
    """A ``mobiledet_*_cls`` state dict -> this detector's: the backbone copied, extras and head kept as built."""
    backbone = {k: v for k, v in state_dict.items() if k.startswith("backbone.")}
    rest = set(state_dict) - set(backbone)
    if not backbone or rest - {"classifier.weight", "classifier.bias"}:
        shown = ", ".join(sorted(rest)[:4])
        raise KeyError(f"not a MobileDet classifier's or detector's state dict (unexpected keys: {shown or 'no backbone.*'})")
    own = model.state_dict()
    converted = {k: v for k, v in own.items() if not k.startswith("backbone.")} | backbone
    warnings.warn(
        f"loaded a MobileDet backbone ({len(backbone)} tensors) from classifier weights; the extra layers and "
        "the SSD head start fresh: fine-tune before use",
        UserWarning,
        stacklevel=2,
    )
    return converted


# -- registration ------------------------------------------------------------------------------------

MOBILEDETS = Paper(
    title="MobileDets: Searching for Object Detection Architectures for Mobile Accelerators",
    arxiv="2004.14525",
    code_url="https://github.com/tensorflow/models/tree/master/research/object_detection",
    code_license="Apache-2.0",
    bibtex="""@inproceedings{xiong2021mobiledets,
  title={MobileDets: Searching for Object Detection Architectures for Mobile Accelerators},
  author={Xiong, Yunyang and Liu, Hanxiao and Gupta, Suyog and Akin, Berkin and Bender, Gabriel and Wang, Yongzhe and Kindermans, Pieter-Jan and Tan, Mingxing and Singh, Vikas and Chen, Bo},
  booktitle={Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages={3825--3834},
  year={2021}
}""",
)

# (detector, classifier): (variant, COCO14 minival AP, params M, MACs G, latency, device) as the TF sample configs /
# TF1 model zoo print them
_REPORTED = {
    ("mobiledet_cpu", "mobiledet_cpu_cls"): ("cpu", 24.1, 4.21, 0.45, 113.0, "Pixel 1 CPU"),
    ("mobiledet_edgetpu", "mobiledet_edgetpu_cls"): ("edgetpu", 26.0, 4.20, 1.53, 6.9, "Pixel 4 EdgeTPU"),
    ("mobiledet_dsp", "mobiledet_dsp_cls"): ("dsp", 28.9, 7.16, 2.82, 12.3, "Pixel 4 DSP"),
    ("mobiledet_gpu", "mobiledet_gpu_cls"): ("gpu", 28.7, 13.11, 5.07, 11.0, "Jetson Xavier, TensorRT 7.1 fp32"),
}
_DEVICE_NAME = {"cpu": "CPU", "edgetpu": "EdgeTPU", "dsp": "DSP", "gpu": "GPU"}
TF_COUNTS_NOTE = "TF counts every variable, BatchNorm moving statistics included; parameters() excludes them"


def _build_detector(num_classes: int = 90, variant: str = "cpu", **kwargs) -> MobileDet:
    return MobileDet(variant, num_classes=num_classes, **kwargs)


def _build_classifier(num_classes: int = 1000, variant: str = "cpu", drop_rate: float = 0.2) -> MobileDetClassifier:
    return MobileDetClassifier(variant, num_classes=num_classes, drop_rate=drop_rate)


for (_detector, _classifier), (_variant, _ap, _params, _macs, _latency, _device) in _REPORTED.items():
    _source = f"tensorflow/models object_detection: ssdlite_mobiledet_{_variant}_320x320_coco_sync_4x4.config, tf1_detection_zoo.md"
    _name = _DEVICE_NAME[_variant]
    register_spec(
        ModelSpec(
            name=_detector,
            family="mobiledet",
            task="detection",
            builder=_build_detector,
            default_kwargs={"variant": _variant},
            input_size=(3, 320, 320),
            mean=(0.0, 0.0, 0.0),  # [0, 1] in; the model scales to TF's [-1, 1] itself
            std=(1.0, 1.0, 1.0),
            interpolation="bilinear",
            crop_pct=1.0,
            min_input_size=MIN_SIDE,
            num_classes=90,  # + TF's background slot: the paper's 91 COCO slots
            classifier=("head.classification_head",),
            paper=MOBILEDETS,
            reported=(
                Reported("box_ap", _ap, "", _source, "coco-2014-minival", 320, "TF1 release, trained from scratch"),
                Reported("params", _params, "M", _source, "", 320, TF_COUNTS_NOTE),
                Reported("macs", _macs, "G", _source, "", 320),
                Reported("latency_ms", _latency, "ms", _source, "", 320, _device),
            ),
            convert_state_dict=backbone_from_classifier,
            cannot_export={
                "executorch": "its in-graph per-class NMS has data-dependent output shapes, which ExecuTorch cannot bound",
                "litert": "LiteRT has no lowering for its in-graph NMS (torchvision.nms)",
            },
            description=f"MobileDet-{_name} + SSDLite (searched for {_device}); no PyTorch COCO weights exist",
        )
    )
    register_spec(
        ModelSpec(
            name=_classifier,
            family="mobiledet",
            task="classification",
            builder=_build_classifier,
            default_kwargs={"variant": _variant},
            input_size=(3, 224, 224),
            mean=(0.5, 0.5, 0.5),  # TF's [-1, 1] scaling, as the detector sees
            std=(0.5, 0.5, 0.5),
            interpolation="bilinear",
            num_classes=1000,
            classifier=("classifier",),
            paper=MOBILEDETS,
            reported=(
                Reported("detector_box_ap", _ap, "", _source, "coco-2014-minival", 320,
                         "of the SSDLite detector on this backbone; the paper reports no classification accuracy"),
            ),
            description=f"The MobileDet-{_name} backbone as a classifier (pool + linear), for pretraining the detector's backbone",
        )
    )
