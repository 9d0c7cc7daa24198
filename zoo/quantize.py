"""Int8 quantization with torchao's PT2E flow, written once for the ``qat`` plugin, ``zoo.load`` and export.

:func:`prepare` captures a model with ``torch.export`` (dynamic batch) and inserts fake quantization with
``prepare_qat_pt2e``: conv + BatchNorm pairs train as the folded conv they become. :func:`convert` turns
the trained graph into the reference int8 model (``convert_pt2e``: int8 weights, quantize/dequantize
around each quantized op, BatchNorm folded), which is what ``zoo.load`` returns for a QAT run and what
``zoo export`` writes as a Q/DQ ONNX graph (the form onnxruntime fuses into QLinearConv and TensorRT
builds int8 engines from).

Quantizers (``quantizer=``):

- ``xnnpack`` (default): per-channel symmetric int8 weights and per-tensor activations at the inputs
  *and outputs* of conv, linear, add and pooling. Every conv therefore sits between a DequantizeLinear
  and a QuantizeLinear in ONNX, so onnxruntime runs it as one integer QLinearConv. Activations are
  ``uint8`` by default (onnxruntime's fast u8s8 path on x86; int8 activations ran slower there, fused
  or not) and ``int8`` for XNNPACK/ARM targets. torchao ships
  this quantizer as ``torchao.testing.pt2e._xnnpack_quantizer``: its maintained copy moved to
  ExecuTorch, which pins its own torch build, so we use torchao's (hence ``torchao>=0.18`` and the
  clear error below if it moves).
- ``x86``: torchao's ``X86InductorQuantizer`` (uint8 activations at op *inputs* only), the one to use
  when the model is deployed with ``torch.compile``/inductor rather than an ONNX runtime.

The saved form of a QAT model is the prepared graph's state (weights, BatchNorm statistics and the
fake-quantizers' scales, zero points and observer ranges) plus these settings in ``config.json``;
``zoo.load`` rebuilds the architecture, prepares it the same way, loads that state and converts.
"""
from __future__ import annotations

import copy
import functools
import logging
import warnings
from typing import Any

from zoo.errors import ConfigError

QUANTIZERS = ("xnnpack", "x86")
ACTIVATIONS = ("uint8", "int8")


def settings(quantizer: str = "xnnpack", activations: str = "uint8") -> dict[str, Any]:
    """The recorded quantization settings (``config.json``'s ``quantization``), checked."""
    if quantizer not in QUANTIZERS:
        raise ConfigError(f"quantizer must be one of {', '.join(QUANTIZERS)}, not {quantizer!r}")
    if activations not in ACTIVATIONS:
        raise ConfigError(f"activations must be one of {', '.join(ACTIVATIONS)}, not {activations!r}")
    if quantizer == "x86" and activations != "uint8":
        raise ConfigError("the x86 quantizer quantizes activations to uint8 only; drop activations=int8 or use quantizer=xnnpack")
    return {"method": "pt2e-qat", "quantizer": quantizer, "activations": activations, "weights": "int8 per-channel symmetric"}


@functools.cache
def _import_pt2e():
    """torchao's PT2E modules, imported once (QAT switches graph forms every batch) with torch's pytree
    registration chatter silenced."""
    quiet = logging.getLogger("torch.utils._pytree")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        import torchao.quantization.pt2e as pt2e
        import torchao.quantization.pt2e.quantize_pt2e as flow
    except ImportError as e:
        raise ConfigError(f"int8 quantization needs torchao (pip install 'torchao>=0.18'): {e}") from None
    finally:
        quiet.setLevel(level)
    _reuse_pattern_graphs()
    return pt2e, flow


def _pattern_key(pattern, example_inputs, is_cuda, kwargs):
    """What a pattern's captured graph depends on: its code, the values its closure holds, and the shapes and
    dtypes (not the values) of the example tensors; ``None`` when something in it cannot be keyed safely."""
    import torch

    def part(value):
        if isinstance(value, torch.Tensor):
            return ("tensor", tuple(value.shape), value.dtype, value.device.type)
        if isinstance(value, (tuple, list)):
            return tuple(part(v) for v in value)
        hash(value)  # functions, dtypes, numbers, bools: keyed by value
        return value

    if isinstance(pattern, torch.nn.Module):  # torchao wraps most patterns in a stateless module around ``fn``
        if type(pattern).__name__ != "WrapperModule" or any(True for _ in pattern.parameters()) or any(True for _ in pattern.buffers()):
            return None
        pattern = pattern.fn
    code = getattr(pattern, "__code__", None)
    if code is None:
        return None
    try:
        cells = tuple(part(c.cell_contents) for c in pattern.__closure__ or ())
        return (code, cells, part(pattern.__defaults__ or ()), part(tuple(example_inputs)), bool(is_cuda),
                tuple(sorted((k, part(v)) for k, v in kwargs.items())))
    except (TypeError, ValueError):
        return None


def _reuse_pattern_graphs() -> None:
    """torchao captures the same small conv/BatchNorm/dropout patterns with ``torch.export`` on every prepare,
    convert and train/eval switch (about 170 captures when a QAT run trains, converts and loads, over 40 s on
    two cores). The capture is a function of the pattern and its example shapes, so each one is kept for the
    process and handed out as a copy (torchao edits the graphs it gets)."""
    import sys

    import torchao.quantization.pt2e.utils as utils

    current = utils._get_aten_graph_module_for_pattern
    original = getattr(current, "__wrapped__", current)
    if current is original:
        captured: dict = {}

        @functools.wraps(original)
        def reused(pattern, example_inputs, is_cuda=False, **kwargs):
            key = _pattern_key(pattern, example_inputs, is_cuda, kwargs)
            if key is None:
                return original(pattern, example_inputs, is_cuda, **kwargs)
            if key not in captured:
                captured[key] = original(pattern, example_inputs, is_cuda, **kwargs)
            return copy.deepcopy(captured[key])

        utils._get_aten_graph_module_for_pattern = reused
    for name, module in list(sys.modules.items()):
        if name.startswith("torchao.") and getattr(module, "_get_aten_graph_module_for_pattern", None) is original:
            module._get_aten_graph_module_for_pattern = utils._get_aten_graph_module_for_pattern


def _quantizer(config: dict[str, Any]):
    import dataclasses

    import torch

    if config["quantizer"] == "x86":
        from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
            X86InductorQuantizer,
            get_default_x86_inductor_quantization_config,
        )

        return X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config(is_qat=True))
    try:
        from torchao.testing.pt2e._xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
    except ImportError as e:
        raise ConfigError(f"this torchao has no XNNPACK quantizer where zoo looks for it ({e}); use quantizer=x86") from None
    _reuse_pattern_graphs()  # the quantizer's own module captures patterns too
    qconfig = get_symmetric_quantization_config(is_per_channel=True, is_qat=True)
    if config["activations"] == "uint8":
        def unsigned(spec):
            return dataclasses.replace(spec, dtype=torch.uint8, quant_min=0, quant_max=255)

        qconfig = dataclasses.replace(qconfig, input_activation=unsigned(qconfig.input_activation),
                                      output_activation=unsigned(qconfig.output_activation))
    return XNNPACKQuantizer().set_global(qconfig)


def prepare(model, config: dict[str, Any], input_size) -> Any:
    """``model`` (train mode) captured and fake-quantized; ``.train()``/``.eval()`` switch BatchNorm and dropout."""
    import torch

    pt2e, flow = _import_pt2e()
    device = next(model.parameters()).device
    example = torch.randn(2, *input_size, device=device)
    model.train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auto = torch.export.Dim.AUTO  # batch and image size stay dynamic: a model trained small exports at 224
        dims = {0: auto, 2: auto, 3: auto}
        exported = torch.export.export(model, (example,), dynamic_shapes=(dims,))
        prepared = flow.prepare_qat_pt2e(exported.module(), _quantizer(config))
    _switchable(prepared)
    return prepared


def _switchable(graph) -> None:
    """``graph.train(mode)`` / ``graph.eval()`` rewrite BatchNorm and dropout to that form and, unlike torchao's
    ``allow_exported_model_train_eval``, set the flags and return the module, as ``nn.Module``'s do."""
    import types

    def train(self, mode: bool = True):
        set_training_form(self, mode)
        for module in self.modules():
            module.training = mode
        return self

    graph.train = types.MethodType(train, graph)
    graph.eval = types.MethodType(lambda self: self.train(False), graph)


def set_training_form(prepared, training: bool) -> None:
    """Put BatchNorm and dropout of a prepared graph in their train or eval form (idempotent, cheap when unchanged)."""
    pt2e, _ = _import_pt2e()
    (pt2e.move_exported_model_to_train if training else pt2e.move_exported_model_to_eval)(prepared)


def freeze_observers(prepared) -> None:
    """Keep every scale and zero point where it is: fake quantization continues, observation stops."""
    pt2e, _ = _import_pt2e()
    prepared.apply(pt2e.disable_observer)


def convert(prepared) -> Any:
    """The reference int8 model of a prepared graph (a copy; BatchNorm folded, eval form)."""
    pt2e, flow = _import_pt2e()
    graph = copy.deepcopy(prepared)
    pt2e.move_exported_model_to_eval(graph)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = flow.convert_pt2e(graph)
    _switchable(converted)
    return converted.eval()
