"""The model registry: architecture names -> :class:`ModelSpec`.

A spec is plain data (what the model is, how to preprocess its input, which weights exist and under
which licence, which paper it comes from and what that paper reports) plus a ``builder`` that makes the
``nn.Module``. Names are ``arch`` or ``arch.tag`` where the tag chooses weights, as in timm.

Built-in families register themselves when ``zoo.models`` is imported; third-party packages register
through the ``zoo.models`` entry-point group (the entry point names a module to import, or a function
to call, that registers its models). Both are loaded on the first query, never at ``import zoo``.
This module imports nothing heavy, and listing and describing models touches no weights and no timm
(families written in this repo import torch to define their modules, next to their registration).
"""
from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from zoo.errors import (
    NoPretrainedWeightsError,
    RegistryError,
    UnknownModelError,
    UnknownTagError,
    UnknownTaskError,
    closest,
)
from zoo.task_table import TASKS

ENTRY_POINT_GROUP = "zoo.models"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # CLIP's image statistics (open_clip's and timm's OPENAI_CLIP_*)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class Paper:
    """The publication an architecture comes from."""

    title: str
    arxiv: str
    bibtex: str
    code_url: str = ""
    code_license: str = ""

    @property
    def url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv}"


@dataclass(frozen=True)
class Reported:
    """A number a paper reports. Never measured here; always shown with its source.

    ``value`` is kept as printed in the paper (``5.4`` for "5.4M"): its last printed digit tells how
    much the paper rounded, which comparisons against our own measurements must allow for.
    """

    metric: str  # "top1", "params", "macs", "zeroshot_top1", "box_ap", ...
    value: float
    unit: str = ""  # "%", "M", "G"
    source: str = ""  # e.g. "arXiv:1905.02244, Table 3"
    dataset: str = ""
    resolution: int | None = None
    note: str = ""

    @property
    def rounding(self) -> float:
        """Half a unit of the last digit the paper printed (the rounding it may hide)."""
        exponent = Decimal(repr(self.value)).normalize().as_tuple().exponent
        return 0.5 * 10.0 ** min(int(exponent), 0)

    def __str__(self) -> str:
        return f"{self.value}{self.unit}"


@dataclass(frozen=True)
class WeightTag:
    """One set of published weights for an architecture (the ``tag`` in ``arch.tag``)."""

    tag: str
    hf_hub_id: str
    license: str
    dataset: str = ""
    filename: str = "model.safetensors"
    revision: str | None = None
    num_classes: int | None = None  # None: the spec's
    input_size: tuple[int, int, int] | None = None  # None: the spec's
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    crop_pct: float | None = None
    interpolation: str | None = None
    description: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """Everything the zoo knows about an architecture, without building it.

    A model returned by :func:`zoo.load` carries a copy as ``model.zoo_spec``, with ``tag``,
    ``num_classes``, ``labels``, ``default_kwargs`` and preprocessing set to what that model really is.
    """

    name: str
    family: str
    task: str
    builder: Callable[..., Any]
    default_kwargs: Mapping[str, Any] = field(default_factory=dict)
    input_size: tuple[int, ...] = (3, 224, 224)  # (C, H, W); a language model's: (context length,)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    fixed_input_size: bool = False
    min_input_size: int | None = None  # smallest square side the model accepts (DETRs: enough encoder positions)
    vocab_size: int = 0  # a text encoder's token ids (input_size is then (context length,)); language models: num_classes
    num_classes: int = 1000
    classifier: tuple[str, ...] = ()  # module names of the head(s) reset when num_classes changes
    weights: tuple[WeightTag, ...] = ()
    paper: Paper | None = None
    reported: tuple[Reported, ...] = ()
    license: str = "apache-2.0"  # licence of the code that builds the model
    description: str = ""
    # Converts a foreign state dict (official/upstream key names) to this model's keys: fn(state_dict, model).
    convert_state_dict: Callable[[dict, Any], dict] | None = None
    # Export formats whose converter cannot take the model -> why (the export matrix found it); export refuses those
    # at once instead of after a long capture. Drop an entry to try the runtime again.
    cannot_export: Mapping[str, str] = field(default_factory=dict)
    # Set on loaded models only:
    tag: str | None = None
    labels: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "default_kwargs", MappingProxyType(dict(self.default_kwargs)))
        object.__setattr__(self, "cannot_export", MappingProxyType(dict(self.cannot_export)))
        object.__setattr__(self, "weights", tuple(self.weights))
        object.__setattr__(self, "reported", tuple(self.reported))
        object.__setattr__(self, "classifier", tuple(self.classifier))
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(self.labels))

    def __deepcopy__(self, memo: dict) -> ModelSpec:
        return self  # immutable: copies of a model (EMA, deepcopy) share their spec

    def __reduce__(self):  # picklable although default_kwargs is a read-only mapping
        state = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        state["default_kwargs"] = dict(self.default_kwargs)
        state["cannot_export"] = dict(self.cannot_export)
        return (_spec_from_fields, (state,))

    @property
    def takes_tokens(self) -> bool:
        """A language model or a text encoder: its input is token ids ``[B, input_size[0]]`` below :attr:`vocab`."""
        return self.task == "language-modeling" or self.vocab_size > 0

    @property
    def vocab(self) -> int:
        """How many token ids the model takes (a language model's classes are its vocabulary)."""
        return self.vocab_size or (self.num_classes if self.task == "language-modeling" else 0)

    # -- weights ---------------------------------------------------------------------------------
    @property
    def tags(self) -> list[str]:
        return [w.tag for w in self.weights]

    @property
    def default_tag(self) -> str | None:
        return self.weights[0].tag if self.weights else None

    @property
    def has_weights(self) -> bool:
        return bool(self.weights)

    def weight(self, tag: str | None = None) -> WeightTag:
        """The weights for ``tag`` (default: the first listed)."""
        if not self.weights:
            raise NoPretrainedWeightsError(
                f"{self.name!r} has no published weights; load it with pretrained=False, "
                f"or pass weights=PATH. Models with weights: zoo.list_models(pretrained=True)"
            )
        if tag is None:
            return self.weights[0]
        for w in self.weights:
            if w.tag == tag:
                return w
        hint = closest(tag, self.tags, n=3)
        raise UnknownTagError(
            f"{self.name!r} has no weights tagged {tag!r}. Valid tags: {', '.join(self.tags)}"
            + (f" (did you mean {hint[0]!r}?)" if hint else "")
        )

    # -- what the paper says ---------------------------------------------------------------------
    def reported_value(self, metric: str) -> Reported | None:
        for r in self.reported:
            if r.metric == metric:
                return r
        return None

    @property
    def headline(self) -> Reported | None:
        """The paper's main quality number (the first reported metric that is not params/MACs)."""
        for r in self.reported:
            if r.metric not in ("params", "macs", "flops"):
                return r
        return None

    def preprocessing(self) -> dict[str, Any]:
        """How to prepare an input image for this model (timm's data-config keys)."""
        return {
            "input_size": self.input_size,
            "mean": self.mean,
            "std": self.std,
            "interpolation": self.interpolation,
            "crop_pct": self.crop_pct,
        }

    def for_weights(self, tag: str) -> ModelSpec:
        """This spec with its preprocessing, class count and ``tag`` set from the weights ``tag``."""
        w = self.weight(tag)
        return dataclasses.replace(
            self,
            tag=w.tag,
            num_classes=w.num_classes if w.num_classes is not None else self.num_classes,
            input_size=w.input_size or self.input_size,
            mean=w.mean or self.mean,
            std=w.std or self.std,
            crop_pct=w.crop_pct if w.crop_pct is not None else self.crop_pct,
            interpolation=w.interpolation or self.interpolation,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (``zoo info --json``)."""
        builder = f"{getattr(self.builder, '__module__', '?')}:{getattr(self.builder, '__qualname__', repr(self.builder))}"
        return {
            "name": self.name,
            "family": self.family,
            "task": self.task,
            "builder": builder,
            "default_kwargs": dict(self.default_kwargs),
            "num_classes": self.num_classes,
            "preprocessing": self.preprocessing(),
            "fixed_input_size": self.fixed_input_size,
            "min_input_size": self.min_input_size,
            "license": self.license,
            "tag": self.tag,
            "weights": [dataclasses.asdict(w) for w in self.weights],
            "paper": dataclasses.asdict(self.paper) | {"url": self.paper.url} if self.paper else None,
            "reported": [dataclasses.asdict(r) for r in self.reported],
            "description": self.description,
        }


@dataclass
class ModelState:
    """What training and conversion did to a model made by :func:`zoo.load`: the one place where plugins tell
    ``zoo.save``, ``zoo.export`` and ``zoo bench`` about it. It sits on the model as ``model.zoo_state``, beside
    ``model.zoo_spec`` (what the model is); read and change it through :func:`state_of`."""

    pruned: bool = False  # layer widths differ from the architecture's: zoo.save records them, zoo.load rebuilds them
    structure: dict | None = None  # those widths, recorded before QAT captured the graph (capture hides them)
    quantization: dict | None = None  # QAT settings: the model is a PT2E graph, prepared for training or converted
    int8: bool = False  # the converted int8 reference graph: for inference and export; zoo.save refuses it
    deploy_form: bool = False  # re-parameterised for inference: zoo.export does not fold it twice
    features_only: bool = False  # a feature-extractor wrapper, not a whole model: zoo.save refuses it


def state_of(model) -> ModelState:
    """``model.zoo_state``, attached on first use: a model nothing has changed reads as the defaults."""
    state = getattr(model, "zoo_state", None)
    if not isinstance(state, ModelState):
        state = ModelState()
        model.zoo_state = state
    return state


def _spec_from_fields(fields: dict[str, Any]) -> ModelSpec:
    return ModelSpec(**fields)


# The public name for what `zoo.info` returns (a model's facts, before any module is built).
ModelInfo = ModelSpec

_REGISTRY: dict[str, ModelSpec] = {}
_populated = False  # True once built-ins and entry points have all been imported
_populating = False  # True while this thread imports them (a family may query the registry meanwhile)
_lock = threading.RLock()


def _check_name(name: str) -> None:
    if not name or any(c in name for c in ".:/\\ ") or name != name.strip():
        raise RegistryError(f"invalid model name {name!r}: use letters, digits, '_' and '-' (no '.', ':', '/')")


def register_spec(spec: ModelSpec) -> ModelSpec:
    """Add a fully built :class:`ModelSpec` to the registry."""
    _check_name(spec.name)
    if spec.task not in TASKS:
        raise RegistryError(f"{spec.name!r}: unknown task {spec.task!r}; valid tasks: {', '.join(TASKS)}")
    tags = [w.tag for w in spec.weights]
    if len(set(tags)) != len(tags):
        raise RegistryError(f"{spec.name!r}: duplicate weight tags in {tags}")
    with _lock:
        old = _REGISTRY.get(spec.name)
        if old is not None and getattr(old.builder, "__module__", None) != getattr(spec.builder, "__module__", None):
            raise RegistryError(
                f"model name {spec.name!r} is already registered by {old.builder.__module__}; "
                f"choose another name for the one in {spec.builder.__module__}"
            )
        _REGISTRY[spec.name] = spec
    return spec


def register_model(fn: Callable | None = None, /, **fields: Any):
    """Register a builder ``fn(**kwargs) -> nn.Module`` under ``name`` (default: the function's name).

    The keyword arguments are :class:`ModelSpec` fields::

        @zoo.register_model(family="tiny", task="classification", num_classes=10)
        def tiny_net(num_classes=10, **kwargs):
            return TinyNet(num_classes, **kwargs)
    """

    def decorate(builder: Callable) -> Callable:
        try:
            spec = ModelSpec(name=fields.pop("name", builder.__name__), builder=builder, **fields)
        except TypeError as e:
            valid = ", ".join(f.name for f in dataclasses.fields(ModelSpec) if f.name not in ("name", "builder"))
            raise RegistryError(f"register_model({builder.__name__}): {e}. Valid fields: {valid}") from None
        register_spec(spec)
        return builder

    return decorate(fn) if fn is not None else decorate


def _load_entry_points() -> None:
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            if callable(obj):  # a registration function; a module registered itself on import
                obj()
        except Exception as e:  # a broken third-party package must not break the zoo
            warnings.warn(
                f"skipping {ENTRY_POINT_GROUP} entry point {ep.name!r} ({ep.value}) from "
                f"{getattr(ep.dist, 'name', '?')}: {type(e).__name__}: {e}",
                RuntimeWarning,
                stacklevel=3,
            )


def populate() -> dict[str, ModelSpec]:
    global _populated, _populating
    if _populated:
        return _REGISTRY
    with _lock:  # other threads wait here until the registry is complete
        if _populated or _populating:
            return _REGISTRY
        _populating = True
        try:
            importlib.import_module("zoo.models")
            _load_entry_points()
            _populated = True
        finally:
            _populating = False
    return _REGISTRY


def split_name(name: str) -> tuple[str, str | None]:
    """``"arch.tag"`` -> ``("arch", "tag")``; ``"arch"`` -> ``("arch", None)``."""
    arch, _, tag = name.partition(".")
    return arch, (tag or None)


def get_spec(name: str) -> ModelSpec:
    """The spec for ``arch`` or ``arch.tag``; for a tag, with that weights' preprocessing set."""
    registry = populate()
    arch, tag = split_name(name)
    spec = registry.get(arch)
    if spec is None:
        hints = closest(arch, registry)
        raise UnknownModelError(
            f"unknown model {arch!r}."
            + (f" Closest registered names: {', '.join(hints)}." if hints else "")
            + " See all with `zoo list` or zoo.list_models()."
        )
    return spec.for_weights(tag) if tag is not None else spec


def info(name: str) -> ModelInfo:
    """Describe a model (spec, weight tags and licences, paper, reported metrics) without building it."""
    return get_spec(name)


def list_models(
    pattern: str | Sequence[str] = "*", *, task: str | None = None, pretrained: bool = False
) -> list[str]:
    """Registered names matching ``pattern`` (fnmatch; a list means any of them).

    With ``pretrained=True`` only architectures with weights are listed, as ``arch.tag`` names.
    """
    registry = populate()
    if task is not None and task not in TASKS:
        raise UnknownTaskError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    out: list[str] = []
    for arch in sorted(registry):
        spec = registry[arch]
        if task is not None and spec.task != task:
            continue
        if pretrained:
            for tag in spec.tags:
                full = f"{arch}.{tag}"
                if _matches(full, patterns) or _matches(arch, patterns):
                    out.append(full)
        elif _matches(arch, patterns):
            out.append(arch)
    return out


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)
