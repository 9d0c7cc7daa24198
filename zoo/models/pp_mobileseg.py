"""PP-MobileSeg (tiny, base): the StrideFormer backbone, the Aggregated Attention Module and a light head, written here.

PaddleSeg (Apache-2.0) is PP-MobileSeg's home and runs only on Paddle; no maintained PyTorch library ships it, so the
network is written from the facts of the paper and the official configs (``docs/research/pp_mobileseg.md``):

- **StrideFormer**: a MobileNetV3 stem and four stages of inverted residual blocks (strides 4, 8, 16, 32), the last two
  each followed by transformer blocks of **SEA attention** (squeeze-enhanced axial attention: queries, keys and values
  averaged along rows and along columns, attention over each axis with learned positions, a depthwise "detail" branch
  gated by the axial result), computed at half the stage's resolution (a strided depthwise conv before, a bilinear
  upsample after) and an MLP with a depthwise conv. No norm layers beyond the BatchNorm of each conv.
- **AAM**: the stride-8, 16 and 32 maps, each through 1x1 conv + BN "embeddings" and sigmoid "gates"; the product of
  the gates filters the detail embeddings and the semantic (stride-32) embedding is added. Tiny fuses at stride 16,
  base at stride 8 (each variant's own layout). The gates are sigmoids, as in the fixed release (PaddleSeg #3443).
- **Head**: depthwise 1x1 conv + BN + ReLU, Dropout2d(0.1), 1x1 classifier; bilinear upsampling to the input.

Module and parameter names follow the official checkpoints' key names (facts of the release), so converting them
(:func:`convert_paddle`) only renames BatchNorm statistics. ``tests/test_pp_mobileseg.py`` checks the tiny model
against the official implementation's outputs for fixed random weights.

Paper: Tang et al., "PP-MobileSeg: Explore the Fast and Accurate Semantic Segmentation Model on Mobile Devices",
arXiv:2304.05152. Official code: github.com/PaddlePaddle/PaddleSeg (configs/pp_mobileseg).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.registry import ModelSpec, Paper, Reported, register_spec

PP_MOBILESEG = Paper(
    title="PP-MobileSeg: Explore the Fast and Accurate Semantic Segmentation Model on Mobile Devices",
    arxiv="2304.05152",
    code_url="https://github.com/PaddlePaddle/PaddleSeg/tree/release/2.8/configs/pp_mobileseg",
    code_license="Apache-2.0",
    bibtex="""@article{tang2023ppmobileseg,
  title={PP-MobileSeg: Explore the Fast and Accurate Semantic Segmentation Model on Mobile Devices},
  author={Tang, Shiyu and Sun, Ting and Peng, Juncai and Chen, Guowei and Hao, Yuying and Lin, Manhui and Xiao, Zhihong and You, Jiangbin and Liu, Yi},
  journal={arXiv preprint arXiv:2304.05152},
  year={2023}
}""",
)

# Inverted residual blocks per stage: (kernel, hidden, out, squeeze-excite, activation, stride)
BLOCKS = {
    "tiny": [
        [(3, 16, 16, True, "relu", 1), (3, 64, 32, False, "relu", 2), (3, 48, 24, False, "relu", 1)],
        [(5, 96, 32, True, "hardswish", 2), (5, 96, 32, True, "hardswish", 1)],
        [(5, 160, 64, True, "hardswish", 2), (5, 160, 64, True, "hardswish", 1)],
        [(3, 384, 128, True, "hardswish", 2), (3, 384, 128, True, "hardswish", 1)],
    ],
    "base": [
        [(3, 16, 16, True, "relu", 1), (3, 64, 32, False, "relu", 2), (3, 96, 32, False, "relu", 1)],
        [(5, 128, 64, True, "hardswish", 2), (5, 240, 64, True, "hardswish", 1)],
        [(5, 384, 128, True, "hardswish", 2), (5, 384, 128, True, "hardswish", 1)],
        [(5, 768, 192, True, "hardswish", 2), (5, 768, 192, True, "hardswish", 1)],
    ],
}
# SEA transformer stages after stages 3 and 4: depth, heads; key dims 16/24, attention ratio 2, MLP ratios 2/4
TRANSFORMER = {"tiny": {"depth": 2, "heads": 4}, "base": {"depth": 3, "heads": 8}}
KEY_DIMS, MLP_RATIOS, ATTN_RATIO, POSITIONS, AAM_CHANNELS = (16, 24), (2, 4), 2, 16, 256


def _act(name: str | None) -> nn.Module:
    return {"relu": nn.ReLU, "hardswish": nn.Hardswish, "relu6": nn.ReLU6, None: nn.Identity}[name]()


class ConvBN(nn.Module):
    """Conv (no bias) + BatchNorm (+ activation): ``c`` and ``bn`` as the official keys name them."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, act: str | None = None,
                 bn_weight: float = 1.0) -> None:
        super().__init__()
        self.c = nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        nn.init.constant_(self.bn.weight, bn_weight)
        self.act = _act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.c(x)))


class Embedding(nn.Module):
    """1x1 conv (no bias) + BatchNorm, no activation: the AAM's embeddings and gates (keys ``conv``, ``bn``)."""

    def __init__(self, cin: int, cout: int, groups: int = 1, act: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.ReLU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class SqueezeExcite(nn.Module):
    """Global pool, 1x1 conv to a quarter (bias), ReLU, 1x1 conv back (bias), gate clip(0.2 x + 0.5, 0, 1): Paddle's
    hard sigmoid, steeper than PyTorch's ``Hardsigmoid`` (slope 1/6)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels // 4, 1)
        self.conv2 = nn.Conv2d(channels // 4, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.conv2(F.relu(self.conv1(x.mean((2, 3), keepdim=True))))
        return x * torch.clamp(0.2 * gate + 0.5, 0.0, 1.0)


class InvertedResidual(nn.Module):
    """MobileNetV3 block; the 1x1 expansion is there even when it does not widen (stage 1, block 0)."""

    def __init__(self, cin: int, k: int, hidden: int, cout: int, se: bool, act: str, stride: int) -> None:
        super().__init__()
        self.expand_conv = ConvBN(cin, hidden, act=act)
        self.bottleneck_conv = ConvBN(hidden, hidden, k, stride, groups=hidden, act=act)
        self.mid_se = SqueezeExcite(hidden) if se else None
        self.linear_conv = ConvBN(hidden, cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bottleneck_conv(self.expand_conv(x))
        if self.mid_se is not None:
            y = self.mid_se(y)
        y = self.linear_conv(y)
        return x + y if self.residual else y


class Stage(nn.Module):
    def __init__(self, cin: int, blocks: list[tuple], stem: bool = False) -> None:
        super().__init__()
        self.conv = ConvBN(3, cin, 3, 2, act="hardswish") if stem else None
        layers = []
        for k, hidden, cout, se, act, stride in blocks:
            layers.append(InvertedResidual(cin, k, hidden, cout, se, act, stride))
            cin = cout
        self.blocks = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.conv(x) if self.conv is not None else x)


class AxialPosition(nn.Module):
    """A learned position per channel along one axis, stored at 16 places and resized (linear) to the axis' length."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.randn(1, channels, POSITIONS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C, L]
        return x + F.interpolate(self.pos_embed, size=x.shape[-1], mode="linear", align_corners=False)


class SeaAttention(nn.Module):
    """Squeeze-enhanced axial attention at half resolution (see the module docstring)."""

    def __init__(self, dim: int, key_dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.key_dim, self.scale = heads, key_dim, key_dim ** -0.5
        nh_kd, self.d = key_dim * heads, ATTN_RATIO * key_dim
        dh = self.d * heads
        self.to_q, self.to_k, self.to_v = ConvBN(dim, nh_kd), ConvBN(dim, nh_kd), ConvBN(dim, dh)
        self.stride_conv = nn.Sequential(nn.Conv2d(dim, dim, 3, 2, 1, groups=dim), nn.BatchNorm2d(dim))
        self.proj = nn.Sequential(nn.ReLU6(), ConvBN(dh, dim, bn_weight=0.0))
        self.proj_encode_row = nn.Sequential(nn.ReLU6(), ConvBN(dh, dh, bn_weight=0.0))
        self.proj_encode_column = nn.Sequential(nn.ReLU6(), ConvBN(dh, dh, bn_weight=0.0))
        self.pos_emb_rowq, self.pos_emb_rowk = AxialPosition(nh_kd), AxialPosition(nh_kd)
        self.pos_emb_columnq, self.pos_emb_columnk = AxialPosition(nh_kd), AxialPosition(nh_kd)
        self.dwconv = ConvBN(2 * nh_kd + dh, 2 * nh_kd + dh, 3, groups=2 * nh_kd + dh)
        self.pwconv = ConvBN(2 * nh_kd + dh, dim)

    def _axis(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attention along one axis of squeezed ``[B, C, L]`` queries, keys and values: ``[B, heads * d, L]``."""
        b, _, length = q.shape
        q = q.reshape(b, self.heads, self.key_dim, length).transpose(2, 3)
        k = k.reshape(b, self.heads, self.key_dim, length)
        v = v.reshape(b, self.heads, self.d, length).transpose(2, 3)
        out = torch.softmax(q @ k * self.scale, dim=-1) @ v  # [B, heads, L, d]
        return out.transpose(2, 3).reshape(b, -1, length)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        x = self.stride_conv(x)
        q, k, v = self.to_q(x), self.to_k(x), self.to_v(x)
        detail = self.pwconv(F.relu6(self.dwconv(torch.cat([q, k, v], 1))))
        rows = self._axis(self.pos_emb_rowq(q.mean(-1)), self.pos_emb_rowk(k.mean(-1)), v.mean(-1))
        columns = self._axis(self.pos_emb_columnq(q.mean(-2)), self.pos_emb_columnk(k.mean(-2)), v.mean(-2))
        axial = v + self.proj_encode_row(rows.unsqueeze(-1)) + self.proj_encode_column(columns.unsqueeze(-2))
        out = F.hardsigmoid(self.proj(axial)) * detail
        return F.interpolate(out, size=size, mode="bilinear", align_corners=False)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = ConvBN(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden)
        self.fc2 = ConvBN(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu6(self.dwconv(self.fc1(x))))


class SeaBlock(nn.Module):
    def __init__(self, dim: int, key_dim: int, heads: int, mlp_ratio: int, drop_path: float) -> None:
        super().__init__()
        from timm.layers import DropPath

        self.attn = SeaAttention(dim, key_dim, heads)
        self.mlp = Mlp(dim, dim * mlp_ratio)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(x))
        return x + self.drop_path(self.mlp(x))


class SeaStage(nn.Module):
    def __init__(self, dim: int, depth: int, key_dim: int, heads: int, mlp_ratio: int, drop_path: float) -> None:
        super().__init__()
        rates = [drop_path * i / max(depth - 1, 1) for i in range(depth)]
        self.transformer_blocks = nn.Sequential(*(SeaBlock(dim, key_dim, heads, mlp_ratio, r) for r in rates))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.transformer_blocks(x)


def _resize(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class AggregatedAttention(nn.Module):
    """The AAM. Tiny (``at_stride=16``): every map at stride 16, ``a8 * a16 * a32 * (e8 + e16) + e32``. Base
    (``at_stride=8``): at stride 8, ``a16 * a32 * e8 + e32`` (no gate on stride 8, no embedding of stride 16)."""

    def __init__(self, channels: list[int], at_stride: int) -> None:
        super().__init__()
        self.at_stride = at_stride
        embedded, gated = ((0, 1, 2), (0, 1, 2)) if at_stride == 16 else ((0, 2), (1, 2))
        self.embedding_list = nn.ModuleList(Embedding(channels[i], AAM_CHANNELS) for i in embedded)
        self.act_embedding_list = nn.ModuleList(Embedding(channels[i], AAM_CHANNELS) for i in gated)

    def forward(self, f8: torch.Tensor, f16: torch.Tensor, f32: torch.Tensor) -> torch.Tensor:
        e, a = self.embedding_list, self.act_embedding_list
        if self.at_stride == 16:
            f8 = F.interpolate(f8, scale_factor=0.5, mode="bilinear", align_corners=False)
            f16 = _resize(f16, f8.shape[-2:])
            size = f16.shape[-2:]
            gate = torch.sigmoid(a[0](f8)) * torch.sigmoid(a[1](f16)) * _resize(torch.sigmoid(a[2](f32)), size)
            return gate * (e[0](f8) + e[1](f16)) + _resize(e[2](f32), size)
        detail = e[0](f8)
        size = detail.shape[-2:]
        gate = torch.sigmoid(a[0](_resize(f16, size))) * _resize(torch.sigmoid(a[1](f32)), size)
        return gate * detail + _resize(e[1](f32), size)


class StrideFormer(nn.Module):
    def __init__(self, variant: str, drop_path: float = 0.1, sea_depth: int | None = None) -> None:
        super().__init__()
        blocks, t = BLOCKS[variant], dict(TRANSFORMER[variant], **({"depth": sea_depth} if sea_depth else {}))
        widths = [16] + [stage[-1][2] for stage in blocks]  # the stem's, then each stage's output
        self.smb1 = Stage(widths[0], blocks[0], stem=True)
        self.smb2 = Stage(widths[1], blocks[1])
        self.smb3 = Stage(widths[2], blocks[2])
        self.trans1 = SeaStage(widths[3], t["depth"], KEY_DIMS[0], t["heads"], MLP_RATIOS[0], drop_path)
        self.smb4 = Stage(widths[3], blocks[3])
        self.trans2 = SeaStage(widths[4], t["depth"], KEY_DIMS[1], t["heads"], MLP_RATIOS[1], drop_path)
        self.inj_module = AggregatedAttention(widths[2:], 16 if variant == "tiny" else 8)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The maps at strides 4, 8, 16 and 32 (the last two after their SEA stages)."""
        f4 = self.smb1(x)
        f8 = self.smb2(f4)
        f16 = self.trans1(self.smb3(f8))
        return [f4, f8, f16, self.trans2(self.smb4(f16))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, f8, f16, f32 = self.features(x)
        return self.inj_module(f8, f16, f32)


class SegHead(nn.Module):
    def __init__(self, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.linear_fuse = Embedding(AAM_CHANNELS, AAM_CHANNELS, groups=AAM_CHANNELS, act=True)
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = nn.Conv2d(AAM_CHANNELS, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_seg(self.dropout(self.linear_fuse(x)))


class PPMobileSeg(nn.Module):
    """Logits ``[B, num_classes, H, W]`` at the input's size (the head works at the AAM's stride, 16 or 8)."""

    def __init__(self, variant: str = "tiny", num_classes: int = 150, drop_path: float = 0.1, sea_depth: int | None = None) -> None:
        """``sea_depth``: SEA blocks in each transformer stage (default: the variant's, tiny 2, base 3); fewer build a
        smaller graph of the same parts (the export tests' runtime checks)."""
        super().__init__()
        self.backbone = StrideFormer(variant, drop_path, sea_depth)
        self.decode_head = SegHead(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _resize(self.decode_head(self.backbone(x)), x.shape[-2:])

    @torch.no_grad()
    def classes(self, x: torch.Tensor, valid_only: bool = True) -> torch.Tensor:
        """The class map ``[B, H, W]``. ``valid_only`` is PP-MobileSeg's VIM (Valid Interpolate Module): only the
        classes that win somewhere at low resolution (over the whole batch) are upsampled before the argmax, which
        saves most of the upsampling on 150-class data; a class that would win only after upsampling is not found.
        With fewer than 30 classes (as PaddleSeg decides) every class is upsampled."""
        logits = self.decode_head(self.backbone(x))
        if not valid_only or logits.shape[1] < 30:
            return _resize(logits, x.shape[-2:]).argmax(1)
        present = torch.unique(logits.argmax(1))
        return present[_resize(logits[:, present], x.shape[-2:]).argmax(1)]



class ClassMap(nn.Module):
    """``model.classes(x)`` as a module's forward (VIM included): what to give an exporter for a graph whose output
    is the class map ``[B, H, W]`` (int64) instead of the logits; ``torch.onnx.export(ClassMap(model), ...,
    dynamo=True)`` keeps VIM's data-dependent choice of classes (tests/test_pp_mobileseg.py runs it in onnxruntime)."""

    def __init__(self, model: PPMobileSeg, valid_only: bool = True) -> None:
        super().__init__()
        self.model, self.valid_only = model, valid_only

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.classes(x, self.valid_only)

def convert_paddle(state_dict: dict, model: nn.Module) -> dict:
    """Official PaddleSeg keys (the same module names) to this model's: BatchNorm's ``_mean``/``_variance`` become
    ``running_mean``/``running_var``, ``num_batches_tracked`` (which Paddle has not) is taken from the model, and
    Paddle's name table (``StructuredToParameterName@@``) is dropped. Every tensor is a conv kernel, BatchNorm vector
    or position table, already in PyTorch's layout."""
    own = model.state_dict()
    out = {}
    for key, value in state_dict.items():
        if key.startswith("StructuredToParameterName"):
            continue
        key = key.replace("._mean", ".running_mean").replace("._variance", ".running_var")
        out[key] = torch.as_tensor(value)
    out.update({k: v for k, v in own.items() if k.endswith("num_batches_tracked")})
    return out


@dataclass(frozen=True)
class PPMobileSegBuilder:
    """Builds ``PPMobileSeg(variant, num_classes, drop_path=..., sea_depth=...)``."""

    variant: str

    def __call__(self, num_classes: int = 150, **kwargs: Any) -> PPMobileSeg:
        return PPMobileSeg(self.variant, num_classes, **kwargs)


_SOURCE = "github.com/PaddlePaddle/PaddleSeg configs/pp_mobileseg/README.md (the paper arXiv:2304.05152 in brief)"
# variant: ADE20K val mIoU (512x512 crop, 80k iterations, batch 32), params (M) as the README prints them, the count
# the official code builds (150 classes), and the README's latency (Snapdragon 855, 1 thread, 512x512, argmax included)
_VARIANTS = {
    "tiny": (36.39, 1.61, 1_492_298, 215.3),
    "base": (41.57, 5.62, 5_943_878, 265.5),
}
for _variant, (_miou, _params, _built, _latency) in _VARIANTS.items():
    register_spec(ModelSpec(
        name=f"pp_mobileseg_{_variant}",
        family="pp-mobileseg",
        task="segmentation",
        builder=PPMobileSegBuilder(_variant),
        num_classes=150,
        input_size=(3, 512, 512),
        interpolation="bilinear",
        crop_pct=1.0,
        classifier=("decode_head.conv_seg",),
        paper=PP_MOBILESEG,
        reported=(
            Reported("miou", _miou, "%", _SOURCE, "ade20k", 512, "single scale"),
            Reported("params", _params, "M", _SOURCE, "", 512,
                     f"the official code builds {_built:,} trainable parameters for 150 classes, as this model does; how "
                     "the README counted is not stated" + (" (its comparison table prints 1.44M)" if _variant == "tiny" else "")),
            Reported("latency_ms", _latency, "ms", _SOURCE, "", 512, "PaddleLite, Snapdragon 855, 1 thread, argmax included"),
        ),
        convert_state_dict=convert_paddle,
        description=f"PP-MobileSeg-{_variant.capitalize()}: StrideFormer (SEA attention after stages 3 and 4), AAM at stride "
                    f"{16 if _variant == 'tiny' else 8}, a depthwise head. No PyTorch weights are published (PaddleSeg's are "
                    "Paddle checkpoints; convert_paddle maps their keys).",
    ))

