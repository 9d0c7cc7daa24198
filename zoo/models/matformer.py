"""MatFormer: transformers whose FFN blocks nest several widths, so one trained model holds many smaller ones.

Every FFN's hidden units are ordered so that granularity ``s``/``m``/``l``/``xl`` uses the first d_ff/8, /4,
/2 or all of them (a prefix): the first projection keeps its first rows, the second its first columns, its
bias stays whole. Attention, embeddings, widths and depth are not nested (as in the paper).
:meth:`MatViT.set_granularity` switches the active widths in place (one name, or one per layer: Mix'n'Match)
without copying weights; :func:`extract` returns a physically smaller standalone model with the same outputs.

MatViT is timm's ``VisionTransformer`` (Apache-2.0) with :class:`NestedMlp` as its MLP, so its parameters are
exactly a plain ViT's of the same dimensions. Dense ViT weights (timm's keys) load through :func:`from_dense`,
which also orders each MLP's hidden units by importance so the nested prefixes start from the strongest.
Written here: only the prefix-sliced MLP and the switching/extraction around it (no library provides them).

MatLM is a byte-level GPT-2 (timm's ``Block`` with causal attention) with the same nested MLPs: the paper's
language models, at sizes this zoo chose (the paper's MatLM dimensions were not retrieved). GPT-2 weights of
the same dimensions load through :func:`from_gpt2`.

Registered as ``matvit_ti``/``_s``/``_b``/``_l`` (ImageNet classifiers, no published PyTorch weights: the
official MatViT checkpoints are JAX/Scenic) and ``matlm_nano``/``_mini``/``_small`` (byte-level language models,
no weights). The paper's per-granularity accuracies are printed in figures whose numbers were not retrieved
(docs/sources.md, "MatFormer: reported results"), so the specs carry no reported numbers yet.

Paper: Devvrit, Kudugunta, Kusupati et al., "MatFormer: Nested Transformer for Elastic Inference",
NeurIPS 2024, arXiv:2310.07707.
"""
from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from zoo.registry import ModelSpec, Paper, register_spec

GRANULARITIES = {"s": 8, "m": 4, "l": 2, "xl": 1}  # name -> divisor of the full FFN width
# name: (embed_dim, depth, num_heads); patch 16, FFN 4 x embed_dim (scenic's matvit_dims: d_ff/8 ... d_ff)
VIT_SIZES = {"ti": (192, 12, 3), "s": (384, 12, 6), "b": (768, 12, 12), "l": (1024, 24, 16)}


class NestedMlp(nn.Module):
    """timm's ``Mlp`` (same keys: ``fc1``, ``fc2``) whose forward uses only the first ``width`` hidden units."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int | None = None,
                 act_layer: type[nn.Module] = nn.GELU, norm_layer=None, bias: bool = True, drop: float = 0.0, **_) -> None:
        super().__init__()
        if norm_layer is not None:
            raise ValueError("NestedMlp has no norm on its hidden units (it could not be sliced)")
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = act_layer()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_features, out_features or in_features, bias=bias)
        self.drop2 = nn.Dropout(drop)
        self.width = hidden_features  # active hidden units (a prefix)

    @property
    def max_width(self) -> int:
        return self.fc1.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.width
        if m == self.max_width:
            h = self.fc1(x)
        else:
            h = F.linear(x, self.fc1.weight[:m], None if self.fc1.bias is None else self.fc1.bias[:m])
        h = self.drop1(self.act(h))
        weight = self.fc2.weight if m == self.max_width else self.fc2.weight[:, :m]
        return self.drop2(F.linear(h, weight, self.fc2.bias))


class Nested(nn.Module, metaclass=abc.ABCMeta):
    """What MatViT and MatLM share: their blocks' MLPs are :class:`NestedMlp`, switched by granularity.

    Subclasses set ``d_ff`` (the full MLP width), expose ``blocks`` and implement ``rebuild(mlp_dims)``
    (the same architecture with MLPs of those widths: what :func:`extract` fills) and ``example_input``."""

    d_ff: int
    blocks: Sequence[nn.Module]

    @abc.abstractmethod
    def rebuild(self, mlp_dims: Sequence[int]) -> Nested:
        """The same architecture with MLPs of these widths (fresh weights)."""

    @abc.abstractmethod
    def example_input(self, batch: int = 1) -> torch.Tensor:
        """An input to time the model with (search, benchmarks)."""

    @property
    def mlps(self) -> list[NestedMlp]:
        return [block.mlp for block in self.blocks]

    def widths(self, granularity: str | Sequence[str | int]) -> list[int]:
        """Hidden widths per layer for a granularity name, or one name or width per layer (Mix'n'Match)."""
        mlps = self.mlps
        per_layer = [granularity] * len(mlps) if isinstance(granularity, str) else list(granularity)
        if len(per_layer) != len(mlps):
            raise ValueError(f"give one granularity per layer ({len(mlps)}), not {len(per_layer)}")
        widths = []
        for i, (g, mlp) in enumerate(zip(per_layer, mlps)):
            if isinstance(g, str):
                if g not in GRANULARITIES:
                    raise ValueError(f"unknown granularity {g!r}; choose from {', '.join(GRANULARITIES)} or a width")
                g = self.d_ff // GRANULARITIES[g]
            if not 0 < int(g) <= mlp.max_width:
                raise ValueError(f"layer {i}: width {g} is outside 1..{mlp.max_width} (this model's widest there)")
            widths.append(int(g))
        return widths

    def set_granularity(self, granularity: str | Sequence[str | int]) -> Nested:
        """Use the first d_ff/8 (``s``), /4 (``m``), /2 (``l``) or all (``xl``) hidden units of every MLP, or
        a per-layer list of names or widths. In place, no weights copied; returns the model."""
        for mlp, width in zip(self.mlps, self.widths(granularity)):
            mlp.width = width
        return self

    @property
    def granularity(self) -> list[int]:
        """The active hidden width of each layer."""
        return [mlp.width for mlp in self.mlps]


class MatViT(Nested):
    """A ViT (patch 16, class-token classifier) whose MLPs nest four granularities.

    ``mlp_dims``: the hidden width of each layer's MLP (an extracted model); None: 4 x ``embed_dim`` in all.
    """

    def __init__(self, size: str = "ti", num_classes: int = 1000, img_size: int = 224, mlp_dims: Sequence[int] | None = None,
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        from timm.models.vision_transformer import VisionTransformer

        if size not in VIT_SIZES:
            raise ValueError(f"unknown MatViT size {size!r}; sizes: {', '.join(VIT_SIZES)}")
        dim, depth, heads = VIT_SIZES[size]
        self.size, self.num_classes, self.d_ff = size, num_classes, 4 * dim
        self.vit = VisionTransformer(img_size=img_size, patch_size=16, num_classes=num_classes, embed_dim=dim, depth=depth,
                                     num_heads=heads, mlp_ratio=4.0, mlp_layer=NestedMlp, drop_path_rate=drop_path_rate)
        if mlp_dims is not None:
            if len(mlp_dims) != depth:
                raise ValueError(f"mlp_dims needs one width per layer ({depth}), got {len(mlp_dims)}")
            for block, width in zip(self.vit.blocks, mlp_dims):
                block.mlp = NestedMlp(dim, int(width))
        self.feature_info = self.vit.feature_info
        self.pretrained_cfg = {"classifier": "vit.head"}

    @property
    def blocks(self) -> nn.Sequential:
        return self.vit.blocks

    def rebuild(self, mlp_dims: Sequence[int]) -> MatViT:
        return MatViT(self.size, self.num_classes, img_size=self.vit.patch_embed.img_size[0], mlp_dims=mlp_dims)

    def example_input(self, batch: int = 1) -> torch.Tensor:
        """A seeded random image batch of the size the model was built for."""
        size = self.vit.patch_embed.img_size
        return torch.rand(batch, 3, *size, generator=torch.Generator().manual_seed(0))

    def forward_intermediates(self, x: torch.Tensor, *args, **kwargs):
        return self.vit.forward_intermediates(x, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit(x)


# name: (d_model, depth, num_heads, context_length); byte-level vocabulary (256), d_ff = 4 x d_model.
# Our own small sizes (the paper's MatLM dimensions were not retrieved); "small" has GPT-2 small's shape.
LM_SIZES = {"nano": (128, 4, 4, 256), "mini": (256, 6, 4, 512), "small": (768, 12, 12, 1024)}
BYTE_VOCAB = 256


class GELUTanh(nn.GELU):
    """GPT-2's GELU (tanh approximation)."""

    def __init__(self) -> None:
        super().__init__(approximate="tanh")


class MatLM(Nested):
    """A decoder-only language model (GPT-2's layout: learned positions, pre-norm blocks with causal
    attention, final LayerNorm, output projection tied to the token embedding) whose MLPs nest four
    granularities. Takes token ids ``[B, L]`` (L <= ``context_length``), returns logits ``[B, L, vocab]``.

    The blocks are timm's ``Block`` (attention with a causal mask through ``is_causal``, GPT-2's tanh GELU),
    so at XL a MatLM is a GPT-2 of the same dimensions with tied embeddings: same parameter count, and the
    same logits from the same weights (:func:`from_gpt2`; tests compare with transformers' ``GPT2LMHeadModel``).
    """

    def __init__(self, size: str = "nano", vocab_size: int = BYTE_VOCAB, context_length: int | None = None,
                 mlp_dims: Sequence[int] | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        from timm.models.vision_transformer import Block

        if size not in LM_SIZES:
            raise ValueError(f"unknown MatLM size {size!r}; sizes: {', '.join(LM_SIZES)}")
        dim, depth, heads, default_context = LM_SIZES[size]
        self.size, self.vocab_size, self.d_ff = size, vocab_size, 4 * dim
        self.context_length = context_length or default_context
        if mlp_dims is not None and len(mlp_dims) != depth:
            raise ValueError(f"mlp_dims needs one width per layer ({depth}), got {len(mlp_dims)}")
        self.tok_emb = nn.Embedding(vocab_size, dim)
        self.pos_emb = nn.Parameter(torch.zeros(1, self.context_length, dim))
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(dim, heads, mlp_ratio=4.0, qkv_bias=True, proj_drop=dropout, act_layer=GELUTanh, norm_layer=nn.LayerNorm,
                  mlp_layer=NestedMlp)
            for _ in range(depth)
        )
        if mlp_dims is not None:
            for block, width in zip(self.blocks, mlp_dims):
                block.mlp = NestedMlp(dim, int(width), act_layer=GELUTanh, drop=dropout)
        self.norm = nn.LayerNorm(dim)
        self._init_weights(depth)

    def _init_weights(self, depth: int) -> None:
        """GPT-2's: N(0, 0.02) everywhere, residual output projections scaled by 1/sqrt(2 * depth), zero biases."""
        for name, p in self.named_parameters():
            if p.dim() == 1:
                nn.init.ones_(p) if name.endswith(("norm1.weight", "norm2.weight", "norm.weight")) else nn.init.zeros_(p)
            else:
                std = 0.02 / (2 * depth) ** 0.5 if name.endswith(("attn.proj.weight", "mlp.fc2.weight")) else 0.02
                nn.init.normal_(p, std=std)

    def rebuild(self, mlp_dims: Sequence[int]) -> MatLM:
        return MatLM(self.size, self.vocab_size, self.context_length, mlp_dims=mlp_dims)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        if length > self.context_length:
            raise ValueError(f"{length} tokens > context length {self.context_length}: feed at most {self.context_length} "
                             "(generate() keeps the last ones), or build the model with a longer context_length")
        x = self.drop(self.tok_emb(tokens) + self.pos_emb[:, :length])
        for block in self.blocks:
            x = block(x, is_causal=True)
        return F.linear(self.norm(x), self.tok_emb.weight)  # output projection tied to the embedding

    def example_input(self, batch: int = 1) -> torch.Tensor:
        """Seeded random token ids filling the context."""
        return torch.randint(0, self.vocab_size, (batch, self.context_length), generator=torch.Generator().manual_seed(0))

    @torch.no_grad()
    def generate(self, tokens: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample ``max_new_tokens`` more tokens after ``tokens`` ``[B, L]`` (temperature 0: greedy)."""
        for _ in range(max_new_tokens):
            logits = self(tokens[:, -self.context_length:])[:, -1]
            if temperature <= 0:
                nxt = logits.argmax(-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k:
                    kth = logits.topk(min(top_k, logits.shape[-1])).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                nxt = torch.multinomial(logits.softmax(-1), 1, generator=generator)
            tokens = torch.cat([tokens, nxt], dim=1)
        return tokens


def encode_bytes(text: str) -> torch.Tensor:
    """Text -> MatLM's byte-level token ids (UTF-8 bytes), ``[1, L]``."""
    return torch.tensor(list(text.encode("utf-8")), dtype=torch.long).unsqueeze(0)


def decode_bytes(tokens: torch.Tensor) -> str:
    """Token ids -> text (invalid UTF-8 sequences become U+FFFD)."""
    return bytes(int(t) for t in tokens.flatten().tolist()).decode("utf-8", errors="replace")


def extract(model: Nested, granularity: str | Sequence[str | int] | None = None) -> Nested:
    """A standalone model (MatViT or MatLM) holding only the active prefix of every MLP (``granularity``: as
    :meth:`Nested.set_granularity`; None: the model's current setting). Its outputs equal the nested
    model's at that setting; ``model`` is left unchanged."""
    widths = model.widths(granularity) if granularity is not None else model.granularity
    small = model.rebuild(widths)
    state = {key: value.clone() for key, value in model.state_dict().items()}
    names = [name for name, module in model.named_modules() if isinstance(module, NestedMlp)]
    for name, m in zip(names, widths):
        mlp = f"{name}."
        state[mlp + "fc1.weight"] = state[mlp + "fc1.weight"][:m]
        if mlp + "fc1.bias" in state:
            state[mlp + "fc1.bias"] = state[mlp + "fc1.bias"][:m]
        state[mlp + "fc2.weight"] = state[mlp + "fc2.weight"][:, :m]
    small.load_state_dict(state)
    spec = getattr(model, "zoo_spec", None)
    if spec is not None:  # zoo.save records the widths, so zoo.load rebuilds the small model
        small.zoo_spec = dataclasses.replace(spec, default_kwargs={**spec.default_kwargs, "mlp_dims": widths})
    return small.train(model.training)


# -- dense weights -----------------------------------------------------------------------------------


def importance_order(fc1_weight: torch.Tensor, fc2_weight: torch.Tensor) -> torch.Tensor:
    """Hidden units from most to least important: the product of a unit's input-weight and output-weight
    norms (how strongly it can read the input and write the output), so a prefix keeps the strongest."""
    return (fc1_weight.float().norm(dim=1) * fc2_weight.float().norm(dim=0)).argsort(descending=True)


def from_dense(state_dict: dict, model: nn.Module | None = None) -> dict:
    """A plain (timm) ViT state dict -> MatViT's: keys under ``vit.``, each MLP's hidden units reordered by
    :func:`importance_order`. The full model computes exactly what the ViT did (a permutation of hidden units
    changes nothing); the prefixes start from the most important units, to fine-tune into granularities."""
    state = {k if k.startswith("vit.") else f"vit.{k}": v for k, v in state_dict.items()}
    i = 0
    while f"vit.blocks.{i}.mlp.fc1.weight" in state:
        mlp = f"vit.blocks.{i}.mlp."
        order = importance_order(state[mlp + "fc1.weight"], state[mlp + "fc2.weight"])
        state[mlp + "fc1.weight"] = state[mlp + "fc1.weight"][order]
        if mlp + "fc1.bias" in state:
            state[mlp + "fc1.bias"] = state[mlp + "fc1.bias"][order]
        state[mlp + "fc2.weight"] = state[mlp + "fc2.weight"][:, order]
        i += 1
    return state


def from_gpt2(state_dict: dict, model: nn.Module | None = None) -> dict:
    """A GPT-2 state dict (transformers' ``GPT2LMHeadModel`` or ``GPT2Model`` keys; Conv1D weights stored
    [in, out]) -> MatLM's, with each MLP's hidden units ordered by :func:`importance_order`. The vocabulary
    and context length must match the MatLM's (``vocab_size=``, ``context_length=``)."""
    state = {k.removeprefix("transformer."): v for k, v in state_dict.items() if not k.startswith("lm_head.")}
    if any(k.startswith(("tok_emb.", "blocks.")) for k in state):
        return state_dict  # already MatLM's keys
    renames = {"ln_1": "norm1", "ln_2": "norm2", "attn.c_attn": "attn.qkv", "attn.c_proj": "attn.proj",
               "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
    out = {"tok_emb.weight": state["wte.weight"], "pos_emb": state["wpe.weight"].unsqueeze(0),
           "norm.weight": state["ln_f.weight"], "norm.bias": state["ln_f.bias"]}
    for key, value in state.items():
        if not key.startswith("h."):
            continue
        _, i, rest = key.split(".", 2)
        if rest in ("attn.bias", "attn.masked_bias"):  # older checkpoints' causal-mask buffers
            continue
        module, param = rest.rsplit(".", 1)
        value = value.t() if param == "weight" and value.dim() == 2 else value  # Conv1D [in, out] -> Linear [out, in]
        out[f"blocks.{i}.{renames.get(module, module)}.{param}"] = value.contiguous()
    i = 0
    while f"blocks.{i}.mlp.fc1.weight" in out:
        mlp = f"blocks.{i}.mlp."
        order = importance_order(out[mlp + "fc1.weight"], out[mlp + "fc2.weight"])
        out[mlp + "fc1.weight"], out[mlp + "fc1.bias"] = out[mlp + "fc1.weight"][order], out[mlp + "fc1.bias"][order]
        out[mlp + "fc2.weight"] = out[mlp + "fc2.weight"][:, order]
        i += 1
    return out


# -- registration ------------------------------------------------------------------------------------

MATFORMER = Paper(
    title="MatFormer: Nested Transformer for Elastic Inference",
    arxiv="2310.07707",
    code_url="https://github.com/google-research/scenic/tree/main/scenic/projects/matvit",
    code_license="Apache-2.0",
    bibtex="""@inproceedings{devvrit2024matformer,
  title={{MatFormer}: Nested Transformer for Elastic Inference},
  author={Devvrit and Kudugunta, Sneha and Kusupati, Aditya and Dettmers, Tim and Chen, Kaifeng and Dhillon, Inderjit and Tsvetkov, Yulia and Hajishirzi, Hannaneh and Kakade, Sham and Farhadi, Ali and Jain, Prateek},
  booktitle={Advances in Neural Information Processing Systems (NeurIPS)},
  year={2024}
}""",
)


def _build(num_classes: int = 1000, size: str = "ti", img_size: int = 224, mlp_dims: list[int] | None = None,
           drop_path_rate: float = 0.0) -> MatViT:
    return MatViT(size, num_classes, img_size=img_size, mlp_dims=mlp_dims, drop_path_rate=drop_path_rate)


for _name, _size in {"matvit_ti": "ti", "matvit_s": "s", "matvit_b": "b", "matvit_l": "l"}.items():
    _dim, _depth, _heads = VIT_SIZES[_size]
    register_spec(
        ModelSpec(
            name=_name,
            family="matformer",
            task="classification",
            builder=_build,
            default_kwargs={"size": _size},
            input_size=(3, 224, 224),
            fixed_input_size=True,  # learned position embeddings for 224/16 = 14x14 patches (img_size= changes it)
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.5, 0.5),
            crop_pct=0.9,
            classifier=("vit.head",),
            paper=MATFORMER,
            convert_state_dict=from_dense,  # timm ViT weights: weights=PATH loads them with reordered MLP units
            description=f"MatViT-{_size.upper()}/16: ViT (dim {_dim}, depth {_depth}, {_heads} heads) whose MLPs nest "
                        "d_ff/8, /4, /2 and d_ff (set_granularity, zoo.matformer.extract)",
        )
    )


def _build_lm(num_classes: int = BYTE_VOCAB, size: str = "nano", context_length: int | None = None,
              mlp_dims: list[int] | None = None, dropout: float = 0.0) -> MatLM:
    return MatLM(size, vocab_size=num_classes, context_length=context_length, mlp_dims=mlp_dims, dropout=dropout)


for _name, _size in {"matlm_nano": "nano", "matlm_mini": "mini", "matlm_small": "small"}.items():
    _dim, _depth, _heads, _context = LM_SIZES[_size]
    register_spec(
        ModelSpec(
            name=_name,
            family="matformer",
            task="language-modeling",
            builder=_build_lm,
            default_kwargs={"size": _size},
            input_size=(_context,),  # tokens: the context length
            fixed_input_size=True,  # learned positions (context_length= builds another)
            num_classes=BYTE_VOCAB,  # the vocabulary: UTF-8 bytes (zoo.models.matformer.encode_bytes)
            paper=MATFORMER,
            convert_state_dict=from_gpt2,  # GPT-2 weights of the same dims: weights=PATH, MLP units reordered
            description=f"MatLM-{_size}: byte-level decoder-only LM (GPT-2 layout, d_model {_dim}, depth {_depth}, "
                        f"{_heads} heads, context {_context}) whose MLPs nest d_ff/8, /4, /2 and d_ff",
        )
    )
