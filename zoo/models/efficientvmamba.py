"""EfficientVMamba: a visual state-space model with an atrous selective scan, a convolution branch, and plain
inverted-residual blocks in its last two stages.

Pei et al., "EfficientVMamba: Atrous Selective Scan for Light Weight Visual Mamba", AAAI 2025, arXiv:2403.09977.
Written here from the paper and the official release's configuration, training logs and checkpoint key names
(docs/sources.md, "EfficientVMamba"), because the official model runs only on CUDA (its scan is a custom kernel) and no
maintained library carries it.

- The network runs channels-last (``[B, H, W, C]``): a 4x4 stride-4 patch embedding and LayerNorm, four stages, 2x
  patch merging (LayerNorm and a linear 4C -> 2C) between them, LayerNorm, average pool and a linear head.
- Stages 1-2: EVSS blocks. ``x + DropPath(se(ES2D(n)) + se(conv(n)))`` with ``n = LayerNorm(x)``, where ES2D is the
  selective-scan branch, ``conv`` a 3x3 depthwise convolution, BatchNorm, GELU and 1x1 convolution, and ``se`` one
  channel gate shared by both branches (LayerNorm, mean over the map, linear C -> C/8, GELU, linear, sigmoid; it
  scales the un-normalised branch output).
- ES2D: a linear C -> 4C split into ``x`` and a SiLU gate ``z``; ``x`` through a 3x3 depthwise convolution and SiLU,
  then four selective scans over the four 2x2 sub-lattices of the map (``[::2, ::2]`` and ``[::2, 1::2]`` row by row,
  ``[1::2, ::2]`` and ``[1::2, 1::2]`` column by column), each with its own projections; every output goes back to its
  own positions, then LayerNorm, times ``z``, and a linear back to C. Sixteen states, ``dt`` rank ceil(C/16).
- Stages 3-4: MobileNetV2 inverted residuals (1x1 expand x4, 3x3 depthwise, squeeze-excitation at 1/8, 1x1 project;
  BatchNorm, ReLU), which the paper calls inverted fusion.

**The scan.** ``h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t``, ``y_t = C_t . h_t + D u_t`` with ``dt = softplus(.)``.
:func:`selective_scan` computes it in chunks: it splits each sequence into about sqrt(L) chunks of about sqrt(L)
steps, runs the recurrence over the steps of every chunk at once (each chunk from a zero state) to get each chunk's
end state, carries those across chunks, and runs the steps again from each chunk's true entering state, reading out
``y`` as it goes. That is 2 sqrt(L) + sqrt(L) vectorised steps instead of L, in plain PyTorch ops that export to ONNX
and every runtime of the export matrix, and it is exact (no division by decays, no log-space sums that could
overflow). :func:`selective_scan_reference` is the recurrence step by step, for tests and benchmarks/vmamba_scan.py.
On a CUDA tensor with ``mamba_ssm`` installed, the default ``scan="auto"`` uses its fused kernel instead.

The official checkpoints (``TerryPei/EfficientVMamba-{Tiny,Small,Base}`` on the Hub, ``.ckpt``) are pickles of
tensors; ``pretrained=True, allow_pickle=True`` reads them with ``torch.load(weights_only=True)``, in this model's key
layout, which is the release's.
"""
from __future__ import annotations

import functools
import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.registry import ModelSpec, Paper, Reported, WeightTag, register_spec

EFFICIENTVMAMBA = Paper(
    title="EfficientVMamba: Atrous Selective Scan for Light Weight Visual Mamba",
    arxiv="2403.09977",
    code_url="https://github.com/TerryPei/EfficientVMamba",
    code_license="Apache-2.0 (stated in its README)",
    bibtex="""@inproceedings{pei2025efficientvmamba,
  author={Pei, Xiaohuan and Huang, Tao and Xu, Chang},
  title={EfficientVMamba: Atrous Selective Scan for Light Weight Visual Mamba},
  booktitle={AAAI Conference on Artificial Intelligence},
  year={2025}
}""",
)

STATES = 16  # d_state
DIRECTIONS = 4


# -- the selective scan ---------------------------------------------------------------------------------------------


def selective_scan_reference(u, delta, A, B, C, D, delta_bias):
    """The recurrence one step at a time. ``u``, ``delta``: ``[b, K*d, L]``; ``A``: ``[K*d, N]``; ``B``, ``C``:
    ``[b, K, N, L]`` (shared by the d channels of each of the K groups); ``D``, ``delta_bias``: ``[K*d]``."""
    b, kd, length = u.shape
    groups = B.shape[1]
    B, C = B.repeat_interleave(kd // groups, 1), C.repeat_interleave(kd // groups, 1)
    h = u.new_zeros(b, kd, A.shape[1])
    out = []
    for t in range(length):
        dt = F.softplus(delta[:, :, t] + delta_bias)
        h = torch.exp(dt[..., None] * A) * h + (dt * u[:, :, t])[..., None] * B[:, :, :, t]
        out.append((h * C[:, :, :, t]).sum(-1) + D * u[:, :, t])
    return torch.stack(out, -1)


def selective_scan(u, delta, A, B, C, D, delta_bias, chunk: int | None = None):
    """:func:`selective_scan_reference`'s result in chunks of ``chunk`` steps (default about sqrt(L))."""
    b, kd, length = u.shape
    groups, states = B.shape[1], A.shape[1]
    d = kd // groups
    steps = chunk or max(1, round(math.sqrt(length)))
    chunks = -(-length // steps)
    pad = chunks * steps - length  # padded steps come after every real one, so they change none of them

    def steps_first(x: torch.Tensor, width: int) -> torch.Tensor:  # [b, K*width, L] -> [steps, b*K, chunks, width]
        x = F.pad(x, (0, pad)).reshape(b * groups, width, chunks, steps)
        return x.permute(3, 0, 2, 1).contiguous()  # each step's slice contiguous: the loops read whole blocks

    # five dimensions at most (CoreML's limit): [step, batch x group, chunk, channel, state]
    dt = steps_first(F.softplus(delta + delta_bias[:, None]), d)[..., None]  # [s, bK, c, d, 1]
    dtu = dt * steps_first(u, d)[..., None]
    B = steps_first(B.reshape(b, groups * states, length), states)[:, :, :, None]  # [s, bK, c, 1, N]
    C = steps_first(C.reshape(b, groups * states, length), states)[:, :, :, None]
    A = A.reshape(groups, d, states).repeat(b, 1, 1)[:, None]  # [bK, 1, d, N]
    decay = (dt * A).exp_()  # [s, bK, c, d, N]; exp in place: a second buffer this size costs more than the exp
    h = dtu[0] * B[0]
    for t in range(1, steps):  # every chunk from a zero state: its own contribution to its end state
        h = decay[t] * h + dtu[t] * B[t]
    whole = (dt.sum(0) * A).exp_()  # each chunk's total decay
    entering, carry = [], torch.zeros_like(h[:, 0])
    for i in range(chunks):
        entering.append(carry)
        carry = h[:, i] + whole[:, i] * carry
    h = torch.stack(entering, 1)
    out = []
    for t in range(steps):  # again from each chunk's true entering state, reading y out
        h = decay[t] * h + dtu[t] * B[t]  # (not addcmul, which CoreML's converter lacks)
        out.append((h * C[t]).sum(-1))
    y = torch.stack(out).permute(1, 3, 2, 0).reshape(b, kd, chunks * steps)[..., :length]  # [bK, d, c, s] -> [b, Kd, L]
    return y + D[:, None] * u


def _cuda_scan(u, delta, A, B, C, D, delta_bias):
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

    return selective_scan_fn(u, delta, A, B, C, D, delta_bias=delta_bias, delta_softplus=True)


@functools.cache
def _has_kernel() -> bool:
    return importlib.util.find_spec("mamba_ssm") is not None


def _auto_scan(*inputs):
    """The fused kernel where it can run (a CUDA tensor, ``mamba_ssm`` installed), the chunked scan elsewhere."""
    return (_cuda_scan if inputs[0].is_cuda and _has_kernel() else selective_scan)(*inputs)


SCANS = {"auto": _auto_scan, "chunked": selective_scan, "sequential": selective_scan_reference, "cuda": _cuda_scan}


# -- layers ---------------------------------------------------------------------------------------------------------


class PatchMerging(nn.Module):
    """2x2 neighbours side by side in the channels (H index first), LayerNorm, linear 4C -> 2C; channels-last."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 0, 0, x.shape[2] % 2, 0, x.shape[1] % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x))


class ChannelGate(nn.Module):
    """The EVSS block's gate: LayerNorm, mean over the map, C -> C/8 -> C, sigmoid; scales its input."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.global_reduce = nn.Linear(dim, dim // 8)
        self.act = nn.GELU()
        self.channel_select = nn.Linear(dim // 8, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.norm(x).mean((1, 2))  # [B, C]: LiteRT lowers a linear on [B, 1, 1, C] to an invalid matmul
        return x * torch.sigmoid(self.channel_select(self.act(self.global_reduce(pooled))))[:, None, None]


class AtrousScan(nn.Module):
    """ES2D (see the module docstring); ``[B, H, W, C]`` in and out."""

    def __init__(self, dim: int, scan: str = "auto") -> None:
        super().__init__()
        inner, rank = 2 * dim, math.ceil(dim / 16)
        self.scan, self.rank = scan, rank
        self.in_proj = nn.Linear(dim, 2 * inner, bias=False)
        self.conv2d = nn.Conv2d(inner, inner, 3, padding=1, groups=inner)
        bound = 1 / math.sqrt(inner)  # nn.Linear's default initialisation, one projection per direction
        self.x_proj_weight = nn.Parameter(torch.empty(DIRECTIONS, rank + 2 * STATES, inner).uniform_(-bound, bound))
        self.dt_projs_weight = nn.Parameter(torch.empty(DIRECTIONS, inner, rank).uniform_(-rank**-0.5, rank**-0.5))
        dt = torch.exp(torch.rand(DIRECTIONS, inner) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3)).clamp(min=1e-4)
        self.dt_projs_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus(bias) = dt
        self.A_logs = nn.Parameter(torch.log(torch.arange(1, STATES + 1.0)).repeat(DIRECTIONS * inner, 1))
        self.Ds = nn.Parameter(torch.ones(DIRECTIONS * inner))
        self.out_norm = nn.LayerNorm(inner)
        self.out_proj = nn.Linear(inner, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, z = self.in_proj(x).chunk(2, dim=-1)
        x = F.silu(self.conv2d(x.permute(0, 3, 1, 2)))
        y = self.out_norm(self.scan_lattices(x))
        return self.out_proj(y * F.silu(z))

    def scan_lattices(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, D, H, W]`` -> ``[B, H, W, D]``: the four sub-lattices scanned, each output at its own positions."""
        b, d, height, width = x.shape
        dtype = x.dtype  # the scan runs in fp32, as the release's does
        x = F.pad(x, (0, width % 2, 0, height % 2)).float()
        h2, w2 = x.shape[2] // 2, x.shape[3] // 2
        lattices = [x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2].transpose(2, 3), x[:, :, 0::2, 1::2],
                    x[:, :, 1::2, 1::2].transpose(2, 3)]
        xs = torch.stack([s.reshape(b, d, h2 * w2) for s in lattices], 1)  # [B, K, D, L]
        proj = torch.einsum("bkdl,kcd->bkcl", xs, self.x_proj_weight.float())
        dts, Bs, Cs = proj.split([self.rank, STATES, STATES], dim=2)
        dts = torch.einsum("bkrl,kdr->bkdl", dts, self.dt_projs_weight.float())
        ys = SCANS[self.scan](xs.reshape(b, -1, h2 * w2), dts.reshape(b, -1, h2 * w2), -torch.exp(self.A_logs.float()),
                              Bs.contiguous(), Cs.contiguous(), self.Ds.float(), self.dt_projs_bias.float().reshape(-1))
        ys = ys.reshape(b, DIRECTIONS, d, h2 * w2)
        across, down = ys[:, 0::2].reshape(b, 2, d, h2, w2), ys[:, 1::2].reshape(b, 2, d, w2, h2).transpose(3, 4)
        # even rows: even and odd columns interleaved; odd rows (scanned column by column) likewise; then the rows
        row = torch.stack([across[:, 0], across[:, 1]], -1).reshape(b, d, h2, 2 * w2)
        col = torch.stack([down[:, 0], down[:, 1]], -1).reshape(b, d, h2, 2 * w2)
        y = torch.stack([row, col], 3).reshape(b, d, 2 * h2, 2 * w2)[:, :, :height, :width]  # 5 dimensions at most
        return y.permute(0, 2, 3, 1).to(dtype)


class EVSSBlock(nn.Module):
    def __init__(self, dim: int, drop_path: float = 0.0, scan: str = "auto") -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.op = AtrousScan(dim, scan)
        self.conv_branch = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1, groups=dim), nn.BatchNorm2d(dim), nn.GELU(),
                                         nn.Conv2d(dim, dim, 1))
        self.se = ChannelGate(dim)
        from timm.layers import DropPath  # timm only when a model is built: `import zoo` stays light

        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.norm(x)
        conv = self.conv_branch(n.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x + self.drop_path(self.se(self.op(n)) + self.se(conv))


class EVSSStage(nn.Module):
    def __init__(self, dim: int, drop_paths: Sequence[float], downsample: bool, scan: str) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(EVSSBlock(dim, p, scan) for p in drop_paths)
        self.downsample = PatchMerging(dim) if downsample else nn.Identity()

    def run_blocks(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.run_blocks(x))


def _conv_bn(cin: int, cout: int, kernel: int = 1, groups: int = 1, relu: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2's block with squeeze-excitation on the expanded channels (timm's, the release's key names); NCHW."""

    def __init__(self, dim: int, drop_path: float = 0.0, expand: int = 4, se_ratio: float = 0.125) -> None:
        super().__init__()
        from timm.layers import DropPath
        from timm.models._efficientnet_blocks import SqueezeExcite

        mid = dim * expand
        self.conv_pw = _conv_bn(dim, mid)
        self.conv_dw = _conv_bn(mid, mid, 3, groups=mid)
        self.se = SqueezeExcite(mid, rd_channels=int(mid * se_ratio))
        self.conv_pw2 = _conv_bn(mid, dim, relu=False)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.conv_pw2(self.se(self.conv_dw(self.conv_pw(x)))))


class Head(nn.Module):
    """The release's ``classifier.norm`` and ``classifier.head``; :meth:`EfficientVMamba.forward_head` runs them."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes) if num_classes else nn.Identity()


class EfficientVMamba(nn.Module):
    """``dims``/``depths``: per stage; the first two stages are EVSS, the rest inverted residuals. ``scan``: "auto"
    (``mamba_ssm``'s fused kernel on CUDA tensors when it is installed, else chunked), "chunked", "sequential" (the
    step-by-step reference) or "cuda" (the kernel always)."""

    def __init__(self, dims: Sequence[int] = (48, 96, 192, 384), depths: Sequence[int] = (2, 2, 4, 2),
                 num_classes: int = 1000, drop_path_rate: float = 0.1, drop_rate: float = 0.0, scan: str = "auto",
                 in_chans: int = 3) -> None:
        super().__init__()
        from torchvision.ops import Permute

        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.patch_embed = nn.Sequential(nn.Conv2d(in_chans, dims[0], 4, 4), Permute([0, 2, 3, 1]), nn.LayerNorm(dims[0]))
        self.layers = nn.ModuleList()
        self.feature_info = []
        for i, (dim, depth) in enumerate(zip(dims, depths, strict=True)):
            paths, last = rates[sum(depths[:i]):sum(depths[: i + 1])], i == len(dims) - 1
            if i < 2:
                self.layers.append(EVSSStage(dim, paths, not last, scan))
            else:  # the release's flat layout: permute, blocks, permute back, downsample
                self.layers.append(nn.Sequential(Permute([0, 3, 1, 2]), *(InvertedResidual(dim, p) for p in paths),
                                                 Permute([0, 2, 3, 1]), nn.Identity() if last else PatchMerging(dim)))
            self.feature_info.append({"num_chs": dim, "reduction": 4 * 2**i, "module": f"layers.{i}"})
        self.num_features, self.num_classes = dims[-1], num_classes
        self.drop_rate = drop_rate
        self.classifier = Head(dims[-1], num_classes)
        self.apply(self._init_weights)
        self.set_scan(scan)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def set_scan(self, scan: str) -> None:
        """Switch every block's scan (see the class); the weights are the same."""
        if scan not in SCANS:
            from zoo.errors import BadArgumentError

            raise BadArgumentError(f"scan={scan!r} is not one of {', '.join(SCANS)}")
        for m in self.modules():
            if isinstance(m, AtrousScan):
                m.scan = scan

    def _stage(self, i: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage ``i``'s output before its downsampling (channels-last) and after it."""
        layer = self.layers[i]
        if i < 2:
            out = layer.run_blocks(x)
            return out, layer.downsample(out)
        out = layer[:-1](x)
        return out, layer[-1](out)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.classifier.norm(x).mean((1, 2))
        x = F.dropout(x, self.drop_rate, self.training)
        return x if pre_logits else self.classifier.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(self, x: torch.Tensor, indices=None, norm: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = True, **_) -> list[torch.Tensor]:
        """Each stage's output (strides 4, 8, 16, 32) as ``[B, C, H, W]``, at ``indices`` (None: all; int: the last n)."""
        from timm.models._features import feature_take_indices

        take, last = feature_take_indices(len(self.layers), indices)
        x, out = self.patch_embed(x), []
        for i in range(last + 1):
            stage, x = self._stage(i, x)
            if i in take:
                out.append(stage.permute(0, 3, 1, 2))
        return out


@dataclass(frozen=True)
class EfficientVMambaBuilder:
    dims: tuple[int, ...]
    depths: tuple[int, ...]

    def __call__(self, num_classes: int = 1000, **kwargs: Any) -> EfficientVMamba:
        return EfficientVMamba(**{"dims": self.dims, "depths": self.depths, **kwargs}, num_classes=num_classes)


def official_weights(state_dict: dict, model: nn.Module) -> dict:
    """The release's checkpoint (possibly saved through DataParallel or DDP wrappers) as this model's keys."""
    return {k.removeprefix("module.").removeprefix("module."): v for k, v in state_dict.items()}


_README = "github.com/TerryPei/EfficientVMamba README, ImageNet-1k classification table (224x224)"
_LOG = "the official training log of this variant (github.com/TerryPei/EfficientVMamba, release v1.0.0)"
# name: (dims, depths, Hub repo, top-1 and GFLOPs from the README, parameters as the training log prints them)
_VARIANTS = {
    "tiny": ((48, 96, 192, 384), (2, 2, 4, 2), "Tiny", 76.5, 0.8, 6.494),
    "small": ((64, 128, 256, 512), (2, 2, 4, 2), "Small", 78.7, 1.3, 11.274),
    "base": ((96, 192, 384, 768), (2, 2, 9, 2), "Base", 81.8, 4.0, 33.717),
}
for _name, (_dims, _depths, _repo, _top1, _gflops, _params) in _VARIANTS.items():
    register_spec(ModelSpec(
        name=f"efficientvmamba_{_name}", family="efficientvmamba", task="classification",
        builder=EfficientVMambaBuilder(_dims, _depths), input_size=(3, 224, 224), interpolation="bicubic",
        crop_pct=0.875, classifier=("classifier.head",), paper=EFFICIENTVMAMBA,
        weights=(WeightTag("in1k", f"TerryPei/EfficientVMamba-{_repo}", "apache-2.0", "imagenet-1k",
                           filename=f"efficient_vmamba_{_name}.ckpt",
                           description="the release's checkpoint, a pickle of tensors: pass allow_pickle=True"),),
        reported=(Reported("top1", _top1, "%", _README, "imagenet-1k", 224),
                  Reported("params", _params, "M", _LOG, "", 224, f"the README rounds it to {round(_params)}M"),
                  Reported("flops", _gflops, "G", _README, "", 224)),
        convert_state_dict=official_weights,
        description=f"EfficientVMamba-{_repo[0]}: widths {'/'.join(map(str, _dims))}, depths "
                    f"{'/'.join(map(str, _depths))}; atrous selective scan (EVSS) in stages 1-2, inverted residuals "
                    "in 3-4. Pure-PyTorch chunked scan: runs and exports anywhere.",
    ))
