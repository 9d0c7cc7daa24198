"""MobileDets: exact TF counts, block rules, TF padding and anchors, post-processing, loss, backbone reuse, recipe."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import zoo
from zoo.bench import count_macs
from zoo.models.mobiledet import (
    BOX_WEIGHTS,
    MobileDet,
    MobileDetBackbone,
    SqueezeExcite,
    anchor_shapes,
    make_anchors,
    scale_filters,
)

VARIANTS = ("cpu", "edgetpu", "dsp", "gpu")
# docs/sources.md, "MobileDets: parameter and MAC counts"; 90 classes + background:
# (backbone, extras, head, total trainable, + BN moving stats)
COUNTS = {
    "cpu": (3_006_440, 366_144, 792_471, 4_165_055, 4_205_423),
    "edgetpu": (2_777_040, 427_584, 941_919, 4_146_543, 4_196_095),
    "dsp": (5_839_952, 390_720, 871_407, 7_102_079, 7_159_343),
    "gpu": (11_689_920, 427_584, 951_743, 13_069_247, 13_109_151),
}
MACS = {"cpu": 0.444e9, "edgetpu": 1.533e9, "dsp": 2.816e9, "gpu": 5.073e9}  # at 320x320 (same section)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("variant", VARIANTS)
def test_exact_parameter_counts_and_the_tf_variable_count(variant):
    backbone, extras, head, total, tf_total = COUNTS[variant]
    model = zoo.load(f"mobiledet_{variant}")
    assert (count(model.backbone), count(model.extras), count(model.head), count(model)) == (backbone, extras, head, total)
    moving = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    assert total + moving == tf_total  # what the TF config headers print (4.21M, 4.20M, 7.16M, 13.11M)
    assert count(zoo.load(f"mobiledet_{variant}_cls", num_classes=10).backbone) == backbone


@pytest.mark.parametrize("variant", VARIANTS)
def test_macs_at_320_within_two_percent(variant):
    macs = count_macs(zoo.load(f"mobiledet_{variant}").eval(), torch.rand(1, 3, 320, 320))
    assert abs(macs - MACS[variant]) <= 0.02 * MACS[variant], macs


def test_block_rules_follow_tf():
    cpu, gpu, dsp = MobileDetBackbone("cpu"), MobileDetBackbone("gpu"), MobileDetBackbone("dsp")
    # explicit residual flags: same-shape blocks without a shortcut (CPU 11, GPU 14) and DSP 20 with one (TF1)
    assert not cpu.blocks[11].residual and cpu.blocks[12].residual and cpu.blocks[11].layers[0][0].in_channels == 72
    assert not gpu.blocks[14].residual and gpu.blocks[15].residual
    assert dsp.blocks[20].residual
    x = torch.randn(2, 72, 5, 5)
    block = cpu.blocks[11].eval()
    assert torch.equal(block(x), block.project(block.layers(x)))  # no hidden skip
    # CPU: hard-swish everywhere (SE hidden layer too) and a sigmoid-gated SE on every block; others ReLU6, no SE
    assert not any(isinstance(m, nn.ReLU6) for m in cpu.modules())
    assert sum(isinstance(m, SqueezeExcite) for m in cpu.modules()) == 19
    assert all(isinstance(m.act, nn.Hardswish) for m in cpu.modules() if isinstance(m, SqueezeExcite))
    assert not any(isinstance(m, (nn.Hardswish, SqueezeExcite)) for m in gpu.modules())
    assert cpu.blocks[1].layers[-1].reduce.out_channels == 8  # SE hidden: 16 * 0.25 rounded up to the minimum 8
    model = MobileDet("dsp")
    for name, m in model.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            expected = (0.01, 0.01) if name.startswith("backbone.") else (0.001, 0.03)
            assert (m.eps, m.momentum) == expected, name


def test_scale_filters_rounds_half_up_to_eight_without_a_floor_guard():
    assert [scale_filters(c, m) for c, m in ((16, 0.25), (288, 0.25), (32, 0.75), (20, 1.0), (12, 1.0), (100, 0.9))] == [8, 72, 24, 24, 16, 88]


def test_stride_two_convs_pad_like_tf_same():
    stem = MobileDetBackbone("gpu").blocks[0][0]
    x = torch.randn(1, 3, 320, 320)
    expected = F.conv2d(F.pad(x, (0, 1, 0, 1)), stem.weight, stride=2)  # TF SAME on an even side: 0 before, 1 after
    torch.testing.assert_close(stem(x), expected)
    odd = torch.randn(1, 3, 33, 33)
    assert stem(odd).shape[-1] == 17  # ceil(33 / 2), padded 1 and 1


def test_anchors_follow_tfs_ssd_generator():
    shapes = anchor_shapes()
    assert [len(level) for level in shapes] == [3, 6, 6, 6, 6, 6]
    assert shapes[0][0] == pytest.approx((0.1, 0.1))
    assert shapes[0][1] == pytest.approx((0.2 * 2**0.5, 0.2 / 2**0.5))
    assert shapes[5][5] == pytest.approx((0.95**0.5, 0.95**0.5))  # sqrt(0.95 * 1.0)
    sizes = [(20, 20), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]
    anchors = make_anchors(sizes, (320, 320))
    assert anchors.shape == (2034, 4)
    torch.testing.assert_close(anchors[0], torch.tensor([-8.0, -8.0, 24.0, 24.0]))  # centre (8, 8), side 32
    torch.testing.assert_close(anchors[3], torch.tensor([8.0, -8.0, 40.0, 24.0]))  # next column, same anchor
    assert anchors[-1].tolist() == pytest.approx([160 - 0.95**0.5 * 160, 160 - 0.95**0.5 * 160, 160 + 0.95**0.5 * 160, 160 + 0.95**0.5 * 160], abs=1e-4)
    model = zoo.load("mobiledet_cpu").train()
    assert model(torch.rand(2, 3, 320, 320))["cls_logits"].shape == (2, 2034, 91)


def spread(variant: str = "cpu", num_classes: int = 5, seed: int = 0) -> MobileDet:
    """A detector whose class scores differ clearly, so NMS and the top-k have something to decide."""
    torch.manual_seed(seed)
    model = zoo.load(f"mobiledet_{variant}", num_classes=num_classes)
    with torch.no_grad():
        for conv in model.head.classification_head.module_list:
            conv[-1].weight.normal_(0.0, 0.5)
            conv[-1].bias.normal_(-1.0, 1.0)
    return model.eval()


def test_eval_applies_tf_post_processing_per_image_and_class():
    """Against a reference on every (anchor, class) pair: per-class NMS at 0.6, the 100 best (TF keeps at most
    100 per class and 100 in all); the model prefilters to its top-1000 pairs, which must not change the result."""
    from torchvision.models.detection._utils import BoxCoder
    from torchvision.ops import batched_nms

    model = spread()
    x = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        det = model(x)
        feats = model.features(x)
        out = model.head(feats)
    anchors = make_anchors([f.shape[-2:] for f in feats], x.shape[-2:])
    assert det.shape == (2, 100, 6)
    for i in range(2):
        decoded = BoxCoder(BOX_WEIGHTS).decode_single(out["bbox_regression"][i], anchors)
        scores = out["cls_logits"][i, :, 1:].sigmoid()
        anchor, label = (t.flatten() for t in torch.meshgrid(torch.arange(scores.shape[0]), torch.arange(5), indexing="ij"))
        keep = batched_nms(decoded[anchor], scores.flatten(), label, 0.6)[:100]
        torch.testing.assert_close(det[i, :, 4], scores.flatten()[keep])
        torch.testing.assert_close(det[i, :, :4], decoded[anchor[keep]])
        assert det[i, :, 5].tolist() == label[keep].float().tolist()


def test_tiny_inputs_pad_and_too_small_inputs_fail_clearly():
    model = spread()
    with torch.no_grad():
        det = MobileDet("cpu", num_classes=1, topk_candidates=50).eval()(torch.rand(1, 3, 64, 64))
    assert det.shape == (1, 100, 6) and (det[0, 50:] == 0).all()  # fewer candidates than max_det: score-0 rows
    with pytest.raises(ValueError, match="at least 33"):
        model(torch.rand(1, 3, 32, 64))


def test_loss_matches_tf_rules_and_overfits_one_image():
    torch.manual_seed(0)
    model = MobileDet("cpu", num_classes=3, class_prior=0.01).train()
    criterion = model.make_loss()
    assert criterion.reduction == "mean"
    x = torch.rand(2, 3, 96, 96)
    targets = [{"boxes": torch.tensor([[20.0, 20.0, 60.0, 70.0]]), "labels": torch.tensor([2])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
    out = model(x)
    loss, items = criterion(out, targets)
    assert torch.isfinite(loss) and set(items) == {"focal", "box"}
    # the background slot is always a negative: raising its logit raises the loss
    bumped = dict(out, cls_logits=out["cls_logits"] + F.pad(torch.ones(1), (0, 3)) * 3)
    assert criterion(bumped, targets)[1]["focal"] > items["focal"]
    # an image without boxes has no box loss and no matches to divide by
    empty, empty_items = criterion({k: v[1:] for k, v in out.items() if k != "anchors"} | {"anchors": out["anchors"]}, targets[1:])
    assert empty_items["box"] == 0 and torch.isfinite(empty)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = loss.item()
    for _ in range(40):
        loss, _ = criterion(model(x), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss) < 0.2 * first
    with torch.no_grad():  # BatchNorm statistics of this batch (40 steps at momentum 0.01 would barely move them)
        for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.reset_running_stats()
            bn.momentum = None
        model(x)
        det = model.eval()(x)[0, 0]
    from torchvision.ops import box_iou

    assert det[5] == 2 and box_iou(det[None, :4], targets[0]["boxes"]).item() > 0.5


def test_classifier_backbone_and_features(tmp_path):
    classifier = zoo.load("mobiledet_edgetpu_cls", num_classes=4).eval()
    with torch.no_grad():
        assert classifier(torch.rand(2, 3, 96, 96)).shape == (2, 4)
        feats = zoo.load("mobiledet_edgetpu_cls", features_only=True).eval()(torch.rand(1, 3, 96, 96))
    assert [f.shape[1] for f in feats] == [16, 16, 40, 96, 384] and feats[-1].shape[-1] == 3
    zoo.save(classifier, tmp_path / "cls")
    with pytest.warns(UserWarning, match="extra layers and the SSD head start fresh"):
        detector = zoo.load("mobiledet_edgetpu", num_classes=4, weights=tmp_path / "cls" / "model.safetensors")
    for key, value in classifier.backbone.state_dict().items():
        assert torch.equal(detector.backbone.state_dict()[key], value), key
    with pytest.raises(zoo.errors.WeightsError, match="not a MobileDet"):
        from safetensors.torch import save_file

        save_file({"foo.weight": torch.zeros(1)}, str(tmp_path / "bad.safetensors"))
        zoo.load("mobiledet_edgetpu", weights=tmp_path / "bad.safetensors")


def test_export_verifies_confident_detections(tmp_path):
    from zoo.export import export

    result = export(spread(), "onnx", imgsz=128, out=tmp_path / "md.onnx")
    check = result.verification["random"]
    assert check["ok"] and check["required"] > 0 and check["matched"] == check["required"], check


def test_shapes_recipe_trains_saves_and_reloads(tmp_path):
    from zoo.train import compose, run

    cfg = compose("mobiledet_cpu_shapes", [f"out_dir={tmp_path}", "trainer.enable_progress_bar=false", "trainer.max_epochs=1",
                                           "data.train_images=8", "data.val_images=4", "data.batch_size=4", "trainer.log_every_n_steps=1"])
    summary = run(cfg, tmp_path / "run")
    assert summary["task"] == "detection" and 0.0 <= summary["val_map"] <= summary["val_map50"] <= 1.0
    assert "train/focal" in (tmp_path / "run" / "logs" / "metrics.csv").read_text()
    model = zoo.load(str(tmp_path / "run")).eval()
    assert model.zoo_spec.labels == ("circle", "square", "triangle", "cross") and model.num_classes == 4
    assert json.loads((tmp_path / "run" / "model" / "config.json").read_text())["architecture"] == "mobiledet_cpu"
    with torch.no_grad():
        assert model(torch.rand(1, 3, 160, 160)).shape == (1, 100, 6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_takes_a_training_step(variant):
    torch.manual_seed(0)
    model = zoo.load(f"mobiledet_{variant}", num_classes=2).train()
    targets = [{"boxes": torch.tensor([[10.0, 12.0, 50.0, 60.0]]), "labels": torch.tensor([1])}] * 2
    loss, items = model.make_loss()(model(torch.rand(2, 3, 96, 96)), targets)
    loss.backward()
    assert torch.isfinite(loss) and items["box"] > 0
    assert model.backbone.blocks[0][0].weight.grad.abs().sum() > 0  # the gradient reaches the stem
