"""efficient-zoo: efficient neural architectures by name, with weights, recipes and exports.

>>> import zoo
>>> zoo.list_models("mobilenetv3*")
['mobilenetv3_large_100', 'mobilenetv3_small_100']
>>> model = zoo.load("mobilenetv3_small_100", num_classes=10)

``import zoo`` stays light: torch, timm and friends are imported only by the functions that need
them (the public names below resolve lazily on first use).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from zoo._version import __version__

# public name -> module that defines it
_LAZY = {
    "load": "zoo.api",
    "save": "zoo.api",
    "info": "zoo.registry",
    "list_models": "zoo.registry",
    "register_model": "zoo.registry",
    "ModelSpec": "zoo.registry",
    "ModelInfo": "zoo.registry",
    "WeightTag": "zoo.registry",
    "Paper": "zoo.registry",
    "Reported": "zoo.registry",
    "errors": "zoo.errors",
    "export": "zoo.export",  # the package is callable: zoo.export(model, "onnx", ...)
    "ExportResult": "zoo.export",
    "matformer": "zoo.matformer",  # zoo.matformer.extract(model, "m")
    "ofa": "zoo.ofa",  # zoo.ofa.specialize(model, budget_ms=5)
    "push": "zoo.publish",  # zoo.push(run_dir, "org/name")
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from zoo import errors
    from zoo import export, matformer, ofa
    from zoo.api import load, save
    from zoo.export import ExportResult
    from zoo.publish import push
    from zoo.registry import ModelInfo, ModelSpec, Paper, Reported, WeightTag, info, list_models, register_model


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zoo' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if name in ("errors", "export", "matformer", "ofa") else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
