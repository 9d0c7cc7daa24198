"""EfficientFormer (L1/L3/L7) and EfficientFormerV2 (S0/S1/S2/L): vision transformers at MobileNet speed.

Built from timm's ``efficientformer.py`` and ``efficientformer_v2.py`` (Apache-2.0) with the official
distilled ImageNet weights that timm converted (``timm/<arch>.snap_dist_in1k``). Both have two heads
(``head`` and the distillation ``head_dist``) whose outputs are averaged at inference; both count in the
parameters. The input size is fixed (224) because the attention biases are sized for it.

Papers:
- Li et al., "EfficientFormer: Vision Transformers at MobileNet Speed", NeurIPS 2022, arXiv:2206.01191.
- Li et al., "Rethinking Vision Transformers for MobileNet Size and Speed", ICCV 2023, arXiv:2212.08059.
Official code: github.com/snap-research/EfficientFormer (Apache-2.0). Official checkpoints (their
``model``-keyed ``.pth`` files) load with ``weights=PATH, allow_pickle=True``; timm's converter maps
the V1 key names.
"""
from __future__ import annotations

from zoo.models._timm import imagenet, register_timm, timm_tag
from zoo.registry import Paper

EFFICIENTFORMER = Paper(
    title="EfficientFormer: Vision Transformers at MobileNet Speed",
    arxiv="2206.01191",
    code_url="https://github.com/snap-research/EfficientFormer",
    code_license="Apache-2.0",
    bibtex="""@inproceedings{li2022efficientformer,
  title={EfficientFormer: Vision Transformers at MobileNet Speed},
  author={Li, Yanyu and Yuan, Geng and Wen, Yang and Hu, Ju and Evangelidis, Georgios and Tulyakov, Sergey and Wang, Yanzhi and Ren, Jian},
  booktitle={Advances in Neural Information Processing Systems (NeurIPS)},
  year={2022}
}""",
)

EFFICIENTFORMER_V2 = Paper(
    title="Rethinking Vision Transformers for MobileNet Size and Speed",
    arxiv="2212.08059",
    code_url="https://github.com/snap-research/EfficientFormer",
    code_license="Apache-2.0",
    bibtex="""@inproceedings{li2023rethinking,
  title={Rethinking Vision Transformers for MobileNet Size and Speed},
  author={Li, Yanyu and Hu, Ju and Wen, Yang and Evangelidis, Georgios and Salahi, Kamyar and Wang, Yanzhi and Tulyakov, Sergey and Ren, Jian},
  booktitle={Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)},
  year={2023}
}""",
)

_COMMON = dict(crop_pct=0.95, fixed_input_size=True, classifier=("head", "head_dist"))

# The released S0 (which timm's port loads key for key) counts more than the printed 3.5M with the
# distillation head and less without it; the paper's figure matches neither.
_PARAMS_NOTES = {
    "efficientformerv2_s0": "the released S0 has about 3% more parameters than printed (with head_dist; 2% fewer without)",
}

# arch, paper, converter module, (top-1 %, params M, GMACs), table
_VARIANTS = (
    ("efficientformer_l1", EFFICIENTFORMER, "efficientformer", (79.2, 12.3, 1.3), "arXiv:2206.01191, ImageNet-1K results (L1, 300 epochs)"),
    ("efficientformer_l3", EFFICIENTFORMER, "efficientformer", (82.4, 31.3, 3.9), "arXiv:2206.01191, ImageNet-1K results (L3)"),
    ("efficientformer_l7", EFFICIENTFORMER, "efficientformer", (83.3, 82.1, 10.2), "arXiv:2206.01191, ImageNet-1K results (L7)"),
    ("efficientformerv2_s0", EFFICIENTFORMER_V2, None, (75.7, 3.5, 0.40), "arXiv:2212.08059, ImageNet-1K results (S0, 300 epochs)"),
    ("efficientformerv2_s1", EFFICIENTFORMER_V2, None, (79.0, 6.1, 0.65), "arXiv:2212.08059, ImageNet-1K results (S1, 300 epochs)"),
    ("efficientformerv2_s2", EFFICIENTFORMER_V2, None, (81.6, 12.6, 1.25), "arXiv:2212.08059, ImageNet-1K results (S2, 300 epochs)"),
    ("efficientformerv2_l", EFFICIENTFORMER_V2, None, (83.3, 26.1, 2.56), "arXiv:2212.08059, ImageNet-1K results (L, 300 epochs)"),
)

for _arch, _paper, _converter, (_top1, _params, _macs), _source in _VARIANTS:
    register_timm(
        _arch,
        family="efficientformerv2" if _paper is EFFICIENTFORMER_V2 else "efficientformer",
        paper=_paper,
        reported=imagenet(_top1, _params, _macs, _source, params_note=_PARAMS_NOTES.get(_arch, "")),
        weights=(timm_tag(_arch, "snap_dist_in1k", crop_pct=0.95, description="official distilled weights"),),
        converter_module=_converter,
        **_COMMON,
    )
