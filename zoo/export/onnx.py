"""ONNX export: ``torch.onnx.export`` (dynamo exporter; TorchScript exporter as a logged fallback),
simplified with onnxslim, zoo metadata in ``metadata_props``, verified in onnxruntime."""
from __future__ import annotations

import json
import logging
import tempfile
import warnings
from pathlib import Path

from zoo._io import atomic_write
from zoo.errors import BadArgumentError, ZooError
from zoo.export import INT8_STEPS, ExportResult, compare_outputs, metadata, sample_inputs

log = logging.getLogger(__name__)
INPUT, TOKENS, OUTPUT = "images", "input_ids", "output"  # input names: images, or a language model's token ids
MAX_BYTES = 2**31 - 1  # protobuf's limit for one self-contained file


class ExportError(ZooError):
    """An export that failed, or whose result does not match PyTorch."""


def export_onnx(model, spec, path: Path, size, *, batch=1, dynamic=False, half=False, opset=18, simplify=True) -> ExportResult:
    import onnx
    import torch

    if half:
        raise BadArgumentError(
            "--half is for --format tensorrt and coreml (they build fp16 from the fp32 graph); ONNX stays fp32 "
            "so onnxruntime on CPUs can verify and run it"
        )
    inputs = sample_inputs(spec, size, batch)
    notes: list[str] = []
    with torch.no_grad():
        reference = {name: model(x).numpy() for name, x in inputs.items()}
    example = inputs["random"]
    if dynamic and batch == 1:  # torch.export specialises size-1 dimensions; trace a dynamic batch at 2
        example = _twice(example)
    proto, exporter = _torch_export(model, example, dynamic, opset, notes)
    if simplify:
        import onnxslim

        proto = onnxslim.slim(proto)
    extra = {"input_size": json.dumps(list(size)), "exporter": exporter, "opset": str(opset)}
    int8_step = None
    if getattr(model, "zoo_int8", False):
        int8_step = output_step(proto)
        extra["int8_output_step"] = repr(int8_step)  # what later checks (TensorRT) compare in
        notes.append(f"int8 Q/DQ graph: verified against the PyTorch int8 reference within {INT8_STEPS} output "
                     f"quantization steps ({INT8_STEPS} x {int8_step:.3g})")
    props = metadata(spec, extra)
    onnx.helper.set_model_props(proto, props)
    if proto.ByteSize() > MAX_BYTES:
        raise ExportError(f"{spec.name}: the ONNX graph is {proto.ByteSize() / 2**30:.1f} GB, over the 2 GB single-file limit")

    verification = {}
    with tempfile.TemporaryDirectory() as tmp:
        candidate = Path(tmp) / "model.onnx"
        onnx.save(proto, str(candidate))
        runner = session(candidate)
        for name, x in inputs.items():
            got = runner.run(None, {runner.get_inputs()[0].name: x.numpy()})[0]
            verification[name] = compare_outputs(spec, reference[name], got, int8_step=int8_step)
        if dynamic and batch == 1:  # a second batch size proves the batch axis really is dynamic
            x2 = _twice(inputs["random"])
            with torch.no_grad():
                verification["random_batch2"] = compare_outputs(spec, model(x2).numpy(), runner.run(None, {runner.get_inputs()[0].name: x2.numpy()})[0],
                                                                int8_step=int8_step)
        failed = {k: v for k, v in verification.items() if not v["ok"]}
        if failed:
            worst = ", ".join(f"{k}: max |diff| {v['max_abs_diff']:.3g} > {v['tolerance']:.3g}" for k, v in failed.items())
            raise ExportError(f"{spec.name}: ONNX output differs from PyTorch beyond tolerance ({worst}); nothing was written")
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
    while node is not None and node.op_type in ("Reshape", "Flatten", "Identity", "Squeeze"):  # layout ops keep the step
        node = producer.get(node.input[0])
    if node is None or node.op_type != "DequantizeLinear" or node.input[1] not in constants:
        raise ExportError("the int8 graph's output is not produced by a DequantizeLinear with a constant scale; cannot verify it")
    return float(numpy_helper.to_array(constants[node.input[1]]).max())


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


def session(path: Path, threads: int | None = None, device: str = "cpu"):
    """An onnxruntime session, quiet, on ``threads`` intra-op threads (default: onnxruntime's choice)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    return ort.InferenceSession(str(path), options, providers=providers)


def exported_session(model, spec, size, *, batch: int = 1, threads: int | None = None, device: str = "cpu"):
    """Export ``model`` (verified) to a temporary file and open it: how benchmarks time onnxruntime."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(model, spec, path, tuple(size), batch=batch)
        return session(path, threads, device)
