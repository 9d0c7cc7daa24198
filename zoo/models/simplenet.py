"""SimpleNet: plain stacks of 3x3 convolutions that compete with much deeper networks.

Hasanpour et al., "Lets keep it simple, Using simple architectures to outperform deeper and more complex
architectures", arXiv:1608.06037. Written here from the official release's layer tables (docs/sources.md,
"SimpleNet"), because no maintained library carries it (timm did not take it in).

- Every convolution is followed by BatchNorm (eps 1e-5, momentum 0.05), ReLU and a ``Dropout2d``; every 2x2 max-pool
  by a ``Dropout2d``. The dropouts default to 0 (the ImageNet release trains without them) and keep their places so
  that the state-dict keys are the release's: ``features.0`` is the first convolution, ``features.1`` its BatchNorm,
  a convolution block takes four indices and a pool two, and the head is ``classifier``.
- The head is a global **max** pool, dropout and one linear layer.
- ``simplenet_cifar``: the paper's 13-layer CIFAR network (stride 1 throughout, four pools, 32x32 input).
- ``simplenetv1_{5m,9m}_m<mode>`` and ``simplenetv1_small_m<mode>_{05,075}``: the ImageNet networks of the official
  PyTorch release, under its names. ``5m`` and ``9m`` are two channel tables, ``small`` the 5m table at width 0.5 or
  0.75; mode 1 puts stride 2 on the first three
  convolutions, mode 2 on the first, second and fourth (a larger map for the third, the same parameters).

The release publishes its ImageNet weights as bare state dicts (``.pth`` on GitHub, none on the Hub), already in this
key layout: ``zoo.load("simplenetv1_5m_m2", weights=PATH, allow_pickle=True)`` reads one with
``torch.load(weights_only=True)``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from zoo.registry import ModelSpec, Paper, Reported, register_spec

SIMPLENET = Paper(
    title="Lets keep it simple, Using simple architectures to outperform deeper and more complex architectures",
    arxiv="1608.06037",
    code_url="https://github.com/Coderx7/SimpleNet_Pytorch",
    code_license="MIT",
    bibtex="""@article{hasanpour2016simplenet,
  author={Hasanpour, Seyyed Hossein and Rouhani, Mohammad and Fayyaz, Mohsen and Sabokrou, Mohammad},
  title={Lets keep it simple, Using simple architectures to outperform deeper and more complex architectures},
  journal={arXiv preprint arXiv:1608.06037},
  year={2016}
}""",
)

POOL = "p"
# Layer tables: output channels of a 3x3 convolution, (channels, 1) for a 1x1 one, or a 2x2 max-pool
CIFAR = (64, 128, 128, 128, POOL, 128, 128, 256, POOL, 256, 256, POOL, 512, (2048, 1), (256, 1), POOL, 256)
V1_5M = (64, 128, 128, 128, 128, 128, POOL, 256, 256, 256, 512, POOL, (2048, 1), (256, 1), 256)
V1_9M = (128, 192, 192, 192, 192, 192, POOL, 320, 320, 320, 640, POOL, (2560, 1), (320, 1), 320)
STRIDED = {0: (), 1: (0, 1, 2), 2: (0, 1, 3)}  # mode -> the table entries that convolve with stride 2


class SimpleNet(nn.Module):
    """``layers``: a layer table (above); ``strided``: the entries with stride 2; ``width``: a multiplier on every
    convolution's channels (rounded); ``drop_rate``: dropout before the classifier; ``conv_drop``: the Dropout2d after
    every convolution and pool."""

    def __init__(self, layers: Sequence[Any] = V1_5M, strided: Sequence[int] = STRIDED[2], num_classes: int = 1000,
                 width: float = 1.0, drop_rate: float = 0.0, conv_drop: float = 0.0, in_chans: int = 3) -> None:
        super().__init__()
        modules: list[nn.Module] = []
        cin, stride, self.feature_info, self.stage_ends = in_chans, 1, [], []  # stage_ends: feature_info's indices
        for i, entry in enumerate(layers):
            if entry == POOL:
                modules += [nn.MaxPool2d(2, 2), nn.Dropout2d(conv_drop)]
                stride *= 2
                continue
            cout, kernel = entry if isinstance(entry, tuple) else (entry, 3)
            cout = round(cout * width)
            step = 2 if i in strided else 1
            stride *= step
            modules += [nn.Conv2d(cin, cout, kernel, step, kernel // 2), nn.BatchNorm2d(cout, eps=1e-5, momentum=0.05),
                        nn.ReLU(inplace=True), nn.Dropout2d(conv_drop)]
            info = {"num_chs": cout, "reduction": stride, "module": f"features.{len(modules) - 2}"}  # after the ReLU
            if self.feature_info and self.feature_info[-1]["reduction"] == stride:
                self.feature_info[-1], self.stage_ends[-1] = info, len(modules) - 2  # each stride's last map
            else:
                self.feature_info.append(info)
                self.stage_ends.append(len(modules) - 2)
            cin = cout
        self.features = nn.Sequential(*modules)
        self.num_features, self.num_classes = cin, num_classes
        self.dropout = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(cin, num_classes) if num_classes else nn.Identity()
        for m in self.modules():  # the release's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight, gain=nn.init.calculate_gain("relu"))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(x.amax(dim=(2, 3)))  # global max pool as a reduction, which every export runtime lowers
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(self, x: torch.Tensor, indices=None, norm: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = True, **_) -> list[torch.Tensor]:
        """The last map at each stride (``feature_info``), at ``indices`` (None: all; an int: the last n)."""
        from zoo.models._timm import stage_outputs

        return stage_outputs(self.features, x, self.stage_ends, indices)


@dataclass(frozen=True)
class SimpleNetBuilder:
    layers: tuple[Any, ...]
    mode: int
    width: float = 1.0

    def __call__(self, num_classes: int = 1000, **kwargs: Any) -> SimpleNet:
        return SimpleNet(self.layers, STRIDED[self.mode], num_classes, self.width, **kwargs)


_README = "github.com/Coderx7/SimpleNet_Pytorch README, ImageNet results (single crop at 224)"
_CIFAR_README = "github.com/Coderx7/SimpleNet README, CIFAR-10 results"
_RELEASE = ("The release's ImageNet weights (github.com/Coderx7/SimpleNet_Pytorch, v1.0.0, MIT) are .pth state dicts "
            "in this key layout: weights=PATH, allow_pickle=True.")

register_spec(ModelSpec(
    name="simplenet_cifar", family="simplenet", task="classification", builder=SimpleNetBuilder(CIFAR, 0),
    input_size=(3, 32, 32), interpolation="bilinear", crop_pct=1.0, num_classes=10, classifier=("classifier",),
    paper=SIMPLENET,
    reported=(Reported("params", 5.48, "M", _CIFAR_README, "", 32,
                       "the official PyTorch training log prints 5,498,378 for this table with BatchNorm on all 13 "
                       "convolutions, which this model has exactly"),
              Reported("top1", 95.51, "%", _CIFAR_README, "cifar-10", 32,
                       "with standard augmentation; that run's model had one more max-pool (after the 10th "
                       "convolution), which changes no parameter")),
    description="SimpleNet's 13-layer CIFAR network (3x3 and two 1x1 convolutions, stride 1, four max-pools, global "
                "max pool): 5,498,378 parameters at 10 classes.",
))
# name ({} = the mode): (table, width, ImageNet top-1 of mode 1 and of mode 2, params M), as the official README prints
_V1 = {
    "small_m{}_05": (V1_5M, 0.5, (61.122, 61.67), 1.51),
    "small_m{}_075": (V1_5M, 0.75, (67.784, 68.506), 3.29),
    "5m_m{}": (V1_5M, 1.0, (71.548, 72.03), 5.75),
    "9m_m{}": (V1_9M, 1.0, (73.792, 74.23), 9.51),
}
for _size, (_table, _width, _top1, _params) in _V1.items():
    for _mode in (1, 2):
        register_spec(ModelSpec(
            name=f"simplenetv1_{_size.format(_mode)}", family="simplenet", task="classification",
            builder=SimpleNetBuilder(_table, _mode, _width), input_size=(3, 224, 224), interpolation="bicubic",
            crop_pct=0.875, classifier=("classifier",), paper=SIMPLENET,
            reported=(Reported("top1", _top1[_mode - 1], "%", _README, "imagenet-1k", 224),
                      Reported("params", _params, "M", _README)),
            description=f"SimpleNetV1 (ImageNet, the {'9m' if _table is V1_9M else '5m'} table at width {_width:g}), "
                        f"mode {_mode}: stride 2 on table entries {', '.join(map(str, STRIDED[_mode]))}. {_RELEASE}",
        ))
