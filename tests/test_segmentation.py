"""Semantic segmentation: the shapes masks, the joint transforms, mask checks, the metrics against torchmetrics'
own, the models' output contract and sizes, and a tiny run through zoo train / eval / export."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

import zoo
from zoo.errors import DataError

TINY = ["trainer.enable_progress_bar=false", "trainer.max_epochs=1", "data.train_images=16", "data.val_images=8",
        "data.image_size=64", "data.img_size=64", "data.batch_size=8"]


def test_shapes_class_map_is_the_drawn_shapes():
    """Every labelled pixel has the fill colour of an object of that class, every object's class fills part of its box,
    and the image is the detection set's image (one renderer)."""
    from zoo.data.shapes import _scene, detection_sample, segmentation_sample

    for i in range(6):
        image, class_map = segmentation_sample(3, "val", i, 96)
        scene = _scene(3, "val", i, 96)
        assert np.array_equal(np.asarray(image), np.asarray(detection_sample(3, "val", i, 96)[0]))
        pixels = np.asarray(image)
        for k in range(1, 5):
            colours = {scene.colours[j] for j in range(len(scene.labels)) if scene.labels[j] == k - 1}
            labelled = pixels[class_map == k]
            assert all(tuple(int(v) for v in p) in colours for p in labelled[:: max(1, len(labelled) // 200)])
        for box, label in zip(scene.boxes.astype(int), scene.labels):
            assert (class_map[box[1]:box[3], box[0]:box[2]] == label + 1).any()
        assert (class_map == 0).mean() > 0.2  # background is a class of its own, and the largest


def test_training_transform_moves_the_mask_with_the_image():
    """Scale, crop and flip: where the mask says class k the image still shows k's grey level (only the boundaries,
    interpolated differently, may differ); the crop's padding is the ignore index over black pixels."""
    from torchvision import tv_tensors

    from zoo.data.segmentation import segmentation_transforms

    classes = np.zeros((60, 90), np.int64)
    classes[:, 30:60], classes[:, 60:] = 1, 2
    classes[40:, :] = 3
    image = torch.from_numpy(np.stack([classes * 60 + 20] * 3).astype(np.uint8))
    transform = segmentation_transforms(64, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 255, {"scale": [0.5, 2.0], "photometric": 0})
    torch.manual_seed(0)
    padded = 0
    for _ in range(20):
        x, mask = transform(tv_tensors.Image(image), tv_tensors.Mask(torch.from_numpy(classes)))
        assert x.shape == (3, 64, 64) and mask.shape == (64, 64) and mask.dtype == torch.int64
        labelled = mask != 255
        expected = (mask[labelled].float() * 60 + 20) / 255
        assert ((x[0][labelled] - expected).abs() < 0.02).float().mean() > 0.9
        padded += int((~labelled).sum())
        assert (x[:, ~labelled] == 0).all()
    assert padded > 0  # some draws zoomed out below the crop size


def _folder(root: Path, masks: dict[str, np.ndarray], sizes: dict[str, tuple[int, int]] | None = None) -> Path:
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "annotations" / split).mkdir(parents=True, exist_ok=True)
        for name, mask in masks.items():
            w, h = (sizes or {}).get(name, (mask.shape[1], mask.shape[0]))
            Image.new("RGB", (w, h), (120, 80, 40)).save(root / "images" / split / f"{name}.jpg")
            Image.fromarray(mask.astype(np.uint8), "L").save(root / "annotations" / split / f"{name}.png")
    return root


def _folder_data(root: Path, **overrides):
    from zoo.data.segmentation import SegmentationDataModule

    cfg = OmegaConf.load(Path(zoo.__file__).parents[1] / "conf" / "data" / "seg_folder.yaml")
    cfg.root, cfg.names, cfg.img_size, cfg.batch_size, cfg.num_workers = str(root), ["bg", "a", "b"], 32, 2, 0
    for key, value in overrides.items():
        cfg[key] = value
    return SegmentationDataModule(cfg, zoo.info("lraspp_mobilenetv3_large"))


def test_bad_masks_are_reported_with_their_file(tmp_path):
    good = np.zeros((20, 30), np.uint8)
    good[5:10, 5:10] = 2
    root = _folder(tmp_path / "d", {"ok": good, "small": good}, sizes={"small": (40, 20)})
    data = _folder_data(root)
    with pytest.warns(UserWarning, match=r"skipped 2 image/mask pair\(s\) \(first: .*small\.png: mask is 30x20, image 40x20"):
        data.setup()
    assert len(data.val_pairs) == 1 and len(data.train_pairs) == 1
    with pytest.raises(DataError, match=r"bad folder data: 2 pair\(s\) cannot be used .*small\.png.*data\.strict=false"):
        _folder_data(root, strict=True).setup()

    outside = good.copy()
    outside[0, 0] = 7
    root = _folder(tmp_path / "e", {"x": outside})
    with pytest.raises(DataError, match=r"x\.png: mask values 7 are outside the 3 classes 0\.\.2 and the ignore index 255; name all classes"):
        _folder_data(root).setup()
    ade = good.copy()
    ade[0, 0] = 3  # 0 = unlabelled, 1..3 = the classes: ADE20K's convention
    root = _folder(tmp_path / "f", {"y": ade})
    with pytest.raises(DataError, match=r"y\.png: mask values 3 .*set data\.reduce_zero_label=true"):
        _folder_data(root).setup()
    data = _folder_data(root, reduce_zero_label=True)
    _, mask = data.val_dataloader().dataset[0]
    assert set(torch.unique(mask).tolist()) <= {0, 1, 2, 255} and (mask == 255).float().mean() > 0.5


def test_hugging_face_datasets_with_image_and_mask_columns(tmp_path):
    datasets = pytest.importorskip("datasets")
    from zoo.data.segmentation import SegmentationDataModule

    mask = np.zeros((24, 32), np.uint8)
    mask[4:12, 8:20] = 1
    rows = {"pixels": [Image.new("RGB", (32, 24), (10, 200, 30))] * 3, "label": [Image.fromarray(mask, "L")] * 3}
    features = datasets.Features({"pixels": datasets.Image(), "label": datasets.Image()})
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows, features=features),
                          "validation": datasets.Dataset.from_dict(rows, features=features)}).save_to_disk(str(tmp_path / "ds"))
    cfg = OmegaConf.load(Path(zoo.__file__).parents[1] / "conf" / "data" / "seg_hf.yaml")
    cfg.path, cfg.image_column, cfg.mask_column, cfg.names = str(tmp_path / "ds"), "pixels", "label", ["bg", "thing"]
    cfg.img_size, cfg.batch_size, cfg.num_workers = 32, 3, 0
    data = SegmentationDataModule(cfg, zoo.info("lraspp_mobilenetv3_large"))
    assert data.describe().startswith("hf: 3 train / 3 val images, 2 classes (bg, thing)")
    images, masks = next(iter(data.val_dataloader()))
    assert images.shape == (3, 3, 32, 32) and masks.shape == (3, 32, 32)
    assert (masks == 1).float().mean() == pytest.approx(mask.mean(), abs=0.02)  # the rectangle, resized to 32x32
    cfg.mask_column = "segmentation"
    with pytest.raises(DataError, match="has no column 'segmentation'; columns: pixels, label"):
        SegmentationDataModule(cfg, zoo.info("lraspp_mobilenetv3_large")).setup()


def test_segmentation_scores_agree_with_torchmetrics():
    """mIoU over the classes present, per-class IoU and pixel accuracy, against torchmetrics' Jaccard index and
    accuracy computed independently on the same pixels (255 ignored)."""
    from torchmetrics.classification import (
        MulticlassAccuracy,
        MulticlassConfusionMatrix,
        MulticlassJaccardIndex,
    )

    from zoo.metrics import segmentation_scores

    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (3, 32, 32), generator=g)  # class 4 never appears in the ground truth
    pred = torch.where(torch.rand(3, 32, 32, generator=g) < 0.6, target, torch.randint(0, 5, (3, 32, 32), generator=g))
    target[:, :4] = 255
    confusion = MulticlassConfusionMatrix(6, ignore_index=255)(pred, target)  # class 5: in neither
    scores = segmentation_scores(confusion, ["a", "b", "c", "d", "e", "f"])
    per_class = MulticlassJaccardIndex(6, average="none", ignore_index=255)(pred, target)
    assert set(scores["per_class_iou"]) == {"a", "b", "c", "d", "e"}  # e: predicted only, IoU 0; f: undefined
    for k, name in enumerate("abcde"):
        assert scores["per_class_iou"][name] == pytest.approx(float(per_class[k]), abs=1e-6)
    assert scores["per_class_iou"]["e"] == 0.0
    assert scores["miou"] == pytest.approx(float(per_class[:5].mean()), abs=1e-6)
    accuracy = MulticlassAccuracy(6, average="micro", ignore_index=255)(pred, target)
    assert scores["pixel_acc"] == pytest.approx(float(accuracy), abs=1e-6)
    assert scores["pixels"] == int((target != 255).sum())


def test_ohem_keeps_the_hard_pixels():
    from zoo.tasks.segmentation import ohem_cross_entropy

    logits = torch.tensor([[4.0, 0.0], [0.0, 0.1], [0.0, 3.0], [2.0, 0.0]]).T.reshape(1, 2, 2, 2)
    target = torch.tensor([[[0, 0], [1, 255]]])
    per_pixel = torch.nn.functional.cross_entropy(logits, target, ignore_index=255, reduction="none").flatten()[:3]
    assert ohem_cross_entropy(logits, target, 255, thresh=0.7, min_kept=1) == pytest.approx(float(per_pixel[1]))  # p=0.48
    assert ohem_cross_entropy(logits, target, 255, thresh=0.7, min_kept=3) == pytest.approx(float(per_pixel.mean()))


def test_lraspp_matches_torchvisions_size_and_segmentation_models_keep_the_contract():
    """LR-ASPP on MobileNetV3-Large has exactly torchvision's 3,221,538 parameters for 21 classes (its documented
    count); training and eval mode both give [B, K, H, W] at the input's size."""
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    model = zoo.load("lraspp_mobilenetv3_large", num_classes=21)
    assert sum(p.numel() for p in model.parameters()) == 3_221_538
    assert sum(p.numel() for p in lraspp_mobilenet_v3_large(weights=None, weights_backbone=None).parameters()) == 3_221_538
    x = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 21, 96, 128)
        assert model.train()(x).shape == (2, 21, 96, 128)
    fpn = zoo.load("semfpn_nextvit_small", num_classes=5)
    with torch.no_grad():
        assert fpn.eval()(x[:1]).shape == (1, 5, 96, 128)


def test_efficientformer_fpn_matches_the_official_configs_size_and_takes_the_imagenet_backbone():
    """Semantic FPN on EfficientFormer-L1: neck + head have the 4,213,398 parameters that mmsegmentation's FPN/FPNHead
    configs (the official segmentation code's) give for L1's widths 48/96/224/448 and 150 classes (hand count,
    docs/research/semantic_fpn.md). ImageNet weights at 224 fill the backbone so that its maps equal the classifier's;
    at another size the 7x7 attention-bias tables are resized (a constant table stays that constant)."""
    from zoo.errors import BadArgumentError

    fpn = zoo.load("semfpn_efficientformer_l1")
    assert sum(p.numel() for p in fpn.head.parameters()) == 4_213_398
    classifier = zoo.load("efficientformer_l1").eval()
    model = zoo.load("semfpn_efficientformer_l1", img_size=224, num_classes=5).eval()
    assert model.zoo_spec.input_size == (3, 224, 224)
    model.load_state_dict(model.zoo_spec.convert_state_dict(classifier.state_dict(), model))
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        ours = model.backbone.model.forward_intermediates(x, indices=[0, 1, 2, 3], intermediates_only=True)
        theirs = classifier.forward_intermediates(x, indices=[0, 1, 2, 3], intermediates_only=True)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))

    state = classifier.state_dict()
    tables = [k for k in state if k.endswith("attention_biases")]
    assert tables and all(state[k].shape[1] == 49 for k in tables)
    for k in tables:
        state[k] = torch.full_like(state[k], 0.25)
    larger = zoo.load("semfpn_efficientformer_l1", img_size=320, num_classes=5)
    larger.load_state_dict(larger.zoo_spec.convert_state_dict(state, larger))
    biases = [larger.get_parameter(f"backbone.model.{k}") for k in tables]
    assert all(b.shape[1] == 100 and torch.allclose(b, torch.tensor(0.25)) for b in biases)
    with torch.no_grad():
        assert larger.eval()(torch.rand(1, 3, 320, 320)).shape == (1, 5, 320, 320)
    with pytest.raises(BadArgumentError, match="multiple of 32"):
        zoo.load("semfpn_efficientformerv2_s0", img_size=100)
    with pytest.raises(BadArgumentError, match="takes any input size"):
        zoo.load("semfpn_nextvit_small", img_size=256)


def test_a_fixed_size_segmenter_is_built_for_the_datas_input(tmp_path):
    """EfficientFormerV2's attention is sized for one input: zoo train builds it for data.img_size (64 here, not the
    default 512) without being told, and the saved model reloads at that size."""
    from zoo.train import compose, run

    cfg = compose("lraspp_mobilenetv3_large_shapes", [f"out_dir={tmp_path}", *TINY, "model.name=semfpn_efficientformerv2_s0",
                                                      "model.pretrained=false", "trainer.limit_train_batches=1"])
    summary = run(cfg, tmp_path / "run")
    assert summary["epochs"] == 1
    model = zoo.load(str(tmp_path / "run")).eval()
    assert model.zoo_spec.input_size == (3, 64, 64) and model.zoo_spec.default_kwargs["img_size"] == 64
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 64)).shape == (1, 5, 64, 64)


def test_backbone_weights_load_under_the_backbone_and_leave_the_head(tmp_path):
    """ImageNet classifier weights (timm key names, what pretrained=True downloads) fill the backbone exactly."""
    import timm
    from safetensors.torch import save_file

    classifier = timm.create_model("mobilenetv3_large_100", pretrained=False)
    path = tmp_path / "mnv3.safetensors"
    save_file({k: v.contiguous() for k, v in classifier.state_dict().items()}, str(path))
    torch.manual_seed(1)
    fresh = zoo.load("lraspp_mobilenetv3_large", num_classes=5)
    torch.manual_seed(1)
    model = zoo.load("lraspp_mobilenetv3_large", num_classes=5, weights=str(path))
    own = classifier.state_dict()
    for key, value in model.backbone.model.state_dict().items():
        assert torch.equal(value, own[key]), key
    for key, value in model.head.state_dict().items():
        assert torch.equal(value, fresh.head.state_dict()[key]), key


def test_a_segmentation_run_trains_prunes_evaluates_and_exports(tmp_path, capsys):
    """One pruned run (channels removed in one round at the first step) through train, eval, predict and export."""
    from zoo.cli import main as cli
    from zoo.train import compose, run

    summary = run(compose("lraspp_mobilenetv3_large_shapes", [f"out_dir={tmp_path}", *TINY, "plugins=[prune]",
                                                              "plugins.prune.steps=1"]), tmp_path / "run")
    assert summary["task"] == "segmentation"
    metrics = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    assert summary["val_miou"] == metrics["miou"] and summary["val_pixel_acc"] == metrics["pixel_acc"]
    assert metrics["images"] == 8 and metrics["classes"] == ["background", "circle", "square", "triangle", "cross"]
    assert "| background |" in (tmp_path / "run" / "eval" / "per_class.md").read_text()
    for png in ("per_class_iou.png", "predictions.png"):
        assert (tmp_path / "run" / "eval" / png).read_bytes()[:4] == b"\x89PNG"
    model = zoo.load(str(tmp_path / "run")).eval()
    assert model.zoo_spec.labels[0] == "background" and model.zoo_spec.input_size == (3, 64, 64)
    unpruned = zoo.load("lraspp_mobilenetv3_large", num_classes=5)
    assert sum(p.numel() for p in model.parameters()) < 0.9 * sum(p.numel() for p in unpruned.parameters())
    assert model.head.head.low_classifier.out_channels == 5  # the classifiers keep every class

    assert cli(["eval", str(tmp_path / "run"), "data.val_images=8", "data.image_size=64"]) == 0
    assert f"mIoU {metrics['miou']:.4f}" in capsys.readouterr().out  # the same model on the same images
    image = tmp_path / "scene.png"
    Image.fromarray(np.full((50, 70, 3), 90, np.uint8)).save(image)
    assert cli(["predict", str(tmp_path / "run"), str(image), "--out", str(tmp_path / "preds")]) == 0
    printed = capsys.readouterr().out
    entry = json.loads((tmp_path / "preds" / "predictions.json").read_text())["images"][0]
    classes = np.asarray(Image.open(entry["classes"]))
    assert classes.shape == (50, 70) and Image.open(entry["output"]).size == (70, 50)  # the original pixels
    shares = {model.zoo_spec.labels[k]: round(float((classes == k).mean()), 4) for k in np.unique(classes)}
    assert entry["pixels"] == shares and sum(shares.values()) == pytest.approx(1.0, abs=1e-3)
    assert "scene.png (70x50): " in printed and "class map" in printed
    assert cli(["export", str(tmp_path / "run"), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 0
    report = json.loads(Path(f"{tmp_path / 'm.onnx'}.verification.json").read_text())
    for check in report["verification"].values():  # random and real inputs
        assert check["max_abs_diff"] <= check["tolerance"] and check["argmax_agreement"] > 0.999
    assert "classes agree on" in capsys.readouterr().out


def test_pixel_kd_is_zero_for_the_teachers_own_maps_and_distills_and_quantizes_a_segmentation_run(tmp_path):
    import csv

    from zoo.plugins.distill import pixel_kd

    from zoo.train import compose, run

    teacher = torch.randn(2, 5, 16, 16)
    assert pixel_kd(teacher, teacher, 2.0).abs() < 1e-6
    student = torch.randn(2, 5, 4, 4, requires_grad=True)  # a head's stride-4 maps, resized to the teacher's
    loss = pixel_kd(student, teacher, 2.0)
    loss.backward()
    assert loss > 0.1 and student.grad.abs().sum() > 0

    cfg = compose("lraspp_mobilenetv3_large_shapes", [f"out_dir={tmp_path}", *TINY, "trainer.log_every_n_steps=1",
                                                      "plugins=[distill]", "plugins.distill.teacher=lraspp_mobilenetv3_large",
                                                      "plugins.distill.pretrained=false"])
    with pytest.raises(zoo.errors.ConfigError, match="predicts 21 classes, the student 5"):
        run(cfg, tmp_path / "mismatch")
    teacher_dir = tmp_path / "teacher"
    zoo.save(zoo.load("lraspp_mobilenetv3_large", num_classes=5), teacher_dir)
    cfg = compose("lraspp_mobilenetv3_large_shapes", [f"out_dir={tmp_path}", *TINY, "trainer.log_every_n_steps=1",
                                                      "plugins=[distill,qat]", f"plugins.distill.teacher={teacher_dir}"])
    run(cfg, tmp_path / "student")
    rows = list(csv.DictReader((tmp_path / "student" / "logs" / "metrics.csv").read_text().splitlines()))
    kd = [float(r["train/distill_kd"]) for r in rows if r.get("train/distill_kd")]
    assert kd and all(v > 0 for v in kd)

    # QAT on a segmenter: the int8 model's last DequantizeLinear feeds the upsampling to the input, and the export
    # is verified through that Resize within the output's quantization steps
    import onnx

    from zoo.registry import state_of

    student = zoo.load(str(tmp_path / "student"))
    assert state_of(student).int8
    result = zoo.export(student, "onnx", out=tmp_path / "int8.onnx")
    assert result.metadata["precision"] == "int8" and float(result.metadata["int8_output_step"]) > 0
    for check in result.verification.values():
        assert check["ok"] and check["max_abs_diff"] <= check["tolerance"]
    graph = onnx.load(str(result.path)).graph
    producer = {out: node.op_type for node in graph.node for out in node.output}
    assert producer[graph.output[0].name] == "Resize"


def test_map_norm_is_groupnorm_and_exports_precisely_at_full_resolution(tmp_path):
    """EfficientFormer (V1) FPNs put GroupNorm(1, C) on each map; at 512 px the stride-4 map is 48 x 128 x 128, where an
    exported one-pass reduction drifted past the export check (1e-4). MapNorm equals GroupNorm in PyTorch and its ONNX
    graph stays within 1e-5 of a float64 reference."""
    ort = pytest.importorskip("onnxruntime")
    from zoo.models.seg_heads import MapNorm

    torch.manual_seed(0)
    x = torch.randn(1, 48, 128, 128) * 2 + 3
    norm, reference = MapNorm(1, 48).eval(), torch.nn.GroupNorm(1, 48).eval()
    with torch.no_grad():
        norm.weight.normal_(), norm.bias.normal_()
        reference.load_state_dict(norm.state_dict())
        assert torch.allclose(norm(x), reference(x), atol=1e-5)
        exact = norm.double()(x.double()).numpy()
    torch.onnx.export(norm.float(), (x,), str(tmp_path / "norm.onnx"), dynamo=True, opset_version=18)
    session = ort.InferenceSession(str(tmp_path / "norm.onnx"), providers=["CPUExecutionProvider"])
    exported = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.abs(exported - exact).max() < 1e-5
