"""Monocular depth: errors and losses by hand, the synthetic rooms, FastDepth's augmentation, folders of 16-bit depth,
FastDepth's sizes and the release's key layout, and one small run through zoo train / eval / predict / export."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from zoo.cli import main as cli
from zoo.data.depth import DepthTransform
from zoo.metrics import depth_errors
from zoo.tasks.depth import depth_loss


def test_depth_errors_are_each_images_over_its_valid_pixels():
    target = torch.tensor([[[[2.0, 4.0], [0.0, 1.0]]], [[[0.0, 0.0], [0.0, 0.0]]]])  # a 0 is a pixel without depth
    pred = torch.tensor([[[[2.5, 4.0], [9.0, 2.0]]], [[[1.0, 1.0], [1.0, 1.0]]]])
    errors = depth_errors(pred, target)
    diffs, truths = np.array([0.5, 0.0, 1.0]), np.array([2.0, 4.0, 1.0])
    assert errors["rmse"][0].item() == pytest.approx(math.sqrt((diffs ** 2).mean()), rel=1e-6)
    assert errors["mae"][0].item() == pytest.approx(diffs.mean(), rel=1e-6)
    assert errors["absrel"][0].item() == pytest.approx((diffs / truths).mean(), rel=1e-6)
    assert errors["log10"][0].item() == pytest.approx(np.abs(np.log10([2.5, 4.0, 2.0]) - np.log10(truths)).mean(), rel=1e-6)
    # ratios 1.25, 1.0, 2.0: delta1 counts those below 1.25 strictly, delta2 below 1.5625, delta3 below 1.953
    assert [errors[f"delta{k}"][0].item() for k in (1, 2, 3)] == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    assert all(math.isnan(v[1].item()) for v in errors.values())  # no ground truth: no score, not a zero


def test_losses_use_valid_pixels_and_silog_forgives_scale_by_lambda():
    target = torch.tensor([[[[2.0, 4.0, 0.0]]]])
    pred = torch.tensor([[[[3.0, 2.0, 100.0]]]])
    assert depth_loss(pred, target, "l1").item() == pytest.approx(1.5)
    d = torch.log(torch.tensor([1.5, 0.5]))
    assert depth_loss(pred, target, "silog", 0.5).item() == pytest.approx(((d ** 2).mean() - 0.5 * d.mean() ** 2).item(), rel=1e-6)
    scaled = torch.tensor([[[[6.0, 4.0, 1.0]]]])  # every valid prediction twice as far
    assert depth_loss(scaled, target, "silog", 1.0).item() == pytest.approx(depth_loss(pred, target, "silog", 1.0).item(), abs=1e-6)
    assert depth_loss(scaled, target, "silog", 0.0).item() > depth_loss(pred, target, "silog", 0.0).item() + 0.1
    assert depth_loss(pred, torch.zeros_like(target)).item() == 0.0


def test_shapes_depth_rooms_are_seeded_and_recede_upwards():
    from zoo.data.shapes import depth_sample

    image, depth = depth_sample(0, "train", 3, 96)
    again, same = depth_sample(0, "train", 3, 96)
    assert np.array_equal(np.asarray(image), np.asarray(again)) and np.array_equal(depth, same)
    assert image.size == (96, 96) and depth.shape == (96, 96) and depth.dtype == np.float32
    assert 0.5 < depth.min() and depth.max() <= 10.0
    for index in range(4):  # the floor: every column's depth grows from the bottom row up to the wall
        _, d = depth_sample(0, "val", index, 96)
        assert np.median(d[-1]) < np.median(d[-20]) < np.median(d[0]) + 1e-6
    assert not np.array_equal(depth, depth_sample(0, "train", 4, 96)[1])


def test_scale_augmentation_divides_the_depth_by_the_scale():
    image = Image.fromarray(np.full((64, 64, 3), 128, np.uint8))
    depth = np.full((64, 64), 4.0, np.float32)
    grown = DepthTransform(48, (0, 0, 0), (1, 1, 1), {"scale": [2.0, 2.0], "rotate": 0, "hflip": 0, "jitter": 0})
    x, d = grown(image, depth)
    assert x.shape == (3, 48, 48) and d.shape == (1, 48, 48)
    assert torch.allclose(d, torch.full_like(d, 2.0))  # twice as large: the scene is twice as near
    _, plain = DepthTransform(32, (0, 0, 0), (1, 1, 1), None)(image, depth)
    assert torch.equal(plain, torch.full((1, 32, 32), 4.0))


def test_folder_depth_reads_16_bit_millimetres_and_float_metres(tmp_path):
    from omegaconf import OmegaConf

    from zoo.data.depth import DepthDataModule

    for split, names in (("train", ("a", "b")), ("val", ("c",))):
        (tmp_path / "images" / split).mkdir(parents=True)
        (tmp_path / "depth" / split).mkdir(parents=True)
        for name in names:
            Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(tmp_path / "images" / split / f"{name}.png")
    millimetres = np.full((40, 40), 2500, np.uint16)
    millimetres[:10] = 0  # no reading
    Image.fromarray(millimetres).save(tmp_path / "depth" / "val" / "c.png")
    np.save(tmp_path / "depth" / "train" / "a.npy", np.full((40, 40), 3.0, np.float32))
    Image.fromarray(millimetres).save(tmp_path / "depth" / "train" / "b.png")
    cfg = OmegaConf.create({"source": "folder", "root": str(tmp_path), "depth_scale": 1000, "img_size": 40,
                            "max_depth": 10.0, "batch_size": 2, "augment": None})
    data = DepthDataModule(cfg, zoo.info("fastdepth"))
    _, depth = next(iter(data.val_dataloader()))
    assert depth.shape == (1, 1, 40, 40)
    assert torch.all(depth[0, 0, :10] == 0) and torch.allclose(depth[0, 0, 10:], torch.tensor(2.5))
    _, train = next(iter(data.calibration_dataloader()))  # the train split through the evaluation transform
    assert sorted(float(d.max()) for d in train) == pytest.approx([2.5, 3.0])  # the .npy in metres is not divided
    cfg.depth_scale = None
    with pytest.raises(zoo.errors.DataError, match="depth_scale"):
        next(iter(DepthDataModule(cfg, zoo.info("fastdepth")).val_dataloader()))


def test_hugging_face_depth_reads_float_arrays_as_metres_and_16_bit_images_by_the_scale(tmp_path):
    datasets = pytest.importorskip("datasets")
    from omegaconf import OmegaConf

    from zoo.data.depth import DepthDataModule

    metres = np.full((24, 32), 1.5, np.float32)
    metres[:, :8] = 0  # no reading
    rows = {"rgb": [Image.new("RGB", (32, 24), (200, 90, 30))] * 2, "depth": [metres] * 2}
    floats = datasets.Features({"rgb": datasets.Image(), "depth": datasets.Array2D((24, 32), "float32")})
    datasets.DatasetDict({split: datasets.Dataset.from_dict(rows, features=floats) for split in ("train", "validation")}
                         ).save_to_disk(str(tmp_path / "floats"))
    cfg = OmegaConf.load(Path(zoo.__file__).parents[1] / "conf" / "data" / "depth_hf.yaml")
    cfg.path, cfg.image_column, cfg.img_size, cfg.batch_size, cfg.num_workers = str(tmp_path / "floats"), "rgb", 32, 2, 0
    images, depth = next(iter(DepthDataModule(cfg, zoo.info("fastdepth")).val_dataloader()))
    assert images.shape == (2, 3, 32, 32) and depth.shape == (2, 1, 32, 32)
    assert torch.all(depth[..., :8] == 0) and torch.allclose(depth[..., 8:], torch.tensor(1.5))  # the same 32 columns

    millimetres = Image.fromarray((metres * 1000).astype(np.uint16))
    rows["depth"] = [millimetres] * 2
    pngs = datasets.Features({"rgb": datasets.Image(), "depth": datasets.Image()})
    datasets.DatasetDict({split: datasets.Dataset.from_dict(rows, features=pngs) for split in ("train", "validation")}
                         ).save_to_disk(str(tmp_path / "pngs"))
    cfg.path, cfg.depth_scale = str(tmp_path / "pngs"), 1000
    _, depth = next(iter(DepthDataModule(cfg, zoo.info("fastdepth")).val_dataloader()))
    assert torch.all(depth[..., :8] == 0) and torch.allclose(depth[..., 8:], torch.tensor(1.5))
    cfg.depth_column = "distance"
    with pytest.raises(zoo.errors.DataError, match="has no column 'distance'; columns: rgb, depth"):
        DepthDataModule(cfg, zoo.info("fastdepth")).setup()


def test_fastdepth_sizes_and_the_releases_key_layout(tmp_path):
    """Convolution weights and MACs computed from the official layer table (pins: docs/research/fastdepth.md §2b); the
    pruned model's MACs against the official README's 0.37 G; the release's state-dict layout loads, and a pickled
    module (as the .pth.tar files hold) is refused."""
    from zoo.bench import count_macs

    x = torch.rand(1, 3, 224, 224)
    for name, weights, macs in (("fastdepth", 3_933_088, 736_658_944), ("fastdepth_pruned", 1_343_664, 366_393_384)):
        model = zoo.load(name).eval()
        assert sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Conv2d)) == weights
        assert count_macs(model, x) == macs
    reported = zoo.info("fastdepth_pruned").reported_value("macs")
    assert abs(macs / 1e9 - reported.value) <= reported.rounding
    torch.manual_seed(0)
    source = zoo.load("fastdepth_pruned").eval()
    keys = list(source.state_dict())
    assert keys[0] == "conv0.0.weight" and source.state_dict()["conv1.3.weight"].shape == (56, 16, 1, 1)
    assert source.state_dict()["decode_conv1.0.0.weight"].shape == (512, 1, 5, 5)
    assert source.state_dict()["decode_conv6.0.weight"].shape == (1, 16, 1, 1)
    torch.save({"module." + k: v for k, v in source.state_dict().items()}, tmp_path / "state.pth.tar")
    loaded = zoo.load("fastdepth_pruned", weights=tmp_path / "state.pth.tar", allow_pickle=True).eval()
    small = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(small), source(small))
    # The release pickles the whole module, in torch's pre-1.6 format: its tensors are read, none of its classes built
    torch.save({"epoch": 3, "model": source}, tmp_path / "whole.pth.tar", _use_new_zipfile_serialization=False)
    with pytest.raises(zoo.errors.UnsafeWeightsError, match="allow_pickle=True"):
        zoo.load("fastdepth_pruned", weights=tmp_path / "whole.pth.tar")
    whole = zoo.load("fastdepth_pruned", weights=tmp_path / "whole.pth.tar", allow_pickle=True).eval()
    with torch.no_grad():
        assert torch.equal(whole(small), source(small))
    with pytest.raises(zoo.errors.BadArgumentError, match="additive skip needs equal widths"):
        zoo.load("fastdepth", widths=(16,) * 14 + (32, 64, 16, 16, 16))


def test_fastdepth_on_zoo_backbones_keeps_the_output_contract_and_takes_imagenet_weights():
    model = zoo.load("fastdepth_mobilenetv3_large_100").eval()
    assert model.skip_strides == (2, 4, 8)
    assert {s: type(p).__name__ for s, p in model.skip_proj.items()} == {"2": "Sequential", "4": "Sequential", "8": "Sequential"}
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        depth = model(x)
    assert depth.shape == (2, 1, 96, 96) and depth.min() >= 0

    # the backbone tag's classifier weights fill the encoder: its maps become the classifier's, the decoder is untouched
    assert model.zoo_spec.weight("ra_in1k_backbone").hf_hub_id == "timm/mobilenetv3_large_100.ra_in1k"
    classifier = zoo.load("mobilenetv3_large_100").eval()
    decoder = model.decode_conv1[0][0].weight.clone()
    model.load_state_dict(model.zoo_spec.convert_state_dict(classifier.state_dict(), model))
    with torch.no_grad():
        ours = model.backbone(x)[-1]
        theirs = classifier.forward_intermediates(x, indices=[model.backbone.indices[-1]], intermediates_only=True)[0]
    assert torch.equal(ours, theirs) and torch.equal(model.decode_conv1[0][0].weight, decoder)


@pytest.fixture(scope="module")
def depth_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("depth")
    argv = ["train", "recipe=fastdepth_shapes", f"out_dir={out}", "data.train_images=32", "data.val_images=8",
            "data.image_size=64", "data.img_size=64", "data.batch_size=8", "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false", "model.name=fastdepth_pruned", "plugins=[prune]"]
    assert cli(argv) == 0
    return next((out / "fastdepth_shapes").iterdir())


def test_a_depth_run_evaluates_predicts_in_metres_and_exports(depth_run, tmp_path, capsys):
    """The run pruned half of fastdepth_pruned's MACs (prune plugin): everything below works on the narrower model."""
    from zoo.bench import count_macs

    pruned, x = zoo.load(str(depth_run)).eval(), torch.rand(1, 3, 64, 64)
    assert count_macs(pruned, x) < 0.6 * count_macs(zoo.load("fastdepth_pruned").eval(), x)
    assert pruned.decode_conv6[0].out_channels == 1 and pruned(x).shape == (1, 1, 64, 64)
    summary = json.loads((depth_run / "summary.json").read_text())
    assert summary["task"] == "depth" and {"val_delta1", "val_rmse", "val_absrel"} <= summary.keys()
    assert cli(["eval", str(depth_run), "data=shapes_depth", "data.val_images=8", "data.image_size=64", "data.img_size=64",
                "--out", str(tmp_path / "eval")]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["images_with_depth"] == 8 and metrics["unit"] == "metres" and 0 <= metrics["delta1"] <= 1
    assert metrics["rmse"] == pytest.approx(summary["val_rmse"], rel=1e-4)  # the run's validation, recomputed
    assert (tmp_path / "eval" / "predictions.png").stat().st_size > 10_000
    assert "RMSE" in capsys.readouterr().out

    from zoo.data.shapes import depth_sample

    depth_sample(0, "val", 0, 80)[0].save(tmp_path / "room.png")
    assert cli(["predict", str(depth_run), str(tmp_path / "room.png"), "--out", str(tmp_path / "pred")]) == 0
    raw = np.load(tmp_path / "pred" / "room_depth.npy")
    assert raw.shape == (80, 80) and raw.dtype == np.float32 and raw.min() >= 0
    entry = json.loads((tmp_path / "pred" / "predictions.json").read_text())["images"][0]
    assert entry["depth_m"]["max"] == pytest.approx(float(raw.max()), abs=1e-3)

    result = zoo.export(str(depth_run), "onnx", imgsz=64, out=tmp_path / "depth.onnx")
    assert result.outputs[0]["shape"] == [1, 1, 64, 64] and result.verification["real"]["ok"]
