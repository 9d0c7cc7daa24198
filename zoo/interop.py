"""``config.json`` in the layout of the library that builds a family, so that library reads zoo folders and Hub repos,
and the zoo reads theirs.

timm-built families (a :class:`~zoo.models._timm.TimmBuilder` model, not pruned or quantized) are saved with timm's
fields: ``timm.create_model("hf-hub:ORG/NAME", pretrained=True)`` and ``"local-dir:FOLDER"`` load them, with their
labels and preprocessing. The zoo's own fields sit whole under :data:`ZOO_KEY`, a top-level key timm ignores once
``pretrained_cfg`` is there. timm's ``save_for_hf`` is not used: it starts from the model's default
``pretrained_cfg`` (ImageNet preprocessing whatever the weights were trained with), and its ``model_args`` break
transformers' timm wrapper (``num_classes`` twice); the zoo writes the values it knows. See docs/research/interop.md.

transformers-built families (RT-DETR, RT-DETRv2, D-FINE) are saved as transformers' ``save_pretrained`` writes them
(its ``config.json`` with the labels as ``id2label``, its weight names) with a ``preprocessor_config.json`` for its
``RTDetrImageProcessor``: ``AutoModelForObjectDetection`` and ``AutoImageProcessor`` load the folder or repo. The
zoo's fields sit under :data:`ZOO_KEY` there too (transformers keeps unknown keys as config attributes).

Read back, a timm or transformers folder of a registered architecture becomes the zoo fields it implies;
:func:`zoo.api._read_config` then checks those as it checks any ``config.json`` from outside.
"""
from __future__ import annotations

from typing import Any

FORMAT = "efficient-zoo"  # a config.json's "format" when the zoo wrote it (zoo.api keeps the name)
ZOO_KEY = "efficient_zoo"
PRETRAINED_CFG_KEYS = ("input_size", "mean", "std", "interpolation", "crop_pct")
PREPROCESSOR_NAME = "preprocessor_config.json"  # transformers' image processor settings, beside config.json
RESAMPLE = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "area": 4}  # PIL's numbers, as processors store them


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


def zoo_fields(config: Any, source: str, read_processor=lambda: None) -> Any:
    """The zoo's fields of a ``config.json``: a zoo folder's own, those kept under :data:`ZOO_KEY`, or those a timm
    or transformers folder of a registered architecture implies. Anything else is returned as it is (the caller
    refuses it). ``read_processor()`` gives the folder's ``preprocessor_config.json`` (a dict) or None; it is read
    only for a transformers folder the zoo did not write."""
    if not isinstance(config, dict):
        return config
    if "model_type" in config and "format" not in config and "pretrained_cfg" not in config:  # not transformers' timm wrapper
        return _from_transformers(config, source, read_processor)
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


def transformers_model(model):
    """The transformers model inside ``model`` when :func:`zoo.save` writes transformers' layout for it (an RT-DETR,
    RT-DETRv2 or D-FINE as transformers builds it), else None."""
    from zoo.models.rtdetr import RealTimeDETR
    from zoo.registry import state_of

    state = state_of(model)
    if not isinstance(model, RealTimeDETR) or state.pruned or state.structure or state.quantization or state.deploy_form:
        return None
    return model.detr


def transformers_config(detr, spec, zoo_config: dict[str, Any]) -> dict[str, Any]:
    """transformers' ``config.json`` for ``detr`` with the model's labels as ``id2label``, ``zoo_config`` under
    :data:`ZOO_KEY`."""
    labels = list(spec.labels) if spec.labels is not None else [f"class_{i}" for i in range(spec.num_classes)]
    config = detr.config.to_dict()
    config.update(architectures=[type(detr).__name__], id2label={str(i): name for i, name in enumerate(labels)},
                  label2id={name: i for i, name in enumerate(labels)})
    config[ZOO_KEY] = zoo_config
    return config


def image_processor(spec):
    """The transformers image processor that prepares images as ``spec``'s preprocessing does (resize to the input
    size, pixels to [0, 1], mean and std only when they are not 0 and 1, no padding)."""
    import transformers

    pre = spec.preprocessing()
    mean, std = list(pre["mean"]), list(pre["std"])
    return transformers.RTDetrImageProcessor(
        size={"height": pre["input_size"][-2], "width": pre["input_size"][-1]}, resample=RESAMPLE[pre["interpolation"]],
        do_rescale=True, rescale_factor=1 / 255, do_normalize=(mean, std) != ([0.0] * len(mean), [1.0] * len(std)),
        image_mean=mean, image_std=std, do_pad=False)


def _from_transformers(config: dict[str, Any], source: str, read_processor) -> dict[str, Any]:
    from zoo.errors import SourceError
    from zoo.models.rtdetr import MAX_QUERIES, MODEL_TYPES, NUM_QUERIES, registered_variant
    from zoo.registry import get_spec

    kind = config["model_type"]
    if kind not in MODEL_TYPES:
        raise SourceError(f"{source}: a transformers model of type {str(kind)!r:.60}, which the zoo does not register (it reads "
                          f"{', '.join(MODEL_TYPES)}); load it with transformers' from_pretrained")
    labels = _id2label(config.get("id2label"), source)
    if ZOO_KEY in config:  # written by zoo.save; transformers may have changed the labels since
        fields = config[ZOO_KEY]
        if isinstance(fields, dict) and labels != (fields.get("labels") or [f"class_{i}" for i in range(len(labels))]):
            fields = {**fields, "labels": labels, "num_classes": len(labels)}
        return fields
    try:
        name = registered_variant(config)
    except ValueError as e:
        raise SourceError(f"{source}: {e}; nothing was built") from None
    if name is None:
        raise SourceError(f"{source}: a {kind} model whose layer sizes match none of the zoo's variants (zoo list shows "
                          "them); load it with transformers' AutoModelForObjectDetection.from_pretrained")
    kwargs = dict(get_spec(name).default_kwargs)
    queries = config.get("num_queries", NUM_QUERIES)
    if not isinstance(queries, int) or isinstance(queries, bool) or not 1 <= queries <= MAX_QUERIES:
        raise SourceError(f"{source}: num_queries {queries!r:.40} is not a whole number from 1 to {MAX_QUERIES}; nothing was built")
    if queries != NUM_QUERIES:
        kwargs["num_queries"] = queries
    return {"format": FORMAT, "format_version": 1, "architecture": name, "tag": None, "num_classes": len(labels),
            "labels": labels, "model_kwargs": kwargs, "preprocessing": _preprocessing(read_processor(), source)}


def _id2label(id2label: Any, source: str) -> list[str]:
    from zoo.errors import SourceError

    if not isinstance(id2label, dict) or not id2label or sorted(id2label, key=str) != sorted(map(str, range(len(id2label)))):
        raise SourceError(f"{source}: config.json's id2label must name classes 0 to N-1 (transformers writes it); nothing was built")
    return [str(id2label[str(i)]) for i in range(len(id2label))]


def _preprocessing(processor: Any, source: str) -> dict[str, Any]:
    """The zoo's preprocessing for transformers' image processor settings (resize, rescale, normalise); the zoo
    scales pixels to [0, 1] first, so another rescale factor moves into mean and std."""
    from zoo.errors import SourceError

    if processor is None:
        return {}
    if not isinstance(processor, dict) or processor.get("do_pad") or processor.get("do_resize") is False:
        raise SourceError(f"{source}: {PREPROCESSOR_NAME} pads or does not resize, which the zoo's preprocessing cannot "
                          "repeat; load it with transformers' AutoImageProcessor")
    pre: dict[str, Any] = {"crop_pct": 1.0}
    size = processor.get("size")
    if isinstance(size, dict) and "height" in size and "width" in size:
        pre["input_size"] = [3, size["height"], size["width"]]
    names = {number: name for name, number in RESAMPLE.items()}
    pre["interpolation"] = names.get(processor.get("resample", 2), processor.get("resample"))
    normalize = processor.get("do_normalize", False)
    mean = processor.get("image_mean", [0.0] * 3) if normalize else [0.0] * 3
    std = processor.get("image_std", [1.0] * 3) if normalize else [1.0] * 3
    factor = processor.get("rescale_factor", 1 / 255) if processor.get("do_rescale", True) else 1.0
    try:
        scale = 255 * float(factor)
        pre["mean"], pre["std"] = [float(m) / scale for m in mean], [float(s) / scale for s in std]
    except (TypeError, ValueError, ZeroDivisionError):
        raise SourceError(f"{source}: {PREPROCESSOR_NAME} has a rescale factor, mean or std that is not a number") from None
    return pre


def registered_timm_name(arch: str) -> str | None:
    """The zoo's name for timm's ``arch`` (``"arch.tag"`` accepted): the architecture of that name, else the first
    whose builder is that timm architecture with no other arguments."""
    from zoo.models._timm import TimmBuilder
    from zoo.registry import populate

    arch = arch.split(".", 1)[0]
    specs = populate()
    candidates = sorted(n for n, s in specs.items() if isinstance(s.builder, TimmBuilder) and s.builder.arch == arch and not s.default_kwargs)
    return arch if arch in candidates else (candidates[0] if candidates else None)
