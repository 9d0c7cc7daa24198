"""FastViT MCi0-MCi4: the image towers of MobileCLIP S0/S1/S2 and MobileCLIP2 S3/S4; FastViTHD, FastVLM's encoder.

Built from timm's ``fastvit.py`` (Apache-2.0). The towers end in a 512-d projection into CLIP's joint
embedding space, so ``num_classes`` defaults to 512 and the "logits" are image embeddings; pass
``num_classes=N`` to fine-tune a classifier on top (the projection is then reset). Input is 256x256,
scaled to [0, 1] with no mean/std normalisation. The train-time (multi-branch) form is what loads and
trains; ``timm.utils.reparameterize_model`` folds it into the deploy form with equal outputs.

Weights: Apple's releases under the Apple Machine Learning Research Model licence (``apple-amlr``):
``apple_mclip`` (MobileCLIP, from ``apple/mobileclip_s*_timm``) and ``apple_mclip2_dfndr2b``
(MobileCLIP2, timm's copies). Check that licence before shipping a product.

FastViTHD (FastVLM's vision encoder) is timm's ``fastvit_mci3``: five stages (RepMixer, RepMixer, RepMixer, attention,
attention), 64x downsampling, a 3072-channel map (256 tokens at 1024x1024) before its pooled 768-d projection.
:func:`image_tokens` returns that map as the token sequence a vision-language model reads.

Papers: Vasu et al., "MobileCLIP: Fast Image-Text Models through Multi-Modal Reinforced Training",
CVPR 2024, arXiv:2311.17049 (code: github.com/apple/ml-mobileclip); Vasu et al., "FastVLM: Efficient Vision Encoding
for Vision Language Models", CVPR 2025, arXiv:2412.13303 (code: github.com/apple/ml-fastvlm).
"""
from __future__ import annotations

from zoo.models._timm import register_timm, timm_tag
from zoo.registry import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, Paper, Reported

MOBILECLIP = Paper(
    title="MobileCLIP: Fast Image-Text Models through Multi-Modal Reinforced Training",
    arxiv="2311.17049",
    code_url="https://github.com/apple/ml-mobileclip",
    bibtex="""@inproceedings{vasu2024mobileclip,
  title={MobileCLIP: Fast Image-Text Models through Multi-Modal Reinforced Training},
  author={Vasu, Pavan Kumar Anasosalu and Pouransari, Hadi and Faghri, Fartash and Vemulapalli, Raviteja and Tuzel, Oncel},
  booktitle={Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year={2024}
}""",
)

FASTVLM = Paper(
    title="FastVLM: Efficient Vision Encoding for Vision Language Models",
    arxiv="2412.13303",
    code_url="https://github.com/apple/ml-fastvlm",
    bibtex="""@inproceedings{vasu2025fastvlm,
  title={FastVLM: Efficient Vision Encoding for Vision Language Models},
  author={Vasu, Pavan Kumar Anasosalu and Faghri, Fartash and Li, Chun-Liang and Koc, Cem and True, Nate and Antony, Albert and Santhanam, Gokul and Gabriel, James and Grasch, Peter and Tuzel, Oncel and Pouransari, Hadi},
  booktitle={Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year={2025}
}""",
)

_MCLIP = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), num_classes=512, license="apple-amlr", dataset="datacompdr")

# arch, MobileCLIP model, (zero-shot IN top-1 %, image-encoder params M), table, has MobileCLIP2 weights
_VARIANTS = (
    ("fastvit_mci0", "s0", (67.8, 11.4), "arXiv:2311.17049, zero-shot results (MobileCLIP-S0)", True),
    ("fastvit_mci1", "s1", (72.6, 21.5), "arXiv:2311.17049, zero-shot results (MobileCLIP-S1)", False),
    ("fastvit_mci2", "s2", (74.4, 35.7), "arXiv:2311.17049, zero-shot results (MobileCLIP-S2)", True),
)

for _arch, _size, (_top1, _params), _source, _v2 in _VARIANTS:
    _weights = [timm_tag(_arch, "apple_mclip", hf_hub_id=f"apple/mobileclip_{_size}_timm", crop_pct=0.95, **_MCLIP)]
    if _v2:
        _weights.append(
            timm_tag(
                _arch,
                "apple_mclip2_dfndr2b",
                crop_pct=1.0 if _arch == "fastvit_mci0" else 0.95,
                description="MobileCLIP2 image tower",
                **{**_MCLIP, "dataset": "dfndr-2b"},
            )
        )
    register_timm(
        _arch,
        family="mobileclip",
        description=f"MobileCLIP-{_size.upper()} image tower (FastViT {_arch[-4:].upper()}), 512-d image embeddings.",
        paper=MOBILECLIP,
        reported=(
            Reported("zeroshot_top1", _top1, "%", _source, "imagenet-1k (zero-shot)", 256),
            Reported("params", _params, "M", _source, "", 256, "image encoder"),
        ),
        weights=tuple(_weights),
        converter_module="fastvit",
        input_size=(3, 256, 256),
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        crop_pct=0.95,
        num_classes=512,
    )

_MCLIP2_SOURCE = "arXiv:2508.20691 (as in the apple/ml-mobileclip README)"
_CLIP_NORM = {"mean": OPENAI_CLIP_MEAN, "std": OPENAI_CLIP_STD}
# arch, MobileCLIP2 model, (zero-shot IN top-1 %, image-encoder params M)
for _arch, _size, (_top1, _params) in (("fastvit_mci3", "s3", (80.7, 125.1)), ("fastvit_mci4", "s4", (81.9, 321.6))):
    register_timm(
        _arch,
        family="mobileclip",
        description=f"MobileCLIP2-{_size.upper()} image tower (FastViT {_arch[-4:].upper()}), 768-d image embeddings.",
        paper=MOBILECLIP,
        reported=(
            Reported("zeroshot_top1", _top1, "%", f"{_MCLIP2_SOURCE} (MobileCLIP2-{_size.upper()})", "imagenet-1k (zero-shot)", 256),
            Reported("params", _params, "M", f"{_MCLIP2_SOURCE} (MobileCLIP2-{_size.upper()})", "", 256, "image encoder"),
        ),
        weights=(timm_tag(_arch, "apple_mclip2_dfndr2b", description="MobileCLIP2 image tower", crop_pct=0.95,
                          **{**_MCLIP, **_CLIP_NORM, "num_classes": 768, "dataset": "dfndr-2b"}),),
        converter_module="fastvit",
        input_size=(3, 256, 256),
        crop_pct=0.95,
        num_classes=768,
        **_CLIP_NORM,
    )

register_timm(
    "fastvithd",
    family="mobileclip",
    description="FastViTHD, FastVLM's vision encoder (timm's fastvit_mci3): few tokens at high resolution; "
                "zoo.models.fastvit.image_tokens gives the [B, N, 3072] sequence a vision-language model reads.",
    paper=FASTVLM,
    reported=(Reported("params", 125.1, "M", "arXiv:2412.13303 (as the MobileCLIP2-S3 image encoder in the apple/ml-mobileclip "
                       "README, which is the same network)", "", 1024, "image encoder with its 768-d projection"),),
    weights=(timm_tag("fastvit_mci3", "apple_mclip2_dfndr2b", description="MobileCLIP2-S3's image tower (FastVLM trains "
                      "from it; FastVLM's own checkpoints are LLaVA-format)", crop_pct=0.95, input_size=(3, 256, 256),
                      **{**_MCLIP, **_CLIP_NORM, "num_classes": 768, "dataset": "dfndr-2b"}),),
    converter_module="fastvit",
    input_size=(3, 1024, 1024),
    crop_pct=1.0,
    num_classes=768,
    builder_arch="fastvit_mci3",
    **_CLIP_NORM,
)


def image_tokens(model, images):
    """FastViT's final map (after ``final_conv``, before pooling) as tokens ``[B, H/64 * W/64, 3072]`` for FastViTHD
    (``[B, H/32 * W/32, C]`` for the MCi0-MCi2 towers)."""
    return model.forward_features(images).flatten(2).transpose(1, 2)
