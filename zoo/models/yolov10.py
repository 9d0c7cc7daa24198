"""YOLOv10 N/S/M/B/L/X: real-time end-to-end (NMS-free) detectors, written here from the paper's facts.

Why hand-written: the official code (THU-MIG/yolov10) and ultralytics are AGPL-3.0, and no permissively
licensed PyTorch implementation exists. This file follows the published architecture (layer table,
block definitions, per-scale block choices, BatchNorm eps 1e-3 / momentum 0.03) and is weight-compatible
with the official checkpoints: :func:`convert_official` maps their key names (``model.model.<i>.…`` in
the Hub files, ``model.<i>.…`` in the release checkpoints) onto ours. The official *weights* stay
AGPL-3.0, which ``zoo info``/``zoo list`` show; this code is Apache-2.0.

The model holds both heads, as the checkpoints do. In train mode it returns the raw one-to-many and
one-to-one head outputs for :class:`zoo.models._tal.DualAssignmentLoss` (the one-to-one head sees detached
features); in eval mode only the one-to-one head runs and the model returns ``[B, max_det, 6]``
detections (x1, y1, x2, y2, score, class in input pixels) chosen by top-k inside the graph, no NMS.
:meth:`YOLOv10.deploy` drops the one-to-many head and folds BatchNorm and RepVGGDW (outputs unchanged).

Paper: Wang et al., "YOLOv10: Real-Time End-to-End Object Detection", NeurIPS 2024, arXiv:2405.14458.

DocLayout-YOLO (``doclayout_yolo``, arXiv:2410.12628) is YOLOv10-M with GL-CRM blocks in backbone stages 2-4
(:class:`DilatedBlock`, from its released configuration's facts; docs/sources.md, "DocLayout-YOLO"): the same
converter reads its release, whose whole-model pickle :func:`zoo.weights.module_pickle_state` takes apart safely.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from zoo.labels import COCO_CLASSES, DOCSTRUCTBENCH_CLASSES
from zoo.registry import ModelSpec, Paper, Reported, WeightTag, register_spec

BN_EPS, BN_MOMENTUM = 1e-3, 0.03
STRIDES = (8, 16, 32)
REG_MAX = 16


class ConvBN(nn.Module):
    """Conv (no bias) -> BatchNorm -> SiLU, "same" padding; :meth:`fuse` folds the BatchNorm into the conv."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, g: int = 1, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, groups=g, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.SiLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    def fuse(self) -> ConvBN:
        if isinstance(self.bn, nn.modules.batchnorm._BatchNorm):  # SyncBatchNorm too
            self.conv = torch.nn.utils.fusion.fuse_conv_bn_eval(self.conv.eval(), self.bn.eval())
            self.bn = nn.Identity()
        return self


class Bottleneck(nn.Module):
    def __init__(self, c1: int, c2: int, shortcut: bool) -> None:
        super().__init__()
        self.cv1 = ConvBN(c1, c2, 3)
        self.cv2 = ConvBN(c2, c2, 3)
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class RepVGGDW(nn.Module):
    """Depthwise 7x7 + 3x3 branches (large-kernel CIB); :meth:`fuse` merges them into one 7x7 conv."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = ConvBN(c, c, 7, g=c, act=False)
        self.conv1 = ConvBN(c, c, 3, g=c, act=False)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.conv1 is not None:
            y = y + self.conv1(x)
        return self.act(y)

    def fuse(self) -> RepVGGDW:
        if self.conv1 is not None:
            big, small = self.conv.fuse().conv, self.conv1.fuse().conv
            big.weight.data += F.pad(small.weight.data, (2, 2, 2, 2))
            big.bias.data += small.bias.data
            self.conv1 = None
        return self


class CIB(nn.Module):
    """Compact inverted block: depthwise convs for spatial mixing, pointwise convs for channels."""

    def __init__(self, c1: int, c2: int, shortcut: bool = True, lk: bool = False) -> None:
        super().__init__()
        h = 2 * c2  # expansion 1.0 inside C2fCIB: the middle depthwise conv runs at twice the width
        self.cv1 = nn.Sequential(
            ConvBN(c1, c1, 3, g=c1),
            ConvBN(c1, h, 1),
            RepVGGDW(h) if lk else ConvBN(h, h, 3, g=h),
            ConvBN(h, c2, 1),
            ConvBN(c2, c2, 3, g=c2),
        )
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv1(x)
        return x + y if self.add else y


class DilatedBlock(nn.Module):
    """DocLayout-YOLO's multi-scale block: one k x k conv (its weights shared) read at each dilation, every branch
    through one shared 1x1 conv, the branches concatenated, gated by a sigmoid of a depthwise 1x1 conv of themselves
    ("glu" fusion), projected back by a grouped 1x1 conv (three consecutive channels per output) and added to the input."""

    def __init__(self, c: int, dilations: tuple[int, ...], k: int) -> None:
        super().__init__()
        self.dilations, self.k = tuple(dilations), k
        self.dcv = ConvBN(c, c, k)
        self.cv2 = ConvBN(c, c, 1)
        wide = len(self.dilations) * c
        self.conv_gating = ConvBN(wide, wide, 1, g=wide)
        self.conv1x1 = ConvBN(wide, c, 1, g=c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.dcv  # the conv's weight at every dilation; after fuse() its BatchNorm lives in the bias
        branches = [self.cv2(conv.act(conv.bn(F.conv2d(x, conv.conv.weight, conv.conv.bias, padding=d * (self.k // 2),
                                                        dilation=d)))) for d in self.dilations]
        y = torch.cat(branches, 1)
        return x + self.conv1x1(y * torch.sigmoid(self.conv_gating(y)))


class DilatedBottleneck(nn.Module):
    """3x3 conv, :class:`DilatedBlock`, 3x3 conv, and the input added back."""

    def __init__(self, c: int, shortcut: bool, dilations: tuple[int, ...], k: int) -> None:
        super().__init__()
        self.cv1 = ConvBN(c, c, 3)
        self.dilated_block = DilatedBlock(c, dilations, k)
        self.cv2 = ConvBN(c, c, 3)
        self.add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.dilated_block(self.cv1(x)))
        return x + y if self.add else y


class C2f(nn.Module):
    """Split in two, chain ``n`` blocks on one half, concatenate every intermediate, project. The blocks are
    bottlenecks, CIBs (``cib``, ``lk``: large-kernel) or DocLayout-YOLO's dilated bottlenecks (``dilations``, ``k``:
    the C2f form of its GL-CRM)."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = False, cib: bool = False, lk: bool = False,
                 dilations: tuple[int, ...] | None = None, k: int = 3) -> None:
        super().__init__()
        self.c = c2 // 2
        self.cv1 = ConvBN(c1, 2 * self.c, 1)
        self.cv2 = ConvBN((2 + n) * self.c, c2, 1)
        if dilations:
            block = lambda: DilatedBottleneck(self.c, shortcut, dilations, k)
        elif cib:
            block = lambda: CIB(self.c, self.c, shortcut, lk)
        else:
            block = lambda: Bottleneck(self.c, self.c, shortcut)
        self.m = nn.ModuleList(block() for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv1(x)
        parts = [y[:, : self.c], y[:, self.c :]]  # slices, not chunk/split: friendlier to every exporter
        for block in self.m:
            parts.append(block(parts[-1]))
        return self.cv2(torch.cat(parts, 1))


class SCDown(nn.Module):
    """Spatial-channel decoupled downsampling: pointwise conv for channels, depthwise stride-2 for space."""

    def __init__(self, c1: int, c2: int, k: int = 3, s: int = 2) -> None:
        super().__init__()
        self.cv1 = ConvBN(c1, c2, 1)
        self.cv2 = ConvBN(c2, c2, k, s, g=c2, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv2(self.cv1(x))


class SPPF(nn.Module):
    """Spatial pyramid pooling (fast): three chained 5x5 max-pools, concatenated."""

    def __init__(self, c1: int, c2: int, k: int = 5) -> None:
        super().__init__()
        c = c1 // 2
        self.cv1 = ConvBN(c1, c, 1)
        self.cv2 = ConvBN(4 * c, c2, 1)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class Attention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, with a depthwise positional conv.

    Reshapes take no sizes from the input's shape, so dynamic-batch ONNX/TensorRT and CoreML exports work.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.key_dim = int(self.head_dim * 0.5)
        self.scale = self.key_dim**-0.5
        self.qkv = ConvBN(dim, dim + 2 * self.key_dim * num_heads, 1, act=False)
        self.proj = ConvBN(dim, dim, 1, act=False)
        self.pe = ConvBN(dim, dim, 3, g=dim, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kd, hd = self.key_dim, self.head_dim
        # flatten/unflatten and reshape_as: no sizes computed from the input's shape in the graph
        qkv = self.qkv(x).flatten(2).unflatten(1, (self.num_heads, 2 * kd + hd))  # [B, heads, 2kd + hd, N]
        q, k, v = qkv[:, :, :kd], qkv[:, :, kd : 2 * kd], qkv[:, :, 2 * kd :]
        attn = ((q.transpose(-2, -1) @ k) * self.scale).softmax(dim=-1)
        y = (v @ attn.transpose(-2, -1)).flatten(1, 2).reshape_as(x) + self.pe(v.flatten(1, 2).reshape_as(x))
        return self.proj(y)


class PSA(nn.Module):
    """Partial self-attention: attention + FFN on half the channels, the other half passes through."""

    def __init__(self, c1: int) -> None:
        super().__init__()
        self.c = c1 // 2
        self.cv1 = ConvBN(c1, 2 * self.c, 1)
        self.cv2 = ConvBN(2 * self.c, c1, 1)
        self.attn = Attention(self.c, num_heads=self.c // 64)
        self.ffn = nn.Sequential(ConvBN(self.c, 2 * self.c, 1), ConvBN(2 * self.c, self.c, 1, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv1(x)
        a, b = y[:, : self.c], y[:, self.c :]
        b = b + self.attn(b)
        b = b + self.ffn(b)
        return self.cv2(torch.cat((a, b), 1))


class DFL(nn.Module):
    """Distribution focal loss integral: the expected bin (0..reg_max-1) of each side's distribution.

    The official checkpoints store the bin values as a frozen 1x1 conv (``dfl.conv.weight`` = 0..15);
    it is kept so their weights load unchanged, and the integral itself is
    :func:`zoo.models._tal.decode_distribution`, the same one the loss uses.
    """

    def __init__(self, reg_max: int = REG_MAX) -> None:
        super().__init__()
        self.conv = nn.Conv2d(reg_max, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(reg_max, dtype=torch.float).view(1, reg_max, 1, 1)
        self.reg_max = reg_max

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 4 * reg_max, A]`` logits -> ``[B, A, 4]`` distances in stride units."""
        from zoo.models._tal import decode_distribution

        return decode_distribution(x, self.reg_max)


def _box_branch(c: int, hidden: int, reg_max: int) -> nn.Sequential:
    return nn.Sequential(ConvBN(c, hidden, 3), ConvBN(hidden, hidden, 3), nn.Conv2d(hidden, 4 * reg_max, 1))


def _cls_branch(c: int, hidden: int, nc: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Sequential(ConvBN(c, c, 3, g=c), ConvBN(c, hidden, 1)),
        nn.Sequential(ConvBN(hidden, hidden, 3, g=hidden), ConvBN(hidden, hidden, 1)),
        nn.Conv2d(hidden, nc, 1),
    )


class DualHead(nn.Module):
    """The v10 detection head: a one-to-many and a one-to-one branch of identical shape per level."""

    def __init__(self, nc: int, channels: tuple[int, int, int], max_det: int = 300, reg_max: int = REG_MAX) -> None:
        super().__init__()
        self.nc, self.reg_max, self.max_det = nc, reg_max, max_det
        box_hidden = max(16, channels[0] // 4, reg_max * 4)
        cls_hidden = max(channels[0], min(nc, 100))
        self.box_o2m = nn.ModuleList(_box_branch(c, box_hidden, reg_max) for c in channels)
        self.cls_o2m = nn.ModuleList(_cls_branch(c, cls_hidden, nc) for c in channels)
        self.box_o2o = nn.ModuleList(_box_branch(c, box_hidden, reg_max) for c in channels)
        self.cls_o2o = nn.ModuleList(_cls_branch(c, cls_hidden, nc) for c in channels)
        self.dfl = DFL(reg_max)
        self.init_biases()

    def init_biases(self, image_size: int = 640) -> None:
        """Box logits start flat; class logits start at a prior of ~5 objects per image over the grid."""
        for boxes, classes in ((self.box_o2m, self.cls_o2m), (self.box_o2o, self.cls_o2o)):
            if boxes is None:
                continue
            for box, cls, stride in zip(boxes, classes, STRIDES):
                box[-1].bias.data[:] = 1.0
                cls[-1].bias.data[:] = math.log(5 / self.nc / (image_size / stride) ** 2)

    @property
    def has_one2many(self) -> bool:
        return self.box_o2m is not None

    def forward(self, feats: list[torch.Tensor]):
        if self.training:
            if not self.has_one2many:
                raise RuntimeError("this YOLOv10 is in deploy form (one-to-many head dropped) and cannot be trained")
            one2many = [torch.cat((b(x), c(x)), 1) for x, b, c in zip(feats, self.box_o2m, self.cls_o2m)]
            feats = [x.detach() for x in feats]  # the one-to-one loss trains its own head only
            one2one = [torch.cat((b(x), c(x)), 1) for x, b, c in zip(feats, self.box_o2o, self.cls_o2o)]
            return {"one2many": one2many, "one2one": one2one}
        return self.detect([torch.cat((b(x), c(x)), 1) for x, b, c in zip(feats, self.box_o2o, self.cls_o2o)])

    def detect(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        """One-to-one head outputs -> ``[B, max_det, 6]`` top-scoring detections (score-0 rows pad)."""
        from zoo.models._tal import distances_to_boxes, make_anchors

        dtype = outputs[0].dtype
        flat = torch.cat([o.flatten(2) for o in outputs], 2).float()  # decode in fp32: bf16 ties scores, moves boxes
        points, strides = make_anchors([o.shape[2:] for o in outputs], STRIDES, flat.device, flat.dtype)
        boxes = distances_to_boxes(self.dfl(flat[:, : 4 * self.reg_max]), points, strides)  # [B, A, 4] pixels
        scores = flat[:, 4 * self.reg_max :].sigmoid().transpose(1, 2)  # [B, A, nc]
        k = min(self.max_det, scores.shape[1])
        # best anchors by their best class, then the best (anchor, class) pairs among those
        anchor_idx = scores.amax(-1).topk(k, dim=1).indices
        boxes = boxes.gather(1, anchor_idx.unsqueeze(-1).expand(-1, -1, 4))
        scores = scores.gather(1, anchor_idx.unsqueeze(-1).expand(-1, -1, self.nc))
        top_scores, flat_idx = scores.flatten(1).topk(k, dim=1)
        labels = flat_idx % self.nc
        anchor = torch.div(flat_idx, self.nc, rounding_mode="floor").long()  # CoreML's divide gives floats
        boxes = boxes.gather(1, anchor.unsqueeze(-1).expand(-1, -1, 4))
        detections = torch.cat((boxes, top_scores.unsqueeze(-1), labels.unsqueeze(-1).to(boxes.dtype)), -1)
        if k < self.max_det:  # tiny inputs have fewer anchors than max_det: pad with score-0 rows
            detections = F.pad(detections, (0, 0, 0, self.max_det - k))
        return detections.to(dtype)

    def drop_one2many(self) -> None:
        self.box_o2m = self.cls_o2m = None


@dataclass(frozen=True)
class Scale:
    depth: float
    width: float
    max_channels: int
    # block choice per varying layer (6, 8, 13, 19, 22): "c2f", "cib" or "cib_lk"
    blocks: tuple[str, str, str, str, str]


SCALES = {
    "n": Scale(0.33, 0.25, 1024, ("c2f", "c2f", "c2f", "c2f", "cib_lk")),
    "s": Scale(0.33, 0.50, 1024, ("c2f", "cib_lk", "c2f", "c2f", "cib_lk")),
    "m": Scale(0.67, 0.75, 768, ("c2f", "cib", "c2f", "cib", "cib")),
    "b": Scale(0.67, 1.00, 512, ("c2f", "cib", "cib", "cib", "cib")),
    "l": Scale(1.00, 1.00, 512, ("c2f", "cib", "cib", "cib", "cib")),
    "x": Scale(1.00, 1.25, 512, ("cib", "cib", "cib", "cib", "cib")),
}

# Our attribute name for each layer index of the official model (None: no parameters).
LAYERS = (
    "stem", "down1", "stage1", "down2", "stage2", "down3", "stage3", "down4", "stage4", "sppf", "psa",
    None, None, "fpn_p4", None, None, "fpn_p3", "pan_down3", None, "pan_p4", "pan_down4", None, "pan_p5", "head",
)
HEAD_BRANCHES = {"cv2": "box_o2m", "cv3": "cls_o2m", "one2one_cv2": "box_o2o", "one2one_cv3": "cls_o2o"}
# DocLayout-YOLO's GL-CRM in backbone layers 4, 6, 8 (six repeats each before depth scaling): dilated bottlenecks with
# dilations 1/2/3 and a 5x5 kernel, then 1/3/5 and 3x3, then CIBs (its released yolov10m-doclayout configuration).
G2L_STAGES = ({"dilations": (1, 2, 3), "k": 5}, {"dilations": (1, 3, 5), "k": 3}, {"cib": True})


class YOLOv10(nn.Module):
    """YOLOv10 at one scale. Input: RGB 0..1, letterboxed, sides a multiple of 32."""

    def __init__(self, scale: str = "n", num_classes: int = 80, max_det: int = 300, g2l: bool = False) -> None:
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f"unknown YOLOv10 scale {scale!r}; scales: {', '.join(SCALES)}")
        cfg = SCALES[scale]
        self.scale, self.num_classes, self.g2l = scale, num_classes, g2l

        def ch(c: int) -> int:
            return math.ceil(min(c, cfg.max_channels) * cfg.width / 8) * 8

        def n(repeats: int) -> int:
            return max(round(repeats * cfg.depth), 1)

        def block(kind: str, c1: int, c2: int, repeats: int, shortcut: bool) -> nn.Module:
            if kind == "c2f":
                return C2f(c1, c2, n(repeats), shortcut)
            return C2f(c1, c2, n(repeats), shortcut, cib=True, lk=kind == "cib_lk")

        b6, b8, b13, b19, b22 = cfg.blocks
        c64, c128, c256, c512, c1024 = (ch(c) for c in (64, 128, 256, 512, 1024))
        self.stem = ConvBN(3, c64, 3, 2)
        self.down1 = ConvBN(c64, c128, 3, 2)
        self.stage1 = C2f(c128, c128, n(3), True)
        self.down2 = ConvBN(c128, c256, 3, 2)
        self.stage2 = C2f(c256, c256, n(6), True, **(G2L_STAGES[0] if g2l else {}))
        self.down3 = SCDown(c256, c512)
        self.stage3 = C2f(c512, c512, n(6), True, **G2L_STAGES[1]) if g2l else block(b6, c512, c512, 6, True)
        self.down4 = SCDown(c512, c1024)
        self.stage4 = C2f(c1024, c1024, n(6), True, **G2L_STAGES[2]) if g2l else block(b8, c1024, c1024, 3, True)
        self.sppf = SPPF(c1024, c1024)
        self.psa = PSA(c1024)
        self.fpn_p4 = block(b13, c1024 + c512, c512, 3, b13 != "c2f")
        self.fpn_p3 = C2f(c512 + c256, c256, n(3), False)
        self.pan_down3 = ConvBN(c256, c256, 3, 2)
        self.pan_p4 = block(b19, c256 + c512, c512, 3, b19 != "c2f")
        self.pan_down4 = SCDown(c512, c512)
        self.pan_p5 = block(b22, c512 + c1024, c1024, 3, True)
        self.head = DualHead(num_classes, (c256, c512, c1024), max_det)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The P3, P4, P5 maps (strides 8, 16, 32) the head reads."""
        p3 = self.stage2(self.down2(self.stage1(self.down1(self.stem(x)))))
        p4 = self.stage3(self.down3(p3))
        p5 = self.psa(self.sppf(self.stage4(self.down4(p4))))
        t4 = self.fpn_p4(torch.cat((F.interpolate(p5, scale_factor=2.0, mode="nearest"), p4), 1))
        o3 = self.fpn_p3(torch.cat((F.interpolate(t4, scale_factor=2.0, mode="nearest"), p3), 1))
        o4 = self.pan_p4(torch.cat((self.pan_down3(o3), t4), 1))
        o5 = self.pan_p5(torch.cat((self.pan_down4(o4), p5), 1))
        return [o3, o4, o5]

    def head_outputs(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """The raw maps of both head branches (``{"one2many": [...], "one2one": [...]}``) in any mode:
        what a distillation teacher gives its student, whose training forward returns the same."""
        feats = self.forward_features(x)
        head = self.head
        if not head.has_one2many:
            raise RuntimeError("this YOLOv10 is in deploy form (one-to-many head dropped); load it again to distil from it")
        return {name: [torch.cat((b(f), c(f)), 1) for f, b, c in zip(feats, boxes, classes)]
                for name, boxes, classes in (("one2many", head.box_o2m, head.cls_o2m), ("one2one", head.box_o2o, head.cls_o2o))}

    def forward(self, x: torch.Tensor):
        if x.ndim != 4 or x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(f"YOLOv10 takes [B, 3, H, W] images with H and W multiples of 32, not {tuple(x.shape)}")
        return self.head(self.forward_features(x))

    def fuse(self) -> YOLOv10:
        """Fold every BatchNorm into its conv and merge RepVGGDW branches (in place; eval outputs unchanged)."""
        self.eval()
        for module in list(self.modules()):
            if isinstance(module, (ConvBN, RepVGGDW)):
                module.fuse()
        return self

    def deploy(self) -> YOLOv10:
        """The inference form: one-to-one head only, BatchNorm and RepVGGDW folded (in place)."""
        self.head.drop_one2many()
        return self.fuse()

    def make_loss(self):
        """The training criterion for :class:`~zoo.tasks.detection.DetectionTask` (consistent dual assignments)."""
        from zoo.models._tal import DualAssignmentLoss

        return DualAssignmentLoss(self.num_classes, strides=STRIDES, reg_max=self.head.reg_max)


# -- official weights --------------------------------------------------------------------------------


def convert_official(state_dict: dict, model: nn.Module | None = None) -> dict:
    """Official YOLOv10 key names -> ours. Accepts ``model.model.<i>.…`` (Hub) and ``model.<i>.…`` (release)."""
    converted, unknown = {}, []
    for key, value in state_dict.items():
        parts = key.split(".")
        if parts[:2] == ["model", "model"] and len(parts) > 2 and parts[2].isdigit():
            index, rest = int(parts[2]), parts[3:]
        elif parts[0] == "model" and len(parts) > 1 and parts[1].isdigit():
            index, rest = int(parts[1]), parts[2:]
        else:
            unknown.append(key)
            continue
        name = LAYERS[index] if index < len(LAYERS) else None
        if name is None or not rest:
            unknown.append(key)
            continue
        if name == "head":
            rest = [HEAD_BRANCHES.get(rest[0], rest[0]), *rest[1:]]
        converted[".".join([name, *rest])] = value
    if unknown:
        shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise KeyError(
            f"{len(unknown)} key(s) are not in either official YOLOv10 layout ('model.model.<i>.…' or 'model.<i>.…'): {shown}"
        )
    if model is not None:  # checkpoints saved without BatchNorm step counters still fit
        own = model.state_dict()
        for key in own.keys() - converted.keys():
            if key.endswith("num_batches_tracked"):
                converted[key] = torch.zeros_like(own[key])
    return converted


# -- registration ------------------------------------------------------------------------------------

YOLOV10 = Paper(
    title="YOLOv10: Real-Time End-to-End Object Detection",
    arxiv="2405.14458",
    code_url="https://github.com/THU-MIG/yolov10",
    code_license="agpl-3.0",
    bibtex="""@inproceedings{wang2024yolov10,
  title={{YOLOv10}: Real-Time End-to-End Object Detection},
  author={Wang, Ao and Chen, Hui and Liu, Lihao and Chen, Kai and Lin, Zijia and Han, Jungong and Ding, Guiguang},
  booktitle={Advances in Neural Information Processing Systems (NeurIPS)},
  year={2024}
}""",
)

# name: (scale, COCO val2017 AP, params M, GFLOPs, T4 TensorRT fp16 latency ms): the paper's Table 1, as in the README
_REPORTED = {
    "yolov10n": ("n", 38.5, 2.3, 6.7, 1.84),
    "yolov10s": ("s", 46.3, 7.2, 21.6, 2.49),
    "yolov10m": ("m", 51.1, 15.4, 59.1, 4.74),
    "yolov10b": ("b", 52.5, 19.1, 92.0, 5.74),
    "yolov10l": ("l", 53.2, 24.4, 120.3, 7.28),
    "yolov10x": ("x", 54.4, 29.5, 160.4, 10.70),
}


def _build(num_classes: int = 80, scale: str = "n", max_det: int = 300, g2l: bool = False) -> YOLOv10:
    return YOLOv10(scale, num_classes=num_classes, max_det=max_det, g2l=g2l)


for _name, (_scale, _ap, _params, _gflops, _latency) in _REPORTED.items():
    _source = "arXiv:2405.14458, Table 1 (as in the THU-MIG/yolov10 README)"
    register_spec(
        ModelSpec(
            name=_name,
            family="yolov10",
            task="detection",
            builder=_build,
            default_kwargs={"scale": _scale},
            input_size=(3, 640, 640),
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
            interpolation="bilinear",
            crop_pct=1.0,
            num_classes=80,
            classifier=("head.cls_o2m", "head.cls_o2o"),  # their hidden width depends on the class count too
            labels=COCO_CLASSES,
            weights=(
                WeightTag(
                    tag="coco",
                    hf_hub_id=f"jameslahm/{_name}",
                    license="agpl-3.0",
                    dataset="coco-2017",
                    description="official THU-MIG release (AGPL-3.0 weights; this code is Apache-2.0)",
                ),
            ),
            paper=YOLOV10,
            reported=(
                Reported("box_ap", _ap, "", _source, "coco-2017-val", 640),
                Reported("params", _params, "M", _source, "", 640, "fused, one-to-one head only"),
                Reported("flops", _gflops, "G", _source, "", 640, "fused, one-to-one head only"),
                Reported("latency_ms", _latency, "ms", _source, "", 640, "T4, TensorRT fp16, end to end"),
            ),
            convert_state_dict=convert_official,
            description=f"YOLOv10-{_scale.upper()}: NMS-free real-time detector (dual assignments, v10 head)",
        )
    )


# -- DocLayout-YOLO ------------------------------------------------------------------------------------

DOCLAYOUT_YOLO = Paper(
    title="DocLayout-YOLO: Enhancing Document Layout Analysis through Diverse Synthetic Data and Global-to-Local "
          "Adaptive Perception",
    arxiv="2410.12628",
    code_url="https://github.com/opendatalab/DocLayout-YOLO",
    code_license="agpl-3.0",
    bibtex="""@article{zhao2024doclayout,
  title={{DocLayout-YOLO}: Enhancing Document Layout Analysis through Diverse Synthetic Data and Global-to-Local
         Adaptive Perception},
  author={Zhao, Zhiyuan and Kang, Hengrui and Wang, Bin and He, Conghui},
  journal={arXiv preprint arXiv:2410.12628},
  year={2024}
}""",
)

register_spec(
    ModelSpec(
        name="doclayout_yolo",
        family="yolov10",
        task="detection",
        builder=_build,
        default_kwargs={"scale": "m", "g2l": True},
        input_size=(3, 1024, 1024),
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        interpolation="bilinear",
        crop_pct=1.0,
        num_classes=len(DOCSTRUCTBENCH_CLASSES),
        classifier=("head.cls_o2m", "head.cls_o2o"),
        labels=DOCSTRUCTBENCH_CLASSES,
        weights=(
            WeightTag(
                tag="docstructbench",
                hf_hub_id="juliozhao/DocLayout-YOLO-DocStructBench",
                filename="doclayout_yolo_docstructbench_imgsz1024.pt",
                license="agpl-3.0",
                dataset="docstructbench",
                description="official release, trained at 1024 (an ultralytics pickle, read without building its "
                            "classes; AGPL-3.0 like the code that made it, though the Hub card says apache-2.0)",
            ),
        ),
        paper=DOCLAYOUT_YOLO,
        convert_state_dict=convert_official,
        description="DocLayout-YOLO: YOLOv10-M with the Global-to-Local Controllable Receptive Module (GL-CRM) in "
                    "backbone stages 2-4, for document layout (DocStructBench's 10 classes)",
    )
)
