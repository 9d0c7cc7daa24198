"""RT-DETR, RT-DETRv2 and D-FINE: real-time DETRs, wrapped from Hugging Face transformers.

Why a wrapper and not our own code: transformers ships maintained, Apache-2.0 implementations of all three
(``RTDetrForObjectDetection``, ``RTDetrV2ForObjectDetection``, ``DFineForObjectDetection``), weight-compatible
with the official Hub checkpoints (``PekingU/*``, ``ustc-community/*``), including their Hungarian-matching
losses. This file only adds what the zoo's detector contract needs:

* each official variant's configuration, written out so the model builds without a download (the papers'
  tables and the official configs are the source; parameter counts are pinned by tests);
* eval mode returns ``[B, 300, 6]`` detections (x1, y1, x2, y2, score, class) in input pixels, like every
  zoo detector: sigmoid class scores, the top 300 (query, class) pairs, boxes from normalised cxcywh. The
  model's own preprocessing is a plain resize to 640x640, pixels scaled to [0, 1], no mean/std;
* train mode takes the zoo's targets (``{"boxes": xyxy input pixels, "labels"}`` per image), hands them to
  transformers as normalised cxcywh ``labels`` and returns its loss (VFL + L1 + GIoU, auxiliary and
  denoising terms; D-FINE adds its FGL and DDF terms). The matcher needs scipy.

transformers is imported when a model is built, never when the registry lists these models.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.labels import COCO_CLASSES
from zoo.registry import ModelSpec, Paper, Reported, WeightTag, register_spec

NUM_QUERIES = 300


class RealTimeDETR(nn.Module):
    """A transformers RT-DETR / RT-DETRv2 / D-FINE detector behind the zoo detector contract.

    ``self.detr`` is the transformers model itself (its state-dict keys are the Hub checkpoints' keys under
    ``detr.``); ``forward(images)`` gives detections in eval mode, ``forward(images, targets)`` the loss
    dictionary in train mode (see :class:`ModelLoss`). ``collapses_untrained``: fresh, its eval-mode
    activations vanish (see :func:`zoo.bench.settle_batchnorm`).
    """

    collapses_untrained = True

    def __init__(self, detr: nn.Module) -> None:
        super().__init__()
        self.detr = detr.train()  # transformers hands its models over in eval mode; torch modules start in train mode
        self.num_classes = int(detr.config.num_labels)
        self.max_det = int(detr.config.num_queries)

    def forward(self, x: torch.Tensor, targets: list[dict] | None = None):
        if x.ndim != 4 or x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(f"{type(self.detr).__name__} takes [B, 3, H, W] images with H and W multiples of 32, not {tuple(x.shape)}")
        anchors = sum((x.shape[-2] // s) * (x.shape[-1] // s) for s in self.detr.config.feat_strides)
        if anchors < self.max_det:
            side = min_side(self.detr.config.feat_strides, self.max_det)
            raise ValueError(
                f"{tuple(x.shape[-2:])} images give {anchors} encoder positions, fewer than the {self.max_det} queries "
                f"this DETR selects from them: use inputs of at least {side}x{side}"
            )
        if self.training:
            if targets is None:
                raise ValueError("in train mode the model needs the targets: model(images, targets) returns the loss")
            out = self.detr(pixel_values=x, labels=to_detr_labels(targets, x.shape[-2:]))
            return {"loss": out.loss, "items": _summarise(out.loss_dict)}
        out = self.detr(pixel_values=x)
        return self.detect(out.logits, out.pred_boxes, x.shape[-2:])

    def detect(self, logits: torch.Tensor, boxes: torch.Tensor, size) -> torch.Tensor:
        """Class logits ``[B, Q, C]`` and normalised cxcywh boxes ``[B, Q, 4]`` -> ``[B, Q, 6]`` detections."""
        dtype = logits.dtype
        logits, boxes = logits.float(), boxes.float()
        q, c = logits.shape[1:]
        scores, index = logits.sigmoid().flatten(1).topk(q, dim=1)  # the best (query, class) pairs
        labels = index % c
        query = torch.div(index, c, rounding_mode="floor")
        cx, cy, w, h = boxes.gather(1, query.unsqueeze(-1).expand(-1, -1, 4)).unbind(-1)
        height, width = float(size[0]), float(size[1])
        xyxy = torch.stack(((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height), -1)
        return torch.cat((xyxy, scores.unsqueeze(-1), labels.unsqueeze(-1).to(xyxy.dtype)), -1).to(dtype)

    def make_loss(self) -> ModelLoss:
        """The criterion :class:`~zoo.tasks.detection.DetectionTask` uses: the model computes its own loss."""
        return ModelLoss()


def _summarise(loss_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The last decoder layer's terms as they are; the auxiliary and denoising terms summed (``aux``, ``dn``)."""
    items: dict[str, torch.Tensor] = {}
    for key, value in loss_dict.items():
        name = key.removeprefix("loss_")
        group = "aux" if "_aux_" in key else "dn" if "_dn_" in key else name
        items[group] = items.get(group, 0) + value.detach().float()
    return items


def min_side(feat_strides, queries: int = NUM_QUERIES) -> int:
    """The smallest square input (a multiple of 32) with an encoder position for every query."""
    side = 32
    while sum((side // s) ** 2 for s in feat_strides) < queries:
        side += 32
    return side


def to_detr_labels(targets: list[dict], size) -> list[dict[str, torch.Tensor]]:
    """Zoo targets (xyxy boxes in input pixels) -> transformers' labels (normalised cxcywh boxes)."""
    height, width = float(size[0]), float(size[1])
    labels = []
    for t in targets:
        boxes = t["boxes"].float().reshape(-1, 4)
        x1, y1, x2, y2 = boxes.unbind(-1)
        cxcywh = torch.stack(((x1 + x2) / (2 * width), (y1 + y2) / (2 * height), (x2 - x1) / width, (y2 - y1) / height), -1)
        labels.append({"class_labels": t["labels"].long().reshape(-1), "boxes": cxcywh.clamp(0.0, 1.0)})
    return labels


class ModelLoss(nn.Module):
    """The loss a DETR computes in its own forward (the denoising queries are built from the targets there).

    ``in_forward``: :class:`~zoo.tasks.detection.DetectionTask` passes the targets to the model;
    ``reduction="mean"``: the loss is already normalised by the number of boxes in the batch, so the task
    neither sums it over images nor scales it by the world size (under DDP, gradient averaging makes it
    the mean over devices' batches; the official trainer divides by the boxes of all devices together).
    """

    in_forward = True
    reduction = "mean"

    def forward(self, outputs: dict[str, Any], targets) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return outputs["loss"], outputs["items"]


# -- variants ----------------------------------------------------------------------------------------


_R18 = dict(hidden_sizes=[64, 128, 256, 512], depths=[2, 2, 2, 2], layer_type="basic", out_indices=[2, 3, 4])
_R34 = dict(hidden_sizes=[64, 128, 256, 512], depths=[3, 4, 6, 3], layer_type="basic", out_indices=[2, 3, 4])
_R50 = dict(out_indices=[2, 3, 4])
_R101 = dict(depths=[3, 4, 23, 3], out_indices=[2, 3, 4])
# R18/R34 train their backbone BatchNorm (official configs: freeze_norm False); R50/R101 keep it frozen.
_SMALL_TOP = dict(encoder_in_channels=[128, 256, 512], hidden_expansion=0.5, freeze_backbone_batch_norms=False)
_R101_TOP = dict(encoder_hidden_dim=384, encoder_ffn_dim=2048, decoder_in_channels=[384, 384, 384])

# HGNetV2 reports hidden_sizes as its output channels: they must agree with stage_out_channels[1:].
_HGNET = dict(stage_downsample=[False, True, True, True], stage_light_block=[False, False, True, True],
              stage_kernel_size=[3, 3, 5, 5], use_learnable_affine_block=True)
_HGNET_B0 = dict(_HGNET, hidden_sizes=[128, 256, 512, 1024], stem_channels=[3, 16, 16], stage_in_channels=[16, 64, 256, 512],
                 stage_mid_channels=[16, 32, 64, 128], stage_out_channels=[64, 256, 512, 1024],
                 stage_num_blocks=[1, 1, 2, 1], stage_numb_of_layers=[3, 3, 3, 3])
_HGNET_B2 = dict(_HGNET, hidden_sizes=[192, 384, 768, 1536], stem_channels=[3, 24, 32], stage_in_channels=[32, 96, 384, 768],
                 stage_mid_channels=[32, 64, 128, 256], stage_out_channels=[96, 384, 768, 1536],
                 stage_num_blocks=[1, 1, 3, 1], stage_numb_of_layers=[4, 4, 4, 4])
_HGNET_B4 = dict(_HGNET, use_learnable_affine_block=False)  # transformers' HGNetV2 defaults are B4
_HGNET_B5 = dict(_HGNET, use_learnable_affine_block=False, stem_channels=[3, 32, 64], stage_in_channels=[64, 128, 512, 1024],
                 stage_mid_channels=[64, 128, 256, 512], stage_out_channels=[128, 512, 1024, 2048],
                 stage_num_blocks=[1, 2, 5, 2], stage_numb_of_layers=[6, 6, 6, 6])
_THREE_LEVELS = dict(decoder_n_points=[3, 6, 3])
# N/S/M train their backbone BatchNorm, L/X keep it frozen, as the official configs do.
_TRAINED_NORM = dict(freeze_backbone_batch_norms=False)

_DFINE = {  # name: (backbone, top config, reported (AP, params M, GFLOPs, T4 ms), hub size word)
    "dfine_n": (dict(_HGNET_B0, out_indices=[3, 4]),
          dict(num_feature_levels=2, feat_strides=[16, 32], encode_proj_layers=[1], d_model=128, encoder_hidden_dim=128,
               encoder_ffn_dim=512, decoder_ffn_dim=512, **_TRAINED_NORM, encoder_in_channels=[512, 1024], decoder_in_channels=[128, 128],
               decoder_n_points=[6, 6], depth_mult=0.5, decoder_layers=3, hidden_expansion=0.34),
          (42.8, 4, 7, 2.12), "nano"),
    "dfine_s": (dict(_HGNET_B0, out_indices=[2, 3, 4]),
          dict(_THREE_LEVELS, **_TRAINED_NORM, encoder_in_channels=[256, 512, 1024], decoder_layers=3, hidden_expansion=0.5, depth_mult=0.34),
          (48.5, 10, 25, 3.49), "small"),
    "dfine_m": (dict(_HGNET_B2, out_indices=[2, 3, 4]),
          dict(_THREE_LEVELS, **_TRAINED_NORM, encoder_in_channels=[384, 768, 1536], decoder_layers=4, depth_mult=0.67),
          (52.3, 19, 57, 5.62), "medium"),
    "dfine_l": (dict(_HGNET_B4, out_indices=[2, 3, 4]), dict(_THREE_LEVELS), (54.0, 31, 91, 8.07), "large"),
    "dfine_x": (dict(_HGNET_B5, out_indices=[2, 3, 4]),
          dict(_THREE_LEVELS, encoder_hidden_dim=384, encoder_ffn_dim=2048, decoder_in_channels=[384, 384, 384]),
          (55.8, 62, 202, 12.89), "xlarge"),
}


def _classes() -> type:
    """transformers' config and model classes, imported on first build (about 4 s)."""
    try:
        import transformers
    except ImportError as e:  # a dependency of efficient-zoo: only a broken install gets here
        raise ImportError(f"RT-DETR and D-FINE are built by transformers, which failed to import ({e}): pip install 'transformers>=5'") from None
    return transformers


def _config_classes(kind: str) -> tuple[type, type]:
    """transformers' (top, backbone) config classes of ``kind``."""
    t = _classes()
    if kind == "dfine":
        return t.DFineConfig, t.HGNetV2Config
    return (t.RTDetrV2Config if kind == "rtdetr_v2" else t.RTDetrConfig), t.RTDetrResNetConfig


def build_config(kind: str, backbone: dict[str, Any], config: dict[str, Any], num_classes: int):
    """The transformers config of one variant, with ``num_classes`` labels (transformers defaults to 2)."""
    cls, backbone_cls = _config_classes(kind)
    labels = {i: f"class_{i}" for i in range(num_classes)}
    return cls(backbone_config=backbone_cls(**backbone), num_labels=num_classes, id2label=labels,
               label2id={v: k for k, v in labels.items()}, **config)


def _build(num_classes: int = 80, kind: str = "rtdetr", backbone: dict | None = None, config: dict | None = None,
           num_queries: int = NUM_QUERIES) -> RealTimeDETR:
    """``num_queries``: detections per image (300 in every official model; fewer allow smaller inputs)."""
    if num_classes < 1:
        raise ValueError("a detector needs at least one class (num_classes >= 1)")
    t = _classes()
    cfg = build_config(kind, dict(backbone or {}), dict(config or {}, num_queries=num_queries), num_classes)
    model_cls = {"rtdetr": t.RTDetrForObjectDetection, "rtdetr_v2": t.RTDetrV2ForObjectDetection, "dfine": t.DFineForObjectDetection}[kind]
    detr = model_cls(cfg)
    # transformers initialises BatchNorm scales like linear weights, N(0, 0.02), which shrinks the encoder's
    # features by ~1e-10 at initialisation (every query then ties with every other); the official models,
    # like PyTorch, start BatchNorm at scale 1 and shift 0. Pretrained weights overwrite all of it.
    for module in detr.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_parameters()
    return RealTimeDETR(detr)


def convert_hub(state_dict: dict, model: nn.Module | None = None) -> dict:
    """transformers / Hub checkpoint keys (``model.…``) -> ours (``detr.model.…``).

    Files keep transformers' older key names (``layers.N.fc1``, ``out_proj``, ``encoder.encoder.N``), which its
    ``from_pretrained`` renames on loading; the same renames are applied here (:func:`_renamed`). The decoder's
    class and box heads are tied to top-level aliases (``class_embed.N`` <-> ``model.decoder.class_embed.N``, the
    same for ``bbox_embed``); a checkpoint stores one name or the other depending on the transformers version that
    wrote it, so each missing name is filled from its alias. BatchNorm step counters, absent where the checkpoint's
    backbone norms were frozen, are filled with zeros.
    """
    stripped = {key.removeprefix("detr."): value for key, value in state_dict.items()}
    if model is not None:
        stripped = dict(zip(_renamed(stripped, model.detr), stripped.values()))
    converted = {"detr." + key: value for key, value in stripped.items()}
    if model is None:
        return converted
    own = model.state_dict()

    def alias(key: str) -> str:
        rest = key.removeprefix("detr.")
        return "detr." + (rest.removeprefix("model.decoder.") if rest.startswith("model.decoder.") else "model.decoder." + rest)

    for key in own.keys() - converted.keys():
        if alias(key) in converted:
            converted[key] = converted[alias(key)]
        elif key.endswith("num_batches_tracked"):
            converted[key] = torch.zeros_like(own[key])
    for key in converted.keys() - own.keys():
        if alias(key) in own:  # an alias this transformers version does not keep
            del converted[key]
    return converted


def _renamed(keys, detr: nn.Module) -> list[str]:
    """Checkpoint keys under the names ``detr`` has in memory, by the renames transformers' own loading applies to
    its model type (its conversion mapping); keys already in memory's names stay as they are."""
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key

    own = detr.state_dict().keys()
    transforms = get_model_conversion_mapping(detr)
    renamings = [t for t in transforms if isinstance(t, WeightRenaming)]
    converters = [t for t in transforms if isinstance(t, WeightConverter)]
    return [key if key in own else rename_source_key(key, renamings, converters)[0] for key in keys]


MODEL_TYPES = {"rt_detr": "rtdetr", "rt_detr_v2": "rtdetr_v2", "d_fine": "dfine"}  # transformers' model_type -> kind
MAX_QUERIES = 10_000  # far above the official 300; a config.json from outside may not ask for more


def registered_variant(config: dict[str, Any]) -> str | None:
    """The registered variant whose architecture a transformers ``config.json`` describes, or None (ValueError where
    transformers itself cannot read the file).

    It must agree with the variant on every field in which the zoo's variants of its model type differ (backbone
    depths and widths, encoder and decoder sizes, feature levels), as transformers reads the file (a field it leaves
    out takes transformers' default). ``num_queries`` and frozen backbone norms do not choose the variant (the
    builder takes the first; the second only changes training)."""
    from zoo.registry import populate

    kind = MODEL_TYPES.get(config.get("model_type"))
    specs = [s for _, s in sorted(populate().items()) if s.builder is _build and s.default_kwargs.get("kind") == kind]
    if not specs:
        return None
    try:  # transformers reads the file as its from_pretrained would: defaults filled, older field spellings resolved
        parsed = _config_classes(kind)[0].from_dict(dict(config))
        theirs = {"backbone": parsed.backbone_config.to_dict(), "config": parsed.to_dict()}
    except Exception as e:  # noqa: BLE001 - transformers' validators raise their own error types
        raise ValueError(f"transformers cannot read this {config['model_type']} config.json ({str(e).splitlines()[-1].strip()[:200]})") from None
    fields = {(part, key) for s in specs for part in ("backbone", "config") for key in s.default_kwargs[part]}
    fields -= {("config", "num_queries"), ("config", "freeze_backbone_batch_norms")}
    for spec in specs:
        built = build_config(kind, spec.default_kwargs["backbone"], spec.default_kwargs["config"], 1)
        ours = {"backbone": built.backbone_config.to_dict(), "config": built.to_dict()}
        if all(theirs[part].get(key) == ours[part].get(key) for part, key in fields):
            return spec.name
    return None


# -- registration ------------------------------------------------------------------------------------

RTDETR = Paper(
    title="DETRs Beat YOLOs on Real-time Object Detection",
    arxiv="2304.08069",
    code_url="https://github.com/lyuwenyu/RT-DETR",
    code_license="apache-2.0",
    bibtex="""@inproceedings{zhao2024detrs,
  title={{DETRs} Beat {YOLOs} on Real-time Object Detection},
  author={Zhao, Yian and Lv, Wenyu and Xu, Shangliang and Wei, Jinman and Wang, Guanzhong and Dang, Qingqing and Liu, Yi and Chen, Jie},
  booktitle={IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year={2024}
}""",
)
RTDETR_V2 = Paper(
    title="RT-DETRv2: Improved Baseline with Bag-of-Freebies for Real-Time Detection Transformer",
    arxiv="2407.17140",
    code_url="https://github.com/lyuwenyu/RT-DETR",
    code_license="apache-2.0",
    bibtex="""@article{lv2024rtdetrv2,
  title={{RT-DETRv2}: Improved Baseline with Bag-of-Freebies for Real-Time Detection Transformer},
  author={Lv, Wenyu and Zhao, Yian and Chang, Qinyao and Huang, Kui and Wang, Guanzhong and Liu, Yi},
  journal={arXiv preprint arXiv:2407.17140},
  year={2024}
}""",
)
DFINE = Paper(
    title="D-FINE: Redefine Regression Task in DETRs as Fine-grained Distribution Refinement",
    arxiv="2410.13842",
    code_url="https://github.com/Peterande/D-FINE",
    code_license="apache-2.0",
    bibtex="""@inproceedings{peng2025dfine,
  title={{D-FINE}: Redefine Regression Task in {DETRs} as Fine-grained Distribution Refinement},
  author={Peng, Yansong and Li, Hebei and Wu, Peixi and Zhang, Yueyi and Sun, Xiaoyan and Wu, Feng},
  booktitle={International Conference on Learning Representations (ICLR)},
  year={2025}
}""",
)


# transformers' RT-DETRv2 and D-FINE assert their shapes with aten._is_all_true, which neither ExecuTorch nor LiteRT
# lowers (RT-DETR v1 goes to ExecuTorch).
ASSERTS_SHAPES_CANNOT_EXPORT = {
    "executorch": "its attention asserts shapes with aten._is_all_true, which ExecuTorch cannot lower",
    "litert": "its attention asserts shapes with aten._is_all_true, which LiteRT cannot lower",
}


def _register(name: str, kind: str, backbone: dict, config: dict, weights: tuple[WeightTag, ...], reported: tuple[Reported, ...],
              paper: Paper, description: str) -> None:
    # every module whose rows are classes (D-FINE also ties the decoder's class heads to top-level names)
    heads = ("detr.model.enc_score_head", "detr.model.decoder.class_embed", "detr.model.denoising_class_embed", "detr.class_embed")
    register_spec(
        ModelSpec(
            name=name,
            family="dfine" if kind == "dfine" else "rtdetr",
            task="detection",
            builder=_build,
            default_kwargs={"kind": kind, "backbone": backbone, "config": config},
            input_size=(3, 640, 640),
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
            interpolation="bilinear",
            crop_pct=1.0,
            min_input_size=min_side(config.get("feat_strides", (8, 16, 32))),
            num_classes=80,
            classifier=heads,
            labels=COCO_CLASSES,
            weights=weights,
            paper=paper,
            reported=reported,
            convert_state_dict=convert_hub,
            cannot_export=ASSERTS_SHAPES_CANNOT_EXPORT if kind in ("dfine", "rtdetr_v2") else {},
            description=description,
        )
    )


def _resnet_reported(values: tuple[float, ...], source: str) -> tuple[Reported, ...]:
    ap, params, gflops, fps = values
    return (
        Reported("box_ap", ap, "", source, "coco-2017-val", 640),
        Reported("params", params, "M", source, "", 640),
        Reported("flops", gflops, "G", source, "", 640),
        Reported("fps", fps, "FPS", source, "", 640, "T4, TensorRT fp16, batch 1"),
    )


def _rtdetr(name: str, backbone: dict, top: dict, reported: tuple[float, ...], hub: str | None,
            o365_hub: str | None = None) -> None:
    """RT-DETR on a ResNet-vd. ``reported``: (AP, params M, GFLOPs, T4 FPS); hubs: PekingU repos."""
    tags = [WeightTag("coco", f"PekingU/{hub}", "apache-2.0", "coco-2017",
                      description="official RT-DETR release, converted by transformers")] if hub else []
    if o365_hub:
        tags.append(WeightTag("o365_coco", f"PekingU/{o365_hub}", "apache-2.0", "objects365+coco-2017",
                              description="official RT-DETR, Objects365 pretraining then COCO"))
    _register(name, "rtdetr", backbone, top, tuple(tags),
              _resnet_reported(reported, "arXiv:2304.08069 (as in the lyuwenyu/RT-DETR README)"), RTDETR,
              f"RT-DETR-{name.removeprefix('rtdetr_').upper()}: real-time DETR, ResNet-vd backbone, "
              "NMS-free set prediction")


def _rtdetrv2(name: str, backbone: dict, top: dict, reported: tuple[float, ...], hub: str | None) -> None:
    """RT-DETRv2 on a ResNet-vd: RT-DETR's ``top`` config with per-level sampling points."""
    tags = (WeightTag("coco", f"PekingU/{hub}", "apache-2.0", "coco-2017",
                      description="official RT-DETRv2 release, converted by transformers"),) if hub else ()
    _register(name, "rtdetr_v2", backbone, dict(top, decoder_n_levels=3), tags,
              _resnet_reported(reported, "arXiv:2407.17140 (as in the lyuwenyu/RT-DETR rtdetrv2_pytorch README)"), RTDETR_V2,
              f"RT-DETRv2-{name.removeprefix('rtdetrv2_').upper()}: RT-DETR with per-level sampling points "
              "and the v2 training freebies")


_rtdetr("rtdetr_r18", _R18, dict(_SMALL_TOP, decoder_layers=3), (46.5, 20, 60, 217), "rtdetr_r18vd", "rtdetr_r18vd_coco_o365")
_rtdetrv2("rtdetrv2_r18", _R18, dict(_SMALL_TOP, decoder_layers=3), (48.1, 20, 60, 217), "rtdetr_v2_r18vd")
_rtdetr("rtdetr_r34", _R34, dict(_SMALL_TOP, decoder_layers=4), (48.9, 31, 92, 161), "rtdetr_r34vd")
_rtdetrv2("rtdetrv2_r34", _R34, dict(_SMALL_TOP, decoder_layers=4), (49.9, 31, 92, 161), "rtdetr_v2_r34vd")
_rtdetr("rtdetr_r50m", _R50, {"hidden_expansion": 0.5}, (51.3, 36, 100, 145), None)
_rtdetrv2("rtdetrv2_r50m", _R50, {"hidden_expansion": 0.5}, (51.9, 36, 100, 145), None)
_rtdetr("rtdetr_r50", _R50, {}, (53.1, 42, 136, 108), "rtdetr_r50vd", "rtdetr_r50vd_coco_o365")
_rtdetrv2("rtdetrv2_r50", _R50, {}, (53.4, 42, 136, 108), "rtdetr_v2_r50vd")
_rtdetr("rtdetr_r101", _R101, _R101_TOP, (54.3, 76, 259, 74), "rtdetr_r101vd", "rtdetr_r101vd_coco_o365")
_rtdetrv2("rtdetrv2_r101", _R101, _R101_TOP, (54.3, 76, 259, 74), "rtdetr_v2_r101vd")

for _name, (_backbone, _top, (_ap, _params, _gflops, _ms), _word) in _DFINE.items():
    _source = "arXiv:2410.13842 (as in the Peterande/D-FINE README)"
    _tags = [WeightTag("coco", f"ustc-community/dfine-{_word}-coco", "apache-2.0", "coco-2017", description="official D-FINE release, converted by transformers")]
    if _name != "dfine_n":
        _tags.append(WeightTag("obj2coco", f"ustc-community/dfine-{_word}-obj2coco", "apache-2.0", "objects365+coco-2017",
                               description="official D-FINE, Objects365 pretraining then COCO"))
    _register(_name, "dfine", _backbone, _top, tuple(_tags),
              (Reported("box_ap", _ap, "", _source, "coco-2017-val", 640),
               Reported("params", _params, "M", _source, "", 640),
               Reported("flops", _gflops, "G", _source, "", 640),
               Reported("latency_ms", _ms, "ms", _source, "", 640, "T4, TensorRT fp16, batch 1")),
              DFINE, f"D-FINE-{_name.removeprefix('dfine_').upper()}: real-time DETR with fine-grained distribution "
                     "refinement of box edges")
