"""FastViT MCi0/MCi1/MCi2: the image towers of MobileCLIP S0/S1/S2.

Built from timm's ``fastvit.py`` (Apache-2.0). The towers end in a 512-d projection into CLIP's joint
embedding space, so ``num_classes`` defaults to 512 and the "logits" are image embeddings; pass
``num_classes=N`` to fine-tune a classifier on top (the projection is then reset). Input is 256x256,
scaled to [0, 1] with no mean/std normalisation. The train-time (multi-branch) form is what loads and
trains; ``timm.utils.reparameterize_model`` folds it into the deploy form with equal outputs.

Weights: Apple's releases under the Apple Machine Learning Research Model licence (``apple-amlr``):
``apple_mclip`` (MobileCLIP, from ``apple/mobileclip_s*_timm``) and ``apple_mclip2_dfndr2b``
(MobileCLIP2, timm's copies). Check that licence before shipping a product.

Paper: Vasu et al., "MobileCLIP: Fast Image-Text Models through Multi-Modal Reinforced Training",
CVPR 2024, arXiv:2311.17049. Official code: github.com/apple/ml-mobileclip.
"""
from __future__ import annotations

from zoo.models._timm import register_timm, timm_tag
from zoo.registry import Paper, Reported

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
