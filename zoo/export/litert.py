"""LiteRT (TFLite) export: ``litert_torch.convert`` -> a ``.tflite`` flatbuffer with the zoo metadata in the
model's metadata table (``zoo_metadata``, JSON), verified in the LiteRT interpreter (``ai_edge_litert``,
XNNPACK delegate) before it is moved into place.

int8 is PT2E post-training quantization with litert-torch's own ``PT2EQuantizer`` (per-channel symmetric
int8 weights, int8 activations), calibrated on the batches given, checked against its PyTorch int8 twin
within :data:`~zoo.export.INT8_STEPS` output steps.
"""
from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

from zoo.export import (INT8_STEPS, ExportResult, batches_of, calibration_inputs, cannot_convert, metadata, reference_outputs, sample_inputs,
                        write_verified)

METADATA_NAME = "zoo_metadata"


def export_litert(model, spec, path: Path, size, *, batch=1, calibration=None) -> ExportResult:
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")  # litert-torch prints a line per conversion stage
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # and its converter an op count
    import litert_torch

    _follow_stderr()

    from zoo.export.executorch import fx_output_step, quantize_pt2e

    inputs = sample_inputs(spec, size, batch)
    example = (inputs["random"],)
    notes: list[str] = []
    precision, int8_step, kwargs, float_reference = "fp32", None, {}, None
    if calibration is not None:
        from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
        from litert_torch.quantize.quant_config import QuantConfig

        quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
        batches = batches_of(calibration, batch)
        float_reference = reference_outputs(model, calibration_inputs(batches))
        with cannot_convert(spec, "LiteRT's int8 quantizer"):
            model = quantize_pt2e(model, example, batches, quantizer, fold=False)
        inputs = calibration_inputs(batches)
        kwargs["quant_config"] = QuantConfig(pt2e_quantizer=quantizer)
        precision, int8_step = "int8", fx_output_step(model)
        notes.append("int8: PT2E post-training quantization with litert-torch's PT2EQuantizer (per-channel symmetric)")
        if int8_step is not None:
            notes.append(f"int8: verified against the PyTorch int8 twin within {INT8_STEPS} output steps ({INT8_STEPS} x "
                         f"{int8_step:.3g}) plus twice the twin's own distance from the float model")
    reference = reference_outputs(model, inputs)
    props = metadata(spec, {"input_size": json.dumps(list(size)), "precision": precision,
                            "exporter": f"litert-torch {getattr(litert_torch, '__version__', '?')}"})
    with warnings.catch_warnings(), cannot_convert(spec, "LiteRT"):
        warnings.simplefilter("ignore")
        edge = litert_torch.convert(model, example, **kwargs)
        flatbuffer = with_metadata(edge.model_content(), {METADATA_NAME: json.dumps(props)})
    return write_verified(path, flatbuffer, "litert", "LiteRT", runner, spec, inputs, reference, precision=precision,
                          int8_step=int8_step, size=size, batch=batch, notes=notes, props=props,
                          float_reference=float_reference)


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is now (not the stream it was when a handler was made)."""

    def write(self, text):
        return sys.stderr.write(text)

    def flush(self):
        sys.stderr.flush()

    def close(self):  # logging's shutdown closes handler streams; the real stderr is not ours to close
        pass


def _follow_stderr() -> None:
    """litert-torch makes torch's loggers propagate to the root logger, where absl's handler holds the ``sys.stderr``
    of the moment absl was imported; once that stream is closed (a test's captured stderr, a redirected one), every
    torch warning kills the process ("lost sys.stderr"). Point that handler at the current stderr instead."""
    try:
        from absl import logging as absl_logging
    except ImportError:
        return
    handler = absl_logging.get_absl_handler().python_handler
    if not isinstance(handler.stream, _CurrentStderr):
        handler.stream = _CurrentStderr()


def runner(path: Path, threads: int | None = None):
    """numpy in, numpy out, through the LiteRT interpreter with its default XNNPACK delegate (``threads``:
    default torch's thread count)."""
    import numpy as np
    import torch
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads or torch.get_num_threads())
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    # a fully integer model takes its input quantized with the scale it records; token ids (no scale) are cast only
    quantized_in = np.issubdtype(inp["dtype"], np.integer) and in_scale != 0
    integer_out = np.issubdtype(out["dtype"], np.integer)
    info = np.iinfo(inp["dtype"]) if quantized_in else None

    def run(x):
        if quantized_in:
            x = np.clip(np.round(x / in_scale) + in_zero, info.min, info.max).astype(inp["dtype"])
        elif x.dtype != inp["dtype"]:  # int64 token ids into the int32 input LiteRT keeps
            x = x.astype(inp["dtype"])
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])
        return (y.astype(np.float32) - out_zero) * out_scale if integer_out else y

    return run


def with_metadata(flatbuffer: bytes, entries: dict[str, str]) -> bytes:
    """The flatbuffer with ``entries`` added to its metadata table (each a buffer of UTF-8 text)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    model.metadata = list(model.metadata or [])
    for name, text in entries.items():
        buffer = schema.BufferT()
        buffer.data = list(text.encode("utf-8"))
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name, entry.buffer = name, len(model.buffers) - 1
        model.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def read_metadata(path: Path) -> dict[str, str]:
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(Path(path))
    for entry in model.metadata or []:
        name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
        if name == METADATA_NAME:
            return json.loads(bytes(model.buffers[entry.buffer].data).decode("utf-8"))
    return {}
