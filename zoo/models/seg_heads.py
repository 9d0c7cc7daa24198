"""Segmentation heads on the zoo's classification backbones: Semantic FPN and LR-ASPP.

A :class:`SegmentationModel` is a timm backbone read through ``forward_intermediates`` (its feature maps at strides
4-32, the classifier pruned away) and a head that turns them into class logits, upsampled (bilinear) to the input:
``[B, num_classes, H, W]`` in training and in eval mode alike, so a captured graph (QAT, export) has one output.

- **Semantic FPN** (Kirillov et al., Panoptic FPN, CVPR 2019), the head Next-ViT reports ADE20K results with: an FPN
  neck (torchvision's ``FeaturePyramidNetwork``: 1x1 laterals to 256 channels, nearest top-down sum, 3x3 output
  convs, no norm) and the semantic head written here, because torchvision ships none: each level goes through
  ``max(1, log2(stride / 4))`` blocks of 3x3 conv (128 channels) + BatchNorm + ReLU, each but the stride-4 level's
  followed by a 2x bilinear upsample; the four stride-4 maps are summed, then Dropout2d(0.1) and a 1x1 classifier.
  Settings as mmsegmentation's FPN/FPNHead configs that the Next-ViT and EfficientFormer segmentation code uses
  (docs/sources.md). On EfficientFormer/V2, whose attention is fixed to one token grid, the model is built for one
  input size (``img_size``) and the ImageNet attention-bias tables are resized to it on load.
- **LR-ASPP** (Howard et al., Searching for MobileNetV3, ICCV 2019): torchvision's ``LRASPPHead`` (a gated 1x1 branch
  on the last map plus a 1x1 classifier on the stride-8 map), here on timm's MobileNetV3-Large with its ImageNet
  weights from the Hub. torchvision's own model dilates the last stage (output stride 16); this one keeps timm's
  stride 32, which costs less on a CPU (the difference is listed in the spec's description).

``pretrained=True`` loads the backbone's ImageNet weights (the classification model's weights tag, keys moved under
``backbone.``); the neck and head start fresh, so train before use: no segmentation weights are published in a
layout these modules read.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.models._timm import TimmBuilder, backbone_tag
from zoo.models.efficientformer import EFFICIENTFORMER, EFFICIENTFORMER_V2
from zoo.models.nas_mobile import MOBILENETV3
from zoo.models.nextvit import NEXTVIT
from zoo.registry import ModelSpec, Paper, Reported, WeightTag, register_spec


class TimmFeatures(nn.Module):
    """A timm classifier read as a feature extractor: ``forward`` gives the maps at ``indices`` (timm's
    ``forward_intermediates``); the layers after the last index, the final norm and the classifier are pruned.

    ``img_size`` sizes the attention-bias tables of backbones whose attention is fixed to one token grid
    (EfficientFormer/V2), as their official segmentation code builds them for its 512x512 crops; ``out_norm`` puts a
    GroupNorm(1, C) on each map, as the official EfficientFormer (V1) segmentation backbone does.
    """

    def __init__(self, arch: str, indices: tuple[int, ...], img_size: int | None = None, out_norm: bool = False) -> None:
        super().__init__()
        self.model = TimmBuilder(arch)(num_classes=0, **({"img_size": img_size} if img_size else {}))
        if img_size:
            fit_v1_attention(self.model, img_size)
        self.indices = tuple(indices)
        self.model.prune_intermediate_layers(indices=list(self.indices), prune_norm=True, prune_head=True)
        info = self.model.feature_info
        self.channels = [info[i]["num_chs"] for i in self.indices]
        self.strides = [info[i]["reduction"] for i in self.indices]
        self.norms = nn.ModuleList(MapNorm(1, c) for c in self.channels) if out_norm else None

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = self.model.forward_intermediates(x, indices=list(self.indices), intermediates_only=True)
        return [norm(m) for norm, m in zip(self.norms, maps)] if self.norms is not None else maps


class MapNorm(nn.GroupNorm):
    """GroupNorm(1, C) whose statistics reduce over each channel's pixels first, then over the channels. Equal in exact
    arithmetic; but the exported graph's one fp32 reduction over C x H x W values (onnxruntime's InstanceNormalization)
    drifts by ~1e-4 on a 48 x 128 x 128 map (512 px input), beyond the export check, and two short ones do not."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean((2, 3), keepdim=True).mean(1, keepdim=True)
        centred = x - mean
        var = (centred * centred).mean((2, 3), keepdim=True).mean(1, keepdim=True)
        return centred * torch.rsqrt(var + self.eps) * self.weight[:, None, None] + self.bias[:, None, None]


def fit_v1_attention(model: nn.Module, img_size: int) -> None:
    """Resizes EfficientFormer (V1)'s attention-bias tables, which timm fixes at 7x7 tokens (224 / 32), to the token
    grid of ``img_size`` (the attention runs on the stride-32 map); the tables start at zero, as timm's do, and
    :func:`resize_bias_table` fills them from a checkpoint. Modules of other kinds are left alone."""
    from timm.models.efficientformer import Attention

    side = img_size // 32
    pos = torch.stack(torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")).flatten(1)
    offsets = (pos[:, :, None] - pos[:, None, :]).abs()
    for module in model.modules():
        if isinstance(module, Attention):
            module.attention_bias_idxs = offsets[0] * side + offsets[1]
            module.attention_biases = nn.Parameter(torch.zeros(module.num_heads, side * side))
            module.attention_bias_cache = {}


def resize_bias_table(table: torch.Tensor, size: int) -> torch.Tensor:
    """An attention-bias table ``[heads, side * side]`` (one bias per absolute (dy, dx) offset) resized bicubically
    to ``[heads, size]``: how a backbone trained at 224 starts at another token grid."""
    heads, old = table.shape
    side, new_side = math.isqrt(old), math.isqrt(size)
    if side * side != old or new_side * new_side != size:
        raise ValueError(f"attention-bias tables of {old} and {size} entries are not square grids")
    grid = table.reshape(1, heads, side, side).float()
    return F.interpolate(grid, size=(new_side, new_side), mode="bicubic", align_corners=False).reshape(heads, size).to(table.dtype)


class SemanticFPNHead(nn.Module):
    """FPN neck + Panoptic FPN's semantic branch (see the module docstring)."""

    def __init__(self, in_channels: list[int], strides: list[int], num_classes: int, neck_channels: int = 256,
                 channels: int = 128, dropout: float = 0.1) -> None:
        super().__init__()
        from torchvision.ops import FeaturePyramidNetwork

        self.neck = FeaturePyramidNetwork(in_channels, neck_channels)
        self.scale_heads = nn.ModuleList()
        for i, stride in enumerate(strides):
            steps = max(1, int(math.log2(stride / strides[0])))
            layers: list[nn.Module] = []
            for k in range(steps):
                layers += [nn.Conv2d(neck_channels if k == 0 else channels, channels, 3, padding=1, bias=False),
                           nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
                if stride != strides[0]:
                    layers.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            self.scale_heads.append(nn.Sequential(*layers))
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        maps = list(self.neck({str(i): f for i, f in enumerate(features)}).values())
        out = self.scale_heads[0](maps[0])
        for head, level in zip(self.scale_heads[1:], maps[1:]):
            out = out + F.interpolate(head(level), size=out.shape[-2:], mode="bilinear", align_corners=False)
        return self.classifier(self.dropout(out))


class LRASPP(nn.Module):
    """torchvision's ``LRASPPHead`` fed the stride-8 map (low) and the last map (high)."""

    def __init__(self, in_channels: list[int], strides: list[int], num_classes: int, channels: int = 128) -> None:
        super().__init__()
        from torchvision.models.segmentation.lraspp import LRASPPHead

        self.head = LRASPPHead(in_channels[0], in_channels[-1], num_classes, channels)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.head({"low": features[0], "high": features[-1]})


class SegmentationModel(nn.Module):
    """A backbone's feature maps into a head's logits, upsampled to the input (the output contract)."""

    def __init__(self, backbone: TimmFeatures, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.head(self.backbone(x)), size=x.shape[-2:], mode="bilinear", align_corners=False)


HEADS = {"semantic_fpn": SemanticFPNHead, "lraspp": LRASPP}


@dataclass(frozen=True)
class SegmentationBuilder:
    """Builds ``SegmentationModel(TimmFeatures(backbone, indices), HEADS[head](...))`` for ``num_classes``.
    ``img_size`` (backbones with ``fixed_size`` only; 512 by default) is the input the attention is built for."""

    backbone: str
    indices: tuple[int, ...]
    head: str
    fixed_size: bool = False
    out_norm: bool = False

    def __call__(self, num_classes: int = 150, img_size: int | None = None, **head_kwargs: Any) -> SegmentationModel:
        from zoo.errors import BadArgumentError

        if img_size is not None and (not self.fixed_size or isinstance(img_size, bool) or int(img_size) != img_size
                                     or img_size < 32 or img_size % 32):
            raise BadArgumentError(f"img_size={img_size!r}: " + ("a multiple of 32 is needed (the attention runs on the "
                                   "stride-32 grid)" if self.fixed_size else f"{self.backbone} takes any input size; drop img_size"))
        size = (int(img_size) if img_size else 512) if self.fixed_size else None
        features = TimmFeatures(self.backbone, self.indices, size, self.out_norm)
        return SegmentationModel(features, HEADS[self.head](features.channels, features.strides, num_classes, **head_kwargs))


@dataclass(frozen=True)
class BackboneWeights:
    """Converts a classifier's ImageNet weights (timm key names) into this model's: backbone keys moved under
    ``backbone.model.``, the classifier's and pruned layers' keys dropped, attention-bias tables resized to the
    model's token grid, output norms, neck and head kept as initialised."""

    def __call__(self, state_dict: dict, model: nn.Module) -> dict:
        own = model.state_dict()
        moved = {f"backbone.model.{k}": v for k, v in state_dict.items()
                 if f"backbone.model.{k}" in own and not k.endswith("attention_bias_idxs")}  # indices: the model's own grid
        for key, value in moved.items():
            if key.endswith("attention_biases") and value.shape != own[key].shape:
                moved[key] = resize_bias_table(value, own[key].shape[1])
        if not moved:
            raise KeyError("no key of these weights is a key of the backbone")
        kept = {k: v for k, v in own.items() if not k.startswith("backbone.model.") or k.endswith("attention_bias_idxs")}
        return {**kept, **moved}


def register_segmentation(name: str, backbone: str, indices: tuple[int, ...], head: str, *, paper: Paper,
                          weights: tuple[WeightTag, ...], reported: tuple[Reported, ...] = (), num_classes: int = 150,
                          fixed_size: bool = False, out_norm: bool = False, **fields: Any) -> ModelSpec:
    """A segmentation model; ``num_classes`` by default ADE20K's 150, as the papers report. ``fixed_size``: the
    backbone's attention is built for one input size (``img_size=``, 512 by default)."""
    return register_spec(ModelSpec(
        name=name, family=head.replace("_", "-"), task="segmentation",
        builder=SegmentationBuilder(backbone, indices, head, fixed_size, out_norm), num_classes=num_classes,
        input_size=(3, 512, 512), fixed_input_size=fixed_size,
        interpolation="bilinear", crop_pct=1.0, classifier=("head.classifier", "head.head.low_classifier", "head.head.high_classifier"),
        weights=weights, paper=paper, reported=reported, convert_state_dict=BackboneWeights(), **fields,
    ))


register_segmentation(
    "lraspp_mobilenetv3_large", "mobilenetv3_large_100", (2, 4), "lraspp",
    paper=MOBILENETV3,
    num_classes=21,  # torchvision's default (VOC's 20 and background), which its documented size is for
    weights=(backbone_tag("mobilenetv3_large_100", "ra_in1k"),),
    reported=(Reported("miou", 57.9, "%", "torchvision docs, lraspp_mobilenet_v3_large COCO_WITH_VOC_LABELS_V1", "coco-val2017 (VOC's 20 classes)",
                       520, "torchvision's own training of its variant (last stage dilated to stride 16), 21 classes"),
              Reported("params", 3.221538, "M", "torchvision docs, lraspp_mobilenet_v3_large (21 classes)")),
    description="LR-ASPP on MobileNetV3-Large 1.0 (stride-8 and stride-32 maps; torchvision's dilates the last stage "
                "to stride 16). The smallest-budget segmentation head of the zoo.",
)

# arch, ADE20K mIoU (Semantic FPN, 512x512, single scale) and params (M, whole model) as the Next-ViT README prints them
_NEXTVIT = (
    ("nextvit_small", 46.5, 36.3),
    ("nextvit_base", 48.6, 49.3),
    ("nextvit_large", 49.1, 62.4),
)
for _arch, _miou, _params in _NEXTVIT:
    _variant = _arch.split("_")[1][0].upper()
    _source = "github.com/bytedance/Next-ViT README, ADE20K Semantic FPN 80k (40k iterations at batch 32), ImageNet-1K pre-training"
    register_segmentation(
        f"semfpn_{_arch}", _arch, (0, 1, 2, 3), "semantic_fpn",
        paper=NEXTVIT,
        weights=(backbone_tag(_arch, "bd_in1k", crop_pct=1.0),),
        reported=(Reported("miou", _miou, "%", _source, "ade20k", 512),
                  Reported("params", _params, "M", _source, "", 512,
                           "1.07M more than this model; Next-ViT's 1000-class ImageNet classifier, which this model does "
                           "not carry, has 1,025,000, and with it the counts agree within 0.2%")),
        description=f"Semantic FPN (Kirillov et al., arXiv:1901.02446) on Next-ViT-{_variant}'s maps at strides 4-32, "
                    "the setting of the Next-ViT paper's ADE20K results.",
    )

# arch, paper, ADE20K mIoU (Semantic FPN, 512x512, single scale), backbone params (M) as printed, sources. Only the
# mIoU figures read in a public source are carried (L7: quoted by the Next-ViT README; V2-S2: quoted by PaddleSeg's
# EfficientFormerV2 README); the others are left out until read in the papers' tables. The papers print the
# backbone's count (the ImageNet classifier), not the segmentor's: tests/test_segmentation.py pins the FPN part.
_V1_PARAMS, _V2_PARAMS = "arXiv:2206.01191, ImageNet-1K results", "arXiv:2212.08059, ImageNet-1K results"
_EFFICIENTFORMER = (
    ("efficientformer_l1", EFFICIENTFORMER, None, 12.3, _V1_PARAMS),
    ("efficientformer_l3", EFFICIENTFORMER, None, 31.3, _V1_PARAMS),
    ("efficientformer_l7", EFFICIENTFORMER, 45.1, 82.1,
     "arXiv:2206.01191, ADE20K Semantic FPN, as quoted by the github.com/bytedance/Next-ViT README"),
    ("efficientformerv2_s0", EFFICIENTFORMER_V2, None, 3.5, _V2_PARAMS),
    ("efficientformerv2_s1", EFFICIENTFORMER_V2, None, 6.1, _V2_PARAMS),
    ("efficientformerv2_s2", EFFICIENTFORMER_V2, 42.4, 12.6,
     "arXiv:2212.08059, ADE20K Semantic FPN, as quoted by github.com/PaddlePaddle/PaddleSeg configs/efficientformerv2/README.md"),
    ("efficientformerv2_l", EFFICIENTFORMER_V2, None, 26.1, _V2_PARAMS),
)
for _arch, _paper, _miou, _params, _source in _EFFICIENTFORMER:
    _v1 = _paper is EFFICIENTFORMER
    _variant = _arch.split("_")[1].upper()
    register_segmentation(
        f"semfpn_{_arch}", _arch, (0, 1, 2, 3), "semantic_fpn",
        paper=_paper, fixed_size=True, out_norm=_v1,
        weights=(backbone_tag(_arch, "snap_dist_in1k", crop_pct=1.0),),
        reported=((Reported("miou", _miou, "%", _source, "ade20k", 512),) if _miou else ())
        + (Reported("backbone_params", _params, "M", _V1_PARAMS if _v1 else _V2_PARAMS, "", None,
                    "the backbone as an ImageNet classifier; the paper prints no count for the whole segmentor"),),
        description=f"Semantic FPN (Kirillov et al., arXiv:1901.02446) on EfficientFormer{'' if _v1 else 'V2'}-{_variant}'s "
                    "maps at strides 4-32, the setting of the paper's ADE20K results"
                    + (", a GroupNorm on each map as the official segmentation backbone has" if _v1 else "")
                    + ". The attention is built for one input size: img_size=512 by default (a multiple of 32); the "
                    "ImageNet attention biases are resized to it on load.",
    )
