"""Spiking neural networks: IF/LIF/parametric-LIF neurons and the standard spiking classifiers.

Neurons are plain PyTorch, written here: spikingjelly keeps each neuron's membrane in module state that
must be reset by hand between batches and routes its dynamics through custom ops the classic ONNX
exporter rejects; snntorch registers every neuron in a class-wide list (docs/sources.md,
"SNN: neuron libraries").
Here the membrane lives in the forward pass: a neuron takes a whole spike train ``[T, B, ...]`` (or the
time-folded ``[T*B, ...]`` once :func:`set_timesteps` told it ``T``), loops over time and returns the
spikes, so nothing leaks between batches. Only :func:`streaming` (one step per call, for early exit and the
per-step export) carries a membrane across calls, inside its ``with`` block.

Networks fold time into the batch: convolutions, BatchNorm, pooling and linear layers see ``[T*B, ...]``
(BatchNorm's statistics run over time and batch, as spikingjelly's ``SeqToANNContainer``), neurons unfold
it. Input is direct-encoded (the real-valued image enters the first layer at every step) and the logits
are averaged over time. With ``neuron="relu"`` the same classes build the ANN twin that
:func:`zoo.snn.convert` turns into an SNN (``spike_maxpool=True`` then gates its max-pools by spike counts).

- Spiking ResNet and SEW-ResNet (Fang et al., "Deep Residual Learning in Spiking Neural Networks",
  NeurIPS 2021, arXiv:2102.04159): timm's ``ResNet`` with neurons for ReLUs; SEW blocks fire before the
  ADD connection (and on the downsample path), so parameter counts equal the ResNet's.
- Spiking VGG-11/16: torchvision's VGG-BN layout (same keys and counts) with neurons for ReLUs.
- Spikformer (Zhou et al., "Spikformer: When Spiking Neural Network Meets Transformer", ICLR 2023,
  arXiv:2209.15425): spiking patch splitting and spiking self-attention (no softmax), CIFAR-size 4-384.
"""
from __future__ import annotations

import abc
import contextlib
import functools
import math
from collections.abc import Iterator

import torch
from torch import nn

from zoo.errors import BadArgumentError
from zoo.registry import ModelSpec, Paper, Reported, register_spec

SURROGATES = {"atan": 2.0, "sigmoid": 4.0, "triangle": 1.0}  # name -> default sharpness (spikingjelly's for atan/sigmoid)
NEURONS = ("if", "lif", "plif", "relu")


class _Spike(torch.autograd.Function):
    """Heaviside step forward, a smooth surrogate's derivative backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, kind: str, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.kind, ctx.alpha = kind, alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        a = ctx.alpha
        if ctx.kind == "atan":
            d = a / 2 / (1 + (math.pi / 2 * a * x) ** 2)
        elif ctx.kind == "sigmoid":
            s = torch.sigmoid(a * x)
            d = a * s * (1 - s)
        else:  # triangle: piecewise linear (Bellec et al. 2018), the one-timestep paper's
            d = a * (1 - x.abs()).clamp(min=0)
        return grad * d, None, None


def spike(x: torch.Tensor, surrogate: str = "atan", alpha: float | None = None) -> torch.Tensor:
    """1 where ``x >= 0``; gradients flow through the named surrogate when autograd is recording."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _Spike.apply(x, surrogate, SURROGATES[surrogate] if alpha is None else alpha)
    return (x >= 0).to(x.dtype)  # plain comparison: what inference and the exporters see


class Temporal(nn.Module, metaclass=abc.ABCMeta):
    """A layer with a state over time: neurons (the membrane) and the spiking max-pool (spike counts).

    It takes ``[T, B, ...]``, or time folded into the batch once ``timesteps`` is set. Its state starts from
    :meth:`initial_state` at every call, except inside :func:`streaming`, which carries it to the next call.
    """

    def __init__(self, timesteps: int | None = None) -> None:
        super().__init__()
        self.timesteps = timesteps
        self._carry: list | None = None  # set by streaming(): the state carried to the next call

    @abc.abstractmethod
    def initial_state(self, like: torch.Tensor) -> torch.Tensor:
        """The state at the first step, shaped like one step's input."""

    def _unfold(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(0, (self.timesteps, -1)) if self.timesteps is not None else x

    def _fold(self, y: torch.Tensor) -> torch.Tensor:
        return y.flatten(0, 1) if self.timesteps is not None else y

    def _start(self, like: torch.Tensor) -> torch.Tensor:
        carried = self._carry[0] if self._carry is not None else None
        return carried if carried is not None else self.initial_state(like)

    def _end(self, state: torch.Tensor) -> None:
        if self._carry is not None:
            self._carry[0] = state


class SpikeMaxPool(Temporal):
    """Max-pooling for converted SNNs: each window passes the spike of the input that has fired most so far.

    Plain max-pooling of spikes fires whenever any input in the window fires, so its rate overshoots the
    ANN's maximum; gating by spike counts (Rueckauer et al., Front. Neurosci. 2017) keeps the rate of the
    most active input. Replaces ``nn.MaxPool2d`` in networks built with ``spike_maxpool=True``.
    """

    def __init__(self, kernel_size, stride=None, padding=0, timesteps: int | None = None) -> None:
        super().__init__(timesteps)
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding

    def initial_state(self, like):
        return torch.zeros_like(like)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = self._unfold(x)
        counts = self._start(seq[0])
        out = []
        for x_t in seq:
            counts = counts + x_t
            _, index = nn.functional.max_pool2d(counts, self.kernel_size, self.stride, self.padding, return_indices=True)
            out.append(x_t.flatten(2).gather(2, index.flatten(2)).view_as(index))
        self._end(counts)
        return self._fold(torch.stack(out))


class Neuron(Temporal):
    """Integrate, fire, reset, over the leading time dimension. Subclasses define :meth:`charge`.

    Args:
        v_threshold: firing threshold (a learnable parameter with ``learn_threshold=True``).
        reset: ``"hard"`` (back to ``v_reset``) or ``"soft"`` (subtract the threshold: conversion's choice).
        surrogate: ``"atan"``, ``"sigmoid"`` or ``"triangle"``; ``alpha`` its sharpness.
        detach_reset: no gradient through the reset (SEW-ResNet and Spikformer train this way).
        v_init: initial membrane as a share of the threshold (0.5 halves conversion error at low ``T``).
        scaled: emit spikes of height ``v_threshold`` instead of 1 (converted ANNs keep their activation scale).
        timesteps: ``None`` takes ``[T, B, ...]``; an int takes time folded into the batch, ``[T*B, ...]``.
    """

    def __init__(self, v_threshold: float = 1.0, reset: str = "hard", v_reset: float = 0.0, surrogate: str = "atan",
                 alpha: float | None = None, detach_reset: bool = False, learn_threshold: bool = False,
                 v_init: float = 0.0, scaled: bool = False, timesteps: int | None = None, inplace: bool = False) -> None:
        super().__init__(timesteps)  # ``inplace`` is accepted (and ignored) so timm can build us where it builds ReLU
        if reset not in ("hard", "soft"):
            raise BadArgumentError(f"reset must be 'hard' or 'soft', not {reset!r}")
        if surrogate not in SURROGATES:
            raise BadArgumentError(f"surrogate must be one of {sorted(SURROGATES)}, not {surrogate!r}")
        threshold = torch.tensor(float(v_threshold))
        if learn_threshold:
            self.v_threshold = nn.Parameter(threshold)
        else:
            self.register_buffer("v_threshold", threshold)  # saved: conversion sets one per layer
        self.reset, self.v_reset, self.surrogate, self.alpha = reset, float(v_reset), surrogate, alpha
        self.detach_reset, self.v_init, self.scaled = detach_reset, float(v_init), scaled

    def initial_state(self, like):
        start = self.v_init * self.v_threshold.detach()
        return torch.zeros_like(like) + (start if self.reset == "soft" else self.v_reset + start)

    @abc.abstractmethod
    def charge(self, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The membrane after this step's input arrives, before firing."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = self._unfold(x)
        threshold = self.v_threshold
        v = self._start(seq[0])
        out = []
        for x_t in seq:
            h = self.charge(v, x_t)
            s = spike(h - threshold, self.surrogate, self.alpha)
            r = s.detach() if self.detach_reset else s
            v = h - r * threshold if self.reset == "soft" else h * (1 - r) + self.v_reset * r
            out.append(s * threshold if self.scaled else s)
        self._end(v)
        return self._fold(torch.stack(out))

    def extra_repr(self) -> str:
        return (f"v_threshold={float(self.v_threshold.detach()):.4g}, reset={self.reset}, surrogate={self.surrogate}"
                + (", scaled" if self.scaled else "") + (f", T={self.timesteps}" if self.timesteps else ""))


class IF(Neuron):
    """Integrate-and-fire: the membrane keeps all it receives, or a share ``leak`` of it per step (a learnable
    parameter with ``learn_leak=True``: the one-timestep method trains threshold and leak per layer)."""

    def __init__(self, leak: float = 1.0, learn_leak: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        if learn_leak:
            self.leak = nn.Parameter(torch.tensor(float(leak)))
        else:
            self.register_buffer("leak", torch.tensor(float(leak)), persistent=False)

    def charge(self, v, x):
        return self.leak * v + x


class LIF(Neuron):
    """Leaky integrate-and-fire with time constant ``tau`` (spikingjelly's ``LIFNode`` equations)."""

    def __init__(self, tau: float = 2.0, decay_input: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        if tau <= 1:
            raise BadArgumentError(f"tau must be > 1, not {tau}")
        self.tau, self.decay_input = float(tau), decay_input

    def decay(self) -> torch.Tensor | float:
        return 1.0 / self.tau

    def charge(self, v, x):
        rest = self.v_reset if self.reset == "hard" else 0.0
        k = self.decay()
        return v + (x - (v - rest)) * k if self.decay_input else v - (v - rest) * k + x


class ParametricLIF(LIF):
    """LIF whose leak is learned (Fang et al., ICCV 2021): ``1/tau = sigmoid(w)``, ``w`` initialised from ``tau``."""

    def __init__(self, tau: float = 2.0, **kwargs) -> None:
        super().__init__(tau=tau, **kwargs)
        self.w = nn.Parameter(torch.tensor(-math.log(tau - 1.0)))

    def decay(self):
        return torch.sigmoid(self.w)


def neurons(model: nn.Module) -> list[Neuron]:
    return [m for m in model.modules() if isinstance(m, Neuron)]


def temporal(model: nn.Module) -> list[Temporal]:
    """The layers with a state over time (neurons, spiking max-pools), in module order."""
    return [m for m in model.modules() if isinstance(m, Temporal)]


def gate_maxpools(model: nn.Module, timesteps: int) -> nn.Module:
    """Replace every ``nn.MaxPool2d`` with :class:`SpikeMaxPool` (in place), for converted networks."""
    for name, m in list(model.named_modules()):
        if isinstance(m, nn.MaxPool2d):
            parent, _, child = name.rpartition(".")
            pool = SpikeMaxPool(m.kernel_size, m.stride, m.padding, timesteps=timesteps)
            setattr(model.get_submodule(parent) if parent else model, child, pool)
    return model


def make_neuron(kind: str = "lif", inplace: bool = False, **kwargs) -> nn.Module:
    """A neuron by name (``if``, ``lif``, ``plif``), or ``relu`` for the ANN twin."""
    if kind == "relu":
        return nn.ReLU()
    classes = {"if": IF, "lif": LIF, "plif": ParametricLIF}
    if kind not in classes:
        raise BadArgumentError(f"neuron must be one of {', '.join(NEURONS)}, not {kind!r}")
    return classes[kind](**kwargs)


def set_timesteps(model: nn.Module, timesteps: int) -> nn.Module:
    """Run ``model`` over ``timesteps`` steps from now on (its neurons unfold ``[T*B, ...]`` with this ``T``)."""
    if int(timesteps) < 1:
        raise BadArgumentError(f"timesteps must be >= 1, not {timesteps}")
    for m in model.modules():
        if isinstance(m, (Temporal, SpikingModel)):
            m.timesteps = int(timesteps)
    return model


class SpikingModel:
    """Mixin: run the wrapped network over ``timesteps`` steps with direct encoding, average the logits.

    Subclasses are ``nn.Module``s whose ``forward_body`` maps time-folded images ``[T*B, C, H, W]`` to
    time-folded logits ``[T*B, classes]``.
    """

    timesteps: int = 1

    def forward_steps(self, x: torch.Tensor) -> torch.Tensor:
        """Per-step logits ``[T, B, classes]`` (step ``t`` depends only on steps up to ``t``)."""
        T = self.timesteps
        folded = x.unsqueeze(0).expand(T, *x.shape).flatten(0, 1)  # direct encoding: the image at every step
        return self.forward_body(folded).unflatten(0, (T, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_steps(x).mean(0)


class Stream:
    """One step per :meth:`step` call, membranes carried between calls (see :func:`streaming`)."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.layers = model, temporal(model)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_steps(x)[0]

    @property
    def states(self) -> list[torch.Tensor | None]:
        """Each temporal layer's state (membranes, spike counts), ``None`` before the first step."""
        return [m._carry[0] for m in self.layers]

    @states.setter
    def states(self, values) -> None:
        for m, v in zip(self.layers, values, strict=True):
            m._carry[0] = v

    def keep(self, index: torch.Tensor) -> None:
        """Keep only these samples' membranes (the others exited early)."""
        self.states = [None if v is None else v[index] for v in self.states]


@contextlib.contextmanager
def streaming(model: nn.Module) -> Iterator[Stream]:
    """Run ``model`` one timestep per call; the membranes live until the ``with`` block ends.

    >>> with streaming(model) as s:
    ...     logits = sum(s.step(x) for _ in range(4)) / 4   # == model(x) at T=4
    """
    saved = getattr(model, "timesteps", None)
    set_timesteps(model, 1)
    for m in temporal(model):
        m._carry = [None]
    try:
        yield Stream(model)
    finally:
        for m in temporal(model):
            m._carry = None
        set_timesteps(model, saved or 1)


# -- ResNets -----------------------------------------------------------------------------------------------

def _sew_blocks():
    from timm.models.resnet import BasicBlock, Bottleneck

    class SEWBasicBlock(BasicBlock):
        """SEW block, ADD connection: fire(residual branch) + shortcut; the downsample path fires too."""

        def __init__(self, *args, act_layer=nn.ReLU, **kwargs) -> None:
            super().__init__(*args, act_layer=act_layer, **kwargs)
            self.act_down = act_layer(inplace=False) if self.downsample is not None else None

        def forward(self, x):
            shortcut = x if self.downsample is None else self.act_down(self.downsample(x))
            x = self.aa(self.act1(self.drop_block(self.bn1(self.conv1(x)))))
            x = self.act2(self.bn2(self.conv2(x)))
            return x + shortcut

    class SEWBottleneck(Bottleneck):
        def __init__(self, *args, act_layer=nn.ReLU, **kwargs) -> None:
            super().__init__(*args, act_layer=act_layer, **kwargs)
            self.act_down = act_layer(inplace=False) if self.downsample is not None else None

        def forward(self, x):
            shortcut = x if self.downsample is None else self.act_down(self.downsample(x))
            x = self.act1(self.bn1(self.conv1(x)))
            x = self.aa(self.act2(self.drop_block(self.bn2(self.conv2(x)))))
            x = self.act3(self.bn3(self.conv3(x)))
            return x + shortcut

    return SEWBasicBlock, SEWBottleneck


def _steps(neuron: str, timesteps: int) -> int:
    """The ANN twin (``neuron="relu"``) has no time: one step, whatever ``timesteps`` says."""
    if int(timesteps) < 1:
        raise BadArgumentError(f"timesteps must be >= 1, not {timesteps}")
    return 1 if neuron == "relu" else int(timesteps)


RESNET_LAYERS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3))}


def _neuron_factory(neuron: str, neuron_kwargs: dict | None, timesteps: int):
    kwargs = dict(neuron_kwargs or {})
    if neuron != "relu":
        kwargs["timesteps"] = timesteps
    make_neuron(neuron, **kwargs)  # fail here, once, on a bad name or option
    return functools.partial(make_neuron, neuron, **kwargs)


def _resnet(depth: int, sew: bool, num_classes: int = 1000, timesteps: int = 4, neuron: str = "if",
            neuron_kwargs: dict | None = None, spike_maxpool: bool = False, drop_rate: float = 0.0, **kwargs):
    from timm.models.resnet import BasicBlock, Bottleneck, ResNet

    class SpikingResNet(SpikingModel, ResNet):
        def forward_body(self, x):
            return ResNet.forward(self, x)

        def forward_intermediates(self, x, *args, **kwargs):
            """timm's feature maps (``features_only=True``), as firing rates: each map averaged over the T steps."""
            T = self.timesteps
            out = ResNet.forward_intermediates(self, x.unsqueeze(0).expand(T, *x.shape).flatten(0, 1), *args, **kwargs)
            rates = lambda maps: [m.unflatten(0, (T, -1)).mean(0) for m in maps]  # noqa: E731
            return rates(out) if isinstance(out, list) else (out[0].unflatten(0, (T, -1)).mean(0), rates(out[1]))

    kind, layers = RESNET_LAYERS[depth]
    sew_basic, sew_bottleneck = _sew_blocks() if sew else (BasicBlock, Bottleneck)
    block = (sew_basic if sew else BasicBlock) if kind == "basic" else (sew_bottleneck if sew else Bottleneck)
    model = SpikingResNet(block=block, layers=layers, num_classes=num_classes, drop_rate=drop_rate,
                          act_layer=_neuron_factory(neuron, neuron_kwargs, timesteps), **kwargs)
    model.timesteps = _steps(neuron, timesteps)
    return gate_maxpools(model, model.timesteps) if spike_maxpool else model


# -- VGG ---------------------------------------------------------------------------------------------------

VGG_CFG = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
}


class SpikingVGG(SpikingModel, nn.Module):
    """torchvision's VGG with BatchNorm (same module names and parameter counts), neurons for ReLUs."""

    def __init__(self, depth: int = 11, num_classes: int = 1000, timesteps: int = 4, neuron: str = "if",
                 neuron_kwargs: dict | None = None, spike_maxpool: bool = False, drop_rate: float = 0.5) -> None:
        super().__init__()
        act = _neuron_factory(neuron, neuron_kwargs, timesteps)
        layers: list[nn.Module] = []
        channels = 3
        for v in VGG_CFG[depth]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, v, 3, padding=1), nn.BatchNorm2d(v), act()]
                channels = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(7)
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), act(), nn.Dropout(drop_rate),
            nn.Linear(4096, 4096), act(), nn.Dropout(drop_rate),
            nn.Linear(4096, num_classes),
        )
        self.timesteps = _steps(neuron, timesteps)
        if spike_maxpool:
            gate_maxpools(self, self.timesteps)

    def forward_body(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# -- Spikformer --------------------------------------------------------------------------------------------

class _LinearBN(nn.Sequential):
    """Linear + BatchNorm1d over tokens ``[N_batch, L, D]``, then a neuron."""

    def __init__(self, d_in: int, d_out: int, act) -> None:
        super().__init__()
        self.linear, self.bn, self.lif = nn.Linear(d_in, d_out), nn.BatchNorm1d(d_out), act()

    def forward(self, x):
        return self.lif(self.bn(self.linear(x).transpose(1, 2)).transpose(1, 2))


class SpikingSelfAttention(nn.Module):
    """Spike-form Q, K, V; ``Q K^T V * scale`` without softmax (all inputs are non-negative spikes)."""

    def __init__(self, dim: int, num_heads: int, act, attn_act, scale: float = 0.125) -> None:
        super().__init__()
        self.num_heads, self.scale = num_heads, scale
        self.q, self.k, self.v = _LinearBN(dim, dim, act), _LinearBN(dim, dim, act), _LinearBN(dim, dim, act)
        self.attn_lif = attn_act()
        self.proj = _LinearBN(dim, dim, act)

    def forward(self, x):
        n, length, dim = x.shape
        heads = [t(x).reshape(n, length, self.num_heads, dim // self.num_heads).transpose(1, 2) for t in (self.q, self.k, self.v)]
        q, k, v = heads
        out = (q @ k.transpose(-2, -1)) @ v * self.scale
        return self.proj(self.attn_lif(out.transpose(1, 2).reshape(n, length, dim)))


class SpikformerBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, act, attn_act) -> None:
        super().__init__()
        self.attn = SpikingSelfAttention(dim, num_heads, act, attn_act)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(_LinearBN(dim, hidden, act), _LinearBN(hidden, dim, act))

    def forward(self, x):
        x = x + self.attn(x)
        return x + self.mlp(x)


class Spikformer(SpikingModel, nn.Module):
    """Spikformer for small images: spiking patch splitting (4 conv-BN-LIF, two 2x2 max-pools: 4x4 patches),
    a conv relative position embedding, ``depth`` spiking self-attention blocks, mean over tokens, linear head."""

    def __init__(self, embed_dim: int = 384, depth: int = 4, num_heads: int = 12, mlp_ratio: float = 4.0,
                 num_classes: int = 10, in_chans: int = 3, timesteps: int = 4, neuron: str = "lif",
                 neuron_kwargs: dict | None = None, spike_maxpool: bool = False) -> None:
        super().__init__()
        kwargs = {"tau": 2.0, "detach_reset": True} | dict(neuron_kwargs or {}) if neuron in ("lif", "plif") else neuron_kwargs
        act = _neuron_factory(neuron, kwargs, timesteps)
        attn_act = _neuron_factory(neuron, (kwargs or {}) | ({"v_threshold": 0.5} if neuron != "relu" else {}), timesteps)
        widths = (embed_dim // 8, embed_dim // 4, embed_dim // 2, embed_dim)
        layers: list[nn.Module] = []
        channels = in_chans
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(channels, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), act()]
            if i >= 2:
                layers.append(nn.MaxPool2d(3, 2, 1))
            channels = w
        self.patch_embed = nn.Sequential(*layers)
        self.rpe = nn.Sequential(nn.Conv2d(embed_dim, embed_dim, 3, padding=1, bias=False), nn.BatchNorm2d(embed_dim), act())
        self.blocks = nn.Sequential(*[SpikformerBlock(embed_dim, num_heads, mlp_ratio, act, attn_act) for _ in range(depth)])
        self.head = nn.Linear(embed_dim, num_classes)
        self.timesteps = _steps(neuron, timesteps)
        if spike_maxpool:
            gate_maxpools(self, self.timesteps)

    def forward_body(self, x):
        x = self.patch_embed(x)
        x = x + self.rpe(x)
        x = self.blocks(x.flatten(2).transpose(1, 2))
        return self.head(x.mean(1))


# -- registry ----------------------------------------------------------------------------------------------

SEW = Paper(
    title="Deep Residual Learning in Spiking Neural Networks",
    arxiv="2102.04159",
    code_url="https://github.com/fangwei123456/Spike-Element-Wise-ResNet",
    code_license="MPL-2.0",
    bibtex="""@inproceedings{fang2021deep,
  title={Deep Residual Learning in Spiking Neural Networks},
  author={Fang, Wei and Yu, Zhaofei and Chen, Yanqi and Huang, Tiejun and Masquelier, Timoth{\\'e}e and Tian, Yonghong},
  booktitle={Advances in Neural Information Processing Systems (NeurIPS)},
  volume={34},
  pages={21056--21069},
  year={2021}
}""",
)
SPIKFORMER = Paper(
    title="Spikformer: When Spiking Neural Network Meets Transformer",
    arxiv="2209.15425",
    code_url="https://github.com/ZK-Zhou/spikformer",
    code_license="MIT",
    bibtex="""@inproceedings{zhou2023spikformer,
  title={Spikformer: When Spiking Neural Network Meets Transformer},
  author={Zhou, Zhaokun and Zhu, Yuesheng and He, Chao and Wang, Yaowei and Yan, Shuicheng and Tian, Yonghong and Yuan, Li},
  booktitle={International Conference on Learning Representations (ICLR)},
  year={2023}
}""",
)
VGG = Paper(
    title="Very Deep Convolutional Networks for Large-Scale Image Recognition",
    arxiv="1409.1556",
    bibtex="""@inproceedings{simonyan2015very,
  title={Very Deep Convolutional Networks for Large-Scale Image Recognition},
  author={Simonyan, Karen and Zisserman, Andrew},
  booktitle={International Conference on Learning Representations (ICLR)},
  year={2015}
}""",
)

_SEW_LOGS = "arXiv:2102.04159 (ImageNet, T=4; best-epoch top-1 read from the official logs, origin_logs/imagenet)"
# name: (depth, sew, params M, top-1 reported)
# (docs/sources.md, "SNN: SEW-ResNet and Spiking ResNet results")
_RESNETS = {
    "sew_resnet18": (18, True, 11.69, 63.18),
    "sew_resnet34": (34, True, 21.80, 67.04),
    "sew_resnet50": (50, True, 25.56, 67.78),
    "spiking_resnet18": (18, False, 11.69, 62.32),
    "spiking_resnet34": (34, False, 21.80, 61.86),
}
_SNN_NOTE = "timesteps=T (default 4), neuron=if|lif|plif|relu, spike_maxpool; zoo.snn: early exit, conversion, energy"

for _name, (_depth, _sew, _params, _top1) in _RESNETS.items():
    register_spec(
        ModelSpec(
            name=_name,
            family="snn",
            task="classification",
            builder=functools.partial(_resnet, _depth, _sew),
            default_kwargs={"timesteps": 4, "neuron": "if", "neuron_kwargs": {"detach_reset": True}},
            input_size=(3, 224, 224),
            crop_pct=0.875,
            interpolation="bilinear",
            classifier=("fc",),
            paper=SEW,
            reported=(
                Reported("top1", _top1, "%", _SEW_LOGS, "imagenet-1k", 224),
                Reported("params", _params, "M", "arXiv:2102.04159 (equal to ResNet-%d: IF neurons have no parameters)" % _depth),
            ),
            license="apache-2.0",
            description=f"{'SEW' if _sew else 'Spiking'} ResNet-{_depth}: IF neurons for ReLUs"
                        + (", spike-element-wise ADD shortcuts" if _sew else ", plain residual") + f"; {_SNN_NOTE}",
        )
    )

_VGG_PARAMS = {11: (133, "A"), 16: (138, "D")}  # VGG paper, Table 2 (millions, without BatchNorm: BN adds 0.01M)
_VGG_TOP1 = {16: (Reported("top1", 69.00, "%", "arXiv:2110.05929 (ECCV 2022 version's abstract): a spiking VGG16 at T=1",
                           "imagenet-1k", 224, note="the one-timestep method's VGG16 (converted, LIF with trained "
                           "thresholds and leaks), not this model trained as registered"),)}

for _name, _depth in {"spiking_vgg11": 11, "spiking_vgg16": 16}.items():
    register_spec(
        ModelSpec(
            name=_name,
            family="snn",
            task="classification",
            builder=functools.partial(SpikingVGG, _depth),
            default_kwargs={"timesteps": 4, "neuron": "if", "neuron_kwargs": {"detach_reset": True}},
            input_size=(3, 224, 224),
            interpolation="bilinear",
            classifier=("classifier.6",),
            paper=VGG,
            reported=(Reported("params", float(_VGG_PARAMS[_depth][0]), "M",
                               f"arXiv:1409.1556, Table 2 (configuration {_VGG_PARAMS[_depth][1]}; spiking neurons add none)"),
                      *_VGG_TOP1.get(_depth, ())),
            description=f"Spiking VGG-{_depth} (torchvision's VGG-BN layout and keys, IF neurons for ReLUs); {_SNN_NOTE}",
        )
    )

register_spec(
    ModelSpec(
        name="spikformer_4_384",
        family="snn",
        task="classification",
        builder=Spikformer,
        default_kwargs={"embed_dim": 384, "depth": 4, "num_heads": 12, "timesteps": 4},
        input_size=(3, 32, 32),
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        crop_pct=1.0,
        interpolation="bilinear",
        num_classes=10,
        classifier=("head",),
        paper=SPIKFORMER,
        reported=(
            Reported("top1", 95.19, "%", "arXiv:2209.15425, CIFAR-10 results (Spikformer-4-384, T=4)", "cifar-10", 32,
                     note="read from a summary of the paper's CIFAR table; its table number is not checked against the PDF"),
            Reported("params", 9.32, "M", "arXiv:2209.15425, CIFAR-10 results (Spikformer-4-384)",
                     note="ours: 9,324,730; the official model adds two LayerNorms its forward never uses (9,330,874)"),
        ),
        description=f"Spikformer-4-384 for 32x32 images (CIFAR layout: 4x4 patches, 12 heads, LIF tau 2); {_SNN_NOTE}",
    )
)
