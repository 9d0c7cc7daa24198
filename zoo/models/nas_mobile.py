"""NAS-era mobile CNNs, our baselines: MnasNet, FBNet, Single-Path NAS and MobileNetV3.

Built from timm's ``efficientnet.py`` / ``mobilenetv3.py`` (Apache-2.0), whose ports of the official
TensorFlow / Caffe2 models carry timm's own ImageNet weights (``timm/<arch>.<tag>`` on the Hub).

Papers:
- Tan et al., "MnasNet: Platform-Aware Neural Architecture Search for Mobile", CVPR 2019, arXiv:1807.11626
  (official code: github.com/tensorflow/tpu, models/official/mnasnet, Apache-2.0).
- Wu et al., "FBNet: Hardware-Aware Efficient ConvNet Design via Differentiable Neural Architecture
  Search", CVPR 2019, arXiv:1812.03443.
- Stamoulis et al., "Single-Path NAS: Designing Hardware-Efficient ConvNets in less than 4 Hours",
  ECML-PKDD 2019, arXiv:1904.02877 (official code: github.com/dstamoulis/single-path-nas, Apache-2.0).
- Howard et al., "Searching for MobileNetV3", ICCV 2019, arXiv:1905.02244.

Names are timm's: ``mnasnet_100`` is MnasNet-B1 (no squeeze-excite), ``semnasnet_100`` is MnasNet-A1
(the paper's headline model), ``mnasnet_small`` the small MnasNet of the TF release.
"""
from __future__ import annotations

from zoo.models._timm import imagenet, register_timm, timm_tag
from zoo.registry import Paper, Reported

MNASNET = Paper(
    title="MnasNet: Platform-Aware Neural Architecture Search for Mobile",
    arxiv="1807.11626",
    code_url="https://github.com/tensorflow/tpu/tree/master/models/official/mnasnet",
    code_license="Apache-2.0",
    bibtex="""@inproceedings{tan2019mnasnet,
  title={MnasNet: Platform-Aware Neural Architecture Search for Mobile},
  author={Tan, Mingxing and Chen, Bo and Pang, Ruoming and Vasudevan, Vijay and Sandler, Mark and Howard, Andrew and Le, Quoc V.},
  booktitle={Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages={2820--2828},
  year={2019}
}""",
)

FBNET = Paper(
    title="FBNet: Hardware-Aware Efficient ConvNet Design via Differentiable Neural Architecture Search",
    arxiv="1812.03443",
    code_url="https://github.com/facebookresearch/mobile-vision",
    bibtex="""@inproceedings{wu2019fbnet,
  title={FBNet: Hardware-Aware Efficient ConvNet Design via Differentiable Neural Architecture Search},
  author={Wu, Bichen and Dai, Xiaoliang and Zhang, Peizhao and Wang, Yanghan and Sun, Fei and Wu, Yiming and Tian, Yuandong and Vajda, Peter and Jia, Yangqing and Keutzer, Kurt},
  booktitle={Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages={10734--10742},
  year={2019}
}""",
)

SPNAS = Paper(
    title="Single-Path NAS: Designing Hardware-Efficient ConvNets in less than 4 Hours",
    arxiv="1904.02877",
    code_url="https://github.com/dstamoulis/single-path-nas",
    code_license="Apache-2.0",
    bibtex="""@inproceedings{stamoulis2019singlepath,
  title={Single-Path NAS: Designing Hardware-Efficient ConvNets in less than 4 Hours},
  author={Stamoulis, Dimitrios and Ding, Ruizhou and Wang, Di and Lymberopoulos, Dimitrios and Priyantha, Bodhi and Liu, Jie and Marculescu, Diana},
  booktitle={Joint European Conference on Machine Learning and Knowledge Discovery in Databases (ECML PKDD)},
  pages={481--497},
  year={2019}
}""",
)

MOBILENETV3 = Paper(
    title="Searching for MobileNetV3",
    arxiv="1905.02244",
    code_url="https://github.com/tensorflow/models/tree/master/research/slim/nets/mobilenet",
    code_license="Apache-2.0",
    bibtex="""@inproceedings{howard2019searching,
  title={Searching for MobileNetV3},
  author={Howard, Andrew and Sandler, Mark and Chu, Grace and Chen, Liang-Chieh and Chen, Bo and Tan, Mingxing and Wang, Weijun and Zhu, Yukun and Pang, Ruoming and Vasudevan, Vijay and Le, Quoc V. and Adam, Hartwig},
  booktitle={Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)},
  pages={1314--1324},
  year={2019}
}""",
)

register_timm(
    "semnasnet_100",
    family="mnasnet",
    description="MnasNet-A1 (with squeeze-excite), the model the MnasNet paper reports first.",
    paper=MNASNET,
    reported=imagenet(75.2, 3.9, 312, "arXiv:1807.11626, Table 1 (MnasNet-A1)", macs_unit="M"),
    weights=(timm_tag("semnasnet_100", "rmsp_in1k"),),
)
register_timm(
    "mnasnet_100",
    family="mnasnet",
    description="MnasNet-B1 (no squeeze-excite), depth multiplier 1.0, as released in the official TF code.",
    paper=MNASNET,
    # The paper shows B1 only in its squeeze-excite ablation, without params or MACs.
    reported=(Reported("top1", 74.4, "%", "tensorflow/tpu mnasnet README of 2019-03 (MnasNet-B1)", "imagenet-1k", 224),),
    weights=(timm_tag("mnasnet_100", "rmsp_in1k"),),
)
register_timm(
    "mnasnet_small",
    family="mnasnet",
    description="The small MnasNet of the official TF release (the paper's MnasNet-search2), trained by timm.",
    paper=MNASNET,
    reported=imagenet(66.0, 2.0, 68, "arXiv:1807.11626, Table 4 (MnasNet-search2, released as mnasnet-small)", macs_unit="M"),
    weights=(timm_tag("mnasnet_small", "lamb_in1k"),),
)
register_timm(
    "fbnetc_100",
    family="fbnet",
    description="FBNet-C, found by differentiable NAS for a Samsung S8 latency target.",
    paper=FBNET,
    reported=imagenet(74.9, 5.5, 375, "arXiv:1812.03443, ImageNet results table (FBNet-C)", macs_unit="M"),
    weights=(timm_tag("fbnetc_100", "rmsp_in1k", interpolation="bilinear"),),
    interpolation="bilinear",
)
register_timm(
    "spnasnet_100",
    family="spnasnet",
    description="Single-Path NAS, searched for Pixel 1 latency.",
    paper=SPNAS,
    # The paper reports accuracy and Pixel 1 latency (79 ms), not params or MACs.
    reported=(Reported("top1", 74.96, "%", "arXiv:1904.02877, abstract", "imagenet-1k", 224),),
    weights=(timm_tag("spnasnet_100", "rmsp_in1k", interpolation="bilinear"),),
    interpolation="bilinear",
)
register_timm(
    "mobilenetv3_large_100",
    family="mobilenetv3",
    description="MobileNetV3-Large, width 1.0.",
    paper=MOBILENETV3,
    reported=imagenet(75.2, 5.4, 219, "arXiv:1905.02244v5, Table 3 (Large 1.0)", macs_unit="M"),
    weights=(
        timm_tag("mobilenetv3_large_100", "ra_in1k"),
        timm_tag(
            "mobilenetv3_large_100",
            "ra4_e3600_r224_in1k",
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.5, 0.5),
            crop_pct=0.95,
            description="timm's 3600-epoch ResNet-strikes-back-4 recipe",
        ),
        timm_tag(
            "mobilenetv3_large_100",
            "miil_in21k_ft_in1k",
            dataset="imagenet-21k -> imagenet-1k",
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
            interpolation="bilinear",
        ),
        timm_tag(
            "mobilenetv3_large_100",
            "miil_in21k",
            dataset="imagenet-21k (winter 21)",
            num_classes=11221,
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
            interpolation="bilinear",
        ),
    ),
)
register_timm(
    "mobilenetv3_small_100",
    family="mobilenetv3",
    description="MobileNetV3-Small, width 1.0.",
    paper=MOBILENETV3,
    reported=imagenet(
        67.4,
        2.5,
        56,
        "arXiv:1905.02244v5, Table 3 (Small 1.0)",
        macs_unit="M",
        note="earlier arXiv versions print 66M MAdds / 2.9M for a 1280-wide last layer; this model is the final 1024-wide one",
    ),
    weights=(timm_tag("mobilenetv3_small_100", "lamb_in1k"),),
)
