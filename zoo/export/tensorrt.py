"""TensorRT export: a serialized engine built from the verified ONNX with the ``tensorrt`` Python API
(fp32 or fp16; int8 from a QAT model's Q/DQ graph), run on the GPU and compared against onnxruntime.

Without a CUDA GPU or the ``tensorrt`` package it stops with one message that says what is missing and
where the verified ONNX file is, ready for ``trtexec`` on the target machine.
"""
from __future__ import annotations

from pathlib import Path

from zoo._io import atomic_write
from zoo.errors import ZooError
from zoo.export import ExportResult, compare_outputs
from zoo.registry import state_of


def export_tensorrt(model, spec, path: Path, size, *, batch=1, dynamic=False, half=False, opset=18, simplify=True) -> ExportResult:
    import numpy as np
    import torch

    from zoo.export.onnx import export_onnx, session

    onnx_path = path.with_suffix(".onnx")
    onnx_result = export_onnx(model, spec, onnx_path, size, batch=batch, dynamic=dynamic, opset=opset, simplify=simplify)
    missing = []
    try:
        import tensorrt as trt
    except ImportError:
        missing.append("the tensorrt package (pip install 'efficient-zoo[tensorrt]')")
    if not torch.cuda.is_available():
        missing.append("a CUDA GPU")
    if missing:
        shape = "x".join(str(d) for d in [batch, *size])
        raise ZooError(
            f"TensorRT needs {' and '.join(missing)}. The verified ONNX file is ready at {onnx_path}: on the target run "
            f"`trtexec --onnx={onnx_path} --saveEngine={path}{' --fp16' if half else ''}` (input images: {shape})"
        )

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ZooError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    if half:
        config.set_flag(trt.BuilderFlag.FP16)
    int8 = state_of(model).int8
    if int8 and hasattr(trt.BuilderFlag, "INT8"):  # explicit Q/DQ: the scales come from QAT, no calibration
        config.set_flag(trt.BuilderFlag.INT8)
    if dynamic:
        profile = builder.create_optimization_profile()
        name = network.get_input(0).name
        profile.set_shape(name, (1, *size), (batch, *size), (max(batch, 8), *size))
        config.add_optimization_profile(profile)
    engine_bytes = builder.build_serialized_network(network, config)
    if engine_bytes is None:
        raise ZooError(f"TensorRT failed to build an engine from {onnx_path} (see the log above)")

    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(engine_bytes)
    context = engine.create_execution_context()
    x = np.random.default_rng(0).standard_normal((batch, *size)).astype(np.float32)
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    in_name = next(n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
    out_name = next(n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
    context.set_input_shape(in_name, x.shape)
    x_gpu = torch.from_numpy(x).cuda()
    y_gpu = torch.empty(tuple(context.get_tensor_shape(out_name)), dtype=torch.float32, device="cuda")
    context.set_tensor_address(in_name, x_gpu.data_ptr())
    context.set_tensor_address(out_name, y_gpu.data_ptr())
    stream = torch.cuda.Stream()
    context.execute_async_v3(stream.cuda_stream)
    stream.synchronize()
    runner = session(onnx_path)
    reference = runner.run(None, {runner.get_inputs()[0].name: x})[0]
    step = float(onnx_result.metadata["int8_output_step"]) if int8 else None
    check = compare_outputs(spec, reference, y_gpu.cpu().numpy(), half=half, int8_step=step)
    if not check["ok"]:
        raise ZooError(f"TensorRT engine differs from onnxruntime: max |diff| {check['max_abs_diff']:.3g} > {check['tolerance']:.3g}")
    atomic_write(path, lambda dst: Path(dst).write_bytes(bytes(engine_bytes)))
    return ExportResult(path=path, format="tensorrt", inputs=onnx_result.inputs, outputs=onnx_result.outputs,
                        verification={"onnx": onnx_result.verification, "tensorrt_vs_onnxruntime": check},
                        metadata=onnx_result.metadata, notes=[f"built with TensorRT {trt.__version__}, {'int8 (Q/DQ)' if int8 else 'fp16' if half else 'fp32'}"])
