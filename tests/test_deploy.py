"""Deploy runtimes: OpenVINO, ExecuTorch and LiteRT exports verified in their own runtimes, their precisions,
their metadata and failures; `zoo quantize` end to end; `zoo bench` across runtimes with the fastest form."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

import zoo
from zoo.bench import best_forms, bench, open_runtime
from zoo.cli import main as cli
from zoo.errors import ZooError
from zoo.export import export, report_path

pytest.importorskip("openvino")
pytest.importorskip("executorch")
pytest.importorskip("ai_edge_litert")

RUNTIMES = ("openvino", "executorch", "litert")


def labelled(name: str = "mobilenetv3_small_100", labels=("cat", "dog", "eel")) -> torch.nn.Module:
    model = zoo.load(name, num_classes=len(labels)).eval()
    model.zoo_spec = dataclasses.replace(model.zoo_spec, labels=tuple(labels))
    return model


def read_metadata(fmt: str, path) -> dict[str, str]:
    """The zoo metadata as each runtime's own file format carries it."""
    if fmt == "openvino":
        import openvino as ov

        model = ov.Core().read_model(str(path / "model.xml"))
        return {k: model.get_rt_info(["model_info", k]).astype(str) for k in ("zoo_name", "labels", "precision", "task")}
    module = __import__(f"zoo.export.{fmt}", fromlist=["read_metadata"])
    return module.read_metadata(path)


@pytest.mark.parametrize("fmt", RUNTIMES)
def test_runtime_export_is_verified_in_its_runtime_and_carries_metadata(fmt, tmp_path):
    model = labelled()
    result = export(model, fmt, imgsz=64, out=tmp_path / f"m.{fmt}")
    assert result.format == fmt and result.path.exists()
    for kind in ("random", "real"):
        check = result.verification[kind]
        assert check["ok"] and check["max_abs_diff"] <= check["tolerance"] and check["cosine"] > 0.9999, (kind, check)
    props = read_metadata(fmt, result.path)
    assert props["zoo_name"] == "mobilenetv3_small_100" and json.loads(props["labels"]) == ["cat", "dog", "eel"]
    assert props["precision"] == "fp32" and props["task"] == "classification"
    report = json.loads(report_path(result.path).read_text())
    assert report["format"] == fmt and report["verification"]["real"]["ok"]
    # the written file, opened again as `zoo bench` opens it, gives PyTorch's output on a new input
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(open_runtime(fmt, result.path, threads=1)(x.numpy()), expected, atol=1e-4, rtol=1e-4)


def test_openvino_fp16_halves_the_weights_and_bf16_is_a_recorded_hint(tmp_path):
    import openvino as ov

    from zoo.export.openvino import compile

    model = zoo.load("mnasnet_small").eval()
    fp32 = export(model, "openvino", imgsz=64, out=tmp_path / "fp32")
    fp16 = export(model, "openvino", imgsz=64, precision="fp16", out=tmp_path / "fp16")
    bf16 = export(model, "openvino", imgsz=64, precision="bf16", out=tmp_path / "bf16")
    weights = {r.path.name: (r.path / "model.bin").stat().st_size for r in (fp32, fp16, bf16)}
    assert weights["fp16"] < 0.55 * weights["fp32"] and weights["bf16"] == weights["fp32"]
    assert fp16.verification["real"]["tolerance"] > fp32.verification["real"]["tolerance"]  # fp16 is checked as fp16
    if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):  # a CPU without bf16 runs f32 whatever the hint
        assert compile(bf16.path).get_property("INFERENCE_PRECISION_HINT") == ov.Type.bf16
    assert compile(fp32.path).get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    assert ov.Core().read_model(str(bf16.path / "model.xml")).get_rt_info(["model_info", "precision"]).astype(str) == "bf16"


@pytest.mark.parametrize("fmt", ["openvino", "litert"])
def test_a_runtime_that_disagrees_fails_loudly_and_writes_nothing(fmt, tmp_path, monkeypatch):
    import zoo.export as export_module

    real, seen = export_module.verify, []

    def disagree(spec, what, run, inputs, reference, **kwargs):
        seen.append(what)
        return real(spec, what, lambda x: run(x) + 1.0, inputs, reference, **kwargs)

    # the runtime's own check: OpenVINO's module calls verify itself, single-file programs go through zoo.export's
    target = __import__("zoo.export.openvino", fromlist=["verify"]) if fmt == "openvino" else export_module
    monkeypatch.setattr(target, "verify", disagree)
    with pytest.raises(export_module.ExportError, match="output differs from PyTorch beyond tolerance.*nothing was written"):
        export("mnasnet_small", fmt, imgsz=64, out=tmp_path / "out" / f"m.{fmt}")
    assert seen == [{"openvino": "OpenVINO", "litert": "LiteRT"}[fmt]]  # the runtime's own check failed, after the file was staged
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["export", "mnasnet_small", "--format", "litert", "--precision", "fp16"], "litert exports fp32, int8, not 'fp16'"),
        (["export", "mnasnet_small", "--format", "openvino", "--precision", "int8"], "int8 needs calibration data: `zoo quantize"),
        (["export", "mnasnet_small", "--format", "executorch", "--dynamic"], "executorch exports a fixed batch"),
        (["export", "matlm_nano", "--format", "litert"], "is a language model"),
        (["export", "mnasnet_small", "--format", "savedmodel"], "unknown export format 'savedmodel'; choose one of onnx, openvino, executorch, litert"),
        (["quantize", "mnasnet_small", "--format", "openvino"], "name the calibration and validation data"),
        (["quantize", "mnasnet_small", "--data", "digits", "--format", "coreml"], "zoo quantize writes onnx, openvino, executorch, litert"),
        (["bench", "mnasnet_small", "--precision", "int4"], "unknown precision(s) int4"),
    ],
)
def test_bad_deploy_input_gets_one_clear_line(capsys, argv, needle):
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_missing_runtime_names_the_pip_install(monkeypatch, capsys):
    import importlib

    real = importlib.import_module

    def without_openvino(name, *args, **kwargs):
        if name == "openvino":
            raise ImportError("No module named 'openvino'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", without_openvino)
    assert cli(["export", "mnasnet_small", "--format", "openvino"]) == 2
    assert "needs the openvino package: pip install 'efficient-zoo[openvino]'" in capsys.readouterr().err


def test_quantize_a_trained_classifier_keeps_its_accuracy(quickstart_run, tmp_path):
    """PTQ of the quickstart model for onnxruntime: the int8 file is what the report says it is."""
    from zoo.ptq import quantize

    out = tmp_path / "m.int8.onnx"
    report = quantize(str(quickstart_run), "onnx", ["data=digits"], calib=32, out=out, threads=1, runs=20, progress=False)
    assert out.is_file() and report_path(out).is_file() and (tmp_path / "m.int8.onnx.quantize.json").is_file()
    assert report["accuracy"]["fp32"] == report["accuracy"]["pytorch fp32"]  # the fp32 export loses nothing
    assert report["accuracy_delta_pt"] >= -2.0 and report["accuracy"]["int8"] >= 0.9
    assert report["latency_ms"]["int8"] > 0 and report["speedup"] == pytest.approx(report["latency_ms"]["fp32"] / report["latency_ms"]["int8"])
    assert report["int8_pays"] == (report["latency_ms"]["int8"] < report["latency_ms"]["fp32"])
    import onnx

    graph = onnx.load(str(out))
    ops = {n.op_type for n in graph.graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    for float_type in report["float_types"]:  # the op types chosen to stay float have no int8 twin around them
        assert float_type in ops
    # the int8 file's accuracy, measured again here, is the one reported
    from zoo.evaluate import data_module, evaluate
    from zoo.ptq import _module

    model = zoo.load(str(quickstart_run))
    data, _ = data_module(model.zoo_spec, ["data=digits"])
    top1 = evaluate(_module(open_runtime("onnx", out, 1)), data.val_dataloader(), data.classes, progress=False)["top1"]
    assert top1 == pytest.approx(report["accuracy"]["int8"])


def test_quantize_a_detector(detection_run, tmp_path, capsys):
    assert cli(["quantize", str(detection_run), "--data", "shapes_det", "data.val_images=8", "data.image_size=64",
                "data.img_size=64", "--format", "onnx", "--no-mixed", "--calib", "8", "--out", str(tmp_path / "det.onnx")]) == 0
    printed = capsys.readouterr().out
    assert "mAP@.5" in printed and "latency: fp32" in printed
    report = json.loads((tmp_path / "det.onnx.quantize.json").read_text())
    assert report["metric"] == "mAP@.5" and report["quantizer"] == "onnxruntime" and report["calibration_images"] == 8
    assert report["accuracy"]["fp32"] == pytest.approx(report["accuracy"]["pytorch fp32"])
    verification = json.loads(report_path(tmp_path / "det.onnx").read_text())["verification"]
    assert verification["calibration"]["ok"] and verification["calibration"]["cosine"] >= 0.98  # the sorted scores' direction
    out = open_runtime("onnx", tmp_path / "det.onnx", 1)(np.random.rand(1, 3, 64, 64).astype(np.float32))
    assert out.shape == (1, 300, 6)


@pytest.mark.parametrize("fmt", ["executorch", "litert"])
def test_int8_pt2e_export_matches_its_pytorch_int8_twin(fmt, quickstart_run, tmp_path):
    """ExecuTorch's and LiteRT's int8 programs against the converted PT2E graph on the first and last calibration
    images, within 16 output steps plus twice the twin's own distance from the float model (docs/deploy.md)."""
    from zoo.evaluate import data_module
    from zoo.ptq import _images

    model = zoo.load(str(quickstart_run)).eval()
    data, _ = data_module(model.zoo_spec, ["data=digits"])
    result = export(model, fmt, precision="int8", calibration=_images(data.calibration_dataloader(), 16), out=tmp_path / f"m.{fmt}")
    assert result.metadata["precision"] == "int8" and any("PyTorch int8 twin" in n for n in result.notes)
    assert set(result.verification) == {"calibration", "calibration_last"}
    for check in result.verification.values():
        assert 0 < check["int8_error"] < 1.0 and check["tolerance"] <= 16 * 0.1 + 2 * check["int8_error"], check
        assert check["ok"] and check["max_abs_diff"] <= check["tolerance"], check
    assert read_metadata(fmt, result.path)["precision"] == "int8"


def test_bench_times_every_runtime_interleaved_and_names_the_fastest(tmp_path):
    doc = bench(["mnasnet_small"], backends=("onnxruntime", "openvino", "litert"), precisions=("fp32", "bf16"), imgsz=64,
                threads=1, runs=50, warmup=2, out_dir=tmp_path, progress=False)
    rows = {(r["backend"], r["precision"]): r for r in doc["results"]}
    assert set(rows) == {("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "bf16"), ("litert", "fp32")}
    for r in rows.values():
        assert "error" not in r, r
        assert 0 < r["p50_ms"] <= r["p90_ms"] and r["rounds"] == 5
    (best,) = best_forms(doc)
    fastest = min(rows.values(), key=lambda r: r["p50_ms"])
    assert (best["backend"], best["precision"]) == (fastest["backend"], fastest["precision"])
    assert best["speedup_vs_onnxruntime_fp32"] == pytest.approx(rows[("onnxruntime", "fp32")]["p50_ms"] / fastest["p50_ms"])


def test_a_failing_runtime_keeps_the_other_rows(tmp_path, monkeypatch):
    import zoo.export.litert as litert

    def broken(*args, **kwargs):
        raise ZooError("pretend LiteRT cannot convert this model")

    monkeypatch.setattr(litert, "export_litert", broken)
    doc = bench(["mnasnet_small"], backends=("onnxruntime", "litert"), imgsz=64, threads=1, runs=50, warmup=1,
                out_dir=tmp_path, progress=False)
    rows = {r["backend"]: r for r in doc["results"]}
    assert "pretend LiteRT cannot convert" in rows["litert"]["error"] and rows["onnxruntime"]["p50_ms"] > 0


def test_readme_int8_accuracy_table_is_rendered_from_the_committed_reports():
    """README's int8 accuracy rows come from docs/int8_accuracy.json (what `zoo quantize` wrote) and the deploy
    benchmark's JSON, through benchmarks/int8_accuracy.py: no cell is typed by hand, and the targets line is
    computed from the rows."""
    import importlib.util
    import json
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("int8_accuracy", root / "benchmarks" / "int8_accuracy.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    reports = json.loads((root / "docs" / "int8_accuracy.json").read_text())
    rendered = script.table(reports, json.loads((root / "docs" / "deploy_benchmark.json").read_text()))
    block = re.search(r"<!-- int8-accuracy:start -->\n(.*?)\n<!-- int8-accuracy:end -->", (root / "README.md").read_text(), re.S)
    assert block and block.group(1) == rendered
    assert {r["model"] for r in reports} == {"mobileone_s0", "efficientformer_l1", "nextvit_small", "yolov10n", "mobiledet_cpu"}
    for r in reports:  # each delta is the difference of the two accuracies the same report holds
        assert abs(r["accuracy_delta_pt"] - 100 * (r["accuracy"]["int8"] - r["accuracy"]["fp32"])) < 1e-9


def test_an_op_type_the_quantizer_rewrites_cannot_stay_float(tmp_path):
    """onnxruntime's pre-processing turns HardSwish into HardSigmoid and Mul: keeping "HardSwish" in float would
    change nothing, so the mixed-precision search must not time (and possibly pick) that no-op trial."""
    import io

    import onnx

    from zoo.export import ExportError
    from zoo.export.onnx import quantize_static

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Hardswish()).eval()
    buffer = io.BytesIO()
    torch.onnx.export(net, (torch.randn(1, 3, 8, 8),), buffer, dynamo=False, opset_version=17)
    proto = onnx.load_from_string(buffer.getvalue())
    assert "HardSwish" in {n.op_type for n in proto.graph.node}
    batches = [torch.randn(1, 3, 8, 8)]
    with pytest.raises(ExportError, match="HardSwish not in the graph onnxruntime quantizes"):
        quantize_static(proto, batches, exclude_types=("HardSwish",))

    def fed_by_hardsigmoid_unquantized(graph):
        producer = {out: node.op_type for node in graph.graph.node for out in node.output}
        return any(producer.get(i) == "HardSigmoid" for node in graph.graph.node if node.op_type != "QuantizeLinear"
                   for i in node.input)

    assert not fed_by_hardsigmoid_unquantized(quantize_static(proto, batches))  # int8: its output is quantized
    assert fed_by_hardsigmoid_unquantized(quantize_static(proto, batches, exclude_types=("HardSigmoid",)))
