"""RT-DETR, RT-DETRv2, D-FINE: exact counts, the detector contract against transformers' own post-processing,
the loss through the zoo's targets, Hub weights in transformers' layout, keeping COCO classes, fine-tuning."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save as safetensors_bytes

import zoo
from zoo.models.rtdetr import RealTimeDETR, min_side, to_detr_labels

transformers = pytest.importorskip("transformers")

# Exact parameter counts (80 classes) of the transformers modules these configs build; the papers print
# rounded millions (20M, 31M, ... 4M), which tests/test_models.py checks. Pinned so an upstream change shows.
PARAMS = {
    "rtdetr_r18": 20_184_464, "rtdetr_r34": 31_441_668, "rtdetr_r50m": 36_593_772, "rtdetr_r50": 42_891_372,
    "rtdetr_r101": 76_556_268, "dfine_n": 3_782_693, "dfine_s": 10_321_877, "dfine_m": 19_590_064,
    "dfine_l": 31_244_152, "dfine_x": 62_621_560,
}
# R18 with its BatchNorm buffers: the 20,209,680 values of PekingU/rtdetr_r18vd_coco_o365
# (docs/sources.md, "RT-DETR: Hub checkpoint size").
R18_TENSOR_VALUES = 20_209_680


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_exact_parameter_counts(name):
    assert count(zoo.load(name)) == PARAMS[name]
    v2 = name.replace("rtdetr_", "rtdetrv2_")
    if v2 != name:  # v2 changes the sampling, not the weights
        assert count(zoo.load(v2)) == PARAMS[name]


def test_r18_matches_the_hub_checkpoint_size():
    model = zoo.load("rtdetr_r18")
    values = sum(v.numel() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked"))
    # the Hub file keeps its backbone BatchNorm frozen (buffers); ours trains it: same values either way
    assert values == R18_TENSOR_VALUES


def test_registry_data():
    names = zoo.list_models("rtdetr*") + zoo.list_models("dfine*")
    assert len(names) == 15
    for name in names:
        spec = zoo.info(name)
        assert spec.task == "detection" and spec.input_size == (3, 640, 640) and spec.std == (1.0, 1.0, 1.0)
        assert spec.reported_value("box_ap") and spec.reported_value("params") and spec.reported_value("flops")
        assert spec.paper.code_license == "apache-2.0"
        assert all(w.license == "apache-2.0" and w.hf_hub_id.split("/")[0] in ("PekingU", "ustc-community") for w in spec.weights)
    assert zoo.info("rtdetr_r18").weight().hf_hub_id == "PekingU/rtdetr_r18vd"
    assert zoo.info("rtdetrv2_r50").weight().hf_hub_id == "PekingU/rtdetr_v2_r50vd"
    assert zoo.info("dfine_n").weight().hf_hub_id == "ustc-community/dfine-nano-coco"
    assert not zoo.info("rtdetr_r50m").weights  # the converter knows it, the Hub has no weights for it


def post_processed(model: RealTimeDETR, x: torch.Tensor) -> list[dict]:
    """transformers' own post-processing of the same forward (its image processor, threshold 0)."""
    processor = transformers.RTDetrImageProcessor()
    with torch.no_grad():
        out = model.detr(pixel_values=x)
    sizes = [tuple(x.shape[-2:])] * x.shape[0]
    return processor.post_process_object_detection(out, threshold=0.0, target_sizes=sizes)


@pytest.mark.parametrize("name", ["rtdetr_r18", "rtdetrv2_r18", "dfine_n"])
def test_eval_detections_match_transformers_post_processing(name):
    torch.manual_seed(0)
    model = zoo.load(name, num_classes=5).eval()
    side = model.zoo_spec.min_input_size
    x = torch.rand(2, 3, side, side + 32)  # not square: boxes scale by width and height separately
    with torch.no_grad():
        detections = model(x)
    assert detections.shape == (2, 300, 6)
    for ours, theirs in zip(detections, post_processed(model, x)):
        torch.testing.assert_close(ours[:, 4], theirs["scores"])
        assert torch.equal(ours[:, 5].long(), theirs["labels"])
        torch.testing.assert_close(ours[:, :4], theirs["boxes"], atol=1e-3, rtol=1e-5)


def test_too_small_inputs_name_the_smallest_size():
    model = zoo.load("dfine_n").eval()
    assert model.zoo_spec.min_input_size == 256 and zoo.info("rtdetr_r18").min_input_size == 128
    assert min_side([16, 32], 100) == 160
    with pytest.raises(ValueError, match="at least 256x256"):
        model(torch.rand(1, 3, 160, 160))
    fewer = zoo.load("dfine_n", num_queries=100).eval()  # fewer queries: smaller inputs
    with torch.no_grad():
        assert fewer(torch.rand(1, 3, 160, 160)).shape == (1, 100, 6)


def test_targets_become_normalised_cxcywh():
    targets = [{"boxes": torch.tensor([[10.0, 20.0, 50.0, 60.0]]), "labels": torch.tensor([3])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
    labels = to_detr_labels(targets, (100, 200))
    torch.testing.assert_close(labels[0]["boxes"], torch.tensor([[0.15, 0.4, 0.2, 0.4]]))
    assert labels[0]["class_labels"].tolist() == [3] and labels[1]["boxes"].shape == (0, 4)


@pytest.mark.parametrize("name", ["rtdetrv2_r18", "dfine_n"])
def test_training_forward_returns_the_models_own_loss(name):
    torch.manual_seed(0)
    model = zoo.load(name, num_classes=4).train()
    criterion = model.make_loss()
    assert criterion.in_forward and criterion.reduction == "mean"
    side = model.zoo_spec.min_input_size
    targets = [{"boxes": torch.tensor([[8.0, 8.0, 60.0, 90.0], [100.0, 40.0, 180.0, 120.0]]), "labels": torch.tensor([0, 2])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]  # an image with nothing in it
    x = torch.rand(2, 3, side, side)
    loss, items = criterion(model(x, targets), targets)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss.requires_grad
    assert {"vfl", "bbox", "giou", "aux", "dn"} <= set(items)
    loss.backward()
    assert all(p.grad is not None for p in model.detr.model.decoder.class_embed.parameters())
    with pytest.raises(ValueError, match="needs the targets"):
        model(x)


def hub_checkpoint(model: RealTimeDETR, folder) -> bytes:
    """A file in the Hub checkpoints' layout, as transformers' ``save_pretrained`` writes it (``model.…`` keys under
    transformers' older names such as ``layers.N.fc1``, each tied head under one name only), without BatchNorm
    step counters (frozen norms)."""
    from safetensors.torch import load_file

    model.detr.save_pretrained(folder)
    state = load_file(str(folder / "model.safetensors"))
    assert any(".fc1." in key for key in state)  # the older names the zoo must rename as transformers does
    return safetensors_bytes({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")})


def test_pretrained_loads_the_hub_layout_and_keeps_named_classes(hub_env, hub, tmp_path):
    torch.manual_seed(3)
    source = zoo.load("dfine_n").eval()
    with torch.no_grad():  # a head whose rows differ, so copied rows are recognisable
        for p in source.detr.model.decoder.class_embed.parameters():
            p.normal_()
    hub.add("ustc-community/dfine-nano-coco", {"model.safetensors": hub_checkpoint(source, tmp_path / "hub"), "config.json": b"{}"})
    model = zoo.load("dfine_n", pretrained=True).eval()
    assert model.zoo_spec.tag == "coco" and model.zoo_spec.labels[0] == "person"
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x))

    with pytest.warns(UserWarning, match=r"2 of 3 classes keep their trained rows .*: person, Dog; the other 1 start fresh"):
        tuned = zoo.load("dfine_n", pretrained=True, labels=["person", "widget", "Dog"])
    assert tuned.zoo_spec.labels == ("person", "widget", "Dog") and tuned.zoo_spec.num_classes == 3
    coco = source.zoo_spec.labels
    theirs, ours = source.detr.model.decoder.class_embed[0], tuned.detr.model.decoder.class_embed[0]
    torch.testing.assert_close(ours.weight[0], theirs.weight[coco.index("person")])
    torch.testing.assert_close(ours.weight[2], theirs.weight[coco.index("dog")])
    assert not torch.equal(ours.weight[1], theirs.weight[1])
    dn_theirs, dn_ours = source.detr.model.denoising_class_embed.weight, tuned.detr.model.denoising_class_embed.weight
    assert dn_ours.shape == (4, dn_theirs.shape[1])  # the extra "no object" row comes along
    torch.testing.assert_close(dn_ours[3], dn_theirs[80])
    with pytest.warns(UserWarning, match="reset"):
        zoo.load("dfine_n", pretrained=True, labels=["widget", "gadget"])  # nothing in common: a fresh head


def test_older_checkpoints_with_top_level_heads_convert(tmp_path):
    source = zoo.load("rtdetr_r18", num_classes=3).eval()
    state = {k: v for k, v in source.detr.state_dict().items()}
    for key in [k for k in state if k.startswith("model.decoder.class_embed.")]:
        state[key.removeprefix("model.decoder.")] = state.pop(key)  # older transformers: tied heads at the top
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "old.safetensors"))
    model = zoo.load("rtdetr_r18", num_classes=3, weights=tmp_path / "old.safetensors").eval()
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x))


def test_shapes_recipe_trains_saves_and_reloads(tmp_path):
    from zoo.train import compose, run

    cfg = compose("dfine_n_shapes", [f"out_dir={tmp_path}", "trainer.enable_progress_bar=false", "trainer.max_epochs=1",
                                     "data.train_images=8", "data.val_images=4", "data.batch_size=4", "trainer.log_every_n_steps=1"])
    summary = run(cfg, tmp_path / "run")
    assert summary["task"] == "detection" and 0.0 <= summary["val_map"] <= summary["val_map50"] <= 1.0
    metrics = (tmp_path / "run" / "logs" / "metrics.csv").read_text()
    assert "train/vfl" in metrics and "train/loss_step" in metrics
    model = zoo.load(str(tmp_path / "run")).eval()
    assert model.zoo_spec.labels == ("circle", "square", "triangle", "cross") and model.max_det == 100
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert config["model_type"] == "d_fine" and config["num_queries"] == 100  # transformers' layout (tests/test_interop.py)
    assert config["efficient_zoo"]["model_kwargs"]["num_queries"] == 100
    with torch.no_grad():
        assert model(torch.rand(1, 3, 160, 160)).shape == (1, 100, 6)


def test_labels_argument_is_checked():
    model = zoo.load("rtdetr_r18", labels=["a", "b"])  # without weights: just the head size and the names
    assert model.num_classes == 2 and model.zoo_spec.labels == ("a", "b")
    with pytest.raises(zoo.errors.BadArgumentError, match="2 names for num_classes=3"):
        zoo.load("rtdetr_r18", labels=["a", "b"], num_classes=3)


def test_distillation_refuses_a_detr_student(tmp_path):
    from zoo.errors import ConfigError
    from zoo.train import compose, run

    cfg = compose("dfine_n_shapes", [f"out_dir={tmp_path}", "plugins=[distill]", "plugins.distill.teacher=yolov10n",
                                     "trainer.max_epochs=1", "data.train_images=4", "data.val_images=4"])
    with pytest.raises(ConfigError, match="implemented for YOLOv10 students"):
        run(cfg, tmp_path / "run")
