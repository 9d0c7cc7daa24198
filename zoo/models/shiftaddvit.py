"""ShiftAddViT: a PVTv2 whose attention multiplies binary codes and whose linear layers are a mixture of a
multiplying expert and a bit-shift expert.

You et al., "ShiftAddViT: Mixture of Multiplication Primitives Towards Efficient Vision Transformer", NeurIPS 2023,
arXiv:2306.06446. Written here from the official release's configurations and module definitions
(docs/sources.md, "ShiftAddViT"), because the release runs its experts through fastmoe and its kernels through TVM,
and no library carries it. Patch embeddings, stages, MLPs and the last stage's attention are timm's PVTv2 (so PVTv2
weights load key for key); what ShiftAddViT changes is written here:

- **Attention in stages 1-3** (:class:`LinAngularAttention`): one projection shared by queries and keys, each row
  L2-normalised and hashed to a 16-bit {0, 1} code (kernel-based supervised hashing: a Gaussian kernel to 25 anchor
  tokens, centred, projected and thresholded); then ``normalize(v / 2 + codes (codes^T v) / pi)`` plus a depthwise
  9-tap convolution of ``v`` along the token axis, and the output projection. The constants are the first-order
  expansion of the angular kernel ``1 - theta / pi``; with binary codes both products are additions. Linear in the
  number of tokens; no spatial reduction. The hash is fitted once, on the first training batch (:meth:`KernelHash.fit`),
  and then frozen; ``fitted`` is a buffer, so a saved model keeps it.
- **Shift layers** (:class:`LinearShift`): weights ``2^round(shift) * sign(round(sign))`` with the exponent in
  [-14, 0] (5 bits with the sign, which can be zero), inputs and bias rounded down to 16.16 fixed point.
- **Mixture of experts** (:class:`ShiftAddExperts`): the MLPs' ``fc1``/``fc2`` (all stages) and the stage 1-3
  attentions' ``to_qk``/``to_v``/``proj`` each become a router (a linear to 2 logits) sending every token to one
  expert, a linear layer or a shift layer, with no capacity limit. The chosen expert's output is used as is (gate
  value 1, as in the release); the router learns through a straight-through gate (its softmax probability divided
  by itself detached), and the ``shiftadd`` plugin adds the latency-aware balancing loss.

Where the speed-up needs kernels: a shift layer here is a float matmul with power-of-two weights, and the binary
products are float matmuls; CPUs and GPUs get the paper's savings only from integer shift/add kernels (the release's
TVM ones), which no export runtime has. Eager mode sends each token through its own expert only; exported graphs
(ONNX and the others) run both experts on every token and select, because runtimes have no data-dependent dispatch.
benchmarks/shiftaddvit_speed.py measures both against the plain PVTv2.

No ShiftAddViT weights were released. ``.pvt_v2_in1k`` tags load PVTv2's ImageNet weights (timm) reparameterised as
the release's training does: the shared query/key projection from the query one, the value one from the key-value
one, shift experts converted from the linear weights (``sign(w)``, ``round(log2|w|)``), routers, hashes and token
convolutions fresh. Fine-tune before use.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.registry import ModelSpec, Paper, WeightTag, register_spec

SHIFTADDVIT = Paper(
    title="ShiftAddViT: Mixture of Multiplication Primitives Towards Efficient Vision Transformer",
    arxiv="2306.06446",
    code_url="https://github.com/GATECH-EIC/ShiftAddViT",
    code_license="Apache-2.0",
    bibtex="""@inproceedings{you2023shiftaddvit,
  author={You, Haoran and Shi, Huihong and Guo, Yipin and Lin, Yingyan},
  title={ShiftAddViT: Mixture of Multiplication Primitives Towards Efficient Vision Transformer},
  booktitle={Advances in Neural Information Processing Systems},
  year={2023}
}""",
)

HASH_BITS, ANCHORS, NEIGHBOURS = 16, 25, 10  # the release's nbits, m and topk
SHIFT_RANGE = (-14.0, 0.0)  # 5-bit weights: a 4-bit exponent and a sign
FRACTION_BITS, INTEGER_BITS = 16, 16  # activations' fixed point
FIT_IMAGES = 4  # images of the first batch the hash is fitted on (its supervision is tokens x tokens per image)


# -- shift layers ----------------------------------------------------------------------------------------------------


def _ste(x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value`` forward, the identity's gradient backward."""
    return x + (value - x).detach()


def fixed_point(x: torch.Tensor) -> torch.Tensor:
    """Round down to 16.16 fixed point (straight-through)."""
    step = 2.0 ** -FRACTION_BITS
    return _ste(x, (torch.floor(x / step) * step).clamp(-(2.0 ** (INTEGER_BITS - 1)), 2.0 ** (INTEGER_BITS - 1) - 1))


class LinearShift(nn.Module):
    """A linear layer whose weights are powers of two (or zero): ``2^round(shift) * sign(round(sign))``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.shift = nn.Parameter(torch.empty(out_features, in_features))
        self.sign = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.set_from(nn.Linear(in_features, out_features, bias=False).weight)

    @torch.no_grad()
    def set_from(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> LinearShift:
        """Take a trained linear layer's weights: the sign, and the nearest power of two in the log domain."""
        self.sign.copy_(weight.sign())
        self.shift.copy_(torch.log2(weight.abs().clamp_min(2.0 ** SHIFT_RANGE[0])).round().clamp(*SHIFT_RANGE))
        if bias is not None and self.bias is not None:
            self.bias.copy_(bias)
        return self

    def weight(self) -> torch.Tensor:
        if self.training:  # the exponent stays in range, as a parameter (it keeps its gradient at the edges)
            with torch.no_grad():
                self.shift.clamp_(*SHIFT_RANGE)
        exponent = _ste(self.shift, self.shift.clamp(*SHIFT_RANGE).round())
        ternary = self.sign.round().sign()
        # the sign's gradient passes straight through, undamped by the power of two (as the release's layer does)
        return torch.pow(2.0, exponent) * ternary + (self.sign - self.sign.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = fixed_point(self.bias) if self.bias is not None else None
        return F.linear(fixed_point(x), self.weight(), bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def _exporting() -> bool:
    return (torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing()
            or torch.onnx.is_in_onnx_export())


class ShiftAddExperts(nn.Module):
    """Top-1 mixture of a multiplying expert (``experts.0``, linear) and a shift expert (``experts.1``)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.router = nn.Linear(in_features, 2)
        self.experts = nn.ModuleList([nn.Linear(in_features, out_features, bias=bias),
                                      LinearShift(in_features, out_features, bias=bias)])
        self.probabilities: torch.Tensor | None = None  # the last training batch's, for the balancing loss

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> ShiftAddExperts:
        moe = cls(linear.in_features, linear.out_features, bias=linear.bias is not None)
        moe.experts[0].load_state_dict(linear.state_dict())
        moe.experts[1].set_from(linear.weight, linear.bias)
        return moe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        tokens = x.reshape(-1, shape[-1])
        probabilities = self.router(tokens).softmax(-1)
        choice = probabilities.argmax(-1)
        chosen = probabilities.gather(1, choice[:, None])
        gate = chosen / chosen.detach()  # 1 forward; the router's gradient backward
        self.probabilities = probabilities if self.training else None
        if _exporting():  # no data-dependent dispatch in exported graphs: both experts, then select
            out = torch.where(choice[:, None] == 0, self.experts[0](tokens), self.experts[1](tokens))
        else:
            out = tokens.new_empty(tokens.shape[0], self.out_features)
            for index, expert in enumerate(self.experts):
                rows = (choice == index).nonzero().squeeze(1)
                out = out.index_copy(0, rows, expert(tokens.index_select(0, rows)))
        return (out * gate).reshape(*shape[:-1], self.out_features)


# -- binary-code attention -------------------------------------------------------------------------------------------


class _BinaryCode(torch.autograd.Function):
    """1 where ``y > 0``, else 0; the gradient passes where ``0 < y < 1``."""

    @staticmethod
    def forward(ctx, y):
        ctx.save_for_backward(y)
        return (y > 0).to(y.dtype)

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * ((y > 0) & (y < 1)).to(grad.dtype)


def binary_code(y: torch.Tensor) -> torch.Tensor:
    return (y > 0).to(y.dtype) if _exporting() else _BinaryCode.apply(y)


class KernelHash(nn.Module):
    """Kernel-based supervised hashing of unit vectors to ``bits``-bit {0, 1} codes, per head."""

    steps = 100  # SGD steps per bit when fitting (the release's)

    def __init__(self, heads: int, dim: int, bits: int = HASH_BITS, anchors: int = ANCHORS) -> None:
        super().__init__()
        self.register_buffer("A", torch.randn(heads, bits, anchors))  # projection of the centred kernel
        self.register_buffer("mvec", torch.zeros(1, heads, 1, anchors))  # the kernel's mean, subtracted
        self.register_buffer("anchor", torch.zeros(1, heads, anchors, dim))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def kernel(self, x: torch.Tensor) -> torch.Tensor:
        """Gaussian kernel of each row of ``x`` ``[B, H, N, d]`` to the anchors, its width the mean squared distance."""
        distance = (x.pow(2).sum(-1, keepdim=True) + self.anchor.pow(2).sum(-1).unsqueeze(-2)
                    - 2 * x @ self.anchor.transpose(-1, -2)).clamp_min(0.0)  # a float bound: CoreML needs matching types
        width = distance.mean(dim=(-1, -2), keepdim=True)
        return torch.exp(-distance / (2 * width.clamp_min(1e-12)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return binary_code((self.kernel(x) - self.mvec) @ self.A.transpose(-1, -2))

    @torch.no_grad()
    def fit(self, x: torch.Tensor, neighbours: int = NEIGHBOURS, steps: int | None = None, lr: float = 5e-4) -> None:
        """Fit anchors, centring and projection to unit vectors ``x`` ``[B, H, N, d]``: codes that agree for each token's
        ``neighbours`` most similar tokens and disagree for its least similar ones, one bit at a time (greedy, as KSH),
        each bit's projection by SGD on a smooth sign and kept only where its hard codes score better."""
        n = x.shape[2]
        steps = steps or self.steps
        anchors = self.anchor.shape[2]
        picked = torch.randperm(n, device=x.device).repeat(math.ceil(anchors / n))[:anchors]  # repeats on small maps
        self.anchor.copy_(x[:1, :, picked])
        kernel = self.kernel(x)
        self.mvec.copy_(kernel.mean(dim=(0, 2), keepdim=True))
        kernel = kernel - self.mvec
        similarity = x @ x.transpose(-1, -2)
        k = min(neighbours, n // 2)
        near, far = similarity.topk(k, dim=-1).indices, similarity.topk(k, dim=-1, largest=False).indices
        bits = self.A.shape[1]
        codes: list[torch.Tensor] = []  # the hard codes of the bits fitted so far

        def score(y: torch.Tensor) -> torch.Tensor:
            """Per head, summed over images: -(y^T S y) / (N bits) with S = bits S0 - sum of the fitted bits' c c^T,
            S0 = +1 for each token's nearest, -1 for its farthest (sparse, so no N x N product)."""
            def summed(index: torch.Tensor) -> torch.Tensor:  # sum of y over each token's listed tokens
                return y.gather(-1, index.flatten(-2)).view(index.shape).sum(-1)

            agreement = bits * (y * (summed(near) - summed(far))).sum(-1)
            agreement = agreement - sum((c * y).sum(-1) ** 2 for c in codes)
            return -agreement.sum(0) / (n * bits)

        def hard(w: torch.Tensor) -> torch.Tensor:
            return torch.einsum("bhnm,hm->bhn", kernel, w).sign()

        for bit in range(bits):
            start = self.A[:, bit].clone()
            weights = start.clone().requires_grad_(True)
            optimiser = torch.optim.SGD([weights], lr=lr, momentum=0.9, nesterov=True)
            with torch.enable_grad():
                for _ in range(steps):
                    optimiser.zero_grad()
                    score(2 * torch.sigmoid(torch.einsum("bhnm,hm->bhn", kernel, weights)) - 1).sum().backward()
                    optimiser.step()
            better = score(hard(weights.detach())) < score(hard(start))
            self.A[:, bit] = torch.where(better[:, None], weights.detach(), start)
            codes.append(hard(self.A[:, bit]))
        self.fitted.fill_(True)


class LinAngularAttention(nn.Module):
    """Attention as additions over binary codes (see the module docstring); ``forward(x, feat_size)`` like timm's."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, token_kernel: int = 9) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.to_qk = nn.Linear(dim, dim, bias=qkv_bias)
        self.to_v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.dconv = nn.Conv2d(num_heads, num_heads, (token_kernel, 1), padding=(token_kernel // 2, 0), groups=num_heads,
                               bias=False)
        self.hash = KernelHash(num_heads, self.head_dim)

    def forward(self, x: torch.Tensor, feat_size: Any = None) -> torch.Tensor:
        b, n, c = x.shape
        qk = F.normalize(self.to_qk(x).reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2), dim=-1)
        v = self.to_v(x).reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        if self.training and not self.hash.fitted:
            self.hash.fit(qk[:FIT_IMAGES].detach())
        codes = self.hash(qk)  # [B, H, N, bits], the same for queries and keys
        out = F.normalize(0.5 * v + codes @ (codes.transpose(-1, -2) @ v) / math.pi, dim=-1) + self.dconv(v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


# -- the network -----------------------------------------------------------------------------------------------------


class ShiftAddViT(nn.Module):
    """PVTv2 (timm's stages) with :class:`LinAngularAttention` in stages 1-3 and, with ``moe_attn``/``moe_mlp``,
    :class:`ShiftAddExperts` in those attentions' projections and in every MLP's two linear layers."""

    def __init__(self, depths=(2, 2, 2, 2), embed_dims=(32, 64, 160, 256), num_heads=(1, 2, 5, 8),
                 mlp_ratios=(8, 8, 4, 4), sr_ratios=(8, 4, 2, 1), num_classes: int = 1000, in_chans: int = 3,
                 moe_attn: bool = True, moe_mlp: bool = True, drop_rate: float = 0.0, drop_path_rate: float = 0.1) -> None:
        super().__init__()
        from timm.layers import LayerNorm
        from timm.models.pvt_v2 import OverlapPatchEmbed, PyramidVisionTransformerStage

        self.num_classes, self.num_features = num_classes, embed_dims[-1]
        self.patch_embed = OverlapPatchEmbed(patch_size=7, stride=4, in_chans=in_chans, embed_dim=embed_dims[0])
        rates = torch.linspace(0, drop_path_rate, sum(depths)).split(list(depths))
        stages, previous = [], embed_dims[0]
        self.feature_info = []
        for i, (depth, dim) in enumerate(zip(depths, embed_dims)):
            stage = PyramidVisionTransformerStage(dim=previous, dim_out=dim, depth=depth, downsample=i > 0,
                                                  num_heads=num_heads[i], sr_ratio=sr_ratios[i], mlp_ratio=mlp_ratios[i],
                                                  drop_path=rates[i].tolist(), norm_layer=LayerNorm)
            for block in stage.blocks:
                if i < len(depths) - 1:  # the last stage keeps softmax attention (no MoE)
                    block.attn = LinAngularAttention(dim, num_heads[i])
                    if moe_attn:
                        for name in ("to_qk", "to_v", "proj"):
                            setattr(block.attn, name, ShiftAddExperts.from_linear(getattr(block.attn, name)))
                if moe_mlp:
                    block.mlp.fc1 = ShiftAddExperts.from_linear(block.mlp.fc1)
                    block.mlp.fc2 = ShiftAddExperts.from_linear(block.mlp.fc2)
            stages.append(stage)
            previous = dim
            self.feature_info.append({"num_chs": dim, "reduction": 4 * 2 ** i, "module": f"stages.{i}"})
        self.stages = nn.Sequential(*stages)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dims[-1], num_classes) if num_classes else nn.Identity()
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:  # PVTv2's initialisation; shift experts re-derived from their twins
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, ShiftAddExperts):
            m.experts[1].set_from(m.experts[0].weight, m.experts[0].bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.patch_embed(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(x.mean(dim=(-1, -2)))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(self, x: torch.Tensor, indices=None, norm: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = True, **_) -> list[torch.Tensor]:
        """Each stage's output map (strides 4-32) at ``indices`` (None: all; an int: the last n)."""
        from zoo.models._timm import stage_outputs

        return stage_outputs(nn.Sequential(self.patch_embed, *self.stages), x, [1, 2, 3, 4], indices)


# -- PVTv2 weights, reparameterised ----------------------------------------------------------------------------------


def from_pvt_v2(state_dict: dict, model: ShiftAddViT) -> dict:
    """A PVTv2 checkpoint (timm's layout or the official one) as this model's keys: the attention's shared query/key
    projection from the query one and the value projection from the key-value one's second half; every linear layer
    that became a mixture gives both experts (the shift expert converted); the rest new parts as initialised."""
    from timm.models.pvt_v2 import checkpoint_filter_fn

    if any(".to_qk." in k for k in state_dict):  # already this model's (a fine-tuned ShiftAddViT)
        return state_dict
    source = checkpoint_filter_fn(state_dict, model)
    out = dict(model.state_dict())
    modules = dict(model.named_modules())
    for key, value in source.items():
        path, _, leaf = key.rpartition(".")
        if path.endswith(".attn.kv") and isinstance(modules.get(path.replace(".kv", ".to_qk")), (nn.Linear, ShiftAddExperts)):
            path, value = path.replace(".kv", ".to_v"), value[value.shape[0] // 2:]
        elif path.endswith(".attn.q") and path.replace(".q", ".to_qk") in modules:
            path = path.replace(".q", ".to_qk")
        module = modules.get(path)
        if isinstance(module, ShiftAddExperts):
            out[f"{path}.experts.0.{leaf}"] = value
            if leaf == "weight":
                converted = LinearShift(module.in_features, module.out_features, bias=False).set_from(value)
                out[f"{path}.experts.1.shift"], out[f"{path}.experts.1.sign"] = converted.shift.data, converted.sign.data
            else:
                out[f"{path}.experts.1.{leaf}"] = value
        elif f"{path}.{leaf}" in out:
            out[f"{path}.{leaf}"] = value
    return out


@dataclass(frozen=True)
class ShiftAddViTBuilder:
    depths: tuple[int, ...]
    embed_dims: tuple[int, ...]

    def __call__(self, num_classes: int = 1000, **kwargs: Any) -> ShiftAddViT:
        return ShiftAddViT(**{"depths": self.depths, "embed_dims": self.embed_dims, **kwargs}, num_classes=num_classes)


_CONFIG = "the release's configs/pvt_v2/pvt_v2_{}_LinAngular.py and pvt_v2.py (github.com/GATECH-EIC/ShiftAddViT)"
# name: depths, widths (heads 1/2/5/8, MLP ratios 8/8/4/4 in all three)
_VARIANTS = {
    "b0": ((2, 2, 2, 2), (32, 64, 160, 256)),
    "b1": ((2, 2, 2, 2), (64, 128, 320, 512)),
    "b2": ((3, 4, 6, 3), (64, 128, 320, 512)),
}
for _name, (_depths, _dims) in _VARIANTS.items():
    register_spec(ModelSpec(
        name=f"shiftaddvit_pvt_v2_{_name}", family="shiftaddvit", task="classification",
        builder=ShiftAddViTBuilder(_depths, _dims), input_size=(3, 224, 224), interpolation="bicubic", crop_pct=0.875,
        classifier=("head",), paper=SHIFTADDVIT,
        weights=(WeightTag("pvt_v2_in1k", f"timm/pvt_v2_{_name}.in1k", "apache-2.0", "imagenet-1k (PVTv2's, reparameterised)",
                           description=f"PVTv2-{_name.upper()}'s ImageNet weights (timm) as ShiftAddViT's starting point: "
                                       "attention and experts from them, routers, hashes and token convolutions new; "
                                       "fine-tune before use (no ShiftAddViT weights were released)"),),
        convert_state_dict=from_pvt_v2,
        description=f"ShiftAddViT on PVTv2-{_name.upper()} (widths {'/'.join(map(str, _dims))}, depths "
                    f"{'/'.join(map(str, _depths))}): binary-code attention in stages 1-3, every linear layer of the "
                    f"MLPs and those attentions a linear/shift mixture of experts; from {_CONFIG.format(_name)}.",
    ))
