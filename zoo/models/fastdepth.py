"""FastDepth: monocular depth from a MobileNet encoder and a light NNConv5 decoder with additive skips.

Written here from the paper's description and the official release's layer widths and key names (docs/sources.md),
because no maintained library carries it. Wofk et al., "FastDepth: Fast Monocular Depth Estimation on Embedded
Systems", ICRA 2019, arXiv:1903.03273.

- **Encoder**: MobileNet-v1 (a 3x3 stride-2 convolution, then 13 depthwise-separable blocks; BatchNorm and ReLU6 after
  every convolution), stride 32.
- **Decoder** (NNConv5): five stages of a 5x5 depthwise convolution and a 1x1 convolution (each with BatchNorm and
  ReLU) followed by a 2x nearest-neighbour upsampling, 1024 -> 512 -> 256 -> 128 -> 64 -> 32 channels, then a 1x1
  convolution to one channel (BatchNorm and ReLU: depth is never negative). The encoder's maps at strides 8, 4 and 2
  are added to the decoder's of the same stride and width.
- ``fastdepth_pruned``: the same network with the narrower layers NetAdapt left (the widths of the released pruned
  model's 38 convolutions); the skip partners keep equal widths.
- ``init_depth=`` (metres) starts the final BatchNorm's shift there instead of 0, for training from scratch: the
  output then starts near the scenes' depth rather than at ReLU's ~0.4 m, which otherwise takes thousands of steps to
  climb (not in the paper, whose encoder starts from ImageNet weights; a load of trained weights replaces it).
- ``fastdepth_<backbone>``: the decoder on a zoo backbone read through ``forward_intermediates`` (its maps at
  strides 32, 8, 4 and 2 where it has them); a skip whose width differs from the decoder's goes through a 1x1
  convolution with BatchNorm first (not in the paper, which adds maps of equal width). ``pretrained=True`` fills the
  backbone with its ImageNet weights (the ``<tag>_backbone`` tag); the decoder starts fresh.

The output contract of the depth task: ``[B, 1, H, W]`` depth in metres at the input's resolution, in training and
in eval mode alike. The official models take RGB in [0, 1] (no mean or std), so these do too; the variants on zoo
backbones take their backbone's ImageNet normalisation.

The official checkpoints (``.pth.tar``) pickle the whole ``nn.Module`` (its class from the official repository):
``zoo.load("fastdepth_pruned", weights=PATH, allow_pickle=True)`` takes only their tensors
(:func:`zoo.weights.module_pickle_state` builds none of the file's classes), as it reads a state dict saved on its own,
in the release's key layout (``conv0.0.weight`` ... ``decode_conv6.1.*``, with or without DataParallel's ``module.``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.models._timm import backbone_tag
from zoo.registry import IMAGENET_MEAN, IMAGENET_STD, ModelSpec, Paper, Reported, register_spec

FASTDEPTH = Paper(
    title="FastDepth: Fast Monocular Depth Estimation on Embedded Systems",
    arxiv="1903.03273",
    code_url="https://github.com/dwofk/fast-depth",
    bibtex="""@inproceedings{wofk2019fastdepth,
  author={Wofk, Diana and Ma, Fangchang and Yang, Tien-Ju and Karaman, Sertac and Sze, Vivienne},
  title={FastDepth: Fast Monocular Depth Estimation on Embedded Systems},
  booktitle={IEEE International Conference on Robotics and Automation (ICRA)},
  year={2019}
}""",
)

# MobileNet-v1: (output channels, stride) of the stem and the 13 depthwise-separable blocks
MOBILENET = ((32, 2), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1), (512, 1),
             (512, 1), (1024, 2), (1024, 1))
DECODER = (512, 256, 128, 64, 32)
SKIPS = {1: 2, 3: 4, 5: 8}  # encoder block index -> the stride of its map, added in the decoder


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: type = nn.ReLU) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), act(inplace=True))


def _separable(cin: int, cout: int, stride: int) -> nn.Sequential:
    """MobileNet's block as one Sequential (keys ``0`` dw conv, ``1`` BN, ``3`` pw conv, ``4`` BN, as released)."""
    return nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU6(inplace=True),
                         nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class _NNConv5(nn.Module):
    """The decoder's stages ``decode_conv1..5`` (5x5 depthwise + 1x1, each then upsampled 2x) and ``decode_conv6``."""

    def _build_decoder(self, bottom: int, widths: Sequence[int], kernel: int = 5, init_depth: float | None = None) -> None:
        cin = bottom
        for i, width in enumerate(widths, 1):
            setattr(self, f"decode_conv{i}", nn.Sequential(_conv_bn_relu(cin, cin, kernel, groups=cin), _conv_bn_relu(cin, width, 1)))
            cin = width
        self.decode_conv6 = _conv_bn_relu(cin, 1, 1)
        if init_depth is not None:  # trained from scratch, the output starts near the scene's depth, not at ~0.4 m
            nn.init.constant_(self.decode_conv6[1].bias, float(init_depth))
        self.stages = len(widths)

    def _decode(self, x: torch.Tensor, skips: dict[int, torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        stride = 32
        for i in range(1, self.stages + 1):
            x = F.interpolate(getattr(self, f"decode_conv{i}")(x), scale_factor=2, mode="nearest")
            stride //= 2
            if stride in skips:
                x = x + skips[stride]
        x = self.decode_conv6(x)
        return x if tuple(x.shape[-2:]) == tuple(size) else F.interpolate(x, size=tuple(size), mode="nearest")


class FastDepth(_NNConv5):
    """The paper's network: MobileNet-v1 ``conv0..conv13``, NNConv5 ``decode_conv1..6``, additive skips from
    ``conv1``, ``conv3`` and ``conv5``. ``widths``: the 14 encoder and 5 decoder output widths (NetAdapt's narrower
    ones for ``fastdepth_pruned``); each skip's two ends must have the same width."""

    def __init__(self, num_classes: int = 1, widths: Sequence[int] | None = None, kernel: int = 5,
                 init_depth: float | None = None) -> None:
        super().__init__()
        widths = tuple(widths) if widths is not None else tuple(c for c, _ in MOBILENET) + DECODER
        if num_classes != 1 or len(widths) != len(MOBILENET) + len(DECODER):
            from zoo.errors import BadArgumentError

            raise BadArgumentError("FastDepth predicts one depth channel (num_classes=1) and takes 19 widths "
                                   f"(14 encoder, 5 decoder), not num_classes={num_classes} and {len(widths)} widths")
        for block, stride in SKIPS.items():  # conv5 meets decode_conv2 (stride 8), conv3 decode_conv3, conv1 decode_conv4
            decoder = len(MOBILENET) + {8: 1, 4: 2, 2: 3}[stride]
            if widths[block] != widths[decoder]:
                from zoo.errors import BadArgumentError

                raise BadArgumentError(f"the skip from conv{block} ({widths[block]} channels) meets a decoder stage of "
                                       f"{widths[decoder]}: an additive skip needs equal widths")
        cin = 3
        for i, ((_, stride), cout) in enumerate(zip(MOBILENET, widths)):
            setattr(self, f"conv{i}", _conv_bn_relu(cin, cout, 3, stride, act=nn.ReLU6) if i == 0 else _separable(cin, cout, stride))
            cin = cout
        self._build_decoder(cin, widths[len(MOBILENET):], kernel, init_depth)
        self.num_classes = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size, skips = x.shape[-2:], {}
        for i in range(len(MOBILENET)):
            x = getattr(self, f"conv{i}")(x)
            if i in SKIPS:
                skips[SKIPS[i]] = x
        return self._decode(x, skips, size)


class BackboneFastDepth(_NNConv5):
    """The NNConv5 decoder on a zoo backbone's maps (``backbone``: :class:`zoo.models.seg_heads.TimmFeatures`)."""

    def __init__(self, arch: str, num_classes: int = 1, widths: Sequence[int] = DECODER, kernel: int = 5,
                 init_depth: float | None = None) -> None:
        super().__init__()
        from zoo.models.seg_heads import TimmFeatures

        with torch.device("meta"):  # the backbone's strides, from a build that allocates nothing
            info = TimmFeatures(arch, (0,)).model.feature_info
        by_stride = {int(f["reduction"]): i for i, f in enumerate(info)}
        if 32 not in by_stride:
            from zoo.errors import BadArgumentError

            raise BadArgumentError(f"{arch} has no stride-32 map to decode (its strides: {sorted(by_stride)})")
        wanted = [s for s in (2, 4, 8) if s in by_stride] + [32]
        self.backbone = TimmFeatures(arch, tuple(by_stride[s] for s in wanted))
        self.skip_strides = tuple(wanted[:-1])
        decoder_width = {16 // 2 ** k: w for k, w in enumerate(widths)}  # stride after each stage -> its width
        self.skip_proj = nn.ModuleDict({
            str(s): (nn.Identity() if c == decoder_width[s] else
                     nn.Sequential(nn.Conv2d(c, decoder_width[s], 1, bias=False), nn.BatchNorm2d(decoder_width[s])))
            for s, c in zip(self.skip_strides, self.backbone.channels)})
        self._build_decoder(self.backbone.channels[-1], widths, kernel, init_depth)
        self.num_classes = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *maps, bottom = self.backbone(x)
        skips = {s: self.skip_proj[str(s)](m) for s, m in zip(self.skip_strides, maps)}
        return self._decode(bottom, skips, x.shape[-2:])


def official_weights(state_dict: dict, model: nn.Module) -> dict:
    """The release's state dict (``module.``-prefixed when saved from DataParallel) as this model's keys; backbone
    variants take a zoo backbone's ImageNet weights instead (:class:`zoo.models.seg_heads.BackboneWeights`)."""
    if isinstance(model, BackboneFastDepth):
        from zoo.models.seg_heads import BackboneWeights

        return BackboneWeights()(state_dict, model)
    return {k.removeprefix("module."): v for k, v in state_dict.items()}


@dataclass(frozen=True)
class FastDepthBuilder:
    backbone: str | None = None
    widths: tuple[int, ...] | None = None

    def __call__(self, num_classes: int = 1, **kwargs: Any) -> nn.Module:
        if self.backbone is None:
            return FastDepth(num_classes, **{"widths": self.widths, **kwargs})
        return BackboneFastDepth(self.backbone, num_classes, **kwargs)


def register_fastdepth(name: str, builder: FastDepthBuilder, description: str, reported: tuple[Reported, ...] = (),
                       **fields: Any) -> ModelSpec:
    fields = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, **fields}
    return register_spec(ModelSpec(
        name=name, family="fastdepth", task="depth", builder=builder, num_classes=1, input_size=(3, 224, 224),
        interpolation="bilinear", crop_pct=1.0, min_input_size=32, classifier=("decode_conv6",),  # pruning keeps its 1 channel
        paper=FASTDEPTH, reported=reported, convert_state_dict=official_weights, description=description, **fields,
    ))


_README = "github.com/dwofk/fast-depth README, Results (NYU Depth v2; Jetson TX2, TVM-compiled, batch 1)"
_ABSTRACT = "arXiv:1903.03273, abstract"
# The pruned model's output widths: conv0..conv13, then decode_conv1..5 (read from the official TVM tuning logs of
# mobilenet-nnconv5dw-skipadd-pruned, whose 38 convolution shapes are the model's; docs/sources.md)
PRUNED = (16, 56, 88, 120, 144, 256, 408, 376, 272, 288, 296, 328, 480, 512, 200, 256, 120, 56, 16)
_OFFICIAL = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}  # the official data loader only divides by 255

register_fastdepth(
    "fastdepth", FastDepthBuilder(),
    "FastDepth before NetAdapt (MobileNet-v1 encoder, NNConv5 decoder: depthwise 5x5 convolutions, nearest upsampling, "
    "additive skips): depth [B, 1, H, W] in metres. 3,933,088 convolution weights and 0.737 GMACs at 224x224 (computed "
    "from the layer table). No weights are published for it.", **_OFFICIAL,
)
register_fastdepth(
    "fastdepth_pruned", FastDepthBuilder(widths=PRUNED),
    "FastDepth as released: the same network with the narrower layers NetAdapt left for the Jetson TX2 (1,343,664 "
    "convolution weights, 0.366 GMACs at 224x224). Its official NYU Depth v2 weights pickle the whole module; "
    "weights=PATH, allow_pickle=True reads only their tensors.",
    reported=(Reported("macs", 0.37, "G", _README, "", 224),
              Reported("rmse", 0.604, "m", _README, "nyu-depth-v2", 224),
              Reported("delta1", 0.771, "", _README, "nyu-depth-v2", 224),
              Reported("latency_ms", 37, "ms", _README, "", 224, "Jetson TX2 CPU, TVM-compiled"),
              Reported("latency_ms_gpu", 5.6, "ms", _README, "", 224, "Jetson TX2 GPU, TVM-compiled"),
              Reported("fps", 178, "", _ABSTRACT, "", 224, "Jetson TX2 GPU; 27 fps on its CPU")),
    **_OFFICIAL,
)
# backbone, its timm ImageNet tag and that repo's licence (the paper's encoder starts from ImageNet weights too)
for _arch, _tag, _license in (("mobilenetv3_large_100", "ra_in1k", "apache-2.0"), ("mobileone_s0", "apple_in1k", "mobileone-license")):
    register_fastdepth(
        f"fastdepth_{_arch}", FastDepthBuilder(backbone=_arch),
        f"FastDepth's NNConv5 decoder (additive skips at strides 8, 4 and 2) on the zoo's {_arch} (its maps through "
        "forward_intermediates; a 1x1 convolution with BatchNorm where a skip's width differs from the decoder's).",
        weights=(backbone_tag(_arch, _tag, head="decoder", license=_license, crop_pct=1.0),),
    )
