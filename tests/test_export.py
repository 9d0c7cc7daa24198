"""Export: registered models to verified ONNX, one model per family to every deploy runtime; CoreML conversion;
TensorRT's clear error; the CLI.

CI exports every model of up to :data:`CI_PARAMS` parameters to ONNX and each family's smallest model to
OpenVINO, ExecuTorch and LiteRT; the larger variants (the same family code at more width and depth) and
every (model, format) pair are the export matrix's job: ``python benchmarks/export_matrix.py`` writes
``docs/export_matrix.md``."""
from __future__ import annotations

import json
import platform

import pytest
import torch

import zoo
from zoo.cli import main as cli
from zoo.errors import ZooError
from zoo.bench import settle_batchnorm
from zoo.export import export

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


CI_PARAMS = 15e6
REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def card_params(name: str) -> int:
    """Parameters as the committed model card records them (computed by `zoo card`; test_cards keeps them fresh)."""
    import re

    return int(re.search(r"^  params: (\d+)$", (REPO / "model_cards" / f"{name}.md").read_text(), re.M).group(1))


def family_smallest(images_only: bool = False) -> list[str]:
    """Each family's model with the fewest parameters (image models only, for runtimes that take images)."""
    best: dict[str, str] = {}
    for name in zoo.list_models():
        spec = zoo.info(name)
        if images_only and spec.takes_tokens:
            continue
        if spec.family not in best or card_params(name) < card_params(best[spec.family]):
            best[spec.family] = name
    return sorted(best.values())


# One model per family file in zoo/models/ (the smallest that exercises the file's distinctive parts: the detectors
# rather than their classifier backbones, MobileNetV3's hard-swish and squeeze-excite for the NAS-era file; MobileCLIP2-S0
# for both MobileCLIP files: timm's fastvit_mci0 image tower under the zero-shot head).
RUNTIME_MODELS = {"efficientformer": "efficientformerv2_s0", "efficientvmamba": "efficientvmamba_tiny", "fastdepth": "fastdepth_pruned", "fastvit": "mobileclip2_s0", "matformer": "matvit_ti",
                  "mobileclip": "mobileclip2_s0", "mobiledet": "mobiledet_cpu", "mobileone": "mobileone_s0", "nas_mobile": "mobilenetv3_small_100",
                  "nextvit": "nextvit_small", "pp_mobileseg": "pp_mobileseg_tiny", "proxylessnas": "proxylessnas_mobile", "rtdetr": "dfine_n",
                  "seg_heads": "lraspp_mobilenetv3_large", "shiftaddvit": "shiftaddvit_pvt_v2_b0", "simplenet": "simplenetv1_small_m1_05",
                  "snn": "sew_resnet18", "yolov10": "yolov10n"}


# MobileDets keep TF's post-processing in the graph (per-class NMS: data-dependent shapes), which ExecuTorch cannot
# bound and LiteRT has no lowering for; transformers' D-FINE attention asserts its shapes with aten._is_all_true, which
# neither lowers. Their specs say so (ModelSpec.cannot_export), so export refuses in one line before any capture; their
# ONNX, OpenVINO and TensorRT exports carry both.
CANNOT = {("mobiledet_cpu", "executorch"): "ExecuTorch cannot convert this model .*data-dependent",
          ("mobiledet_cpu", "litert"): "LiteRT cannot convert this model .*nms",
          ("dfine_n", "executorch"): "ExecuTorch cannot convert this model .*_is_all_true",
          ("dfine_n", "litert"): "LiteRT cannot convert this model .*_is_all_true"}


# Small models whose graph another model here already exports with the same code (other widths, or a backbone that
# exports as a classifier): the export matrix (docs/export_matrix.md) verifies them; CI spends its time elsewhere.
SAME_CODE = {"fastdepth": "fastdepth_pruned", "fastdepth_mobileone_s0": "fastdepth_mobilenetv3_large_100 and mobileone_s0",
             # an OFA supernet exports its active sub-network alone: a standalone MobileNetV3 or ProxylessNAS network
             "ofa_mbv3_w10": "ofa_note10_8ms", "ofa_mbv3_w12": "ofa_note10_8ms", "ofa_flops_595m": "ofa_note10_8ms",
             "ofa_proxyless_w13": "proxylessnas_mobile", "ofa_cpu_17ms": "proxylessnas_mobile",
             # other widths and depths of the same blocks
             "efficientvmamba_small": "efficientvmamba_tiny", "efficientformerv2_s1": "efficientformerv2_s0",
             "efficientformerv2_s2": "efficientformerv2_s0", "semfpn_efficientformerv2_s1": "semfpn_efficientformerv2_s0",
             "pp_mobileseg_base": "pp_mobileseg_tiny", "dfine_s": "dfine_n (three feature levels: rtdetr_r18)", "yolov10s": "yolov10n",
             "proxylessnas_cpu": "proxylessnas_mobile", "proxylessnas_gpu": "proxylessnas_mobile", "proxylessnas_mobile_14": "proxylessnas_mobile",
             # a detector's backbone as a classifier: the detector of the same variant exports it
             **{f"mobiledet_{v}_cls": f"mobiledet_{v}" for v in ("cpu", "edgetpu", "dsp", "gpu")}}


def ci_onnx_models() -> list[str]:
    return sorted({n for n in zoo.list_models() if card_params(n) <= CI_PARAMS and n not in SAME_CODE} | set(family_smallest()))


def small(name: str) -> int | None:
    spec = zoo.info(name)
    return None if spec.fixed_input_size else max(64, spec.min_input_size or 0)


# SNNs unrolled over 2 timesteps, not 4: half the graph, the same parts (Spikformer's ONNX export: 31 s to 17 s)
SMALLER = {"sew_resnet18": {"timesteps": 2}, "spikformer_4_384": {"timesteps": 2}}
# built for 64x64, not their default 512: the same graph (attention sized for the input) at a size CI affords
SMALLER |= {n: {"img_size": 64} for n in zoo.list_models("semfpn_efficientformer*")}
# image-text models export what forward runs, the image tower: built without the text tower, the same graph; the
# family's runtime model as a zero-shot classifier (image in, class scores out)
SMALLER |= {n: {"tower": "image"} for n in zoo.list_models("mobileclip*")}
SMALLER["mobileclip2_s0"] = {"labels": ["forklift", "pallet"], "templates": ["a photo of a {}."]}


# In the three runtimes only (ONNX verifies the whole model): fewer blocks of every kind the model has, for graphs the
# runtimes' converters take half the time over (EfficientVMamba: half the unrolled scans; EfficientFormerV2-S0: 6 of its
# 14 blocks, every attention block kept; ShiftAddViT-B0: one block a stage, its mixtures of experts in the MLPs only:
# ExecuTorch splits the graph at every expert choice into XNNPACK partitions, and the attentions' mixtures are the same
# layer, doubling its export time, 44 s to 80 s; PP-MobileSeg-Tiny: one SEA block a transformer stage, ExecuTorch 58 s
# to 31 s; Next-ViT-S: 10 of its 20 blocks, a transformer block in each of stages 2-4 kept, ExecuTorch 28 s to 18 s)
RUNTIME_SMALLER = SMALLER | {"efficientvmamba_tiny": {"depths": (1, 1, 1, 1)}, "efficientformerv2_s0": {"depths": (1, 1, 2, 2)},
                             "shiftaddvit_pvt_v2_b0": {"depths": (1, 1, 1, 1), "moe_attn": False},
                             "pp_mobileseg_tiny": {"sea_depth": 1}, "nextvit_small": {"depths": (1, 2, 5, 2)}}


def fresh(name: str, size: int | None, smaller: dict = SMALLER) -> torch.nn.Module:
    """The model by name, its random weights from one seed (whatever ran before: an untrained MobileOne-S4's outputs
    reach ~1e5, and an unlucky draw took its fp32 ONNX difference past the check); fresh DETRs get BatchNorm statistics
    first (see zoo.bench.settle_batchnorm)."""
    torch.manual_seed(0)
    model = zoo.load(name, **smaller.get(name, {})).eval()
    settle_batchnorm(model, size)
    return model


@pytest.mark.parametrize("name", ci_onnx_models())
def test_models_export_to_verified_onnx(name, tmp_path):
    """A model that cannot export is a failure here, never a skip; new families join automatically."""
    result = export(fresh(name, small(name)), "onnx", imgsz=small(name), out=tmp_path / f"{name}.onnx")
    assert result.path.is_file() and result.path.stat().st_size < 2**31
    for kind in ("random", "real"):
        check = result.verification[kind]
        assert check["ok"] and check["max_abs_diff"] <= check["tolerance"] and check["cosine"] > 0.9999, (kind, check)
    proto = onnx.load(str(result.path))
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["zoo_name"] == name and props["task"] == zoo.info(name).task
    assert json.loads(props["input_size"]) == list(result.inputs[0]["shape"][1:])
    assert not any(init.data_location == onnx.TensorProto.EXTERNAL for init in proto.graph.initializer)  # self-contained


def test_runtime_coverage_names_every_family_file():
    files = {p.stem for p in (REPO / "zoo" / "models").glob("*.py") if not p.stem.startswith("_")}
    assert files == set(RUNTIME_MODELS), f"add a model of {sorted(files - set(RUNTIME_MODELS))} to RUNTIME_MODELS"
    assert all(zoo.info(name) for name in RUNTIME_MODELS.values())


# tests/test_deploy.py exports this one to all three runtimes already (with its metadata checked)
IN_TEST_DEPLOY = {"mobilenetv3_small_100"}


@pytest.mark.parametrize(("name", "fmt"), [(n, f) for n in sorted(set(RUNTIME_MODELS.values()) - IN_TEST_DEPLOY)
                                           for f in ("openvino", "executorch", "litert")])
def test_each_family_exports_to_every_deploy_runtime(name, fmt, tmp_path):
    """Verified in the runtime itself (OpenVINO CPU, executorch.runtime, the LiteRT interpreter) on a random batch
    and a real photo; detectors detection by detection, SNNs unrolled over their timesteps."""
    pytest.importorskip({"openvino": "openvino", "executorch": "executorch", "litert": "ai_edge_litert"}[fmt])
    if (name, fmt) in CANNOT:  # a pair the runtime cannot take says why, in one line, and writes nothing
        with pytest.raises(ZooError, match=CANNOT[(name, fmt)]):
            export(fresh(name, small(name), RUNTIME_SMALLER), fmt, imgsz=small(name), out=tmp_path / f"{name}.{fmt}")
        assert not (tmp_path / f"{name}.{fmt}").exists()
        return
    result = export(fresh(name, small(name), RUNTIME_SMALLER), fmt, imgsz=small(name), out=tmp_path / f"{name}.{fmt}")
    assert result.path.exists() and result.format == fmt
    for kind in ("random", "real"):
        check = result.verification[kind]
        assert check["ok"] and check["max_abs_diff"] <= check["tolerance"], (kind, check)


def test_the_export_matrix_covers_every_registered_model():
    """docs/export_matrix.md is generated by benchmarks/export_matrix.py; a new model must be run through it."""
    text = (REPO / "docs" / "export_matrix.md").read_text()
    rows = {line.split("|")[1].strip().strip("`") for line in text.splitlines() if line.startswith("| `")}
    missing = sorted(set(zoo.list_models()) - rows)
    assert not missing, f"not in docs/export_matrix.md: {', '.join(missing)}; run python benchmarks/export_matrix.py --models ..."


def test_dynamic_batch_labels_and_metadata(tmp_path):
    model = zoo.load("mobilenetv3_small_100", num_classes=3)
    model.zoo_spec = __import__("dataclasses").replace(model.zoo_spec, labels=("cat", "dog", "eel"))
    result = export(model, "onnx", imgsz=64, dynamic=True, out=tmp_path / "m.onnx")
    assert result.inputs[0]["shape"][0] == "batch"
    assert result.verification["random_batch2"]["ok"]  # really runs at another batch size
    assert json.loads(result.metadata["labels"]) == ["cat", "dog", "eel"]
    assert json.loads(result.metadata["mean"]) == pytest.approx(list(model.zoo_spec.mean))


def test_torchscript_fallback_is_logged(tmp_path, monkeypatch, caplog):
    real_export = torch.onnx.export

    def no_dynamo(*args, dynamo=True, **kwargs):
        if dynamo:
            raise RuntimeError("pretend the dynamo exporter cannot handle this model")
        return real_export(*args, dynamo=False, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", no_dynamo)
    result = export("mobilenetv3_small_100", "onnx", imgsz=64, out=tmp_path / "m.onnx")
    assert result.metadata["exporter"] == "torch.onnx torchscript"
    assert any("dynamo exporter failed (RuntimeError: pretend" in n for n in result.notes)
    assert "dynamo exporter failed" in caplog.text
    assert result.verification["real"]["ok"]


def test_mismatch_fails_loudly_and_writes_nothing(tmp_path, monkeypatch):
    import zoo.export as export_package
    import zoo.export.onnx as onnx_export

    monkeypatch.setattr(export_package, "compare_outputs",
                        lambda spec, ref, got, **kwargs: {"max_abs_diff": 1.0, "cosine": 0.5, "tolerance": 1e-4, "ok": False})
    with pytest.raises(onnx_export.ExportError, match="differs from PyTorch beyond tolerance.*nothing was written"):
        export("mobilenetv3_small_100", "onnx", imgsz=64, out=tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


def test_deploy_form_is_exported_and_the_original_untouched(tmp_path):
    model = zoo.load("mobileone_s0")
    before = sum(p.numel() for p in model.parameters())
    export(model, "onnx", imgsz=64, out=tmp_path / "m.onnx")
    assert sum(p.numel() for p in model.parameters()) == before
    proto = onnx.load(str(tmp_path / "m.onnx"))
    exported = sum(int(__import__("numpy").prod(i.dims)) for i in proto.graph.initializer)
    assert exported < before / 2  # MobileOne-S0's branches folded: about 2.1M of 5.3M


def test_coreml_conversion_and_spec(tmp_path):
    pytest.importorskip("coremltools")
    model = zoo.load("mobilenetv3_small_100", num_classes=3)
    model.zoo_spec = __import__("dataclasses").replace(model.zoo_spec, labels=("cat", "dog", "eel"))
    result = export(model, "coreml", imgsz=64, out=tmp_path / "m.mlpackage")
    spec = result.verification["spec"]
    assert result.path.is_dir() and (result.path / "Manifest.json").is_file()
    assert spec["inputs"] == [{"name": "images", "type": "multiArrayType", "shape": [1, 3, 64, 64]}]
    assert {o["name"] for o in spec["outputs"]} >= {"classLabel"} and spec["op_count"] > 50
    assert result.metadata["zoo_name"] == "mobilenetv3_small_100"
    half = export(model, "coreml", imgsz=64, half=True, image_input=True, out=tmp_path / "h.mlpackage")
    assert half.verification["spec"]["inputs"][0]["type"] == "imageType" and half.metadata["precision"] == "fp16"
    if platform.system() != "Darwin":
        assert any("only on macOS" in n for n in result.notes)


def test_coreml_converts_a_trace_that_casts_a_size_to_int(tmp_path):
    """YOLOv10's head turns feature-map sizes into Python ints (anchor grids); coremltools folded those casts in a way
    NumPy 2 refuses, so YOLOv10, the DETRs, MobileDets and FastViT-MCi did not convert."""
    pytest.importorskip("coremltools")
    result = export(fresh("yolov10n", 64), "coreml", imgsz=64, out=tmp_path / "y.mlpackage")
    assert result.verification["spec"]["outputs"] and result.verification["spec"]["op_count"] > 100


@pytest.mark.skipif(platform.system() != "Darwin", reason="CoreML prediction needs macOS; conversion is tested above")
def test_coreml_prediction_parity_on_macos(tmp_path):
    result = export("mobilenetv3_small_100", "coreml", imgsz=64, out=tmp_path / "m.mlpackage")
    assert result.verification["real"]["ok"]


def test_tensorrt_without_gpu_names_what_is_missing_and_the_onnx(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: scripts/gpu_check.sh runs the TensorRT path")
    with pytest.raises(ZooError) as err:
        export("mobilenetv3_small_100", "tensorrt", imgsz=64, out=tmp_path / "m.engine")
    message = str(err.value)
    assert "CUDA GPU" in message and f"ready at {tmp_path / 'm.onnx'}" in message and "trtexec --onnx=" in message
    assert (tmp_path / "m.onnx").is_file() and not (tmp_path / "m.engine").exists()


def test_public_call_zoo_export(tmp_path):
    result = zoo.export("mnasnet_small", "onnx", imgsz=64, out=tmp_path / "m.onnx")
    assert isinstance(result, zoo.ExportResult) and result.format == "onnx" and result.path.is_file()


def test_cli_export(tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    assert cli(["export", "mnasnet_small", "--imgsz", "64", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "verified on real input" in printed and f"wrote {out}" in printed and out.is_file()
    assert cli(["export", "mnasnet_small", "--format", "tflite2"]) == 2
    assert "unknown export format 'tflite2'; choose one of onnx, openvino, executorch, litert, coreml, tensorrt" in capsys.readouterr().err
    assert cli(["export", "efficientformer_l1", "--imgsz", "96"]) == 2
    assert "fixed input size of 224x224" in capsys.readouterr().err


@pytest.mark.parametrize(("precision", "atol", "rtol"), [("fp32", 1e-4, 1e-5), ("fp16", 1e-2, 1e-3), ("bf16", 5e-2, 2e-2)])
def test_the_tolerance_of_each_precision_is_what_readme_states(precision, atol, rtol):
    """README: fp32 1e-4 + 1e-5 x max|output|, fp16 1e-2 + 1e-3 x max|output|, bf16 5e-2 + 2e-2 x max|output|."""
    from zoo.export import compare

    reference = torch.tensor([3.0, -20.0, 0.5])
    allowed = atol + rtol * 20.0
    assert compare(reference, reference + allowed * 0.99, precision=precision)["ok"]
    failed = compare(reference, reference + allowed * 1.01, precision=precision)
    assert not failed["ok"] and failed["tolerance"] == pytest.approx(allowed)


def test_int8_tolerance_is_16_output_steps_plus_twice_the_twins_own_error():
    """docs/deploy.md: a runtime's int8 against the PyTorch int8 twin, 16 output steps plus twice the twin's distance
    from the float model where that is known."""
    from zoo.export import compare

    reference = torch.tensor([1.0, -2.0, 0.5])
    assert compare(reference, reference + 0.15, int8_step=0.01)["tolerance"] == pytest.approx(0.16)
    assert not compare(reference, reference + 0.17, int8_step=0.01)["ok"]
    wide = compare(reference, reference + 0.55, int8_step=0.01, int8_error=0.2)
    assert wide["ok"] and wide["tolerance"] == pytest.approx(0.56) and wide["int8_error"] == 0.2
    assert not compare(reference, reference + 0.57, int8_step=0.01, int8_error=0.2)["ok"]


def test_onnxslim_makes_a_smaller_graph_with_the_same_outputs(tmp_path):
    """MobileDet's in-graph post-processing leaves shape arithmetic that onnxslim folds (D-FINE: 2707 -> 679 nodes)."""
    size = small("mobiledet_cpu")
    model = fresh("mobiledet_cpu", size)
    plain = export(model, "onnx", imgsz=size, simplify=False, out=tmp_path / "plain.onnx")
    slim = export(model, "onnx", imgsz=size, simplify=True, out=tmp_path / "slim.onnx")
    nodes = [len(onnx.load(str(r.path)).graph.node) for r in (plain, slim)]
    assert nodes[1] < nodes[0], nodes
    assert slim.verification["random"]["ok"] and slim.verification["real"]["ok"]


def test_onnxruntime_int8_kernels_saturate_only_where_the_zoo_says_and_fusion_off_runs_the_graph_as_written(tmp_path):
    """One uint8 x int8 dot product of 64 terms (255 x 127 each, exactly 64.0 after the scales): without VNNI,
    onnxruntime's fused kernel clamps each 16-bit pair sum (64,770 to 32,767), about halving it; this is why an int8
    QAT export is verified with Q/DQ fusion off on such CPUs (``u8s8_saturates``)."""
    pytest.importorskip("onnxruntime")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from zoo.export.onnx import session, u8s8_saturates

    k = 64
    consts = {"sx": np.float32(1 / 255), "zx": np.uint8(0), "w": np.full((k, 1), 127, np.int8), "sw": np.float32(1 / 127),
              "zw": np.int8(0), "sy": np.float32(0.5), "zy": np.uint8(0)}
    nodes = [helper.make_node("DequantizeLinear", ["x", "sx", "zx"], ["xf"]), helper.make_node("DequantizeLinear", ["w", "sw", "zw"], ["wf"]),
             helper.make_node("MatMul", ["xf", "wf"], ["yf"]), helper.make_node("QuantizeLinear", ["yf", "sy", "zy"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["y"])]
    graph = helper.make_graph(nodes, "dot", [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
                              [numpy_helper.from_array(np.asarray(v), n) for n, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(tmp_path / "dot.onnx"))
    x = {"x": np.full((1, k), 255, np.uint8)}
    assert session(tmp_path / "dot.onnx", fuse_qdq=False).run(None, x)[0].item() == 64.0
    fused = session(tmp_path / "dot.onnx").run(None, x)[0].item()
    assert (fused < 40.0) if u8s8_saturates() else (fused == 64.0), fused
