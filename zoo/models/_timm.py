"""Shared pieces for the families we build from timm (written once, used by each family file).

timm implements these architectures well and keeps their official weights on the Hub under
``timm/<arch>.<tag>``; we add the zoo's registry data (paper, reported numbers, licences) and load the
weights ourselves, so they go through the zoo's checks (safetensors, cache verification, head reset).
timm is imported only when a model is built.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from zoo.registry import ModelSpec, Paper, Reported, WeightTag, register_spec


@dataclass(frozen=True)
class TimmBuilder:
    """Builds ``timm.create_model(arch)`` without downloading anything (the zoo loads weights itself)."""

    arch: str

    # timm arguments that would load weights or fetch configs behind the zoo's back (e.g. from a config.json)
    REFUSED = ("pretrained", "checkpoint_path", "pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")

    def __call__(self, **kwargs: Any):
        import timm

        from zoo.errors import BadArgumentError

        refused = sorted(set(kwargs) & set(self.REFUSED))
        if refused:
            raise BadArgumentError(
                f"{self.arch}: argument(s) {', '.join(refused)} are not accepted; the zoo loads weights itself "
                "(use pretrained=True or weights=PATH with zoo.load)"
            )
        return timm.create_model(self.arch, pretrained=False, **kwargs)


@dataclass(frozen=True)
class TimmConverter:
    """Converts upstream (official-repo) checkpoints with the timm module's own ``checkpoint_filter_fn``."""

    module: str

    def __call__(self, state_dict: dict, model: Any) -> dict:
        return importlib.import_module(f"timm.models.{self.module}").checkpoint_filter_fn(state_dict, model)


def timm_tag(arch: str, tag: str, *, license: str = "apache-2.0", dataset: str = "imagenet-1k", **fields: Any) -> WeightTag:
    """Weights that timm publishes as ``timm/<arch>.<tag>`` (override ``hf_hub_id`` for other repos)."""
    return WeightTag(tag=tag, hf_hub_id=fields.pop("hf_hub_id", f"timm/{arch}.{tag}"), license=license, dataset=dataset, **fields)


def backbone_tag(arch: str, tag: str, *, head: str = "head", **fields: Any) -> WeightTag:
    """A classifier's ImageNet weights (``timm/<arch>.<tag>``) as a ``<tag>_backbone`` tag of a model that puts its
    own ``head`` on that backbone (the family's converter moves the keys)."""
    return timm_tag(arch, f"{tag}_backbone", hf_hub_id=f"timm/{arch}.{tag}",
                    dataset=f"imagenet-1k (backbone only; the {head} starts fresh)",
                    description=f"the backbone's ImageNet weights (timm/{arch}.{tag}); train the {head} before use", **fields)


def register_timm(
    arch: str,
    *,
    family: str,
    paper: Paper,
    reported: tuple[Reported, ...],
    weights: tuple[WeightTag, ...],
    converter_module: str | None = None,
    builder_arch: str | None = None,
    **fields: Any,
) -> ModelSpec:
    """Register a timm architecture under its timm name (or under ``arch``, built as timm's ``builder_arch``)."""
    return register_spec(
        ModelSpec(
            name=arch,
            family=family,
            task="classification",
            builder=TimmBuilder(builder_arch or arch),
            weights=weights,
            paper=paper,
            reported=reported,
            convert_state_dict=TimmConverter(converter_module) if converter_module else None,
            **fields,
        )
    )


def imagenet(
    top1: float,
    params: float,
    macs: float,
    source: str,
    *,
    macs_unit: str = "G",
    resolution: int = 224,
    note: str = "",
    params_note: str = "",
) -> tuple[Reported, ...]:
    """The paper's ImageNet-1k top-1 (%), params (M) and MACs, as printed, from one table."""
    return (
        Reported("top1", top1, "%", source, "imagenet-1k", resolution, note),
        Reported("params", params, "M", source, "", resolution, params_note),
        Reported("macs", macs, macs_unit, source, "", resolution),
    )


def stage_outputs(modules, x, stage_ends: list[int], indices=None) -> list:
    """``forward_intermediates`` over a flat module list: the output of module ``stage_ends[i]`` for each stage ``i``
    that ``indices`` selects (timm's convention: None all, an int the last n), running only as far as the last one."""
    from timm.models._features import feature_take_indices

    take, last = feature_take_indices(len(stage_ends), indices)
    ends = {stage_ends[t] for t in take}
    out = []
    for i, module in enumerate(modules[: stage_ends[last] + 1]):
        x = module(x)
        if i in ends:
            out.append(x)
    return out
