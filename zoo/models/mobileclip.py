"""MobileCLIP and MobileCLIP2 whole: image and text towers, as a zero-shot classifier or an embedding model.

The towers are open_clip's (MIT): its ``CustomTextCLIP`` built from its own model configs (``MobileCLIP-S1``,
``MobileCLIP2-S0``, ...), which build the image towers with timm. This file adds what the zoo needs around them:

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


class MobileCLIP(nn.Module):
    """An open_clip image-text model with a zero-shot (or trainable) classifier on its image embeddings.

    ``text_context`` builds the text tower for fewer token positions than the published 77 (the official weights then
    do not load): a CPU recipe's short captions train several times faster."""

    def __init__(self, config: str, num_classes: int = 0, tower: str = "both", templates: str | Sequence[str] = "simple",
                 text_context: int | None = None) -> None:
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
        self.config, self.tower = config, tower
        self.embed_dim = int(cfg["embed_dim"])
        self.context_length = int(clip.context_length)
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
        features = self.text(tokens)
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
    zero_shot = True  # zoo.load(..., labels=...) computes the head (model cards show it so)

    def __call__(self, num_classes: int = 0, **kwargs: Any) -> MobileCLIP:
        return MobileCLIP(self.config, num_classes, **kwargs)


def keep_built_towers(state_dict: dict, model: MobileCLIP) -> dict:
    """Official weights hold both towers; a one-tower model takes its own and leaves the other's keys out."""
    left_out = {"image": "text.", "text": "visual."}.get(model.tower)
    return {k: v for k, v in state_dict.items() if not (left_out and k.startswith(left_out))}


_V1_SOURCE = "arXiv:2311.17049 (as in the apple/ml-mobileclip README)"
_V2_SOURCE = "arXiv:2508.20691 (as in the apple/ml-mobileclip README)"
# name: open_clip config, Hub repos {tag: repo}, side, OpenAI mean/std?, zero-shot IN-1k top-1 %,
# image and text encoder params (M), image and text latency (ms, iPhone 12 Pro Max), all as the source prints them
_VARIANTS = {
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
    _v2 = _config.startswith("MobileCLIP2")
    _source = _V2_SOURCE if _v2 else _V1_SOURCE
    register_spec(ModelSpec(
        name=_name,
        family="mobileclip2" if _v2 else "mobileclip",
        task="classification",
        builder=MobileCLIPBuilder(_config),
        num_classes=0,
        input_size=(3, _side, _side),
        mean=OPENAI_CLIP_MEAN if _openai else (0.0, 0.0, 0.0),
        std=OPENAI_CLIP_STD if _openai else (1.0, 1.0, 1.0),
        interpolation="bicubic" if _name == "mobileclip2_l14" else "bilinear",
        crop_pct=1.0,
        fixed_input_size=_side == 224,  # the ViT towers' position embeddings are sized for 224
        classifier=("head",),
        weights=tuple(WeightTag(tag=tag, hf_hub_id=repo, license="apple-amlr", dataset="dfndr-2b" if _v2 else "datacompdr",
                                filename="open_clip_model.safetensors", num_classes=0)
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
        license="mit",
        convert_state_dict=keep_built_towers,
        description=f"{_config} (open_clip): image and text towers, {_side}x{_side}; zoo.load(..., labels=[...]) makes a "
                    "zero-shot classifier, without labels it returns normalised image embeddings.",
    ))
