"""MobileOne S0-S4: re-parameterisable CNNs that run in about a millisecond on an iPhone 12.

Built from timm's ``byobnet.py`` (Apache-2.0) with Apple's official ImageNet weights
(``timm/mobileone_s*.apple_in1k``, under Apple's MobileOne licence, shown as ``mobileone-license``).
The model loads and trains in its multi-branch form; ``timm.utils.reparameterize_model`` folds each
block into a single conv for deployment, with equal outputs. The paper's parameter counts are those of
the folded (deploy) model.

Paper: Vasu et al., "MobileOne: An Improved One millisecond Mobile Backbone", CVPR 2023,
arXiv:2206.04040. Official code: github.com/apple/ml-mobileone.
"""
from __future__ import annotations

from zoo.models._timm import imagenet, register_timm, timm_tag
from zoo.registry import Paper

MOBILEONE = Paper(
    title="MobileOne: An Improved One millisecond Mobile Backbone",
    arxiv="2206.04040",
    code_url="https://github.com/apple/ml-mobileone",
    bibtex="""@inproceedings{vasu2023mobileone,
  title={MobileOne: An Improved One millisecond Mobile Backbone},
  author={Vasu, Pavan Kumar Anasosalu and Gabriel, James and Zhu, Jeff and Tuzel, Oncel and Ranjan, Anurag},
  booktitle={Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages={7907--7917},
  year={2023}
}""",
)

# arch, (top-1 %, params M, GMACs), crop_pct of the released weights
_VARIANTS = (
    ("mobileone_s0", (71.4, 2.1, 0.275), 0.875),
    ("mobileone_s1", (75.9, 4.8, 0.825), 0.9),
    ("mobileone_s2", (77.4, 7.8, 1.299), 0.9),
    ("mobileone_s3", (78.1, 10.1, 1.896), 0.9),
    ("mobileone_s4", (79.4, 14.8, 2.978), 0.9),
)

for _arch, (_top1, _params, _macs), _crop in _VARIANTS:
    register_timm(
        _arch,
        family="mobileone",
        paper=MOBILEONE,
        reported=imagenet(_top1, _params, _macs, f"arXiv:2206.04040, ImageNet-1K results ({_arch[-2:].upper()}, deploy form)"),
        weights=(timm_tag(_arch, "apple_in1k", license="mobileone-license", crop_pct=_crop, interpolation="bilinear"),),
        converter_module="byobnet",
        interpolation="bilinear",
        crop_pct=_crop,
    )
