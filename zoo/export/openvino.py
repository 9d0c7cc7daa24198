"""OpenVINO export: the verified ONNX graph read by OpenVINO's ONNX frontend (so QAT's Q/DQ int8 graph comes
along as it is), saved as IR (``model.xml`` + ``model.bin``) in one folder with the zoo metadata in the IR's
``rt_info``, and verified in the OpenVINO CPU runtime before the folder is moved into place.

Precisions: fp32; fp16 (weights stored as fp16, computed in f32); bf16 (the CPU plugin's inference precision
hint: AMX/AVX-512 bf16 kernels; recorded in the IR's ``runtime_options`` and applied by :func:`compile`);
int8 from calibration data with NNCF's post-training quantization (``nncf.quantize``), or
(``quantizer="onnxruntime"``) onnxruntime's Q/DQ graph read as it is; ``ignored_types`` names op types left
in float (the mixed precision ``zoo quantize`` chooses by timing).
The CPU plugin defaults to bf16 on machines with AMX, so every compile here states its hint explicitly.
"""
from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

from zoo.export import (ExportResult, batches_of, calibration_check, metadata, reference_outputs, sample_inputs, stage_and_move,
                        verify)

XML = "model.xml"
HINTS = {"fp32": "f32", "fp16": "f32", "bf16": "bf16", "int8": "f32"}  # precision -> INFERENCE_PRECISION_HINT


def export_openvino(model, spec, path: Path, size, *, batch=1, dynamic=False, precision="fp32", calibration=None, opset=18,
                    ignored_types=(), hint: str | None = None, quantizer: str = "nncf") -> ExportResult:
    """The IR folder at ``path``; with ``calibration`` and NNCF, a graph that fails verification is replaced by
    onnxruntime's Q/DQ graph (the note says so), since a wrong int8 model must never be written."""
    if calibration is not None and quantizer == "nncf":
        from zoo.export import ExportError

        try:
            return _export_openvino(model, spec, path, size, batch=batch, dynamic=dynamic, precision=precision,
                                    calibration=calibration, opset=opset, ignored_types=ignored_types, hint=hint, quantizer="nncf")
        except ExportError as e:
            result = _export_openvino(model, spec, path, size, batch=batch, dynamic=dynamic, precision=precision,
                                      calibration=calibration, opset=opset, hint=hint, quantizer="onnxruntime")
            result.notes.insert(0, f"NNCF's int8 graph failed verification ({e}); this is onnxruntime's Q/DQ graph in OpenVINO")
            return result
    return _export_openvino(model, spec, path, size, batch=batch, dynamic=dynamic, precision=precision, calibration=calibration,
                            opset=opset, ignored_types=ignored_types, hint=hint, quantizer=quantizer)


def _export_openvino(model, spec, path: Path, size, *, batch, dynamic, precision, calibration, opset, ignored_types=(), hint=None,
                     quantizer="nncf") -> ExportResult:
    import openvino as ov

    from zoo.export.onnx import export_onnx

    inputs = sample_inputs(spec, size, batch)
    reference = reference_outputs(model, inputs)
    notes: list[str] = []
    qdq = calibration is not None and quantizer == "onnxruntime"
    with tempfile.TemporaryDirectory() as tmp:
        onnx_result = export_onnx(model, spec, Path(tmp) / "model.onnx", size, batch=batch, dynamic=dynamic, opset=opset,
                                  calibration=calibration if qdq else None, exclude_types=ignored_types if qdq else ())
        ov_model = ov.convert_model(str(onnx_result.path))
    step = onnx_result.metadata.get("int8_output_step")
    int8_step = float(step) if step else None
    if calibration is not None:
        batches = batches_of(calibration, None if dynamic else batch)
        if qdq:
            notes += [n.replace("int8: onnxruntime", "int8: the Q/DQ graph of onnxruntime's") for n in onnx_result.notes]
        else:
            ov_model = quantize_nncf(ov_model, batches, spec, ignored_types)
            notes.append("int8: NNCF post-training quantization (nncf.quantize, default preset, full bias correction)"
                         + (f", {', '.join(ignored_types)} left in float" if ignored_types else ""))
        inputs, reference = calibration_check(model, batches)
    hint = hint or HINTS[precision]
    props = metadata(spec, {"input_size": json.dumps(list(size)), "precision": precision, "inference_precision_hint": hint,
                            "exporter": f"openvino {ov.__version__} from {onnx_result.metadata['exporter']}"})
    for key, value in props.items():
        ov_model.set_rt_info(value, ["model_info", key])
    ov_model.set_rt_info(hint, ["runtime_options", "INFERENCE_PRECISION_HINT"])
    if precision == "bf16":
        notes.append("bf16: the CPU plugin's inference precision hint (weights stay fp32 in the IR)")
    verification: dict = {}

    def write(staged: Path) -> None:
        staged.mkdir()
        ov.save_model(ov_model, str(staged / XML), compress_to_fp16=precision == "fp16")
        compiled = compile(staged)  # what was written, read back, with its recorded hint
        verification.update(verify(spec, "OpenVINO", lambda x: compiled(x)[0], inputs, reference,
                                   precision="fp16" if precision == "fp16" else precision, int8_step=int8_step))

    stage_and_move(path, write)
    return ExportResult(path=path, format="openvino", inputs=onnx_result.inputs, outputs=onnx_result.outputs,
                        verification=verification, metadata=props, notes=notes)


def compile(source, threads: int | None = None, hint: str | None = None):
    """A compiled CPU model from an IR folder (or an ``ov.Model``), latency-tuned, with the inference precision
    recorded in the IR (``hint`` overrides it) and ``threads`` inference threads (default: torch's thread count)."""
    import openvino as ov
    import torch

    core = ov.Core()
    model = core.read_model(str(Path(source) / XML)) if isinstance(source, (str, Path)) else source
    if hint is None:
        recorded = model.get_rt_info()
        hint = model.get_rt_info(["runtime_options", "INFERENCE_PRECISION_HINT"]).astype(str) if "runtime_options" in recorded else "f32"
    config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY",
              "INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads())}
    return core.compile_model(model, "CPU", config)


def runner(path: Path, threads: int | None = None):
    """numpy in, numpy out: how ``zoo bench`` times an OpenVINO export."""
    compiled = compile(path, threads)
    request = compiled.create_infer_request()
    return lambda x: request.infer([x])[0]


def quantize_nncf(ov_model, batches, spec, ignored_types=()):
    """NNCF's post-training int8 quantization of an OpenVINO model, calibrated on ``batches``. Transformer-style
    families get NNCF's transformer model type (it keeps LayerNorm/Softmax paths accurate). Full bias correction
    rather than NNCF's fast one: on MobileOne-S0 trained on digits it turned a 1.39 pt top-1 loss into none
    (docs/deploy.md)."""
    import logging

    import nncf

    logging.getLogger("nncf").setLevel(logging.ERROR)
    kwargs = {}
    if ignored_types:
        kwargs["ignored_scope"] = nncf.IgnoredScope(types=list(ignored_types), validate=False)
    if getattr(spec, "family", "") in TRANSFORMER_FAMILIES:
        kwargs["model_type"] = nncf.ModelType.TRANSFORMER
    samples = [b.numpy() for b in batches]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nncf.quantize(ov_model, nncf.Dataset(samples), subset_size=len(samples), fast_bias_correction=False, **kwargs)


TRANSFORMER_FAMILIES = ("matformer",)
