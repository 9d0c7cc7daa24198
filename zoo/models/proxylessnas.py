"""ProxylessNAS and Once-for-All (OFA): networks searched on the target hardware, and supernets holding ~10^19 of them.

Cai, Zhu and Han, "ProxylessNAS: Direct Neural Architecture Search on Target Task and Hardware", ICLR 2019,
arXiv:1812.00332; Cai, Gan, Wang, Zhang and Han, "Once-for-All: Train One Network and Specialize it for Efficient
Deployment", ICLR 2020, arXiv:1908.09791. Built with the ``ofa`` package (MIT, the authors' library), whose layers and
supernets these are, from the released architecture configurations (``han-cai/files``: ``proxylessnas/<name>.config``
and ``ofa/ofa_specialized/<id>/net.config``), written below as tables (docs/sources.md, "ProxylessNAS and
Once-for-All"). ``pip install 'efficient-zoo[ofa]'``.

ProxylessNAS: a 3x3 stride-2 convolution, 22 mobile inverted bottleneck blocks (1x1 expand, k x k depthwise, 1x1
project; BatchNorm with eps 1e-3, ReLU6), a 1x1 feature-mix convolution, average pool and a linear classifier. A block
whose table entry is ``None`` was searched away (the release's zero layer): it passes its input on unchanged. A block
adds its input back when its input and output widths match and it keeps the resolution.

OFA: ``ofa_mbv3_w10``/``w12`` (MobileNetV3 space, width 1.0/1.2) and ``ofa_proxyless_w13`` (ProxylessNAS space, width
1.3) are the supernets: every elastic block runs any kernel of 3/5/7 and expansion of 3/4/6, every stage any first
2/3/4 of its blocks (``set_active_subnet(ks=, e=, d=)``). ``subnet=`` builds one sub-network on its own: a dict of
those lists, or the id of one of the 50 networks the authors specialised for a device (``SPECIALIZED``; the models
``ofa_flops_595m``, ``ofa_note10_8ms`` and ``ofa_cpu_17ms`` are three of them). :mod:`zoo.ofa` extracts and searches.

The released weights were pickled checkpoints on raw.githubusercontent.com and are no longer in that repository, so
there is nothing to download; ``weights=PATH, allow_pickle=True`` reads such a checkpoint in the release's key layout
(``first_conv``, ``blocks.N.conv.{inverted_bottleneck,depth_conv,point_linear}``, ``feature_mix_layer``,
``classifier.linear``; the older ``mobile_inverted_conv`` names are renamed to ``conv``).
"""
from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from zoo.registry import ModelSpec, Paper, Reported, register_spec

OFA = Paper(
    title="Once-for-All: Train One Network and Specialize it for Efficient Deployment",
    arxiv="1908.09791",
    code_url="https://github.com/mit-han-lab/once-for-all",
    code_license="MIT",
    bibtex="""@inproceedings{cai2020once,
  author={Cai, Han and Gan, Chuang and Wang, Tianzhe and Zhang, Zhekai and Han, Song},
  title={Once-for-All: Train One Network and Specialize it for Efficient Deployment},
  booktitle={International Conference on Learning Representations},
  year={2020}
}""",
)
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


def _ofa():
    try:
        from ofa.imagenet_classification import networks
        from ofa.imagenet_classification.elastic_nn import networks as supernets
        from ofa.utils import layers
    except ImportError as e:
        from zoo.errors import ConfigError

        raise ConfigError(f"ProxylessNAS and OFA are built with the ofa package: pip install 'efficient-zoo[ofa]' ({e})") from None
    return networks, supernets, layers


_BASES = {"ProxylessNAS": ("networks", "ProxylessNASNets"), "MobileNetV3": ("networks", "MobileNetV3"),
          "OFAMobileNetV3": ("supernets", "OFAMobileNetV3"), "OFAProxylessNAS": ("supernets", "OFAProxylessNASNets")}


@functools.cache
def _network_class(name: str) -> type:
    """ofa's network class with the zoo's feature and head methods, made once ofa is importable."""
    networks, supernets, _ = _ofa()
    where, base = _BASES[name]
    mixins = (_SupernetMethods, _ZooMethods) if where == "supernets" else (_ZooMethods,)
    return type(name, (*mixins, getattr({"networks": networks, "supernets": supernets}[where], base)),
                {"__module__": __name__})


def __getattr__(name: str):  # where pickle looks the classes up by name
    if name in _BASES:
        return _network_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build(stem: int, blocks: Sequence[Block], mix: int, num_classes: int = 1000, drop_rate: float = 0.0) -> nn.Module:
    """The network of a layer table."""
    cls, (_, _, layers) = _network_class("ProxylessNAS"), _ofa()
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
    return _finish(net, num_classes)


def _finish(net: nn.Module, num_classes: int) -> nn.Module:
    net.num_classes = num_classes
    net.feature_info = _stages(net)[0]
    final = getattr(net, "final_expand_layer", None)  # MobileNetV3: features at 960 x width, pre-logits after the mix
    net.num_features = (final if final is not None else net.feature_mix_layer).out_channels
    net.head_hidden_size = net.feature_mix_layer.out_channels
    return net


def _active_blocks(net: nn.Module) -> list[tuple[int, nn.Module]]:
    """The blocks ``forward`` runs with their indices: a supernet runs the first ``runtime_depth`` of each stage."""
    groups = getattr(net, "block_group_info", None)
    if groups is None:
        return list(enumerate(net.blocks))
    return [(0, net.blocks[0])] + [(i, net.blocks[i]) for group, depth in zip(groups, net.runtime_depth) for i in group[:depth]]


def _stages(net: nn.Module) -> tuple[list[dict[str, Any]], list[int]]:
    """The last active block at each stride (2, 4, 8, 16, 32) as ``feature_info`` rows, and their positions among
    the active blocks (a searched-away block has neither stride nor width: it keeps both)."""
    info, ends, stride, width = [], [], 2, net.first_conv.out_channels
    for position, (i, block) in enumerate(_active_blocks(net)):
        stride *= getattr(block.conv, "stride", 1)
        width = getattr(block.conv, "out_channels", width)
        row = {"num_chs": width, "reduction": stride, "module": f"blocks.{i}"}
        if info and info[-1]["reduction"] == stride:
            info[-1], ends[-1] = row, position
        else:
            info.append(row)
            ends.append(position)
    return info, ends


class _ZooMethods:
    """timm's feature and head methods on ofa's networks (their own ``forward`` is kept)."""

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """PyTorch's, which reports missing and unexpected keys (ofa's returns nothing; the renaming it does is
        :func:`official_weights`')."""
        return nn.Module.load_state_dict(self, state_dict, strict, assign)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_conv(x)
        for _, block in _active_blocks(self):
            x = block(x)
        final = getattr(self, "final_expand_layer", None)
        return final(x) if final is not None else self.feature_mix_layer(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean((2, 3), keepdim=True)
        if getattr(self, "final_expand_layer", None) is not None:  # MobileNetV3 mixes after pooling
            x = self.feature_mix_layer(x)
        x = x.flatten(1)
        return x if pre_logits else self.classifier(x)

    def forward_intermediates(self, x: torch.Tensor, indices=None, norm: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = True, **_) -> list[torch.Tensor]:
        """The last block's output at each stride (``feature_info``), at ``indices`` (None: all; an int: the last n)."""
        from zoo.models._timm import stage_outputs

        return stage_outputs([block for _, block in _active_blocks(self)], self.first_conv(x), _stages(self)[1], indices)


class _SupernetMethods:
    def deploy(self) -> nn.Module:
        """The active sub-network on its own (:func:`extract`): the same outputs without the supernet's weight slicing
        and kernel transformations at run time, so exports carry the plain network (CoreML cannot trace the slicing)."""
        return extract(self)


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


# -- Once-for-All -------------------------------------------------------------------------------------

KERNELS, EXPANSIONS, DEPTHS = (3, 5, 7), (3, 4, 6), (2, 3, 4)  # every released supernet's choices
SUPERNETS = {"mbv3_w10": ("OFAMobileNetV3", 1.0), "mbv3_w12": ("OFAMobileNetV3", 1.2),
             "proxyless_w13": ("OFAProxylessNAS", 1.3)}
# The 50 released specialised networks (han-cai/files ofa/ofa_specialized/<id>/net.config and run.config, ids as
# its folders name them; ofa.model_zoo's "@" ids read the same), each as a sub-network of its supernet:
# (supernet, resolution, kernel per elastic block, expansion per elastic block, depth per stage); "-" marks a block
# beyond its stage's depth. Building each from these lists gives the released configuration layer for layer
# (tests/test_proxylessnas.py checks the parameter counts of all 50).
SPECIALIZED: dict[str, tuple[str, int, str, str, str]] = {
    "1080ti_gpu64-12ms_top1-72.6_finetune-25": ("proxyless_w13", 128, "33--355-557-373375753", "33--644-633-436464336", "233441"),
    "1080ti_gpu64-15ms_top1-73.8_finetune-25": ("proxyless_w13", 144, "33--333-35--353337735", "44--664-33--343666463", "232441"),
    "1080ti_gpu64-22ms_top1-75.3_finetune-25": ("proxyless_w13", 188, "33--53--353-337-355-3", "33--36--446-464-644-4", "223331"),
    "1080ti_gpu64-27ms_top1-76.4_finetune-25": ("proxyless_w13", 188, "33--3533535-535-35737", "33--6644634-644-66366", "243341"),
    "LG-G8_lat-11ms_top1-73.0_finetune-25": ("mbv3_w10", 156, "33--537-53--535-575-", "33--344-43--443-664-", "23233"),
    "LG-G8_lat-16ms_top1-74.7_finetune-25": ("mbv3_w10", 176, "33--753-555-375-5733", "33--433-643-443-6664", "23334"),
    "LG-G8_lat-24ms_top1-76.4_finetune-25": ("mbv3_w10", 220, "33--753-555-375-5733", "33--433-643-443-6664", "23334"),
    "LG-G8_lat-8ms_top1-71.1_finetune-25": ("mbv3_w10", 144, "33--55--533-37--37--", "33--43--333-64--64--", "22322"),
    "cpu_lat-10ms_top1-71.1_finetune-25": ("proxyless_w13", 144, "53--33--737-55--53--3", "43--33--333-34--34--4", "223221"),
    "cpu_lat-11ms_top1-72.0_finetune-25": ("proxyless_w13", 144, "55--37--537-57--33--5", "43--33--443-44--64--4", "223221"),
    "cpu_lat-15ms_top1-74.6_finetune-25": ("proxyless_w13", 188, "33--33--73--533-53--7", "33--46--64--466-63--6", "222321"),
    "cpu_lat-17ms_top1-75.7_finetune-25": ("proxyless_w13", 208, "33--53--373-553-353-3", "34--34--633-346-643-4", "223331"),
    "flops-389M_top1-79.1_finetune-75": ("mbv3_w12", 224, "33--553-553-55333373", "33--363-443-64446663", "23344"),
    "flops-482M_top1-79.6_finetune-75": ("mbv3_w12", 224, "533-5353553357357333", "333-4443463366646663", "34444"),
    "flops-595M_top1-80.0_finetune-75": ("mbv3_w12", 236, "353-5535753535733353", "343-4463663466646663", "34444"),
    "note10_lat-11ms_top1-73.6_finetune-25": ("mbv3_w10", 176, "33--53--53--333-355-", "33--44--44--433-444-", "22233"),
    "note10_lat-16ms_top1-75.5_finetune-25": ("mbv3_w10", 192, "33--5533553-553-3753", "33--3443443-443-6443", "24334"),
    "note10_lat-22ms_top1-76.6_finetune-25": ("mbv3_w10", 224, "33--533-755-533-3333", "33--344-444-464-6663", "23334"),
    "note10_lat-30ms_top1-78.4_finetune-75": ("mbv3_w12", 224, "33--533-553-333-3333", "33--434-443-644-6643", "23334"),
    "note10_lat-41ms_top1-79.3_finetune-75": ("mbv3_w12", 220, "33--733-733335333333", "34--446-663466646663", "23444"),
    "note10_lat-50ms_top1-79.7_finetune-75": ("mbv3_w12", 220, "533-533577357533333-", "366-466366446666666-", "34443"),
    "note10_lat-64ms_top1-80.2_finetune-75": ("mbv3_w12", 260, "333-5335553753333353", "363-4633664466646663", "34444"),
    "note10_lat-8ms_top1-71.4_finetune-25": ("mbv3_w10", 160, "33--33--333-33--35--", "33--34--433-34--44--", "22322"),
    "note8_lat-22ms_top1-70.4_finetune-25": ("mbv3_w10", 140, "33--55--73--53--37--", "33--33--43--34--66--", "22222"),
    "note8_lat-31ms_top1-72.8_finetune-25": ("mbv3_w10", 152, "53--55--335-357-3355", "33--43--444-434-6333", "22334"),
    "note8_lat-49ms_top1-74.9_finetune-25": ("mbv3_w10", 176, "53--537-773-333-3535", "34--444-434-464-6664", "23334"),
    "note8_lat-65ms_top1-76.1_finetune-25": ("mbv3_w10", 204, "73--353-733-533-5553", "33--443-664-664-6443", "23334"),
    "pixel1_lat-132ms_top1-79.8_finetune-75": ("mbv3_w12", 228, "53--5535753555553353", "36--4663666466646663", "24444"),
    "pixel1_lat-143ms_top1-80.1_finetune-75": ("mbv3_w12", 240, "533-5535753353533353", "363-6663666466646663", "34444"),
    "pixel1_lat-20ms_top1-71.4_finetune-25": ("mbv3_w10", 152, "33--55--73--53--37--", "33--33--43--34--66--", "22222"),
    "pixel1_lat-28ms_top1-73.3_finetune-25": ("mbv3_w10", 160, "33--733-73--35--3333", "34--364-36--64--6436", "23224"),
    "pixel1_lat-40ms_top1-74.9_finetune-25": ("mbv3_w10", 172, "53--537-773-333-3535", "34--444-434-464-6664", "23334"),
    "pixel1_lat-58ms_top1-76.9_finetune-75": ("mbv3_w10", 220, "33--753-555-375-5733", "33--433-643-443-6664", "23334"),
    "pixel1_lat-79ms_top1-78.7_finetune-75": ("mbv3_w12", 224, "33--53--753-53333333", "33--34--443-64436663", "22344"),
    "pixel2_lat-25ms_top1-71.5_finetune-25": ("mbv3_w10", 144, "33--55--73--773-53--", "33--64--43--434-64--", "22232"),
    "pixel2_lat-35ms_top1-73.4_finetune-25": ("mbv3_w10", 160, "33--333-77--53377775", "33--346-44--43334633", "23244"),
    "pixel2_lat-50ms_top1-74.7_finetune-25": ("mbv3_w10", 208, "33--33--35--57--3575", "34--33--36--64--6343", "22224"),
    "pixel2_lat-62ms_top1-75.8_finetune-25": ("mbv3_w10", 208, "33--753-555-375-5733", "33--433-643-443-6664", "23334"),
    "s7edge_lat-29ms_top1-70.5_finetune-25": ("mbv3_w10", 144, "33--53--53--55--35--", "33--34--44--44--63--", "22222"),
    "s7edge_lat-41ms_top1-73.1_finetune-25": ("mbv3_w10", 160, "33--53--75--333-3533", "33--34--44--443-6433", "22234"),
    "s7edge_lat-58ms_top1-74.7_finetune-25": ("mbv3_w10", 192, "33--53--7533333-355-", "33--34--4343443-644-", "22433"),
    "s7edge_lat-88ms_top1-76.3_finetune-25": ("mbv3_w10", 192, "53--533-755-55353733", "34--664-463-66446664", "23344"),
    "tx2_gpu16-35ms_top1-70.3_finetune-25": ("proxyless_w13", 128, "33--37--55--53--53--5", "43--66--63--34--64--4", "222221"),
    "tx2_gpu16-47ms_top1-72.9_finetune-25": ("proxyless_w13", 144, "33--53--373-553-353-3", "34--34--633-346-643-4", "223331"),
    "tx2_gpu16-80ms_top1-75.4_finetune-25": ("proxyless_w13", 188, "33--53--353-337-355-3", "33--36--446-464-644-4", "223331"),
    "tx2_gpu16-96ms_top1-75.8_finetune-25": ("proxyless_w13", 172, "333-75--3555577333535", "346-34--4443433666643", "324441"),
    "v100_gpu64-11ms_top1-76.1_finetune-25": ("proxyless_w13", 192, "33--55--737-753735533", "33--63--334-443466464", "223441"),
    "v100_gpu64-5ms_top1-71.6_finetune-25": ("proxyless_w13", 128, "33--53--353-337-355-3", "33--36--446-464-644-4", "223331"),
    "v100_gpu64-6ms_top1-73.0_finetune-25": ("proxyless_w13", 144, "33--53--373-553-353-3", "34--34--633-346-643-4", "223331"),
    "v100_gpu64-9ms_top1-75.3_finetune-25": ("proxyless_w13", 188, "33--53--353-337-355-3", "33--36--446-464-644-4", "223331"),
}


def subnet_setting(supernet: str, subnet: str | Mapping[str, Sequence[int]]) -> dict[str, list[int]]:
    """``subnet`` (a ``SPECIALIZED`` id or ``{"ks": [...], "e": [...], "d": [...]}``) as full lists for ``supernet``,
    checked against its choices: kernel and expansion per elastic block, depth per stage."""
    from zoo.errors import BadArgumentError

    blocks, stages = (21, 6) if supernet.startswith("proxyless") else (20, 5)
    if isinstance(subnet, str):
        key = subnet.replace("@", "-")
        if key not in SPECIALIZED:
            import difflib

            close = difflib.get_close_matches(key, SPECIALIZED, n=3)
            raise BadArgumentError(f"unknown OFA specialised network {subnet!r}" + (f"; did you mean {', '.join(close)}?" if close
                                   else f"; zoo.ofa.SPECIALIZED lists the {len(SPECIALIZED)} released ids"))
        home, _, ks, e, d = SPECIALIZED[key]
        if home != supernet:
            raise BadArgumentError(f"{subnet} is a sub-network of ofa_{home}, not of ofa_{supernet}: zoo.load('ofa_{home}', subnet=...)")
        return {"ks": [int(k) if k != "-" else max(KERNELS) for k in ks],
                "e": [int(x) if x != "-" else max(EXPANSIONS) for x in e], "d": [int(x) for x in d]}
    if not isinstance(subnet, Mapping) or set(subnet) != {"ks", "e", "d"}:
        raise BadArgumentError(f"subnet must be an OFA specialised id or a mapping with keys ks, e, d, not {subnet!r}")
    setting = {key: list(subnet[key]) if isinstance(subnet[key], Sequence) else [subnet[key]] for key in ("ks", "e", "d")}
    proxyless = supernet.startswith("proxyless")
    depths = [DEPTHS] * (stages - 1) + [(1, *DEPTHS) if proxyless else DEPTHS]  # ProxylessNAS's last stage: one block
    for key, choices in (("ks", [KERNELS] * blocks), ("e", [EXPANSIONS] * blocks), ("d", depths)):
        values = setting[key]
        if len(values) != len(choices) or any(type(v) is not int or v not in c for v, c in zip(values, choices)):
            raise BadArgumentError(f"subnet[{key!r}] needs {len(choices)} values from {', '.join(map(str, choices[0]))} "
                                   f"for ofa_{supernet}, not {values}")
    if proxyless:
        setting["d"][-1] = 1
    return setting


def active_setting(net: nn.Module) -> dict[str, list[int]]:
    """The supernet's active sub-network, as ``set_active_subnet`` takes it."""
    return {"ks": [b.conv.active_kernel_size for b in net.blocks[1:]],
            "e": [b.conv.active_expand_ratio for b in net.blocks[1:]], "d": list(net.runtime_depth)}


def check_supernet(net: nn.Module) -> None:
    """One line naming the model when it is not an OFA supernet (a specialised network is already extracted)."""
    from zoo.contracts import Supernet

    if not isinstance(net, Supernet):
        from zoo.errors import BadArgumentError

        raise BadArgumentError(f"this takes a Once-for-All supernet (ofa_mbv3_w10, ofa_mbv3_w12, ofa_proxyless_w13), "
                               f"not {getattr(getattr(net, 'zoo_spec', None), 'name', type(net).__name__)}")


def extract(net: nn.Module, setting: str | Mapping[str, Sequence[int]] | None = None) -> nn.Module:
    """The supernet's sub-network at ``setting`` (as :func:`subnet_setting` takes it; None: the active one) as a
    standalone network with its weights (ofa's ``get_active_subnet``); ``net`` keeps its active setting.
    ``zoo.save`` records the setting, so ``zoo.load`` of the saved folder rebuilds the small network."""
    check_supernet(net)
    mbv3 = hasattr(net, "final_expand_layer")
    previous = active_setting(net)
    if setting is not None:
        net.set_active_subnet(**subnet_setting(f"{'mbv3' if mbv3 else 'proxyless'}_w{round(net.width_mult * 10)}", setting))
    try:
        chosen = active_setting(net)
        small = net.get_active_subnet(preserve_weight=True)
    finally:
        net.set_active_subnet(**previous)
    small.__class__ = _network_class("MobileNetV3" if mbv3 else "ProxylessNAS")
    small = _finish(small, net.num_classes)
    spec = getattr(net, "zoo_spec", None)
    if spec is not None:
        import dataclasses

        small.zoo_spec = dataclasses.replace(spec, default_kwargs={**spec.default_kwargs, "subnet": chosen})
    return small.train(net.training)


@dataclass(frozen=True)
class OFABuilder:
    supernet: str

    def __call__(self, num_classes: int = 1000, drop_rate: float = 0.0,
                 subnet: str | Mapping[str, Sequence[int]] | None = None) -> nn.Module:
        cls_name, width = SUPERNETS[self.supernet]
        net = _network_class(cls_name)(n_classes=max(num_classes, 1), dropout_rate=drop_rate, width_mult=width,
                                       ks_list=list(KERNELS), expand_ratio_list=list(EXPANSIONS), depth_list=list(DEPTHS))
        if not num_classes:
            net.classifier = nn.Identity()
        net = _finish(net, num_classes)
        return net if subnet is None else extract(net, subnet)


_OFA_README = "github.com/mit-han-lab/once-for-all README (ImageNet)"
for _name, (_cls, _width) in SUPERNETS.items():
    _space = "MobileNetV3" if _cls == "OFAMobileNetV3" else "ProxylessNAS"
    register_spec(ModelSpec(
        name=f"ofa_{_name}", family="ofa", task="classification", builder=OFABuilder(_name),
        input_size=(3, 224, 224), interpolation="bilinear", crop_pct=0.875, classifier=("classifier",),
        paper=OFA, convert_state_dict=official_weights,
        description=f"Once-for-All supernet, {_space} space at width {_width}: kernels 3/5/7, expansions 3/4/6, "
                    f"depths 2/3/4 per stage; zoo.ofa.specialize picks a sub-network for this machine. No weights.",
    ))
# name: (released id, reported top-1 %, reported params M, what it was specialised for)
_SPECIALIZED_MODELS = {
    "flops_595m": ("flops-595M_top1-80.0_finetune-75", 80.0, 9.1, "at most 595M MACs"),
    "note10_8ms": ("note10_lat-8ms_top1-71.4_finetune-25", 71.4, 3.8, "8 ms on a Samsung Note10"),
    "cpu_17ms": ("cpu_lat-17ms_top1-75.7_finetune-25", 75.7, 4.9, "17 ms on a CPU"),
}
for _name, (_id, _top1, _params, _target) in _SPECIALIZED_MODELS.items():
    _supernet, _size = SPECIALIZED[_id][:2]
    register_spec(ModelSpec(
        name=f"ofa_{_name}", family="ofa", task="classification", builder=OFABuilder(_supernet),
        default_kwargs={"subnet": _id}, input_size=(3, _size, _size), interpolation="bilinear", crop_pct=0.875,
        classifier=("classifier",), paper=OFA, convert_state_dict=official_weights,
        reported=(Reported("top1", _top1, "%", _OFA_README, "imagenet-1k", _size),
                  Reported("params", _params, "M", _OFA_README)),
        description=f"OFA's network specialised for {_target} (ofa_{_supernet}'s sub-network {_id}). No weights.",
    ))
