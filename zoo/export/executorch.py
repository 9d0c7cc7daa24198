"""ExecuTorch export: ``torch.export`` -> ``to_edge_transform_and_lower`` with the XNNPACK partitioner ->
a ``.pte`` program with the zoo metadata as a constant method (``zoo_metadata``, a JSON string), verified
in ``executorch.runtime`` before it is moved into place.

int8 is PT2E post-training quantization with ExecuTorch's own ``XNNPACKQuantizer`` (per-channel symmetric
int8 weights, int8 activations: what the XNNPACK delegate runs as integer kernels), calibrated on the batches
given; the program is then checked against its PyTorch int8 twin (the converted PT2E graph) within
:data:`~zoo.export.INT8_STEPS` output steps. A QAT run's int8 graph is lowered as it is.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

from zoo.export import (INT8_STEPS, ExportResult, batches_of, calibration_inputs, cannot_convert, metadata, reference_outputs, sample_inputs,
                        write_verified)

METADATA_METHOD = "zoo_metadata"


def export_executorch(model, spec, path: Path, size, *, batch=1, calibration=None) -> ExportResult:
    import torch
    from executorch import version as et_version
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    inputs = sample_inputs(spec, size, batch)
    example = (inputs["random"],)
    notes: list[str] = []
    precision, int8_step, float_reference = "fp32", None, None
    if calibration is not None:
        batches = batches_of(calibration, batch)
        float_reference = reference_outputs(model, calibration_inputs(batches))
        with cannot_convert(spec, "ExecuTorch's int8 quantizer"):
            model = quantize_pt2e(model, example, batches, xnnpack_quantizer())
        inputs = calibration_inputs(batches)
        notes.append("int8: PT2E post-training quantization with ExecuTorch's XNNPACKQuantizer (per-channel symmetric)")
        precision, int8_step = "int8", fx_output_step(model)
        if int8_step is not None:
            notes.append(f"int8: verified against the PyTorch int8 twin within {INT8_STEPS} output steps ({INT8_STEPS} x "
                         f"{int8_step:.3g}) plus twice the twin's own distance from the float model")
    reference = reference_outputs(model, inputs)  # an int8 model's own PyTorch twin
    props = metadata(spec, {"input_size": json.dumps(list(size)), "precision": precision,
                            "exporter": f"executorch {et_version.__version__} (XNNPACK)"})
    with warnings.catch_warnings(), cannot_convert(spec, "ExecuTorch"):
        warnings.simplefilter("ignore")
        program = torch.export.export(model, example)
        lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()],
                                              constant_methods={METADATA_METHOD: json.dumps(props)})
        buffer = lowered.to_executorch().buffer
    return write_verified(path, buffer, "executorch", "ExecuTorch", runner, spec, inputs, reference, precision=precision,
                          int8_step=int8_step, size=size, batch=batch, notes=notes, props=props,
                          float_reference=float_reference)


def runner(path: Path, threads: int | None = None):
    """numpy in, numpy out, through ``executorch.runtime`` (``threads``: the XNNPACK thread pool's size)."""
    import torch
    from executorch.runtime import Runtime

    if threads:
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

        _unsafe_reset_threadpool(int(threads))
    method = Runtime.get().load_program(Path(path)).load_method("forward")
    return lambda x: method.execute([torch.from_numpy(x)])[0].numpy()


def read_metadata(path: Path) -> dict[str, str]:
    from executorch.runtime import Runtime

    return json.loads(Runtime.get().load_program(Path(path)).load_method(METADATA_METHOD).execute([])[0])


def xnnpack_quantizer():
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                        get_symmetric_quantization_config)

    return XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))


def quantize_pt2e(model, example, batches, quantizer, fold: bool = True):
    """PT2E post-training quantization: capture, insert ``quantizer``'s observers, run the calibration batches,
    convert to the reference int8 graph (PyTorch runs it; runtimes lower it)."""
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        captured = torch.export.export(model, example).module()
        prepared = prepare_pt2e(captured, quantizer)
        with torch.no_grad():
            for x in batches:
                prepared(x)
        converted = convert_pt2e(prepared, fold_quantize=fold)
    for module in converted.modules():  # captured from an eval-mode model: say so (exported graphs refuse .eval())
        module.training = False
    converted.zoo_spec = getattr(model, "zoo_spec", None)
    return converted


# ops between the last dequantize and the output that keep its step: layout ops, and bilinear/nearest upsampling
# (convex combinations of the dequantized values; a segmenter's resize to the input)
STEP_KEEPING_OPS = ("view", "reshape", "flatten", "squeeze", "clone", "_to_copy", "upsample_bilinear", "upsample_nearest")


def fx_output_step(graph) -> float | None:
    """The quantization step of a PT2E int8 graph's output (the scale of the dequantize producing it), or None."""
    nodes = getattr(getattr(graph, "graph", None), "nodes", None)
    if nodes is None:
        return None
    output = next(n for n in nodes if n.op == "output")
    node = output.args[0][0] if isinstance(output.args[0], (tuple, list)) else output.args[0]
    while node is not None and getattr(node, "op", None) == "call_function" and "dequantize" not in str(node.target):
        if not any(k in str(node.target) for k in STEP_KEEPING_OPS):
            return None
        node = node.args[0]
    if node is None or "dequantize_per_tensor" not in str(node.target):
        return None
    scale = node.args[1]
    return float(scale) if isinstance(scale, (int, float)) else None
