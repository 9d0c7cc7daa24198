"""MobileCLIP and MobileCLIP2 whole: image and text towers, as a zero-shot classifier or an embedding model.

The towers are open_clip's (MIT): its ``CustomTextCLIP`` built from its own model configs (``MobileCLIP-S1``,
``MobileCLIP2-S0``, ...), which build the image towers with timm. MobileCLIP-S0's text tower ("MCt": RepMixer blocks
around four transformer layers) is in neither library, so :class:`MCtText` is written here from the layer table and
key names of the official release (docs/sources.md). This file adds what the zoo needs around the towers:

- ``zoo.load(name, labels=[...])``: a classifier whose head is the normalised text embeddings of the labels in
  prompt templates (open_clip's ``build_zero_shot_classifier``), scaled by the model's learned temperature; it
  exports, benchmarks and saves like any classifier (the head is stored as weights).
- no labels (``num_classes=0``, the default): ``forward(images)`` returns L2-normalised image embeddings.
- ``tower="image"`` / ``tower="text"`` builds one tower only; ``encode_image``, ``encode_text`` and ``tokenize``
  (open_clip's tokenizer, whose BPE vocabulary ships inside its wheel, so nothing is downloaded at run time).

Weights are the official releases on the Hub in open_clip's layout (``open_clip_model.safetensors``), loaded by the
zoo (cache verification, offline mode, revision pinning); their licence is Apple's ``apple-amlr``.

Papers: Vasu et al., "MobileCLIP: Fast Image-Text Models through Multi-Modal Reinforced Training", CVPR 2024,
arXiv:2311.17049; Faghri et al., "MobileCLIP2: Improving Multi-Modal Reinforced Training", arXiv:2508.20691.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from zoo.errors import BadArgumentError
from zoo.models.fastvit import MOBILECLIP
from zoo.registry import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    ModelSpec,
    Paper,
    Reported,
    WeightTag,
    register_spec,
)

MOBILECLIP2 = Paper(
    title="MobileCLIP2: Improving Multi-Modal Reinforced Training",
    arxiv="2508.20691",
    code_url="https://github.com/apple/ml-mobileclip",
    bibtex="""@article{faghri2025mobileclip2,
  title={MobileCLIP2: Improving Multi-Modal Reinforced Training},
  author={Faghri, Fartash and Vasu, Pavan Kumar Anasosalu and Koc, Cem and Shankar, Vaishaal and Toshev, Alexander and Tuzel, Oncel and Pouransari, Hadi},
  journal={Transactions on Machine Learning Research},
  year={2025}
}""",
)

TOWERS = ("both", "image", "text")


def prompt_templates(templates: str | Sequence[str]) -> tuple:
    """``"simple"`` (open_clip's 7 ImageNet prompts), ``"openai"`` (CLIP's 80) or the user's ``"a photo of a {}."`` strings."""
    if isinstance(templates, str):
        from open_clip import zero_shot_metadata as meta

        named = {"simple": meta.SIMPLE_IMAGENET_TEMPLATES, "openai": meta.OPENAI_IMAGENET_TEMPLATES}
        if templates not in named:
            raise BadArgumentError(f"templates must be 'simple', 'openai' or a list of prompts with {{}}, not {templates!r}")
        return tuple(named[templates])
    templates = tuple(templates)
    if not templates or not all(isinstance(t, str) and t.count("{}") == 1 for t in templates):
        raise BadArgumentError("templates must be prompts with one {} where the label goes, e.g. ['a photo of a {}.']")
    return templates


class _Holder(nn.Module):
    """One parameter under a module path (the official checkpoint keeps MCt's position table at
    ``positional_embedding.pos_embed.pos_embed``)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(shape))


class _ConvBN(nn.Sequential):
    """A depthwise (1, k) convolution along the token axis, then BatchNorm (keys ``conv``, ``bn``)."""

    def __init__(self, dim: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, (1, kernel), padding=(0, kernel // 2), groups=dim, bias=False)
        self.bn = nn.BatchNorm2d(dim)


class _Branches(nn.Module):
    """BatchNorm of the input plus, when ``kernel`` is given, a depthwise conv-BN branch (MobileOne's train form)."""

    def __init__(self, dim: int, kernel: int | None) -> None:
        super().__init__()
        self.rbr_skip = nn.BatchNorm2d(dim)
        self.rbr_conv = nn.ModuleList([_ConvBN(dim, kernel)] if kernel else [])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rbr_skip(x) + sum(branch(x) for branch in self.rbr_conv)


class _TextRepMixer(nn.Module):
    """``x + scale * (mix(x) - norm(x))``: a depthwise token mixer whose identity part cancels at initialisation."""

    def __init__(self, dim: int, kernel: int, scale: float) -> None:
        super().__init__()
        self.norm = _Branches(dim, None)
        self.mixer = _Branches(dim, kernel)
        self.layer_scale = nn.Parameter(torch.full((dim, 1, 1), scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layer_scale * (self.mixer(x) - self.norm(x))


class _ConvFFN(nn.Module):
    def __init__(self, dim: int, hidden: int, kernel: int) -> None:
        super().__init__()
        self.conv = _ConvBN(dim, kernel)
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(nn.functional.gelu(self.fc1(self.conv(x))))


class _TextRepMixerBlock(nn.Module):
    """MCt's convolutional block on ``[B, L, D]`` tokens, run as ``[B, D, 1, L]`` maps (1-D convs as (1, k) ones)."""

    def __init__(self, dim: int, kernel: int = 11, mlp_ratio: float = 4.0, scale: float = 1e-5) -> None:
        super().__init__()
        self.token_mixer = _TextRepMixer(dim, kernel, scale)
        self.convffn = _ConvFFN(dim, int(dim * mlp_ratio), kernel)
        self.layer_scale = nn.Parameter(torch.full((dim, 1, 1), scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.token_mixer(x.transpose(1, 2).unsqueeze(2))
        x = x + self.layer_scale * self.convffn(x)
        return x.squeeze(2).transpose(1, 2)


class _SelfAttention(nn.Module):
    """Bidirectional multi-head attention with one fused projection whose rows are (q|k|v, head, channel)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv_proj = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv_proj(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class _TextTransformerLayer(nn.Module):
    """Pre-norm transformer layer (keys ``pre_norm_mha.{0,1}``, ``pre_norm_ffn.{0,1,4}``; dropouts are identities)."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.pre_norm_mha = nn.Sequential(nn.LayerNorm(dim), _SelfAttention(dim, heads))
        self.pre_norm_ffn = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Identity(),
                                          nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pre_norm_mha(x)
        return x + self.pre_norm_ffn(x)


class MCtText(nn.Module):
    """MobileCLIP-S0's text tower: token and position embeddings, a RepMixer block, four transformer layers, another
    RepMixer block, LayerNorm, then the end-of-text token (the largest id) projected to the joint space.

    Attention is bidirectional over all positions, padding included, as released (no causal or padding mask)."""

    def __init__(self, embed_dim: int = 512, context_length: int = 77, vocab_size: int = 49408, width: int = 512,
                 heads: int = 8, layers: int = 4) -> None:
        super().__init__()
        self.context_length, self.vocab_size = context_length, vocab_size
        self.embedding_layer = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Module()
        self.positional_embedding.pos_embed = _Holder((1, 1, context_length, width))
        self.transformer = nn.ModuleList([_TextRepMixerBlock(width),
                                          *(_TextTransformerLayer(width, heads, 4 * width) for _ in range(layers)),
                                          _TextRepMixerBlock(width)])
        self.final_layer_norm = nn.LayerNorm(width)
        self.projection_layer = nn.Parameter(torch.empty(width, embed_dim))
        nn.init.normal_(self.embedding_layer.weight, std=width ** -0.5)
        nn.init.trunc_normal_(self.positional_embedding.pos_embed.pos_embed, std=width ** -0.5)
        nn.init.normal_(self.projection_layer, std=width ** -0.5)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embedding_layer(tokens) + self.positional_embedding.pos_embed.pos_embed[0, :, : tokens.shape[1]]
        for layer in self.transformer:
            x = layer(x)
        x = self.final_layer_norm(x)
        end = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
        return end @ self.projection_layer


class MobileCLIP(nn.Module):
    """An open_clip image-text model with a zero-shot (or trainable) classifier on its image embeddings.

    ``text_context`` builds the text tower for fewer token positions than the published 77 (the official weights then
    do not load): a CPU recipe's short captions train several times faster."""

    def __init__(self, config: str, num_classes: int = 0, tower: str = "both", templates: str | Sequence[str] = "simple",
                 text_context: int | None = None, text_tower: str = "open_clip") -> None:
        super().__init__()
        import open_clip
        from open_clip.model import CustomTextCLIP

        if tower not in TOWERS:
            raise BadArgumentError(f"tower must be one of {', '.join(TOWERS)}, not {tower!r}")
        if tower == "text" and num_classes:
            raise BadArgumentError("the text tower has no classifier: load it with tower='both' or 'image' to classify images")
        self.templates = prompt_templates(templates)
        cfg = dict(open_clip.get_model_config(config))
        cfg.pop("custom_text", None)
        if text_context is not None:  # fewer text positions than the published 77: short captions train faster
            if not isinstance(text_context, int) or not 4 <= text_context <= 77:
                raise BadArgumentError(f"text_context must be a whole number of tokens from 4 to 77, not {text_context!r}")
            cfg["text_cfg"] = {**cfg["text_cfg"], "context_length": text_context}
        clip = CustomTextCLIP(**cfg)
        if text_tower == "mct":  # MobileCLIP-S0's own text tower, with the image tower of the config
            clip.text = MCtText(int(cfg["embed_dim"]), int(cfg["text_cfg"]["context_length"]))
        self.config, self.tower = config, tower
        self.embed_dim = int(cfg["embed_dim"])
        self.context_length = int(cfg["text_cfg"]["context_length"])
        self.visual = clip.visual if tower != "text" else None
        self.text = clip.text if tower != "image" else None
        self.logit_scale = clip.logit_scale  # log of the temperature's inverse, learned with the towers
        self.head = nn.Linear(self.embed_dim, num_classes, bias=False) if num_classes else None
        self._tokenizer = None

    # -- towers -------------------------------------------------------------------------------------
    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        if self.visual is None:
            raise BadArgumentError("this model holds the text tower only (tower='text'); load it with tower='both' or 'image'")
        features = self.visual(images)
        return nn.functional.normalize(features, dim=-1) if normalize else features

    def encode_text(self, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        if self.text is None:
            raise BadArgumentError("this model holds the image tower only (tower='image'); load it with tower='both' or 'text'")
        features = self.text(tokens.int())  # int32 ids: LiteRT has no int64 argmax (the end-of-text lookup)
        return nn.functional.normalize(features, dim=-1) if normalize else features

    def tokenize(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Token ids ``[N, context_length]`` (open_clip's BPE tokenizer for this model)."""
        if self._tokenizer is None:
            import logging

            import open_clip

            root = logging.getLogger()
            level = root.level
            root.setLevel(max(level, logging.WARNING))  # open_clip narrates its tokenizer lookup at INFO
            try:
                self._tokenizer = open_clip.get_tokenizer(self.config, context_length=self.context_length)
            finally:
                root.setLevel(level)
        return self._tokenizer([texts] if isinstance(texts, str) else list(texts))

    @torch.no_grad()
    def set_labels(self, labels: Sequence[str]) -> None:
        """Make the head the zero-shot classifier of ``labels``: each label's text embedding, averaged over the prompt
        templates (the ``templates`` the model was built with) and normalised (open_clip's ``build_zero_shot_classifier``)."""
        from open_clip.zero_shot_classifier import build_zero_shot_classifier

        if self.text is None:
            raise BadArgumentError("labels need the text tower to embed them: load with tower='both'")
        if self.head is None or self.head.out_features != len(labels):
            raise BadArgumentError(f"the head has {self.head.out_features if self.head else 0} classes, not {len(labels)}")
        was_training = self.training
        self.eval()
        weights = build_zero_shot_classifier(self, self.tokenize, list(labels), self.templates,
                                             device=self.logit_scale.device, use_tqdm=len(labels) * len(self.templates) > 200)
        self.head.weight.copy_(weights.T)
        self.train(was_training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``[B, 3, H, W]``: class logits with a head, else normalised image embeddings; the text tower alone:
        token ids ``[B, context_length]`` -> normalised text embeddings."""
        if self.visual is None:
            return self.encode_text(x)
        embeddings = self.encode_image(x)
        if self.head is None:
            return embeddings
        return self.logit_scale.exp() * self.head(embeddings)

    @property
    def token_input(self) -> tuple[int, int] | None:
        """The text tower alone takes token ids: (context length, vocabulary size) for export and benchmarks."""
        return (self.context_length, int(self.text.vocab_size)) if self.visual is None else None

    # -- feature maps (zoo.load(..., features_only=True)): the image trunk's ------------------------------
    @property
    def feature_info(self):
        return self.visual.trunk.feature_info

    def forward_intermediates(self, x: torch.Tensor, **kwargs: Any):
        return self.visual.trunk.forward_intermediates(x, **kwargs)

    def prune_intermediate_layers(self, *args: Any, **kwargs: Any):
        return self.visual.trunk.prune_intermediate_layers(*args, **kwargs)


@dataclass(frozen=True)
class MobileCLIPBuilder:
    """Builds ``MobileCLIP(config, num_classes, tower=..., templates=...)`` from open_clip's config name."""

    config: str
    text_tower: str = "open_clip"
    zero_shot = True  # zoo.load(..., labels=...) computes the head (model cards show it so)

    def __call__(self, num_classes: int = 0, **kwargs: Any) -> MobileCLIP:
        return MobileCLIP(self.config, num_classes, text_tower=self.text_tower, **kwargs)


def keep_built_towers(state_dict: dict, model: MobileCLIP) -> dict:
    """Official weights hold both towers; a one-tower model takes its own and leaves the other's keys out."""
    if any(k.startswith(("image_encoder.", "text_encoder.")) for k in state_dict):
        state_dict = _from_apple_layout(state_dict, model)
    left_out = {"image": "text.", "text": "visual."}.get(model.tower)
    return {k: v for k, v in state_dict.items() if not (left_out and k.startswith(left_out))}


def _from_apple_layout(state_dict: dict, model: MobileCLIP) -> dict:
    """apple/ml-mobileclip's own layout (MobileCLIP-S0's release): ``text_encoder.*`` are MCt's keys, and
    ``image_encoder.model.*`` are renamed by timm's FastViT converter (a one-text-tower model drops them)."""
    ours = {k: v for k, v in state_dict.items() if not k.startswith(("image_encoder.", "text_encoder."))}
    ours |= {"text." + k.removeprefix("text_encoder."): v for k, v in state_dict.items() if k.startswith("text_encoder.")}
    image = {k: v for k, v in state_dict.items() if k.startswith("image_encoder.")}
    if image and model.visual is not None:
        from timm.models.fastvit import checkpoint_filter_fn

        ours |= {f"visual.trunk.{k}": v for k, v in checkpoint_filter_fn(image, model.visual.trunk).items()}
    return ours


_V1_SOURCE = "arXiv:2311.17049 (as in the apple/ml-mobileclip README)"
_V2_SOURCE = "arXiv:2508.20691 (as in the apple/ml-mobileclip README)"
# name: open_clip config, Hub repos {tag: repo}, side, OpenAI mean/std?, zero-shot IN-1k top-1 %,
# image and text encoder params (M), image and text latency (ms, iPhone 12 Pro Max), all as the source prints them.
# MobileCLIP-S0 is MobileCLIP2-S0's image tower (MCi0) with its own text tower (MCt), released only as apple/ml-mobileclip's
# pickled state dict: zoo.load("mobileclip_s0", pretrained=True, allow_pickle=True) reads it with weights_only=True.
_OWN_RELEASE = {"mobileclip_s0": ("mct", "mobileclip_s0.pt")}
_VARIANTS = {
    "mobileclip_s0": ("MobileCLIP2-S0", {"datacompdr": "apple/MobileCLIP-S0"}, 256, False, 67.8, 11.4, 42.4, 1.5, 1.6),
    "mobileclip_s1": ("MobileCLIP-S1", {"datacompdr": "apple/MobileCLIP-S1-OpenCLIP"}, 256, False, 72.6, 21.5, 63.4, 2.5, 3.3),
    "mobileclip_s2": ("MobileCLIP-S2", {"datacompdr": "apple/MobileCLIP-S2-OpenCLIP"}, 256, False, 74.4, 35.7, 63.4, 3.6, 3.3),
    "mobileclip_b": ("MobileCLIP-B", {"datacompdr": "apple/MobileCLIP-B-OpenCLIP", "datacompdr_lt": "apple/MobileCLIP-B-LT-OpenCLIP"},
                     224, False, 76.8, 86.3, 63.4, 10.4, 3.3),
    "mobileclip2_s0": ("MobileCLIP2-S0", {"dfndr2b": "timm/MobileCLIP2-S0-OpenCLIP"}, 256, False, 71.5, 11.4, 63.4, 1.5, 3.3),
    "mobileclip2_s2": ("MobileCLIP2-S2", {"dfndr2b": "timm/MobileCLIP2-S2-OpenCLIP"}, 256, False, 77.2, 35.7, 63.4, 3.6, 3.3),
    "mobileclip2_b": ("MobileCLIP2-B", {"dfndr2b": "timm/MobileCLIP2-B-OpenCLIP"}, 224, False, 79.4, 86.3, 63.4, 10.4, 3.3),
    "mobileclip2_s3": ("MobileCLIP2-S3", {"dfndr2b": "timm/MobileCLIP2-S3-OpenCLIP"}, 256, True, 80.7, 125.1, 123.6, 8.0, 6.6),
    "mobileclip2_s4": ("MobileCLIP2-S4", {"dfndr2b": "timm/MobileCLIP2-S4-OpenCLIP"}, 256, True, 81.9, 321.6, 123.6, 19.6, 6.6),
    "mobileclip2_l14": ("MobileCLIP2-L-14", {"dfndr2b": "timm/MobileCLIP2-L-14-OpenCLIP"}, 224, True, 81.9, 304.3, 123.6, 57.9, 6.6),
}

for _name, (_config, _repos, _side, _openai, _top1, _image, _text, _image_ms, _text_ms) in _VARIANTS.items():
    _v2 = _name.startswith("mobileclip2")
    _text_tower, _filename = _OWN_RELEASE.get(_name, ("open_clip", "open_clip_model.safetensors"))
    _source = _V2_SOURCE if _v2 else _V1_SOURCE
    register_spec(ModelSpec(
        name=_name,
        family="mobileclip2" if _v2 else "mobileclip",
        task="classification",
        builder=MobileCLIPBuilder(_config, _text_tower),
        num_classes=0,
        input_size=(3, _side, _side),
        mean=OPENAI_CLIP_MEAN if _openai else (0.0, 0.0, 0.0),
        std=OPENAI_CLIP_STD if _openai else (1.0, 1.0, 1.0),
        interpolation="bicubic" if _name == "mobileclip2_l14" else "bilinear",
        crop_pct=1.0,
        fixed_input_size=_side == 224,  # the ViT towers' position embeddings are sized for 224
        classifier=("head",),
        weights=tuple(WeightTag(tag=tag, hf_hub_id=repo, license="apple-amlr", dataset="dfndr-2b" if _v2 else "datacompdr",
                                filename=_filename, num_classes=0)
                      for tag, repo in _repos.items()),
        paper=MOBILECLIP2 if _v2 else MOBILECLIP,
        reported=(
            Reported("zeroshot_top1", _top1, "%", _source, "imagenet-1k (zero-shot)", _side),
            Reported("params", round(_image + _text, 1), "M", _source, "", _side, f"image encoder {_image}M + text encoder {_text}M"),
            Reported("image_params", _image, "M", _source, "", _side, "image encoder"),
            Reported("text_params", _text, "M", _source, "", _side, "text encoder"),
            Reported("latency_ms", round(_image_ms + _text_ms, 1), "ms", _source, "", _side,
                     f"image {_image_ms} ms + text {_text_ms} ms, iPhone 12 Pro Max"),
        ),
        license="apache-2.0" if _text_tower == "mct" else "mit",  # MCt is this repo's code, the rest open_clip's
        convert_state_dict=keep_built_towers,
        description=(f"{_config} (open_clip)" if _text_tower == "open_clip" else
                     "MobileCLIP-S0 (MCi0 image tower from timm, MCt text tower written here)")
                    + f": image and text towers, {_side}x{_side}; zoo.load(..., labels=[...]) makes a zero-shot classifier, "
                    "without labels it returns normalised image embeddings.",
    ))
