"""ONNX export: ``torch.onnx.export`` (dynamo exporter; TorchScript exporter as a logged fallback),
simplified with onnxslim, zoo metadata in ``metadata_props``, verified in onnxruntime. int8 from
calibration data is onnxruntime's own ``quantize_static`` (QDQ, per-channel int8 weights, uint8
activations: its fast x86 path), after its ``quant_pre_process``."""
from __future__ import annotations

import json
import logging
import tempfile
import warnings
from pathlib import Path

from zoo._io import atomic_write
from zoo.export import (INT8_STEPS, ExportError, ExportResult, batches_of, calibration_check, metadata, reference_outputs,
                        sample_inputs, verify)
from zoo.registry import state_of

log = logging.getLogger(__name__)
INPUT, TOKENS, OUTPUT = "images", "input_ids", "output"  # input names: images, or a language model's token ids
MAX_BYTES = 2**31 - 1  # protobuf's limit for one self-contained file


def export_onnx(model, spec, path: Path, size, *, batch=1, dynamic=False, opset=18, simplify=True, calibration=None,
                exclude_types=()) -> ExportResult:
    import onnx

    inputs = sample_inputs(spec, size, batch)
    notes: list[str] = []
    reference = reference_outputs(model, inputs)
    example = inputs["random"]
    if dynamic and batch == 1:  # torch.export specialises size-1 dimensions; trace a dynamic batch at 2
        example = _twice(example)
    proto, exporter = _torch_export(model, example, dynamic, opset, notes)
    if simplify:
        import onnxslim

        proto = onnxslim.slim(proto)
    extra = {"input_size": json.dumps(list(size)), "exporter": exporter, "opset": str(opset), "precision": "fp32"}
    int8_step = None
    precision = "fp32"
    if calibration is not None:
        batches = batches_of(calibration, None if dynamic else batch)
        proto = quantize_static(proto, batches, exclude_types, notes)
        precision = extra["precision"] = "int8"
        inputs, reference = calibration_check(model, batches)
    elif state_of(model).int8:
        precision = extra["precision"] = "int8"
        int8_step = output_step(proto)
        extra["int8_output_step"] = repr(int8_step)  # what later checks (TensorRT) compare in
        notes.append(f"int8 Q/DQ graph: verified against the PyTorch int8 reference within {INT8_STEPS} output "
                     f"quantization steps ({INT8_STEPS} x {int8_step:.3g})")
    props = metadata(spec, extra)
    onnx.helper.set_model_props(proto, props)
    if proto.ByteSize() > MAX_BYTES:
        raise ExportError(f"{spec.name}: the ONNX graph is {proto.ByteSize() / 2**30:.1f} GB, over the 2 GB single-file limit")

    with tempfile.TemporaryDirectory() as tmp:
        candidate = Path(tmp) / "model.onnx"
        onnx.save(proto, str(candidate))
        runner = session(candidate)
        name = runner.get_inputs()[0].name
        if dynamic and batch == 1:  # a second batch size proves the batch axis really is dynamic
            inputs["random_batch2"] = _twice(inputs["random"])
            reference.update(reference_outputs(model, {"random_batch2": inputs["random_batch2"]}))
        try:
            verification = verify(spec, "ONNX", lambda x: runner.run(None, {name: x})[0], inputs, reference,
                                  precision=precision, int8_step=int8_step)
        except ExportError as fused:
            if int8_step is None or not u8s8_saturates():
                raise
            unfused = session(candidate, fuse_qdq=False)
            verification = verify(spec, "ONNX (Q/DQ fusion off)", lambda x: unfused.run(None, {name: x})[0], inputs,
                                  reference, precision=precision, int8_step=int8_step)
            notes.append("int8: verified with onnxruntime's Q/DQ fusion off. This CPU has no VNNI, where onnxruntime's "
                         "fused uint8 x int8 kernels saturate 16-bit partial sums (its quantization docs: VPMADDUBSW), "
                         f"so here they differ more (max |diff| {max(v['max_abs_diff'] for v in fused.checks.values()):.3g}, "
                         f"{INT8_STEPS} steps are {INT8_STEPS * int8_step:.3g}); CPUs with VNNI and ARM do not saturate")
        atomic_write(path, lambda dst: Path(dst).write_bytes(candidate.read_bytes()))
    batch_dim = "batch" if dynamic else batch
    return ExportResult(
        path=path,
        format="onnx",
        inputs=[{"name": runner.get_inputs()[0].name, "shape": [batch_dim, *size], "dtype": str(example.dtype).removeprefix("torch.")}],
        outputs=[{"name": o.name, "shape": o.shape, "dtype": "float32"} for o in runner.get_outputs()],
        verification=verification,
        metadata=props,
        notes=notes,
    )


def quantize_static(proto, batches, exclude_types=(), notes=None):
    """onnxruntime's static int8 quantization of an fp32 graph (QDQ, per-channel), calibrated on ``batches``;
    ``exclude_types``: op types left in float (nodes of those types are passed to ``nodes_to_exclude``)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as ort_quantize
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, name):
            self.items = iter([{name: b.numpy()} for b in batches])

        def get_next(self):
            return next(self.items, None)

    with tempfile.TemporaryDirectory() as tmp:
        fp32, prepared, int8 = (Path(tmp) / n for n in ("fp32.onnx", "prep.onnx", "int8.onnx"))
        onnx.save(proto, str(fp32))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(str(prepared))
        excluded = [n.name for n in graph.graph.node if n.op_type in set(exclude_types)]
        absent = sorted(set(exclude_types) - {n.op_type for n in graph.graph.node})
        if absent:  # keeping them in float would change nothing: the pre-processing rewrote them into other ops
            raise ExportError(f"{', '.join(absent)} not in the graph onnxruntime quantizes (its pre-processing rewrote "
                              "them), so it cannot stay float")
        ort_quantize(str(prepared), str(int8), Reader(graph.graph.input[0].name), quant_format=QuantFormat.QDQ,
                     per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                     nodes_to_exclude=excluded, extra_options={"ActivationSymmetric": False})
        result = onnx.load(str(int8))
    if notes is not None:
        notes.append("int8: onnxruntime quantize_static (QDQ, per-channel int8 weights, uint8 activations)"
                     + (f", {', '.join(exclude_types)} left in float" if exclude_types else ""))
    return result


def _twice(x):
    """The batch repeated: an input of batch 2 from one of batch 1."""
    return x.repeat(2, *[1] * (x.dim() - 1))


def output_step(proto) -> float:
    """The quantization step of an int8 graph's output: the scale of the DequantizeLinear that produces it."""
    from onnx import numpy_helper

    producer = {out: node for node in proto.graph.node for out in node.output}
    constants = {t.name: t for t in proto.graph.initializer}
    constants.update({n.output[0]: a.t for n in proto.graph.node if n.op_type == "Constant" for a in n.attribute if a.name == "value"})
    node = producer.get(proto.graph.output[0].name)
    # layout ops keep the step; so does a linear or nearest Resize (a segmenter's upsampling to the input): each
    # output is a convex combination of dequantized values, so its error stays within the inputs' steps
    while node is not None and (node.op_type in ("Reshape", "Flatten", "Identity", "Squeeze") or _convex_resize(node)):
        node = producer.get(node.input[0])
    if node is None or node.op_type != "DequantizeLinear" or node.input[1] not in constants:
        raise ExportError("the int8 graph's output is not produced by a DequantizeLinear with a constant scale; cannot verify it")
    return float(numpy_helper.to_array(constants[node.input[1]]).max())


def _convex_resize(node) -> bool:
    """A Resize whose outputs are convex combinations of its inputs: nearest (ONNX's default) or linear, not cubic."""
    modes = [a.s for a in node.attribute if a.name == "mode"]
    return node.op_type == "Resize" and (modes or [b"nearest"])[0] in (b"nearest", b"linear")


def _torch_export(model, x, dynamic: bool, opset: int, notes: list[str]):
    """The dynamo exporter first; the TorchScript exporter when it fails, with the reason logged."""
    import onnx
    import torch

    name = INPUT if x.is_floating_point() else TOKENS
    try:
        kwargs = {}
        if dynamic:
            kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch", min=1, max=1024)},)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(model, (x,), dynamo=True, opset_version=opset, input_names=[name],
                                        output_names=[OUTPUT], external_data=False, verbose=False, **kwargs)
        return program.model_proto, "torch.onnx dynamo"
    except Exception as e:  # noqa: BLE001 - any exporter failure falls back, with its reason
        reason = f"dynamo exporter failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); used the TorchScript exporter"
        log.warning(reason)
        notes.append(reason)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        target = Path(tmp) / "ts.onnx"
        torch.onnx.export(model, (x,), str(target), dynamo=False, opset_version=min(opset, 20), input_names=[name],
                          output_names=[OUTPUT], dynamic_axes={name: {0: "batch"}, OUTPUT: {0: "batch"}} if dynamic else None)
        return onnx.load(str(target)), "torch.onnx torchscript"


def u8s8_saturates() -> bool:
    """Whether onnxruntime's fused uint8 x int8 kernels saturate on this CPU: x86 with AVX2 but no VNNI
    multiplies with VPMADDUBSW, whose 16-bit pair sums clamp (onnxruntime's quantization docs, "When and why do I
    need to try U8U8?"); VNNI's dot products and ARM's accumulate in 32 bits."""
    from zoo.environment import cpu_flags

    flags = cpu_flags()
    return "avx2" in flags and not flags & {"avx512_vnni", "avx_vnni"}


def session(path: Path, threads: int | None = None, device: str = "cpu", spinning: bool = True, fuse_qdq: bool = True):
    """An onnxruntime session, quiet, on ``threads`` intra-op threads (default: torch's thread count, so
    ``torch.set_num_threads`` and ``OMP_NUM_THREADS`` size every runtime the zoo runs alike).

    ``spinning=False`` stops idle threads busy-waiting: for timing next to other runtimes on a shared machine.
    ``fuse_qdq=False`` runs a Q/DQ graph as written (float ops between the quantize nodes), not as integer kernels."""
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    disabled = [] if fuse_qdq else ["QDQSelectorActionTransformer"]
    return ort.InferenceSession(str(path), options, providers=providers, disabled_optimizers=disabled)


def exported_session(model, spec, size, *, batch: int = 1, threads: int | None = None, device: str = "cpu"):
    """Export ``model`` (verified) to a temporary file and open it: how benchmarks time onnxruntime."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(model, spec, path, tuple(size), batch=batch)
        return session(path, threads, device)
