"""``zoo.load`` and ``zoo.save``: one way in for every model source, one folder format out.

A folder written by :func:`save` holds ``config.json`` (architecture, tag, classes, labels, builder
arguments, preprocessing) and ``model.safetensors``; :func:`load` reads it back from disk or from a Hub
repo (``hf-hub:org/name[@rev]``), as ``from_pretrained``/``save_pretrained`` do in transformers.
"""
from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import hub
from zoo._io import switch_folder
from zoo.errors import BadArgumentError, CorruptWeightsError, SourceError, UnsafeWeightsError, WeightsError, ZooError
from zoo.interop import (
    FORMAT,
    PREPROCESSOR_NAME,
    ZOO_KEY,
    image_processor,
    timm_arch,
    timm_config,
    transformers_config,
    transformers_model,
    zoo_fields,
)
from zoo.registry import ModelSpec, get_spec, split_name, state_of
from zoo.weights import apply_state_dict, keep_matching_classes, read_state_dict

if TYPE_CHECKING:
    from torch import nn

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_OBSERVER_RANGES = ("min_val", "max_val")  # a QAT observer that has seen nothing holds +inf/-inf by design
FORMAT_VERSION = 1


def load(
    name_or_path: str | os.PathLike,
    pretrained: bool | None = None,
    *,
    num_classes: int | None = None,
    weights: str | os.PathLike | None = None,
    allow_pickle: bool = False,
    labels: Sequence[str] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a model by name, or load one saved by :func:`save`, locally or from the Hub.

    Args:
        name_or_path: a registered architecture (``"mobilenetv3_large_100"``), ``"arch.tag"`` for that tag's
            weights, ``"hf-hub:org/name[@revision]"``, a folder written by :func:`save`, a run directory (its
            ``model/``), or a run's ``checkpoints/*.ckpt``.
        pretrained: download the published weights (the default tag, or the one named) from the Hub. Default:
            only when the name names a tag (a tag means its weights everywhere); ``False`` with a tag builds the
            tag's configuration and preprocessing with untrained weights.
        num_classes: classifier size (0: no classifier, the model returns pooled features). With
            weights of another size, the head is reset (with a warning).
        weights: a local weights file to load instead; upstream key names are converted where the
            family has a converter. Safetensors by default; see ``allow_pickle``.
        allow_pickle: accept ``.pt``/``.pth``/``.bin``/``.ckpt`` files, read with
            ``torch.load(weights_only=True)``.
        labels: class names for the model's head (sets ``num_classes``). With pretrained weights
            trained on other classes, classes of the same name keep their trained head rows (COCO's
            ``"person"`` stays a trained person detector) and the rest start fresh (``pretrained=True`` only).
            Image-text models (``mobileclip*``) make their head from the labels instead: a zero-shot classifier of
            the labels' text embeddings (prompt templates: the ``templates=`` builder argument).
        **kwargs: passed to the architecture's builder. ``features_only=True`` (with optional
            ``out_indices``) returns a module whose forward gives the list of multi-scale feature maps.

    The returned module carries ``model.zoo_spec``: the :class:`~zoo.registry.ModelSpec` with its tag,
    classes, labels and preprocessing set to what this model is.
    """
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0):
        raise BadArgumentError(f"num_classes must be a whole number >= 0 (0 removes the classifier), not {num_classes!r}")
    if labels is not None:
        labels = tuple(str(name) for name in labels)
        if not labels or (num_classes is not None and num_classes != len(labels)):
            raise BadArgumentError(f"labels must name each of the model's classes: got {len(labels)} names for num_classes={num_classes}")
        num_classes = len(labels)
    features_only = bool(kwargs.pop("features_only", False))
    out_indices = kwargs.pop("out_indices", None)
    source = os.fspath(name_or_path)
    if source.startswith(hub.HF_HUB_PREFIX):
        repo_id, revision = hub.parse_hf_hub(source)
        config_path = hub.download(repo_id, CONFIG_NAME, revision)
        commit = config_path.parent.name  # snapshots/<commit>/config.json: take every other file from the same commit
        at = commit if hub.is_commit(commit) else revision
        config = _read_config(config_path, source, evict_on_error=True,
                              read_processor=lambda: _read_json(hub.download(repo_id, PREPROCESSOR_NAME, at, optional=True), source))
        weights_path = None if weights else hub.download(repo_id, WEIGHTS_NAME, at)
        model = _load_saved(config, weights_path, source, num_classes, weights, allow_pickle, kwargs, labels=labels)
    elif source.endswith(".ckpt") and Path(source).expanduser().is_file():
        model = _load_run_checkpoint(Path(source).expanduser(), num_classes, kwargs)
    elif is_path(source):
        folder = _saved_folder(Path(source).expanduser())
        weights_path = None if weights else _weights_file(folder, allow_pickle)
        config = _read_config(folder / CONFIG_NAME, source, read_processor=lambda: _read_json(folder / PREPROCESSOR_NAME, source))
        model = _load_saved(config, weights_path, source, num_classes, weights, allow_pickle, kwargs, labels=labels)
    else:
        if pretrained is None:
            pretrained = split_name(source)[1] is not None and weights is None
        model = _load_registered(source, pretrained, num_classes, weights, allow_pickle, kwargs, labels)
    if labels is not None:
        model.zoo_spec = dataclasses.replace(model.zoo_spec, labels=labels)
        if zero_shot(model):
            model.set_labels(labels)
    if features_only:
        model = _features(model, out_indices)
    return model


def save(model: nn.Module, folder: str | os.PathLike) -> Path:
    """Write ``config.json`` and ``model.safetensors`` for a model made by :func:`load`; return the folder.

    The folder is written beside its place and switched in whole, so an interrupted save leaves the old folder
    or the new one, never new weights with old labels. It must be new, empty or an earlier zoo.save folder.
    """
    spec = _spec_of(model)
    state = state_of(model)
    if state.features_only:
        raise ZooError("zoo.save stores whole models; save the model before zoo.load(..., features_only=True) wraps it")
    if state.int8:
        raise ZooError(
            "zoo.save stores a quantized model in its QAT form, before conversion: save the model the qat plugin "
            "trained (a run's model/ folder already is one); this converted int8 model is for inference and export"
        )
    folder = Path(folder).expanduser()
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "zoo_version": _version(),
        "architecture": spec.name,
        "family": spec.family,
        "task": spec.task,
        "tag": spec.tag,
        "num_classes": spec.num_classes,
        "labels": list(spec.labels) if spec.labels is not None else None,
        "model_kwargs": dict(spec.default_kwargs),
        "preprocessing": spec.preprocessing(),
    }
    if state.structure:  # a pruned model captured by QAT: recorded before capture
        config["structure"] = state.structure
    elif state.pruned:  # layer widths differ from the architecture's: rebuilt by load
        config["structure"] = pruned_structure(model)
    if state.quantization:  # rebuilt by load: prepared the same way, then converted
        config["quantization"] = dict(state.quantization)
    detr = transformers_model(model)
    try:  # timm- and transformers-built families in their library's layout, the zoo's fields under one key (zoo.interop)
        layout = transformers_config(detr, spec, config) if detr is not None else timm_config(model, spec, config) if timm_arch(model, spec) else config
        text = json.dumps(layout, indent=2)
    except TypeError as e:
        raise ZooError(f"zoo.save: builder arguments must be JSON values to be saved ({e}): {dict(spec.default_kwargs)}") from None

    import torch
    from safetensors.torch import save_file

    tensors, seen = {}, set()
    for key, value in model.state_dict().items():
        value = value.detach().cpu().contiguous()
        if value.untyped_storage().data_ptr() in seen and value.numel():  # safetensors refuses shared storage
            value = value.clone()
        seen.add(value.untyped_storage().data_ptr())
        tensors[key] = value
    nonfinite = [k for k, v in tensors.items() if v.is_floating_point() and not k.endswith(_OBSERVER_RANGES)
                 and not bool(torch.isfinite(v).all())]
    if nonfinite:
        raise WeightsError(
            f"zoo.save: {len(nonfinite)} weight tensor{'s' * (len(nonfinite) != 1)} hold NaN or inf (first: "
            f"{nonfinite[0]!r}), so the model would predict nothing useful; nothing was written. A run that diverged "
            "needs a lower learning rate (optim.lr) or gradient clipping"
        )
    metadata = {"format": "pt", "architecture": spec.name}
    _check_save_target(folder)

    def write(staged: Path) -> None:
        import shutil

        if detr is not None:  # transformers' weight names and files; its config.json is replaced by the one above
            detr.save_pretrained(staged, safe_serialization=True)
            image_processor(spec).save_pretrained(staged)
        else:
            save_file(tensors, str(staged / WEIGHTS_NAME), metadata=metadata)
        (staged / CONFIG_NAME).write_text(text + "\n", encoding="utf-8")
        for name in _CARRIED:  # what zoo export / zoo card wrote into the folder since; copied, so a failure loses nothing
            if (folder / name).is_dir():
                shutil.copytree(folder / name, staged / name, symlinks=True)
            elif (folder / name).is_file():
                shutil.copy2(folder / name, staged / name)

    return switch_folder(folder, write)


_CARRIED = ("export", "README.md")  # written into a saved folder by zoo export and zoo card; kept by a new save


def _check_save_target(folder: Path) -> None:
    """A folder zoo.save may replace: new, empty, or one it wrote itself (nothing else in it)."""
    if folder.exists() and not folder.is_dir():
        raise BadArgumentError(f"zoo.save: {folder} is a file; give a folder to write config.json and {WEIGHTS_NAME} into")
    if not folder.is_dir():
        return
    others = sorted(p.name for p in folder.iterdir() if p.name not in (CONFIG_NAME, WEIGHTS_NAME, PREPROCESSOR_NAME, *_CARRIED))
    if others:
        raise BadArgumentError(f"zoo.save: {folder} holds other files ({', '.join(others[:5])}); zoo.save replaces the whole "
                               "folder, so give a new or empty one")
    if (folder / CONFIG_NAME).is_file():
        try:
            written = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
            theirs = (written.get(ZOO_KEY) or written).get("format")
        except (ValueError, AttributeError, OSError):
            theirs = None
        if theirs != FORMAT:
            raise BadArgumentError(f"zoo.save: {folder / CONFIG_NAME} was not written by zoo.save; it is left as it is. "
                                   "Give a new or empty folder")


# -- sources ---------------------------------------------------------------------------------------


def is_path(source: str) -> bool:
    if any(sep in source for sep in ("/", "\\")) or source.startswith(("~", ".")):
        return True
    # A bare word is a model name unless only a folder of that name exists.
    arch, _ = split_name(source)
    from zoo.registry import populate

    return arch not in populate() and Path(source).is_dir()


def _saved_folder(path: Path) -> Path:
    if not path.exists():
        hint = ""
        if len(path.parts) == 2 and not str(path).startswith((".", "/", "~")):
            hint = f"; for a Hugging Face Hub repo write 'hf-hub:{path.as_posix()}'"
        raise SourceError(f"no such file or folder: {path}{hint}")
    if path.is_file():
        raise SourceError(
            f"{path} is a file. To load weights into an architecture use zoo.load(NAME, weights={str(path)!r}); "
            "zoo.load(PATH) takes a folder written by zoo.save or a run directory."
        )
    for candidate in (path, path / "model"):
        if (candidate / CONFIG_NAME).is_file():
            return candidate
    raise SourceError(f"{path} has no {CONFIG_NAME}: it is not a folder written by zoo.save, nor a run directory")


def _weights_file(folder: Path, allow_pickle: bool) -> Path:
    """The folder's weights: ``model.safetensors``, or the ``pytorch_model.bin`` that timm's ``save_for_hf`` writes
    by default (read with ``torch.load(weights_only=True)`` only when ``allow_pickle``)."""
    pickled = folder / "pytorch_model.bin"
    if (folder / WEIGHTS_NAME).is_file() or not pickled.is_file():
        return folder / WEIGHTS_NAME
    if not allow_pickle:
        raise SourceError(f"{folder} holds pytorch_model.bin, a pickle, and no {WEIGHTS_NAME}: pass allow_pickle=True "
                          "(read with torch.load(weights_only=True)), or save it with safe_serialization=True")
    return pickled


def _load_registered(name, pretrained, num_classes, weights, allow_pickle, kwargs, labels=None) -> nn.Module:
    spec = get_spec(name)  # with a tag: that tag's classes and preprocessing
    tag = spec.tag
    if pretrained and weights is not None:
        raise ZooError("pass either pretrained=True (published weights) or weights=PATH (a local file), not both")
    if pretrained and tag is None:
        spec = spec.for_weights(spec.weight().tag)
    model_classes = num_classes if num_classes is not None else spec.num_classes
    weight_labels = spec.labels  # the classes of the weights (_build drops them from a head of another size)
    if not pretrained:  # the tag chose config and preprocessing, but these are not its weights
        spec = dataclasses.replace(spec, tag=None)
    model, spec = _build(spec, model_classes, kwargs)
    head = head_names(model, spec)
    if pretrained:
        w = spec.weight(spec.tag)
        path = hub.download(w.hf_hub_id, w.filename, w.revision)
        state_dict = _read_hub_file(path, f"{w.hf_hub_id}/{w.filename}", allow_pickle=allow_pickle)
        state_dict = _convert(spec, state_dict, model)
        if labels is not None and weight_labels is not None and tuple(weight_labels) != labels:
            state_dict = _keep_classes(state_dict, model, head, labels, weight_labels, f"{w.hf_hub_id} ({w.dataset or w.tag})")
        state_dict, reset = _own_head(model, state_dict, head, labels, reset=num_classes is not None)
        apply_state_dict(model, state_dict, head=head, reset_head=reset, source=f"weights {name}")
    elif weights is not None:
        try:
            raw = read_state_dict(weights, allow_pickle=allow_pickle)
        except UnsafeWeightsError as e:
            if not spec.weights:
                raise
            w = spec.weights[0]  # e.g. official .pt files that pickle whole modules: point at the safe copy
            raise UnsafeWeightsError(f"{e} The published weights are also on the Hub as {w.hf_hub_id}/{w.filename}: "
                                     f"zoo.load({spec.name!r}, pretrained=True)") from None
        state_dict, reset = _own_head(model, _convert(spec, raw, model), head, labels, reset=num_classes is not None)
        apply_state_dict(model, state_dict, head=head, reset_head=reset, source=f"weights {os.fspath(weights)}")
    return model


def zero_shot(model: nn.Module) -> bool:
    """A model whose head is computed from its labels (an image-text model's text embeddings), not trained."""
    return callable(getattr(model, "set_labels", None))


def _own_head(model: nn.Module, state_dict: dict, head: tuple[str, ...], labels, reset: bool) -> tuple[dict, bool]:
    """The weights with the model's own head when :func:`load` computes it from ``labels`` afterwards (the weights'
    head, if they have one, is not used and nothing warns that it was reset)."""
    if labels is None or not zero_shot(model):
        return state_dict, reset
    from zoo.weights import in_head

    own = {k: v for k, v in model.state_dict().items() if in_head(k, head)}
    return {**{k: v for k, v in state_dict.items() if not in_head(k, head)}, **own}, False


def _keep_classes(state_dict: dict, model: nn.Module, head, labels, theirs, source: str) -> dict:
    """Head rows of the classes both label lists name, copied from the weights (with a warning saying which)."""
    fitted, kept = keep_matching_classes(state_dict, model, head, labels, theirs)
    if kept:
        shown = ", ".join(kept[:8]) + (", ..." if len(kept) > 8 else "")
        warnings.warn(
            f"{len(kept)} of {len(labels)} classes keep their trained rows from {source}: {shown}; "
            f"the other {len(labels) - len(kept)} start fresh. Fine-tune before use.",
            UserWarning,
            stacklevel=4,
        )
    return fitted


def _load_saved(config, weights_path, source, num_classes, weights, allow_pickle, kwargs, state_dict=None, labels=None) -> nn.Module:
    spec = get_spec(config["architecture"])
    saved = config.get("num_classes")
    saved_classes = spec.num_classes if saved is None else int(saved)
    pre = config.get("preprocessing") or {}
    spec = dataclasses.replace(
        spec,
        tag=config.get("tag"),
        labels=config.get("labels"),
        input_size=tuple(pre.get("input_size", spec.input_size)),
        mean=tuple(pre.get("mean", spec.mean)),
        std=tuple(pre.get("std", spec.std)),
        interpolation=pre.get("interpolation", spec.interpolation),
        crop_pct=pre.get("crop_pct", spec.crop_pct),
    )
    model_kwargs = {**config.get("model_kwargs", {}), **kwargs}
    model_classes = num_classes if num_classes is not None else saved_classes
    if model_classes != saved_classes:
        if config.get("quantization"):
            raise BadArgumentError("a quantized model keeps the classifier it was trained with; load it without num_classes")
        spec = dataclasses.replace(spec, labels=None)  # the saved labels describe the old head
    model, spec = _build(spec, model_classes, model_kwargs, replace_kwargs=True)
    if config.get("structure"):
        structure = config["structure"]
        if model_classes != saved_classes:
            structure = _with_classes(structure, head_names(model, spec), model_classes)
        apply_pruned_structure(model, structure)
    if state_dict is not None:
        what = f"weights in {source}"
    elif weights is not None:
        state_dict = _convert(spec, read_state_dict(weights, allow_pickle=allow_pickle), model)
        what = f"weights {os.fspath(weights)}"
    elif source.startswith(hub.HF_HUB_PREFIX):
        state_dict, what = _read_hub_file(weights_path, f"{source} {WEIGHTS_NAME}"), f"weights of {source}"
    else:
        state_dict, what = read_state_dict(weights_path, allow_pickle=allow_pickle), f"weights in {Path(weights_path).parent}"
    if config.get("quantization"):
        return _load_quantized(model, spec, config["quantization"], state_dict, what)
    state_dict = _convert(spec, state_dict, model)  # a transformers-layout folder keeps transformers' key names
    head = head_names(model, spec)
    state_dict, reset = _own_head(model, state_dict, head, labels, reset=num_classes is not None)
    apply_state_dict(model, state_dict, head=head, reset_head=reset, source=what)
    return model


def _load_quantized(model: nn.Module, spec: ModelSpec, settings: dict, state_dict: dict, what: str) -> nn.Module:
    """A QAT model: prepared as the run prepared it, its state loaded, converted to the int8 reference model."""
    from zoo import quantize

    prepared = quantize.prepare(model, settings, spec.input_size)
    differing = prepared.state_dict().keys() ^ state_dict.keys()
    if differing:
        raise WeightsError(
            f"{what} do not fit the quantized {spec.name} this zoo prepares ({len(differing)} keys differ, e.g. "
            f"{sorted(differing)[:3]}); was it saved by another zoo or torchao version?"
        )
    prepared.load_state_dict(state_dict, strict=True)
    model = quantize.convert(prepared)
    model.zoo_spec = spec
    state_of(model).quantization, state_of(model).int8 = dict(settings), True
    return model


def _load_run_checkpoint(path: Path, num_classes, kwargs) -> nn.Module:
    """A Lightning checkpoint of a zoo run (``RUN/checkpoints/*.ckpt``), next to the run's ``model/``.

    The run wrote it, so it is read with ``torch.load(weights_only=True)`` without the pickle opt-in;
    the EMA weights are taken when the run kept an EMA, as the run's saved model does.
    """
    import torch

    model_dir = path.parent.parent / "model"
    if not (model_dir / CONFIG_NAME).is_file():
        raise SourceError(
            f"{path} is not inside a zoo run directory (no {model_dir / CONFIG_NAME}); for other checkpoints use "
            "zoo.load(NAME, weights=PATH, allow_pickle=True)"
        )
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)["state_dict"]
    except Exception as e:
        raise CorruptWeightsError(f"{path} could not be read as a Lightning checkpoint: {e}") from None
    from zoo.contracts import CHECKPOINT_WEIGHTS

    prefix = next((p for p in CHECKPOINT_WEIGHTS if any(k.startswith(p) for k in state)), CHECKPOINT_WEIGHTS[-1])
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    config = _read_config(model_dir / CONFIG_NAME, str(path))
    model = _load_saved(config, None, str(path), num_classes, None, False, kwargs, state_dict=weights)
    return model


def _read_json(path: Path | None, source: str) -> Any:
    """A JSON file beside config.json (transformers' ``preprocessor_config.json``), or None where there is none."""
    if path is None or not Path(path).is_file():
        return None
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SourceError(f"{source}: cannot read {Path(path).name} ({e})") from None


def _read_config(path: Path, source: str, evict_on_error: bool = False, read_processor=lambda: None) -> dict:
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        if evict_on_error:  # a damaged download must not stay in the cache
            hub.evict(path)
        raise SourceError(f"{source}: cannot read {CONFIG_NAME} ({e})") from None
    config = zoo_fields(config, source, read_processor)  # a timm or transformers folder's, or the zoo's kept under its key
    if not isinstance(config, dict) or config.get("format") != FORMAT or "architecture" not in config:
        raise SourceError(
            f"{source}: {CONFIG_NAME} is neither zoo.save's (\"format\": \"{FORMAT}\" and architecture), timm's "
            "(architecture and pretrained_cfg) nor transformers' (model_type). For other repos, load the weights into a "
            "registered architecture: "
            "zoo.load(NAME, weights=PATH)"
        )
    version = config.get("format_version", 1)
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise SourceError(
            f"{source} was saved by a newer efficient-zoo (format {config['format_version']}); upgrade: pip install -U efficient-zoo"
        )
    problem = _config_problem(config)
    if problem:
        if evict_on_error:
            hub.evict(path)
        raise SourceError(f"{source}: {CONFIG_NAME} is not one zoo.save writes: {problem}; nothing was built")
    return config


MAX_CLASSES = 1_000_000  # far above any label set (ImageNet-21k-P: 11221), far below what fills memory
_CONFIG_KEYS = {"format", "format_version", "zoo_version", "architecture", "family", "task", "tag", "num_classes", "labels",
                "model_kwargs", "preprocessing", "structure", "quantization"}
_KWARG_VALUES = (str, int, float, bool, type(None))


def _plain(value: Any, depth: int = 0) -> bool:
    """A JSON value zoo.save could have written for a builder argument: numbers, strings, lists and string-keyed
    mappings of them, nested at most 4 deep (an SNN's neuron settings, a DETR's config overrides)."""
    if isinstance(value, _KWARG_VALUES):
        return True
    if depth >= 4:
        return False
    if isinstance(value, list):
        return all(_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and not k.startswith("__") and _plain(v, depth + 1) for k, v in value.items())
    return False


def _config_problem(config: dict) -> str | None:
    """What in a ``config.json`` zoo.save could not have written (types, ranges, known keys), or None.

    ``config.json`` comes from folders and Hub repos the user did not write: it may choose a registered architecture,
    its classes, labels, builder arguments and preprocessing, and a pruned structure (checked against the built
    model in :func:`apply_pruned_structure`), nothing else."""
    import math

    def whole(v, low, high):
        return isinstance(v, int) and not isinstance(v, bool) and low <= v <= high

    unknown = sorted(set(config) - _CONFIG_KEYS)
    if unknown:
        return f"unknown keys {unknown[:5]}"
    if not isinstance(config.get("architecture"), str) or not whole(config.get("format_version", 1), 1, 10**6):
        return "architecture must be a name and format_version a whole number"
    tag = config.get("tag")
    if tag is not None and not (isinstance(tag, str) and len(tag) <= 100 and tag.replace("_", "").replace("-", "").replace(".", "").isalnum()):
        return f"tag {tag!r:.60} is not a weights tag name"
    n = config.get("num_classes")
    if n is not None and not whole(n, 0, MAX_CLASSES):
        return f"num_classes {n!r:.40} is not a whole number from 0 to {MAX_CLASSES}"
    labels = config.get("labels")
    if labels is not None and not (isinstance(labels, list) and len(labels) <= MAX_CLASSES and all(isinstance(x, str) and len(x) <= 1000 for x in labels)
                                   and (n is None or len(labels) == n)):
        return "labels must be a list of names, one per class"
    kwargs = config.get("model_kwargs", {})
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) and k.isidentifier() and not k.startswith("_") for k in kwargs) or not all(
            _plain(v) for v in kwargs.values()):
        return "model_kwargs must map argument names to plain values"
    pre = config.get("preprocessing") or {}
    if not isinstance(pre, dict) or set(pre) - {"input_size", "mean", "std", "interpolation", "crop_pct"}:
        return "preprocessing has keys other than input_size, mean, std, interpolation and crop_pct"
    size = pre.get("input_size")
    if size is not None and not (isinstance(size, list) and len(size) in (1, 3) and all(whole(v, 1, 1 << 16) for v in size)):
        return f"input_size {size!r:.60} is not [channels, height, width] (or [tokens])"
    for key in ("mean", "std"):
        v = pre.get(key)
        if v is not None and not (isinstance(v, list) and 1 <= len(v) <= 4 and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                                                   and math.isfinite(x) and (key == "mean" or x > 0) for x in v)):
            return f"{key} {v!r:.60} is not a list of finite numbers" + (" above 0" if key == "std" else "")
    crop = pre.get("crop_pct")
    if crop is not None and not (isinstance(crop, (int, float)) and not isinstance(crop, bool) and 0 < crop <= 1):
        return f"crop_pct {crop!r:.40} is not in (0, 1]"
    if pre.get("interpolation") is not None and pre["interpolation"] not in ("bilinear", "bicubic", "nearest", "area", "lanczos"):
        return f"interpolation {pre['interpolation']!r:.40} is not one timm knows"
    structure = config.get("structure")
    if structure is not None and not (isinstance(structure, dict) and all(
            isinstance(name, str) and isinstance(r, dict) and set(r) <= {"shapes", "attrs"} and isinstance(r.get("shapes"), dict)
            and isinstance(r.get("attrs", {}), dict) for name, r in structure.items())):
        return "structure must map module names to {shapes, attrs}"
    quantization = config.get("quantization")
    if quantization is not None:
        from zoo.errors import ConfigError
        from zoo.quantize import settings

        try:
            if not isinstance(quantization, dict) or quantization != settings(quantization.get("quantizer", ""), quantization.get("activations", "")):
                return "quantization is not a setting zoo's QAT records"
        except ConfigError as e:
            return f"quantization: {e}"
    return None


def _read_hub_file(path: Path, where: str, allow_pickle: bool = False) -> dict:
    """Read a downloaded weights file; a file that does not parse is evicted from the cache."""
    try:
        return read_state_dict(path, allow_pickle=allow_pickle)
    except CorruptWeightsError as e:
        hub.evict(path)
        raise CorruptWeightsError(f"{where}: {e} It was removed from the cache; the next load downloads it again.") from None


# -- building --------------------------------------------------------------------------------------


def _build(spec: ModelSpec, num_classes: int, kwargs: dict, replace_kwargs: bool = False) -> tuple[nn.Module, ModelSpec]:
    model_kwargs = dict(kwargs) if replace_kwargs else {**spec.default_kwargs, **kwargs}
    import inspect

    try:
        inspect.signature(spec.builder).bind(num_classes=num_classes, **model_kwargs)
    except TypeError as e:
        raise BadArgumentError(f"{spec.name}: cannot build with arguments {model_kwargs}: {e}") from None
    try:
        model = spec.builder(num_classes=num_classes, **model_kwargs)
    except TypeError as e:  # a builder that takes **kwargs (timm's) refuses an argument only when it runs
        if not kwargs:
            raise
        raise BadArgumentError(f"{spec.name}: cannot build with arguments {dict(kwargs)}: {e}") from None
    labels = spec.labels if spec.labels is not None and len(spec.labels) == num_classes else None
    size = model_kwargs.get("img_size")  # builders that take one (ViTs) are built for that input size
    input_size = (spec.input_size[0], *((size, size) if isinstance(size, int) else size)) if size else spec.input_size
    if model_kwargs.get("context_length"):  # language models: the number of tokens
        input_size = (int(model_kwargs["context_length"]),)
    vocab_size = spec.vocab_size
    if getattr(model, "token_input", None):  # a text encoder alone (an image-text model's text tower): (context, vocab)
        input_size, vocab_size = (model.token_input[0],), model.token_input[1]
    spec = dataclasses.replace(spec, num_classes=num_classes, default_kwargs=model_kwargs, labels=labels, input_size=tuple(input_size),
                               vocab_size=vocab_size)
    model.zoo_spec = spec
    return model, spec


_STRUCTURE_ATTRS = ("in_channels", "out_channels", "groups", "num_features", "in_features", "out_features",
                    "normalized_shape", "num_heads", "head_dim", "dim")


def pruned_structure(model: nn.Module) -> dict[str, dict]:
    """Every module's tensor shapes and width attributes, as JSON (a pruned model's architecture)."""
    out = {}
    for name, module in model.named_modules():
        tensors = {k: list(v.shape) for k, v in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
                   if v is not None}
        if not tensors:
            continue
        attrs = {}
        for attr in _STRUCTURE_ATTRS:
            value = getattr(module, attr, None)
            if isinstance(value, int) and not isinstance(value, bool) or isinstance(value, tuple) and all(isinstance(v, int) for v in value):
                attrs[attr] = list(value) if isinstance(value, tuple) else value
        out[name] = {"shapes": tensors, "attrs": attrs}
    return out


def _with_classes(structure: dict[str, dict], heads: Sequence[str], classes: int) -> dict[str, dict]:
    """A pruned structure for a new number of classes: each classifier keeps its pruned inputs, with ``classes`` outputs."""
    out = dict(structure)
    for name in heads:
        if name in out:
            record = out[name]
            attrs = {k: classes if k in ("out_features", "out_channels") else v for k, v in record.get("attrs", {}).items()}
            shapes = {k: [classes, *shape[1:]] for k, shape in record["shapes"].items()}
            out[name] = {**record, "attrs": attrs, "shapes": shapes}
    return out


def apply_pruned_structure(model: nn.Module, structure: dict[str, dict]) -> None:
    """Resize a freshly built model's tensors and width attributes to a recorded structure."""
    import torch
    from torch import nn

    for name, record in structure.items():
        try:
            module = model.get_submodule(name)
        except AttributeError:
            raise WeightsError(f"the saved structure names a module {name!r} this architecture does not have") from None
        for attr, value in record.get("attrs", {}).items():  # only the widths pruned_structure records, and only smaller
            current = getattr(module, attr, None)
            if attr not in _STRUCTURE_ATTRS or not _narrower(value, current):
                raise WeightsError(f"the saved structure sets {name}.{attr} to {value!r:.40}: a structure may only narrow "
                                   f"the architecture's widths ({', '.join(_STRUCTURE_ATTRS)})")
            setattr(module, attr, tuple(value) if isinstance(current, tuple) else value)
        for key, shape in record["shapes"].items():
            old = getattr(module, key, None)
            if not isinstance(old, torch.Tensor) or not _narrower(shape, list(old.shape)):
                raise WeightsError(f"the saved structure gives {name}.{key} the shape {shape!r:.60}, which the architecture "
                                   f"cannot take (a pruned tensor keeps its rank and only shrinks)")
            if list(old.shape) == shape:
                continue
            fresh = torch.empty(shape, dtype=old.dtype)
            if isinstance(old, nn.Parameter):
                setattr(module, key, nn.Parameter(fresh, requires_grad=old.requires_grad))
            else:
                module._buffers[key] = fresh


def _narrower(value: Any, current: Any) -> bool:
    """Whether a recorded width (a number, or a list of them) is a positive one no larger than the built model's."""
    def whole(v):
        return isinstance(v, int) and not isinstance(v, bool)

    if whole(current):
        return whole(value) and 1 <= value <= current
    if isinstance(current, (tuple, list)) and isinstance(value, list) and len(value) == len(current):
        return all(whole(v) and whole(c) and 0 <= v <= c for v, c in zip(value, current))
    return False


def head_names(model: nn.Module, spec: ModelSpec) -> tuple[str, ...]:
    if spec.classifier:
        return spec.classifier
    head = (getattr(model, "pretrained_cfg", None) or {}).get("classifier")  # timm models name theirs
    if head is None:
        return ()
    return (head,) if isinstance(head, str) else tuple(head)


def _convert(spec: ModelSpec, state_dict: dict, model: nn.Module) -> dict:
    """Apply the family's converter when the keys are not already this model's."""
    if spec.convert_state_dict is None or state_dict.keys() <= model.state_dict().keys():
        return state_dict
    try:
        return dict(spec.convert_state_dict(state_dict, model))
    except Exception as e:
        raise WeightsError(f"{spec.name}: could not convert these weights' keys ({type(e).__name__}: {e})") from None


def _features(model: nn.Module, out_indices) -> nn.Module:
    """Wrap a model so its forward returns multi-scale feature maps (timm's forward_intermediates seam)."""
    if not hasattr(model, "forward_intermediates"):
        raise ZooError(f"{model.zoo_spec.name} does not expose feature maps (no forward_intermediates)")
    from timm.models._features import FeatureGetterNet

    spec = model.zoo_spec
    n = len(getattr(model, "feature_info", [])) or 4
    indices = tuple(out_indices) if out_indices is not None else tuple(range(n))
    wrapped = FeatureGetterNet(model, out_indices=indices)
    wrapped.zoo_spec = spec
    state_of(wrapped).features_only = True
    return wrapped


def _spec_of(model: nn.Module) -> ModelSpec:
    spec = getattr(model, "zoo_spec", None)
    if not isinstance(spec, ModelSpec):
        raise ZooError("this model has no zoo_spec: zoo.save takes models made by zoo.load")
    return spec


def _version() -> str:
    from zoo._version import __version__

    return __version__


__all__ = ["load", "save", "CONFIG_NAME", "WEIGHTS_NAME"]
