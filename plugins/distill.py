"""``distill``: knowledge distillation from a frozen teacher into the model being trained.

Logit KD (Hinton et al., "Distilling the Knowledge in a Neural Network", arXiv:1503.02531): the KL
divergence between the softened class distributions of teacher and student, times ``temperature**2``
and ``weight``, added to the task's own loss. Feature KD (FitNets, Romero et al., arXiv:1412.6550):
named student layers are matched to named teacher layers through learned 1x1 adapters (mean-squared
error; maps of another size are resized, and token sequences or vectors are pooled and matched through a
linear adapter, so a transformer teacher can teach a CNN student).

Detectors (YOLOv10 student and teacher of any scale, same classes): both head branches are distilled
anchor by anchor, as dense-detector KD does: class scores by the binary KL of temperature-softened
sigmoids, box sides by the KL of their DFL distributions (localization distillation, Zheng et al.,
arXiv:2102.12252), each anchor weighted by the teacher's best class score so the background does not
drown the objects. Feature KD and the cache are for classifiers only.

Segmentation models: the logit KD is pixel-wise (the pixel-wise term of Liu et al., "Structured Knowledge Distillation
for Semantic Segmentation", arXiv:1903.04197): the KL divergence of the softened class distributions at every pixel,
averaged over the pixels, the student's logits first resized to the teacher's. Feature KD works as for classifiers;
the cache is refused (a map of logits per image).

Image-text models (a contrastive recipe; the teacher another image-text model, e.g. a larger MobileCLIP): the batch's
image-to-text and text-to-image similarity distributions of the student are matched to the teacher's (KL divergence,
each model's similarities scaled by its own learned temperature, both directions averaged), the distillation term of
MobileCLIP's multi-modal reinforced training (Vasu et al., arXiv:2311.17049; open_clip's ``DistillClipLoss`` is its
cross-entropy form, which has the same gradient) with one teacher run live. Left out: the teacher ensemble, synthetic
captions and their stored (reinforced) embeddings. The embeddings may differ in width; ``temperature`` applies to class
logits only.

The teacher is any ``zoo.load`` source (a name, ``name.tag``, a run directory, a folder, ``hf-hub:``) or
``timm:<name>``; it runs frozen, in eval mode, on the student's batch re-normalised and resized to its
own preprocessing. Nothing of the teacher or the adapters is saved with the student.

``cache=DIR`` keeps the teacher's logits on disk (``DIR/teacher_logits.safetensors``, keyed by a hash of
each input image), so runs whose augmentation is fixed (the same tensor for the same image every
epoch) run the teacher once per image, across epochs and runs. With random augmentation every batch is
new and the cache only grows: leave it off there.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from zoo.contracts import DistillableDetector
from zoo.errors import ConfigError
from zoo.plugins.base import Plugin


@dataclasses.dataclass
class DistillConfig:
    teacher: str  # a zoo.load source, or timm:<name>
    pretrained: bool = True  # registered names and timm:<name>: load their published weights
    weight: float = 1.0  # logit KD weight (0: feature KD only)
    temperature: float = 4.0
    features: list = dataclasses.field(default_factory=list)  # "student.module:teacher.module" pairs
    feature_weight: float = 1.0
    cache: str | None = None  # a folder for the teacher-logit cache (fixed-augmentation runs only)


class Distill(Plugin):
    name = "distill"
    order = 20
    Config = DistillConfig
    tasks = ("classification", "detection", "segmentation", "image-text")
    changes = "nothing: the saved and exported model is the student alone"

    def __init__(self, config: DistillConfig | None = None, **options) -> None:
        super().__init__(config, **options)
        c = self.config
        if c.temperature <= 0:
            raise ConfigError(f"plugins.distill.temperature must be > 0, not {c.temperature}")
        if c.weight < 0 or c.feature_weight < 0:
            raise ConfigError("plugins.distill.weight and feature_weight must be >= 0")
        self.pairs = [_pair(p) for p in c.features]
        if c.weight == 0 and not self.pairs:
            raise ConfigError("plugins.distill: weight=0 and no features leaves nothing to distil")
        if c.cache is not None and self.pairs:
            raise ConfigError("plugins.distill.cache holds logits only; feature KD needs the teacher's features every step")
        self.teacher: nn.Module | None = None
        self._task: str | None = None  # the recipe's task, from check()
        self._cache: dict[str, torch.Tensor] = {}
        self._student_feats: dict[str, torch.Tensor] = {}
        self._teacher_feats: dict[str, torch.Tensor] = {}

    def check(self, plugins, task: str) -> None:
        super().check(plugins, task)
        if task == "detection" and (self.pairs or self.config.cache):
            raise ConfigError("for detectors distill uses the head outputs only: drop plugins.distill.features and cache")
        self._task = task
        if task == "image-text" and (self.pairs or self.config.cache):
            raise ConfigError("for image-text models distill matches the batch's similarities: drop plugins.distill.features "
                              "and cache")
        if task == "segmentation" and self.config.cache:
            raise ConfigError("plugins.distill.cache keeps one logit vector per image; a segmentation teacher gives a map per "
                              "image: drop plugins.distill.cache")
        if self.pairs and any(p.name == "prune" for p in plugins):
            raise ConfigError(
                "feature distillation cannot be combined with prune yet: pruning changes the width of the hooked "
                "student layers under their adapters; keep logit KD with pruning (plugins.distill.features=[])"
            )

    # -- Lightning hooks ---------------------------------------------------------------------------
    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit" or self.teacher is not None:
            return
        student = pl_module.model
        spec = student.zoo_spec
        if spec.task == "detection" and not isinstance(student, DistillableDetector):
            raise ConfigError(
                f"detection distillation is implemented for YOLOv10 students; {spec.name} is not one "
                "(its family computes its own loss; train it without plugins=[distill])"
            )
        self.teacher = load_teacher(self.config.teacher, self.config.pretrained)
        tspec = getattr(self.teacher, "zoo_spec", None)
        self._student_spec = spec
        if spec.task == "detection" and not isinstance(self.teacher, DistillableDetector):
            raise ConfigError(
                f"teacher {self.config.teacher} is not a YOLOv10-family detector: detection distillation matches "
                "head outputs anchor by anchor, so the teacher needs the same kind of dense head (any YOLOv10 scale)"
            )
        if self._task == "image-text":
            if not all(hasattr(self.teacher, a) for a in ("encode_image", "encode_text", "tokenize", "logit_scale")) \
                    or getattr(self.teacher, "tower", "both") != "both":
                raise ConfigError(f"teacher {self.config.teacher} is not an image-text model with both towers: an image-text "
                                  "student distils from another (e.g. plugins.distill.teacher=mobileclip2_s2)")
            self._student_scale = student.logit_scale
            pl_module.add_loss_term(self.name, self.loss)
            return
        classes = tspec.num_classes if tspec is not None else getattr(self.teacher, "num_classes", None)
        if self.config.weight > 0 and classes != spec.num_classes:
            raise ConfigError(
                f"teacher {self.config.teacher} predicts {classes} classes, the student {spec.num_classes}: "
                "logit distillation needs the same classes (fine-tune the teacher on this data first, or use "
                "plugins.distill.weight=0 with features)"
            )
        for s_name, t_name in self.pairs:
            student.get_submodule(_checked(student, s_name, "student")).register_forward_hook(self._keep(self._student_feats, s_name))
            self.teacher.get_submodule(_checked(self.teacher, t_name, "teacher")).register_forward_hook(self._keep(self._teacher_feats, t_name))
        if self.pairs:
            pl_module.add_trained_module("distill_adapters", self._adapters(student))
        pl_module.add_loss_term(self.name, self.loss)

    def on_fit_start(self, trainer, pl_module) -> None:
        self.teacher.to(pl_module.device)
        path = self._cache_path()
        if path is not None and path.is_file():
            from safetensors.torch import load_file

            self._cache = load_file(str(path))

    def on_fit_end(self, trainer, pl_module) -> None:
        path = self._cache_path()
        if path is not None and self._cache and trainer.is_global_zero:
            from safetensors.torch import save_file

            from zoo._io import atomic_write

            atomic_write(path, lambda tmp: save_file(self._cache, tmp))

    def _cache_path(self):
        from pathlib import Path

        return Path(self.config.cache).expanduser() / "teacher_logits.safetensors" if self.config.cache else None

    def teacher_logits(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's logits, from the cache where this exact image was seen before."""
        if self.config.cache is None:
            return self.teacher(self._teacher_input(images)).float()
        import hashlib

        keys = [hashlib.sha1(image.detach().cpu().numpy().tobytes()).hexdigest() for image in images]
        missing = [i for i, k in enumerate(keys) if k not in self._cache]
        if missing:
            fresh = self.teacher(self._teacher_input(images[missing])).float().cpu()
            self._cache.update({keys[i]: row for i, row in zip(missing, fresh)})
        return torch.stack([self._cache[k] for k in keys]).to(images.device)

    # -- the loss ----------------------------------------------------------------------------------
    def loss(self, images: torch.Tensor, outputs: torch.Tensor, targets: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self._task == "image-text":  # outputs: the student's (image, text) embeddings; targets: captions
            image, text = outputs
            with torch.no_grad():
                t_image = self.teacher.encode_image(self._teacher_input(images))
                t_text = self.teacher.encode_text(self.teacher.tokenize(list(targets)).to(images.device))
            kd = similarity_kd(image, text, self._student_scale, t_image, t_text, self.teacher.logit_scale)
            return self.config.weight * kd, {"kd": kd.detach()}
        if isinstance(outputs, dict):  # a detector's training outputs: both head branches
            with torch.no_grad():
                teacher = self.teacher.head_outputs(images)
            cls_kd, box_kd = detection_kd(outputs, teacher, self.config.temperature, self.teacher.head.reg_max)
            # the detection loss is summed over the batch (the official recipes' scale): so is this term
            n = images.shape[0]
            return self.config.weight * n * (cls_kd + box_kd), {"cls_kd": cls_kd.detach(), "box_kd": box_kd.detach()}
        with torch.no_grad():
            teacher_logits = self.teacher_logits(images)
        items, total = {}, outputs.new_zeros(())
        if self.config.weight > 0:
            t = self.config.temperature
            if outputs.ndim == 4:  # a segmentation model's class maps
                kd = pixel_kd(outputs, teacher_logits, t)
            else:
                kd = F.kl_div(F.log_softmax(outputs.float() / t, -1), F.log_softmax(teacher_logits / t, -1),
                              reduction="batchmean", log_target=True) * t * t
            items["kd"] = kd.detach()
            total = total + self.config.weight * kd
        if self.pairs:
            adapters = self._trained_adapters
            feat = sum(_feature_loss(adapters[str(i)], self._student_feats[s], self._teacher_feats[t].detach())
                       for i, (s, t) in enumerate(self.pairs)) / len(self.pairs)
            items["feature_kd"] = feat.detach()
            total = total + self.config.feature_weight * feat
        return total, items

    # -- helpers -----------------------------------------------------------------------------------
    @staticmethod
    def _keep(store: dict, name: str):
        def hook(module, args, output):
            store[name] = output[0] if isinstance(output, (tuple, list)) else output
        return hook

    def _teacher_input(self, images: torch.Tensor) -> torch.Tensor:
        """The student's normalised batch, re-expressed in the teacher's own preprocessing."""
        spec = getattr(self, "_student_spec", None)
        tspec = getattr(self.teacher, "zoo_spec", None)
        if spec is None or tspec is None:
            return images
        mean = lambda s: images.new_tensor(s.mean).view(1, -1, 1, 1)  # noqa: E731
        std = lambda s: images.new_tensor(s.std).view(1, -1, 1, 1)  # noqa: E731
        x = images * std(spec) + mean(spec)
        if tspec.fixed_input_size and tuple(x.shape[-2:]) != tuple(tspec.input_size[-2:]):
            x = F.interpolate(x, size=tuple(tspec.input_size[-2:]), mode="bilinear", align_corners=False)
        return (x - mean(tspec)) / std(tspec)

    def _adapters(self, student: nn.Module) -> nn.ModuleDict:
        """One adapter per pair, sized by running both networks once on a dummy batch."""
        c, h, w = student.zoo_spec.input_size
        x = torch.zeros(2, c, h, w)
        was_training = student.training
        with torch.no_grad():
            student.eval()
            student(x)
            self.teacher(self._teacher_input(x))
        student.train(was_training)
        adapters = nn.ModuleDict()
        for i, (s, t) in enumerate(self.pairs):
            fs, ft = self._student_feats[s], self._teacher_feats[t]
            if fs.ndim == 4 and ft.ndim == 4:
                adapters[str(i)] = nn.Conv2d(fs.shape[1], ft.shape[1], 1)
            else:
                adapters[str(i)] = nn.Linear(_channels(fs), _channels(ft))
        self._student_feats.clear()
        self._teacher_feats.clear()
        self._trained_adapters = adapters
        return adapters


def similarity_kd(image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor, t_image: torch.Tensor, t_text: torch.Tensor,
                  t_scale: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) of the batch's image-to-text and text-to-image softmaxes, averaged over both directions;
    each side's cosine similarities are scaled by ``exp`` of its own ``logit_scale`` (capped at 100, as CLIP does)."""
    cap = torch.log(torch.tensor(100.0))
    student = scale.clamp(max=cap).exp() * image.float() @ text.float().T
    teacher = t_scale.clamp(max=cap).exp() * t_image.float() @ t_text.float().T

    def kl(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), reduction="batchmean", log_target=True)

    return (kl(student, teacher) + kl(student.T, teacher.T)) / 2


def pixel_kd(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean over pixels of KL(teacher || student) of the temperature-softened class distributions, times T^2; the
    student's ``[B, K, h, w]`` logits are resized (bilinear) to the teacher's ``[B, K, H, W]`` first."""
    if student.shape[-2:] != teacher.shape[-2:]:
        student = F.interpolate(student.float(), size=teacher.shape[-2:], mode="bilinear", align_corners=False)
    t = temperature
    kl = F.kl_div(F.log_softmax(student.float() / t, 1), F.log_softmax(teacher.float() / t, 1), reduction="none", log_target=True)
    return kl.sum(1).mean() * t * t


def _pair(text: Any) -> tuple[str, str]:
    parts = str(text).split(":")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"plugins.distill.features entries are 'student.module:teacher.module', not {text!r}")
    return parts[0], parts[1]


def _checked(model: nn.Module, name: str, which: str) -> str:
    names = [n for n, _ in model.named_modules() if n]
    if name not in names:
        from zoo.errors import closest

        hint = closest(name, names, n=3)
        raise ConfigError(f"the {which} has no module {name!r}" + (f"; close: {', '.join(hint)}" if hint else ""))
    return name


def _channels(x: torch.Tensor) -> int:
    return int(x.shape[1] if x.ndim == 4 else x.shape[-1])


def _pooled(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] maps and [B, N, C] tokens -> [B, C] vectors."""
    if x.ndim == 4:
        return x.mean((2, 3))
    if x.ndim == 3:
        return x.mean(1)
    return x


def _feature_loss(adapter: nn.Module, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    if isinstance(adapter, nn.Conv2d):
        s = adapter(student.float())
        if s.shape[-2:] != teacher.shape[-2:]:
            s = F.interpolate(s, size=teacher.shape[-2:], mode="bilinear", align_corners=False)
        return F.mse_loss(s, teacher.float())
    return F.mse_loss(adapter(_pooled(student.float())), _pooled(teacher.float()))


def detection_kd(student: dict, teacher: dict, temperature: float, reg_max: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-score and box-distribution KD between two YOLOv10 heads' raw maps, over both branches.

    Maps are ``[B, 4 * reg_max + nc, H, W]`` per level; both terms are zero when the maps agree.
    """
    t = temperature
    cls_total, box_total = 0.0, 0.0
    for branch in ("one2many", "one2one"):
        s_flat = torch.cat([o.flatten(2) for o in student[branch]], 2).float()  # [B, C, A]
        t_flat = torch.cat([o.flatten(2) for o in teacher[branch]], 2).float()
        if s_flat.shape != t_flat.shape:
            raise ConfigError(f"student and teacher heads differ ({tuple(s_flat.shape)} vs {tuple(t_flat.shape)}): "
                              "detection distillation needs the same classes, reg_max and input size")
        nc = s_flat.shape[1] - 4 * reg_max
        box_s, cls_s = s_flat[:, :-nc], s_flat[:, -nc:]
        box_t, cls_t = t_flat[:, :-nc], t_flat[:, -nc:]
        weight = cls_t.sigmoid().amax(1)  # [B, A]: the teacher's confidence that there is an object here
        weight = weight / weight.sum().clamp(min=1e-6)
        # binary KL of softened class probabilities: BCE against the teacher minus the teacher's own entropy
        target = (cls_t / t).sigmoid()
        bce = F.binary_cross_entropy_with_logits(cls_s / t, target, reduction="none")
        entropy = F.binary_cross_entropy_with_logits(cls_t / t, target, reduction="none")
        cls_total = cls_total + ((bce - entropy).sum(1) * weight).sum() * t * t
        b, _, a = box_s.shape  # [B, 4 * reg_max, A] -> [B, 4, reg_max, A]: one distribution per side
        log_s = F.log_softmax(box_s.view(b, 4, -1, a) / t, 2)
        log_t = F.log_softmax(box_t.view(b, 4, -1, a) / t, 2)
        kl = (log_t.exp() * (log_t - log_s)).sum(2).mean(1)  # [B, A]
        box_total = box_total + (kl * weight).sum() * t * t
    return cls_total, box_total


def load_teacher(source: str, pretrained: bool = True) -> nn.Module:
    """A frozen teacher in eval mode from a zoo source or ``timm:<name>``."""
    import zoo
    from zoo.registry import populate, split_name

    if source.startswith("timm:"):
        import timm

        teacher = timm.create_model(source[len("timm:"):], pretrained=pretrained)
    else:
        arch, _ = split_name(source)
        registered = arch in populate() and not source.startswith(("hf-hub:", "/", ".", "~"))
        teacher = zoo.load(source, pretrained=pretrained and registered)
    teacher.eval().requires_grad_(False)
    return teacher
