"""Next-ViT (S/B/L): convolution and transformer blocks mixed for deployment (TensorRT, CoreML).

Built from timm's ``nextvit.py`` (Apache-2.0) with ByteDance's official ImageNet weights as timm
converted them: ``bd_in1k`` (224) and ``bd_in1k_384`` (384), plus the ``bd_ssld_6m_*`` weights
pre-trained on a 6M-image semi-supervised set. timm's converter maps official checkpoint keys.

Paper: Li et al., "Next-ViT: Next Generation Vision Transformer for Efficient Deployment in Realistic
Industrial Scenarios", arXiv:2207.05501. Official code: github.com/bytedance/Next-ViT (Apache-2.0).
"""
from __future__ import annotations

from zoo.models._timm import imagenet, register_timm, timm_tag
from zoo.registry import Paper

NEXTVIT = Paper(
    title="Next-ViT: Next Generation Vision Transformer for Efficient Deployment in Realistic Industrial Scenarios",
    arxiv="2207.05501",
    code_url="https://github.com/bytedance/Next-ViT",
    code_license="Apache-2.0",
    bibtex="""@article{li2022nextvit,
  title={Next-ViT: Next Generation Vision Transformer for Efficient Deployment in Realistic Industrial Scenarios},
  author={Li, Jiashi and Xia, Xin and Li, Wei and Li, Huixia and Wang, Xing and Xiao, Xuefeng and Wang, Rui and Zheng, Min and Pan, Xin},
  journal={arXiv preprint arXiv:2207.05501},
  year={2022}
}""",
)

# arch, (top-1 %, params M, GFLOPs as the paper prints them), table
_VARIANTS = (
    ("nextvit_small", (82.5, 31.7, 5.8), "arXiv:2207.05501, ImageNet-1K results (Next-ViT-S, 224)"),
    ("nextvit_base", (83.2, 44.8, 8.3), "arXiv:2207.05501, ImageNet-1K results (Next-ViT-B, 224)"),
    ("nextvit_large", (83.6, 57.8, 10.8), "arXiv:2207.05501, ImageNet-1K results (Next-ViT-L, 224)"),
)

for _arch, (_top1, _params, _macs), _source in _VARIANTS:
    register_timm(
        _arch,
        family="nextvit",
        paper=NEXTVIT,
        reported=imagenet(_top1, _params, _macs, _source),
        weights=(
            timm_tag(_arch, "bd_in1k", crop_pct=0.95),
            timm_tag(_arch, "bd_in1k_384", input_size=(3, 384, 384), crop_pct=1.0),
            timm_tag(_arch, "bd_ssld_6m_in1k", dataset="ssld-6m -> imagenet-1k", crop_pct=0.95),
            timm_tag(_arch, "bd_ssld_6m_in1k_384", dataset="ssld-6m -> imagenet-1k", input_size=(3, 384, 384), crop_pct=1.0),
        ),
        converter_module="nextvit",
        crop_pct=0.95,
    )
