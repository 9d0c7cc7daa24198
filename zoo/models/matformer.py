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

Registered as ``matvit_ti``/``_s``/``_b``/``_l`` (ImageNet classifiers, no published PyTorch weights: the
official MatViT checkpoints are JAX/Scenic). The paper's per-granularity accuracies are printed in figures
that research/matformer_snn.md could not retrieve, so the specs carry no reported numbers yet.

Paper: Devvrit, Kudugunta, Kusupati et al., "MatFormer: Nested Transformer for Elastic Inference",
NeurIPS 2024, arXiv:2310.07707.
"""
from __future__ import annotations

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


class MatViT(nn.Module):
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
    def mlps(self) -> list[NestedMlp]:
        return [block.mlp for block in self.vit.blocks]

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

    def set_granularity(self, granularity: str | Sequence[str | int]) -> MatViT:
        """Use the first d_ff/8 (``s``), /4 (``m``), /2 (``l``) or all (``xl``) hidden units of every MLP, or
        a per-layer list of names or widths. In place, no weights copied; returns the model."""
        for mlp, width in zip(self.mlps, self.widths(granularity)):
            mlp.width = width
        return self

    @property
    def granularity(self) -> list[int]:
        """The active hidden width of each layer."""
        return [mlp.width for mlp in self.mlps]

    def forward_intermediates(self, x: torch.Tensor, *args, **kwargs):
        return self.vit.forward_intermediates(x, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit(x)


def extract(model: MatViT, granularity: str | Sequence[str | int] | None = None) -> MatViT:
    """A standalone MatViT holding only the active prefix of every MLP (``granularity``: as
    :meth:`MatViT.set_granularity`; None: the model's current setting). Its outputs equal the nested
    model's at that setting; ``model`` is left unchanged."""
    widths = model.widths(granularity) if granularity is not None else model.granularity
    small = MatViT(model.size, model.num_classes, img_size=model.vit.patch_embed.img_size[0], mlp_dims=widths)
    state = {key: value.clone() for key, value in model.state_dict().items()}
    for i, m in enumerate(widths):
        mlp = f"vit.blocks.{i}.mlp."
        state[mlp + "fc1.weight"] = state[mlp + "fc1.weight"][:m]
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


for _size, (_dim, _depth, _heads) in VIT_SIZES.items():
    register_spec(
        ModelSpec(
            name=f"matvit_{_size}",
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
