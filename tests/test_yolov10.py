"""YOLOv10: exact parameter counts, official key layouts, heads, fusion, detections."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save as safetensors_bytes
from safetensors.torch import save_file

import zoo
from zoo.errors import WeightsError
from zoo.models.yolov10 import HEAD_BRANCHES, LAYERS, YOLOv10

# Parameter counts of the reference implementation (80 classes, BatchNorm included, unfused).
TRAINING = {"n": 2_775_520, "s": 8_128_272, "m": 16_576_768, "b": 20_574_384, "l": 25_888_688, "x": 31_808_960}
INFERENCE = {"n": 2_310_624, "s": 7_277_920, "m": 15_389_968, "b": 19_101_696, "l": 24_416_000, "x": 29_539_408}
# Fused, one-to-one head only: the form the paper's "Params" column counts (2.3M, 7.2M, ...).
PUBLISHED_FORM = {"n": 2_299_264, "s": 7_248_960, "m": 15_359_488, "b": 19_065_792, "l": 24_371_008, "x": 29_473_568}
# Per-layer counts of yolov10n, official layer indices 0..22
# (docs/sources.md, "YOLOv10: per-layer parameters").
N_LAYERS = [464, 4672, 7360, 18560, 49664, 9856, 197632, 36096, 460288, 164608, 249728,
            0, 0, 148224, 0, 0, 37248, 36992, 0, 123648, 18048, 0, 282624]


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("scale", list(TRAINING))
def test_parameter_counts_in_all_three_forms(scale):
    model = zoo.load(f"yolov10{scale}")
    assert count(model) == TRAINING[scale]
    model.head.drop_one2many()
    assert count(model) == INFERENCE[scale]
    model.fuse()
    assert count(model) == PUBLISHED_FORM[scale]


def test_per_layer_counts_of_yolov10n():
    model = YOLOv10("n")
    got = [count(getattr(model, name)) if name else 0 for name in LAYERS[:-1]]
    assert got == N_LAYERS
    assert count(model.head) == 929_808


def test_batchnorm_constants_follow_the_reference():
    bns = [m for m in YOLOv10("n").modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(bn.eps == 1e-3 and bn.momentum == 0.03 for bn in bns)


def randomised(scale: str = "n", seed: int = 0, num_classes: int = 80) -> YOLOv10:
    """A model whose BatchNorm statistics and biases are not the identity, so fusion is really tested."""
    torch.manual_seed(seed)
    model = YOLOv10(scale, num_classes=num_classes)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        for branch in (model.head.cls_o2m, model.head.cls_o2o):
            for seq in branch:
                seq[-1].weight.normal_(0.0, 1.0)  # spread scores so the top-k has a clear order
                seq[-1].bias.normal_(-2.0, 1.0)
    return model.eval()


def test_eval_returns_topk_detections_and_train_returns_both_heads():
    model = randomised()
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        det = model(x)
    assert det.shape == (2, 300, 6)
    valid = det[..., 4] > 0
    assert valid.sum(1).tolist() == [12 * 12 + 6 * 6 + 3 * 3] * 2  # fewer anchors than max_det: score-0 padding
    scores = det[0, valid[0], 4]
    assert torch.all(scores[:-1] >= scores[1:])  # sorted by score
    assert det[..., 5].min() >= 0 and det[..., 5].max() < 80
    assert torch.all(det[valid][:, 2] >= det[valid][:, 0]) and torch.all(det[valid][:, 3] >= det[valid][:, 1])

    model.train()
    out = model(x)
    assert set(out) == {"one2many", "one2one"}
    assert [o.shape for o in out["one2one"]] == [(2, 144, 12, 12), (2, 144, 6, 6), (2, 144, 3, 3)]


def test_one_to_one_head_trains_on_detached_features():
    model = YOLOv10("n", num_classes=3).train()
    out = model(torch.rand(1, 3, 64, 64))
    sum(o.sum() for o in out["one2one"]).backward()
    assert model.stem.conv.weight.grad is None  # the backbone gets no gradient from the one-to-one branch
    assert model.head.cls_o2o[0][-1].weight.grad is not None
    assert model.head.box_o2m[0][-1].weight.grad is None


def test_fuse_and_deploy_keep_outputs():
    model = randomised()
    x = torch.rand(1, 3, 160, 160)
    with torch.no_grad():
        reference = model(x)
        deployed = zoo.export.deploy_form(model)
        fused = deployed(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in deployed.modules())
    assert deployed.pan_p5.m[0].cv1[2].conv1 is None  # RepVGGDW merged into its 7x7 conv
    assert deployed.head.box_o2m is None and count(deployed) == PUBLISHED_FORM["n"]
    assert count(model) == TRAINING["n"]  # the original is untouched
    check = zoo.export.compare_detections(reference.numpy(), fused.numpy())
    assert check["ok"] and check["required"] > 100, check
    deployed.train()
    with pytest.raises(RuntimeError, match="deploy form"):
        deployed(x)


def test_input_size_must_be_a_multiple_of_32():
    with pytest.raises(ValueError, match="multiples of 32"):
        YOLOv10("n").eval()(torch.rand(1, 3, 100, 100))


def official_state_dict(model: YOLOv10, layout: str) -> dict[str, torch.Tensor]:
    """Our weights under the official key names: 'model.model.<i>.…' (Hub) or 'model.<i>.…' (release)."""
    index = {name: i for i, name in enumerate(LAYERS) if name}
    branches = {ours: theirs for theirs, ours in HEAD_BRANCHES.items()}
    prefix = {"hub": "model.model", "release": "model"}[layout]
    out = {}
    for key, value in model.state_dict().items():
        first, rest = key.split(".", 1)
        if first == "head":
            branch, tail = rest.split(".", 1)
            rest = f"{branches.get(branch, branch)}.{tail}"
        out[f"{prefix}.{index[first]}.{rest}"] = value.clone()
    return out


@pytest.mark.parametrize("layout", ["hub", "release"])
def test_official_key_layouts_load_through_weights_path(layout, tmp_path):
    source = randomised(seed=3)
    state = official_state_dict(source, layout)
    assert ("model.model.23.one2one_cv3.2.2.bias" in state) == (layout == "hub")
    assert ("model.23.cv2.0.2.weight" in state) == (layout == "release")
    path = tmp_path / "official.safetensors"
    save_file(state, str(path))
    model = zoo.load("yolov10n", weights=path).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x))


def test_foreign_or_incomplete_weights_fail_with_the_keys_named(tmp_path):
    state = official_state_dict(YOLOv10("n"), "hub")
    bad = dict(state, **{"backbone.layer1.weight": torch.zeros(1)})
    save_file(bad, str(tmp_path / "bad.safetensors"))
    with pytest.raises(WeightsError, match=r"backbone\.layer1\.weight"):
        zoo.load("yolov10n", weights=tmp_path / "bad.safetensors")
    partial = {k: v for k, v in state.items() if not k.startswith("model.model.23.one2one_cv2")}
    save_file(partial, str(tmp_path / "partial.safetensors"))
    with pytest.raises(WeightsError, match=r"missing \(head\.box_o2o"):
        zoo.load("yolov10n", weights=tmp_path / "partial.safetensors")
    no_counters = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    save_file(no_counters, str(tmp_path / "nocount.safetensors"))
    zoo.load("yolov10n", weights=tmp_path / "nocount.safetensors")


def test_pretrained_downloads_official_hub_file(hub_env, hub):
    source = randomised(seed=5)
    config = {"model": "yolov10n.yaml", "task": "detect"}
    hub.add("jameslahm/yolov10n", {
        "model.safetensors": safetensors_bytes(official_state_dict(source, "hub")),
        "config.json": json.dumps(config).encode(),
    })
    model = zoo.load("yolov10n", pretrained=True).eval()
    assert model.zoo_spec.tag == "coco" and model.zoo_spec.labels[0] == "person"
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x))
    with pytest.warns(UserWarning, match="reset"):
        fine_tune = zoo.load("yolov10n", pretrained=True, num_classes=4)
    assert fine_tune.head.cls_o2o[0][-1].out_channels == 4
    torch.testing.assert_close(fine_tune.stem.conv.weight, source.stem.conv.weight)


def test_weights_licence_is_shown(capsys):
    from zoo.cli import main as cli

    spec = zoo.info("yolov10n")
    assert spec.weight().license == "agpl-3.0" and spec.license == "apache-2.0"
    assert cli(["info", "yolov10n"]) == 0
    assert "agpl-3.0" in capsys.readouterr().out
    assert cli(["list", "yolov10*", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["name"] for r in rows) == sorted(f"yolov10{s}" for s in "nsmblx")
    assert all(r["weights_license"] == "agpl-3.0" and r["task"] == "detection" for r in rows)


def test_onnx_export_matches_pytorch_detection_by_detection(tmp_path):
    import onnxruntime as ort

    model = randomised(seed=7)
    model.zoo_spec = zoo.info("yolov10n")
    result = zoo.export(model, "onnx", imgsz=128, dynamic=True, out=tmp_path / "y.onnx")
    for kind in ("random", "real", "random_batch2"):
        check = result.verification[kind]
        assert check["ok"] and check["required"] > 100 and check["matched"] == check["required"], (kind, check)
    assert result.outputs[0]["shape"][1:] == [300, 6]
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    x = torch.rand(3, 3, 128, 128)
    with torch.no_grad():
        reference = zoo.export.deploy_form(model)(x).numpy()
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert got.shape == (3, 300, 6)
    assert zoo.export.compare_detections(reference, got)["ok"]


def test_detection_comparison_catches_a_moved_box():
    model = randomised(seed=8)
    with torch.no_grad():
        det = model(torch.rand(1, 3, 96, 96)).numpy()
    moved = det.copy()
    moved[0, 3, :4] += 2.0  # one confident detection off by 2 px
    assert zoo.export.compare_detections(det, det)["ok"]
    assert not zoo.export.compare_detections(det, moved)["ok"]
    relabelled = det.copy()
    relabelled[0, 0, 5] = (relabelled[0, 0, 5] + 1) % 80
    assert not zoo.export.compare_detections(det, relabelled)["ok"]


def test_coreml_conversion_of_the_nms_free_graph(tmp_path):
    pytest.importorskip("coremltools")
    result = zoo.export("yolov10n", "coreml", imgsz=128, out=tmp_path / "y.mlpackage")
    spec = result.verification["spec"]
    assert spec["inputs"][0]["shape"] == [1, 3, 128, 128]
    assert spec["outputs"][0]["shape"] == [1, 300, 6]


# Key names and shapes as the official yolov10n checkpoints hold them (docs/sources.md,
# "YOLOv10: checkpoint keys"), written out literally so the converter is checked against the official layout,
# not against its own table.
OFFICIAL_N_KEYS = {
    "model.model.0.conv.weight": (16, 3, 3, 3),
    "model.model.2.m.0.cv1.conv.weight": (16, 16, 3, 3),
    "model.model.5.cv2.conv.weight": (128, 1, 3, 3),
    "model.model.10.attn.qkv.conv.weight": (256, 128, 1, 1),
    "model.model.10.attn.pe.conv.weight": (128, 1, 3, 3),
    "model.model.10.ffn.0.conv.weight": (256, 128, 1, 1),
    "model.model.22.m.0.cv1.2.conv.conv.weight": (256, 1, 7, 7),
    "model.model.22.m.0.cv1.2.conv1.conv.weight": (256, 1, 3, 3),
    "model.model.23.cv2.0.2.weight": (64, 64, 1, 1),
    "model.model.23.cv3.0.0.0.conv.weight": (64, 1, 3, 3),
    "model.model.23.one2one_cv3.2.2.bias": (80,),
    "model.model.23.dfl.conv.weight": (1, 16, 1, 1),
    "model.23.one2one_cv2.1.0.bn.running_var": (64,),
}


def test_literal_official_keys_land_on_tensors_of_their_shape():
    from zoo.models.yolov10 import convert_official

    own = YOLOv10("n").state_dict()
    converted = convert_official({k: torch.zeros(shape) for k, shape in OFFICIAL_N_KEYS.items()})
    assert len(converted) == len(OFFICIAL_N_KEYS)
    for key, value in converted.items():
        assert key in own and tuple(own[key].shape) == tuple(value.shape), key


def test_pickled_release_files_point_at_the_hub_copy(tmp_path):
    path = tmp_path / "yolov10n.pt"
    torch.save({"model": {"model.0.conv.weight": torch.zeros(1)}}, path)
    with pytest.raises(zoo.errors.UnsafeWeightsError, match=r"jameslahm/yolov10n/model\.safetensors"):
        zoo.load("yolov10n", weights=path)


def test_doclayout_yolo_has_gl_crm_in_three_stages_and_folds_exactly():
    model = zoo.load("doclayout_yolo")
    # The built network's count, derived independently from the released module definitions (docs/sources.md)
    assert sum(p.numel() for p in model.parameters()) == 19_973_596 and len(model.zoo_spec.labels) == 10
    state = model.state_dict()
    assert state["stage2.m.0.dilated_block.dcv.conv.weight"].shape == (96, 96, 5, 5)  # layer 4: k 5, dilations 1/2/3
    assert state["stage3.m.3.dilated_block.conv1x1.conv.weight"].shape == (192, 3, 1, 1)  # layer 6: 3 branches
    assert state["stage4.m.3.cv1.0.conv.weight"].shape == (288, 1, 3, 3) and len(model.stage4.m) == 4  # layer 8: CIBs
    torch.manual_seed(0)
    block = model.stage2.m[0].dilated_block.eval()
    for m in block.modules():  # trained-looking statistics, so that folding them changes the conv's numbers
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.rand(1, 96, 20, 20)
    with torch.no_grad():
        before = block(x)
        for m in block.modules():
            if hasattr(m, "fuse") and m is not block:
                m.fuse()
        torch.testing.assert_close(block(x), before, atol=1e-5, rtol=1e-4)  # the shared conv's BatchNorm folds into its bias


def test_doclayout_yolo_reads_the_released_ultralytics_pickle_without_running_it(hub_env, hub, tmp_path, monkeypatch, capsys):
    """The release pickles whole modules of doclayout_yolo's classes; the zoo takes their tensors without building
    any of them (a call hidden in the checkpoint does not run), converts the key layout and loads it; `zoo predict`
    does the same with --allow-pickle."""
    import io
    import sys
    import types

    from zoo.errors import UnsafeWeightsError

    torch.manual_seed(1)
    source = zoo.load("doclayout_yolo").eval()
    tasks = types.ModuleType("doclayout_yolo.nn.tasks")

    class YOLOv10DetectionModel(torch.nn.Module):
        pass

    YOLOv10DetectionModel.__module__, YOLOv10DetectionModel.__qualname__ = tasks.__name__, "YOLOv10DetectionModel"
    tasks.YOLOv10DetectionModel = YOLOv10DetectionModel
    for name in ("doclayout_yolo", "doclayout_yolo.nn"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, tasks.__name__, tasks)
    released = YOLOv10DetectionModel()
    for key, value in official_state_dict(source, "release").items():  # 'model.<i>.…' under the detection model
        *path, leaf = key.split(".")
        module = released
        for name in path:
            if not hasattr(module, name):
                module.add_module(name, torch.nn.Module())
            module = getattr(module, name)
        if leaf.startswith(("running_", "num_batches")):
            module.register_buffer(leaf, value)
        else:
            module.register_parameter(leaf, torch.nn.Parameter(value, requires_grad=False))
    ran = tmp_path / "ran"

    class Call:  # what a hostile checkpoint could hide: unpickling it would create a file
        def __reduce__(self):
            return open, (str(ran), "w")

    buffer = io.BytesIO()
    torch.save({"model": released.half(), "ema": None, "epoch": -1, "train_args": Call(), "names": {0: "title"}}, buffer)
    hub.add("juliozhao/DocLayout-YOLO-DocStructBench", {"doclayout_yolo_docstructbench_imgsz1024.pt": buffer.getvalue()})
    with pytest.raises(UnsafeWeightsError, match="allow_pickle=True"):
        zoo.load("doclayout_yolo", pretrained=True)
    model = zoo.load("doclayout_yolo", pretrained=True, allow_pickle=True).eval()
    assert not ran.exists() and model.zoo_spec.tag == "docstructbench"
    expected = {k: v.half().float() for k, v in source.state_dict().items()}
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value.float(), expected[key].float(), msg=key)

    # the command line: refused with the switch named, then predicts a rendered page with the same weights
    import json

    from zoo.cli import main
    from zoo.data.doc_pages import page_sample
    from zoo.predict import predict

    page = tmp_path / "page.png"
    page_sample(0, "val", 0)[0].save(page)
    cli = ["predict", "doclayout_yolo.docstructbench", str(page), "--out", str(tmp_path / "cli"), "--imgsz", "320", "--conf", "0"]
    assert main(cli) == 2 and "On the command line: --allow-pickle." in capsys.readouterr().err
    assert main([*cli, "--allow-pickle"]) == 0
    api = predict(model, [page], tmp_path / "api", imgsz=320, conf=0.0)[0]["detections"]
    assert len(api) == 300  # YOLOv10 keeps its top 300; all of them at conf 0
    written = json.loads((tmp_path / "cli" / "predictions.json").read_text())
    assert written["model"] == "doclayout_yolo.docstructbench" and written["images"][0]["detections"] == api
