"""Reading weight files safely, and fitting a state dict into a model all-or-nothing.

Safetensors are read as they are. Pickle-based files (``.pt``, ``.pth``, ``.bin``, ``.ckpt``) can run
code when unpickled, so they are refused unless the caller opts in with ``allow_pickle=True``, and even
then read with ``torch.load(weights_only=True)``, which accepts only tensors and plain containers. A file
that pickles whole modules (an ultralytics-style checkpoint) is then read by :func:`module_pickle_state`, whose
unpickler builds none of the file's objects: every class or function it names, outside the few that rebuild
tensors, becomes an inert record of its arguments and state, from which the modules' tensors are collected.

A state dict is checked against the model before anything is copied: every key and shape must fit,
except the classifier head when the caller asked for a different number of classes (then the head keeps
its fresh initialisation and a warning says so). Nothing is ever half-loaded.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.errors import CorruptWeightsError, UnsafeWeightsError, WeightsError

if TYPE_CHECKING:
    import torch
    from torch import nn

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle", ".tar")
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module", "model_ema", "state_dict_ema")


def read_state_dict(path: str | Path, *, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Read a weights file into a flat ``{name: tensor}`` dict on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as e:  # SafetensorError, OSError, ... all mean the same thing to the user
            raise CorruptWeightsError(
                f"{path} is not a readable safetensors file ({str(e).strip() or type(e).__name__}); it may be "
                "truncated or corrupt: download or export it again."
            ) from None
    if not allow_pickle:
        kind = "a pickle-based file" if path.suffix in PICKLE_SUFFIXES else f"not a .safetensors file ({path.suffix or 'no suffix'})"
        raise UnsafeWeightsError(
            f"{path} is {kind}; unpickling can run arbitrary code. Convert it to safetensors, or pass "
            "allow_pickle=True to read it with torch.load(weights_only=True), which accepts only tensors."
        )
    import pickle

    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        state = module_pickle_state(path)
        if state:
            return state
        raise UnsafeWeightsError(
            f"{path} holds objects other than tensors and plain containers, which weights_only=True refuses "
            f"({str(e).splitlines()[0]}). Re-save only its state_dict, ideally as safetensors."
        ) from None
    except (RuntimeError, EOFError, ValueError) as e:
        raise CorruptWeightsError(f"{path} could not be read as a PyTorch weights file: {e}") from None
    return _unwrap(obj, path)


class _Inert:
    """A class or function named by a pickle, outside the allowlist: calling it, building it or filling it only
    records what it was given."""

    origin = ""

    def __init__(self, *args, **kwargs) -> None:
        self.args, self.state = args, None

    def __setstate__(self, state) -> None:
        self.state = state

    def __setitem__(self, key, value) -> None:
        pass

    def append(self, value) -> None:
        pass

    def extend(self, values) -> None:
        pass


def _inert_unpickler():
    import collections
    import functools
    import pickle

    import torch

    allowed = {("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
               ("collections", "OrderedDict"), ("torch", "Size"), ("builtins", "set"), ("builtins", "frozenset")}
    allowed |= {("__builtin__", name) for module, name in allowed if module == "builtins"}  # protocol 2's name

    @functools.cache
    def inert(module: str, name: str) -> type:
        return type(name, (_Inert,), {"origin": f"{module}.{name}"})

    def reconstruct(cls, base, state):  # copyreg._reconstructor, for inert classes only
        return cls.__new__(cls) if isinstance(cls, type) and issubclass(cls, _Inert) else _Inert()

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            if (module, name) in allowed:
                return {"OrderedDict": collections.OrderedDict, "set": set, "frozenset": frozenset, "Size": torch.Size,
                        }.get(name) or getattr(torch._utils, name)
            if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
                return getattr(torch, name)
            if (module, name) == ("copyreg", "_reconstructor"):
                return reconstruct
            return inert(module, name)

    return Unpickler


def module_pickle_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The parameters and persistent buffers of a checkpoint that pickles whole ``nn.Module`` objects (ultralytics
    and its forks: ``{"model": <module>, "ema": <module or None>, ...}``), keyed by their module paths, read without
    building any of the file's classes (see the module docstring); the EMA when the file holds one. Empty when the
    file holds no such module."""
    import types

    import torch

    unpickler = _inert_unpickler()
    pickle_module = types.SimpleNamespace(Unpickler=unpickler, load=lambda f, **kw: unpickler(f, **kw).load(),
                                          __name__="zoo_inert_pickle")  # load: the pre-1.6 format's header records
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=False, pickle_module=pickle_module)
    except Exception as e:  # a file this reader cannot follow is as unreadable as a corrupt one
        raise CorruptWeightsError(f"{path} could not be read as a pickled checkpoint: {e}") from None
    roots = [obj.get(k) for k in ("ema", "model")] if isinstance(obj, Mapping) else [obj]
    for root in roots:
        state: dict[str, torch.Tensor] = {}
        _collect(root, "", state)
        if state:
            return state
    return {}


def _collect(module: object, prefix: str, out: dict) -> None:
    import torch

    state = getattr(module, "state", None) if isinstance(module, _Inert) else None
    if not isinstance(state, Mapping):
        return
    transient = state.get("_non_persistent_buffers_set") or ()
    for group in ("_parameters", "_buffers"):
        for name, tensor in (state.get(group) or {}).items():
            if isinstance(tensor, torch.Tensor) and not (group == "_buffers" and name in transient):
                out[prefix + name] = tensor
    for name, child in (state.get("_modules") or {}).items():
        _collect(child, f"{prefix}{name}.", out)


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """Find the state dict inside common checkpoint wrappers ({'model': ...}, {'state_dict': ...})."""
    import torch

    for _ in range(3):
        if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        if isinstance(obj, Mapping):
            inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
            if inner is not None:
                obj = inner
                continue
        break
    raise WeightsError(
        f"{path} does not contain a state dict (a mapping of names to tensors, possibly under one of "
        f"{', '.join(_WRAPPER_KEYS)})"
    )


def in_head(key: str, head: Iterable[str]) -> bool:
    return any(key == h or key.startswith(h + ".") for h in head)


def head_classes(state_dict: Mapping[str, torch.Tensor], head: Iterable[str]) -> int | None:
    """The number of classes a state dict's first head produces (rows of its weight), if it has one."""
    for h in head:
        w = state_dict.get(f"{h}.weight")
        if w is None:  # a head made of several layers (e.g. a detector's class branch): its last weight
            w = next((v for k, v in reversed(state_dict.items()) if k.startswith(f"{h}.") and k.endswith(".weight")), None)
        if w is not None and w.ndim >= 1:
            return int(w.shape[0])
    return None


def keep_matching_classes(
    state_dict: Mapping[str, torch.Tensor],
    model: nn.Module,
    head: Iterable[str],
    ours: Sequence[str],
    theirs: Sequence[str],
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Fit a head trained on classes ``theirs`` to classes ``ours``, keeping the rows of classes in both.

    Every head tensor whose first dimension counts the classes (plus a fixed number of extra rows, such as
    a DETR's "no object" embedding) is rebuilt at our size: rows of classes named in both lists (case,
    ``_`` and ``-`` ignored) are copied from the weights, the others keep the model's fresh initialisation.
    Returns the new state dict and the names kept; nothing kept (no shared names, as many classes as the
    weights, or a head whose other dimensions depend on the class count) returns ``state_dict`` unchanged
    and an empty list.
    """
    def norm(name: str) -> str:
        return " ".join(str(name).lower().replace("_", " ").replace("-", " ").split())

    position = {norm(name): i for i, name in enumerate(theirs)}
    rows = [position.get(norm(name)) for name in ours]
    if len(ours) == len(theirs) or all(r is None for r in rows):  # same count: the head loads as it is
        return dict(state_dict), []
    head = tuple(head)
    own = model.state_dict()
    fitted = dict(state_dict)
    for key, value in state_dict.items():
        if not in_head(key, head) or key not in own or tuple(own[key].shape) == tuple(value.shape):
            continue
        target = own[key]
        extra = value.shape[0] - len(theirs)
        if extra < 0 or target.shape[0] - len(ours) != extra or tuple(target.shape[1:]) != tuple(value.shape[1:]):
            return dict(state_dict), []
        new = target.detach().clone()
        for i, r in enumerate(rows):
            if r is not None:
                new[i] = value[r]
        if extra:
            new[len(ours):] = value[len(theirs):]
        fitted[key] = new
    return fitted, [name for name, r in zip(ours, rows) if r is not None]


def apply_state_dict(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    head: Iterable[str] = (),
    reset_head: bool = False,
    source: str = "weights",
) -> None:
    """Load ``state_dict`` into ``model`` if every key and shape fits; otherwise raise and change nothing.

    With ``reset_head=True`` a head (module names in ``head``) whose shape differs is left freshly
    initialised, with a warning: the caller asked for a different number of classes.
    """
    head = tuple(head)
    own = model.state_dict()
    mismatched = [k for k in own.keys() & state_dict.keys() if tuple(own[k].shape) != tuple(state_dict[k].shape)]
    differing = set(mismatched) | (own.keys() ^ state_dict.keys())  # num_classes=0 removes the head's keys
    if reset_head and head and any(in_head(k, head) for k in differing):
        ours, theirs = head_classes(own, head), head_classes(state_dict, head)
        state_dict = {k: v for k, v in state_dict.items() if not in_head(k, head)}
        if ours is None:
            message = f"classifier head ({', '.join(head)}) removed: the model returns pooled features; {source} had {theirs} classes."
        else:
            message = (
                f"classifier head ({', '.join(head)}) reset: the model has {ours} classes, {source} have {theirs}. "
                "The head keeps its fresh initialisation; fine-tune before use."
            )
        warnings.warn(
            message,
            UserWarning,
            stacklevel=3,
        )
        own = {k: v for k, v in own.items() if not in_head(k, head)}
        mismatched = [k for k in mismatched if not in_head(k, head)]
    missing = sorted(own.keys() - state_dict.keys())
    unexpected = sorted(state_dict.keys() - own.keys())
    if missing or unexpected or mismatched:
        parts = []
        if mismatched:
            shown = ", ".join(f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}" for k in sorted(mismatched)[:4])
            parts.append(f"{len(mismatched)} with other shapes ({shown})")
        if missing:
            parts.append(f"{len(missing)} missing ({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''})")
        if unexpected:
            parts.append(
                f"{len(unexpected)} unexpected ({', '.join(unexpected[:4])}{', ...' if len(unexpected) > 4 else ''})"
            )
        hint = ""
        n = head_classes(state_dict, head)
        if mismatched and head and all(in_head(k, head) for k in mismatched) and n is not None:
            hint = f" The weights have a {n}-class head: pass num_classes={n}, or pass your num_classes explicitly to reset the head."
        raise WeightsError(
            f"{source} do not fit the model, nothing was loaded: {'; '.join(parts)}.{hint}"
            " Check that the weights belong to this architecture and variant."
        )
    result = model.load_state_dict(dict(state_dict), strict=False)
    assert not result.unexpected_keys, result.unexpected_keys  # checked above
