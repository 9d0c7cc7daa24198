"""``config.json`` in the layout of the library that builds a family, so that library reads zoo folders and Hub repos,
and the zoo reads theirs.

timm-built families (a :class:`~zoo.models._timm.TimmBuilder` model, not pruned or quantized) are saved with timm's
fields: ``timm.create_model("hf-hub:ORG/NAME", pretrained=True)`` and ``"local-dir:FOLDER"`` load them, with their
labels and preprocessing. The zoo's own fields sit whole under :data:`ZOO_KEY`, a top-level key timm ignores once
``pretrained_cfg`` is there. timm's ``save_for_hf`` is not used: it starts from the model's default
``pretrained_cfg`` (ImageNet preprocessing whatever the weights were trained with), and its ``model_args`` break
transformers' timm wrapper (``num_classes`` twice); the zoo writes the values it knows. See docs/research/interop.md.

Read back, a timm folder of a registered architecture becomes the zoo fields it implies; :func:`zoo.api._read_config`
then checks those as it checks any ``config.json`` from outside.
"""
from __future__ import annotations

from typing import Any

FORMAT = "efficient-zoo"  # a config.json's "format" when the zoo wrote it (zoo.api keeps the name)
ZOO_KEY = "efficient_zoo"
PRETRAINED_CFG_KEYS = ("input_size", "mean", "std", "interpolation", "crop_pct")


def timm_arch(model, spec) -> str | None:
    """timm's architecture name when timm builds this model as it stands (its keys are then timm's), else None."""
    from zoo.models._timm import TimmBuilder
    from zoo.registry import state_of

    state = state_of(model)
    if (not isinstance(spec.builder, TimmBuilder) or spec.default_kwargs or state.pruned or state.structure or state.quantization
            or state.deploy_form):  # a re-parameterised model's keys are not the ones timm builds
        return None
    return spec.builder.arch


def timm_config(model, spec, zoo_config: dict[str, Any]) -> dict[str, Any]:
    """timm's ``config.json`` for ``model`` (see :func:`timm_arch`), with ``zoo_config`` under :data:`ZOO_KEY`."""
    own = getattr(model, "pretrained_cfg", None) or {}
    pre = spec.preprocessing()
    pretrained_cfg = {
        "tag": spec.tag,
        "input_size": list(pre["input_size"]),
        "fixed_input_size": bool(spec.fixed_input_size),
        **{k: (list(pre[k]) if isinstance(pre[k], (list, tuple)) else pre[k]) for k in PRETRAINED_CFG_KEYS[1:]},
        "num_classes": spec.num_classes,
        "first_conv": own.get("first_conv"),
        "classifier": own.get("classifier"),  # lets timm put a fresh head on for another num_classes
    }
    config = {
        "architecture": spec.builder.arch,
        "num_classes": spec.num_classes,
        "num_features": getattr(model, "num_features", None),
        "label_names": list(spec.labels) if spec.labels is not None else None,
        "pretrained_cfg": {k: v for k, v in pretrained_cfg.items() if v is not None},
        ZOO_KEY: zoo_config,
    }
    return {k: v for k, v in config.items() if v is not None}


def zoo_fields(config: Any, source: str) -> Any:
    """The zoo's fields of a ``config.json``: a zoo folder's own, those kept under :data:`ZOO_KEY`, or those a timm
    folder of a registered architecture implies. Anything else is returned as it is (the caller refuses it)."""
    if not isinstance(config, dict):
        return config
    if ZOO_KEY in config:
        return config[ZOO_KEY]
    if "format" not in config and isinstance(config.get("pretrained_cfg"), dict) and "architecture" in config:
        return _from_timm(config, source)
    return config


def _from_timm(config: dict[str, Any], source: str) -> dict[str, Any]:
    from zoo.errors import SourceError

    arch = config["architecture"]
    name = registered_timm_name(arch) if isinstance(arch, str) else None
    if name is None:
        raise SourceError(f"{source}: a timm model of architecture {str(arch)!r:.80}, which the zoo does not register "
                          f"(zoo list shows what it does); load it with timm.create_model(\"hf-hub:...\" or \"local-dir:...\")")
    cfg = config["pretrained_cfg"]
    labels = config.get("label_names", cfg.get("label_names"))
    return {
        "format": FORMAT,
        "format_version": 1,
        "architecture": name,
        "tag": None,
        "num_classes": config.get("num_classes", cfg.get("num_classes", 1000)),
        "labels": labels,
        "model_kwargs": {},
        "preprocessing": {k: cfg[k] for k in PRETRAINED_CFG_KEYS if k in cfg},
    }


def registered_timm_name(arch: str) -> str | None:
    """The zoo's name for timm's ``arch`` (``"arch.tag"`` accepted): the architecture of that name, else the first
    whose builder is that timm architecture with no other arguments."""
    from zoo.models._timm import TimmBuilder
    from zoo.registry import populate

    arch = arch.split(".", 1)[0]
    specs = populate()
    candidates = sorted(n for n, s in specs.items() if isinstance(s.builder, TimmBuilder) and s.builder.arch == arch and not s.default_kwargs)
    return arch if arch in candidates else (candidates[0] if candidates else None)
