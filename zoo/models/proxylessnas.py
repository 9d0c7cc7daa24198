"""ProxylessNAS: the networks searched directly on the target hardware (mobile phone, CPU, GPU).

Cai, Zhu and Han, "ProxylessNAS: Direct Neural Architecture Search on Target Task and Hardware", ICLR 2019,
arXiv:1812.00332. Built with the ``ofa`` package (MIT, the authors' Once-for-All library), whose layers these are, from
the released architecture configurations (``han-cai/files``, ``proxylessnas/<name>.config``), written below as layer
tables (docs/sources.md, "ProxylessNAS"). ``pip install 'efficient-zoo[ofa]'``.

Every network: a 3x3 stride-2 convolution, 22 mobile inverted bottleneck blocks (1x1 expand, k x k depthwise, 1x1
project; BatchNorm with eps 1e-3, ReLU6), a 1x1 feature-mix convolution, average pool and a linear classifier. A block
whose table entry is ``None`` was searched away (the release's zero layer): it passes its input on unchanged. A block
adds its input back when its input and output widths match and it keeps the resolution.

The released weights were pickled checkpoints on raw.githubusercontent.com and are no longer in that repository, so
there is nothing to download; ``weights=PATH, allow_pickle=True`` reads such a checkpoint in the release's key layout
(``first_conv``, ``blocks.N.conv.{inverted_bottleneck,depth_conv,point_linear}``, ``feature_mix_layer``,
``classifier.linear``; the older ``mobile_inverted_conv`` names are renamed to ``conv``).
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from zoo.registry import ModelSpec, Paper, Reported, register_spec

PROXYLESSNAS = Paper(
    title="ProxylessNAS: Direct Neural Architecture Search on Target Task and Hardware",
    arxiv="1812.00332",
    code_url="https://github.com/mit-han-lab/proxylessnas",
    code_license="MIT",
    bibtex="""@inproceedings{cai2019proxylessnas,
  author={Cai, Han and Zhu, Ligeng and Han, Song},
  title={ProxylessNAS: Direct Neural Architecture Search on Target Task and Hardware},
  booktitle={International Conference on Learning Representations},
  year={2019}
}""",
)

Block = tuple[int, int, int, int] | None  # (output channels, kernel, stride, expansion) or a searched-away block
# name: (stem width, the 22 blocks, feature-mix width), from the released configurations
TABLES: dict[str, tuple[int, tuple[Block, ...], int]] = {
    "mobile": (32, ((16, 3, 1, 1), (32, 5, 2, 3), (32, 3, 1, 3), None, None, (40, 7, 2, 3), (40, 3, 1, 3), (40, 5, 1, 3),
                    (40, 5, 1, 3), (80, 7, 2, 6), (80, 5, 1, 3), (80, 5, 1, 3), (80, 5, 1, 3), (96, 5, 1, 6), (96, 5, 1, 3),
                    (96, 5, 1, 3), (96, 5, 1, 3), (192, 7, 2, 6), (192, 7, 1, 6), (192, 7, 1, 3), (192, 7, 1, 3),
                    (320, 7, 1, 6)), 1280),
    "cpu": (40, ((24, 3, 1, 1), (32, 3, 2, 6), (32, 3, 1, 3), (32, 3, 1, 3), (32, 3, 1, 3), (48, 3, 2, 6), (48, 3, 1, 3),
                 (48, 3, 1, 3), (48, 5, 1, 3), (88, 3, 2, 6), None, None, (88, 3, 1, 3), (104, 5, 1, 6), (104, 3, 1, 3),
                 (104, 3, 1, 3), (104, 3, 1, 3), (216, 5, 2, 6), (216, 5, 1, 3), (216, 5, 1, 3), (216, 3, 1, 3),
                 (360, 5, 1, 6)), 1432),
    "gpu": (40, ((24, 3, 1, 1), (32, 5, 2, 3), None, None, None, (56, 7, 2, 3), None, None, (56, 3, 1, 3), (112, 7, 2, 6),
                 None, None, (112, 5, 1, 3), (128, 5, 1, 6), None, (128, 3, 1, 3), (128, 5, 1, 3), (256, 7, 2, 6),
                 (256, 7, 1, 6), (256, 7, 1, 6), (256, 5, 1, 6), (432, 7, 1, 6)), 1728),
    "mobile_14": (48, ((24, 3, 1, 1), (40, 5, 2, 3), (40, 3, 1, 3), None, None, (56, 7, 2, 3), (56, 3, 1, 3), (56, 5, 1, 3),
                       (56, 5, 1, 3), (112, 7, 2, 6), (112, 5, 1, 3), (112, 5, 1, 3), (112, 5, 1, 3), (136, 5, 1, 6),
                       (136, 5, 1, 3), (136, 5, 1, 3), (136, 5, 1, 3), (256, 7, 2, 6), (256, 7, 1, 6), (256, 7, 1, 3),
                       (256, 7, 1, 3), (448, 7, 1, 6)), 1792),
}


def _ofa_layers():
    try:
        from ofa.imagenet_classification.networks import ProxylessNASNets
        from ofa.utils import layers
    except ImportError as e:
        from zoo.errors import ConfigError

        raise ConfigError(f"ProxylessNAS is built with the ofa package: pip install 'efficient-zoo[ofa]' ({e})") from None
    return ProxylessNASNets, layers


@functools.cache
def _network_class() -> type:
    """``ofa``'s ``ProxylessNASNets`` with the zoo's feature and head methods, made once ofa is importable."""
    return type("ProxylessNAS", (_ZooMethods, _ofa_layers()[0]), {"__module__": __name__})


def __getattr__(name: str):  # where pickle looks the class up by name
    if name == "ProxylessNAS":
        return _network_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build(stem: int, blocks: Sequence[Block], mix: int, num_classes: int = 1000, drop_rate: float = 0.0) -> nn.Module:
    """The network of a layer table."""
    cls, (_, layers) = _network_class(), _ofa_layers()
    cin, modules = stem, []
    for entry in blocks:
        if entry is None:
            modules.append(layers.ResidualBlock(layers.ZeroLayer(), layers.IdentityLayer(cin, cin)))
            continue
        cout, kernel, stride, expand = entry
        conv = layers.MBConvLayer(cin, cout, kernel_size=kernel, stride=stride, expand_ratio=expand)
        shortcut = layers.IdentityLayer(cin, cin) if cin == cout and stride == 1 else None
        modules.append(layers.ResidualBlock(conv, shortcut))
        cin = cout
    net = cls(layers.ConvLayer(3, stem, kernel_size=3, stride=2, act_func="relu6"), modules,
              layers.ConvLayer(cin, mix, kernel_size=1, act_func="relu6"),
              layers.LinearLayer(mix, num_classes, dropout_rate=drop_rate) if num_classes else nn.Identity())
    net.set_bn_param(momentum=0.1, eps=1e-3)
    net.num_features, net.num_classes = mix, num_classes
    net.feature_info, net.stage_ends = _feature_info(stem, blocks)
    return net


def _feature_info(stem: int, blocks: Sequence[Block]) -> tuple[list[dict[str, Any]], list[int]]:
    """The last block at each stride (2, 4, 8, 16, 32), for ``features_only``, and those blocks' indices."""
    info, ends, stride, width = [], [], 2, stem
    for i, entry in enumerate(blocks):
        if entry is not None:
            width, stride = entry[0], stride * entry[2]
        row = {"num_chs": width, "reduction": stride, "module": f"blocks.{i}"}
        if info and info[-1]["reduction"] == stride:
            info[-1], ends[-1] = row, i
        else:
            info.append(row)
            ends.append(i)
    return info, ends


class _ZooMethods:
    """timm's feature and head methods on ofa's network (its own ``forward`` is kept)."""

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """PyTorch's, which reports missing and unexpected keys (ofa's returns nothing; the renaming it does is
        :func:`official_weights`')."""
        return nn.Module.load_state_dict(self, state_dict, strict, assign)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_conv(x)
        for block in self.blocks:
            x = block(x)
        return self.feature_mix_layer(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean((2, 3))
        return x if pre_logits else self.classifier(x)

    def forward_intermediates(self, x: torch.Tensor, indices=None, norm: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = True, **_) -> list[torch.Tensor]:
        """The last block's output at each stride (``feature_info``), at ``indices`` (None: all; an int: the last n)."""
        from zoo.models._timm import stage_outputs

        return stage_outputs(self.blocks, self.first_conv(x), self.stage_ends, indices)


@dataclass(frozen=True)
class ProxylessBuilder:
    table: str

    def __call__(self, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
        stem, blocks, mix = TABLES[self.table]
        return build(stem, blocks, mix, num_classes, **kwargs)


def official_weights(state_dict: dict, model: nn.Module) -> dict:
    """A release checkpoint's keys as this model's: the older ``mobile_inverted_conv`` name, DataParallel's prefix."""
    return {k.removeprefix("module.").replace(".mobile_inverted_conv.", ".conv."): v for k, v in state_dict.items()}


_README = "github.com/mit-han-lab/proxylessnas README (ImageNet, 224x224)"
# name: (top-1 as the README prints it, the device it was searched for)
_NETS = {"mobile": (74.6, "the Pixel 1 phone"), "cpu": (75.3, "a CPU"), "gpu": (75.1, "a GPU"),
         "mobile_14": (76.7, "the Pixel 1 phone, at width 1.4")}
for _name, (_top1, _device) in _NETS.items():
    register_spec(ModelSpec(
        name=f"proxylessnas_{_name}", family="proxylessnas", task="classification", builder=ProxylessBuilder(_name),
        input_size=(3, 224, 224), interpolation="bilinear", crop_pct=0.875, classifier=("classifier",),
        paper=PROXYLESSNAS, convert_state_dict=official_weights,
        reported=(Reported("top1", _top1, "%", _README, "imagenet-1k", 224),),
        description=f"ProxylessNAS-{_name.replace('_', '-')}: the network searched for {_device}; ofa's layers, no weights.",
    ))
