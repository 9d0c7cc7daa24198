"""Folders and Hub repos that timm and transformers read from the zoo, and that the zoo reads from them (zoo.interop)."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import zoo
from zoo.card import build_card, stage_for_push
from zoo.errors import SourceError

timm = pytest.importorskip("timm")

ARCH = "mobilenetv3_small_100"
LABELS = ("cat", "dog", "eel")


def labelled_model() -> torch.nn.Module:
    """A 3-class model whose preprocessing is not timm's default for the architecture (ImageNet, bicubic)."""
    torch.manual_seed(3)
    model = zoo.load(ARCH, labels=LABELS).eval()
    model.zoo_spec = dataclasses.replace(model.zoo_spec, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), interpolation="bilinear",
                                         crop_pct=1.0, input_size=(3, 96, 96))
    return model


def files_of(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_a_zoo_saved_timm_family_loads_in_timm_from_the_hub_and_a_folder_with_its_labels_and_preprocessing(hub_env, hub, tmp_path):
    model = labelled_model()
    folder = zoo.save(model, tmp_path / "saved")
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == ARCH and config["efficient_zoo"]["architecture"] == ARCH  # timm's layout, ours inside
    card = build_card(folder, bench_dirs=(), repo_id="me/mnv3-pets")  # what zoo push publishes beside it
    assert card.data.library_name == "timm" and 'timm.create_model("hf-hub:me/mnv3-pets", pretrained=True)' in card.text
    assert 'zoo.load("hf-hub:me/mnv3-pets")' in card.text
    hub.add("me/mnv3-pets", files_of(folder))
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        expected = model(x)
        for source in ("hf-hub:me/mnv3-pets", f"local-dir:{folder}"):
            theirs = timm.create_model(source, pretrained=True).eval()
            torch.testing.assert_close(theirs(x), expected, rtol=0, atol=0)
            assert theirs.pretrained_cfg["label_names"] == list(LABELS)
            data = timm.data.resolve_data_config(model=theirs)
            assert (tuple(data["input_size"]), tuple(data["mean"]), tuple(data["std"]), data["interpolation"], data["crop_pct"]) == (
                (3, 96, 96), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), "bilinear", 1.0), source
    fresh_head = timm.create_model("hf-hub:me/mnv3-pets", pretrained=True, num_classes=5)  # timm's own head reset
    assert fresh_head.get_classifier().out_features == 5
    torch.testing.assert_close(fresh_head.conv_stem.weight, model.conv_stem.weight)

    earlier = tmp_path / "earlier"  # a folder saved before this layout: the zoo's fields alone
    earlier.mkdir()
    (earlier / "config.json").write_text(json.dumps(config["efficient_zoo"]))
    (earlier / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    for source in ("hf-hub:me/mnv3-pets", str(folder), str(earlier)):  # and the zoo reads its own folders back whole
        again = zoo.load(source).eval()
        assert again.zoo_spec.labels == LABELS and again.zoo_spec.preprocessing() == model.zoo_spec.preprocessing()
        with torch.no_grad():
            torch.testing.assert_close(again(x), expected, rtol=0, atol=0)


def test_a_folder_and_a_hub_repo_written_by_timm_load_in_the_zoo_with_the_same_outputs(hub_env, hub, tmp_path):
    torch.manual_seed(4)
    theirs = timm.create_model(ARCH, pretrained=False, num_classes=3).eval()
    timm.models.save_for_hf(theirs, tmp_path / "timm", model_config={"label_names": list(LABELS)}, safe_serialization=True)
    hub.add("someone/mnv3-pets", files_of(tmp_path / "timm"))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = theirs(x)
        for source in (str(tmp_path / "timm"), "hf-hub:someone/mnv3-pets"):
            ours = zoo.load(source).eval()
            torch.testing.assert_close(ours(x), expected, rtol=0, atol=0)
            assert ours.zoo_spec.name == ARCH and ours.zoo_spec.labels == LABELS and ours.zoo_spec.num_classes == 3
            assert ours.zoo_spec.preprocessing() == {k: (tuple(v) if isinstance(v, list) else v) for k, v in
                                                     timm.data.resolve_data_config(model=theirs).items() if k != "crop_mode"}

    timm.models.save_for_hf(theirs, tmp_path / "pickled")  # timm's default: pytorch_model.bin only
    with pytest.raises(SourceError, match="pytorch_model.bin, a pickle.*allow_pickle=True"):
        zoo.load(str(tmp_path / "pickled"))
    with torch.no_grad():
        torch.testing.assert_close(zoo.load(str(tmp_path / "pickled"), allow_pickle=True).eval()(x), expected, rtol=0, atol=0)


def config_folder(tmp_path, name: str, config: dict) -> str:
    """A folder holding ``config`` and a weights file that nothing should get as far as reading."""
    from safetensors.torch import save_file

    (tmp_path / name).mkdir()
    (tmp_path / name / "config.json").write_text(json.dumps(config))
    save_file({"w": torch.zeros(1)}, str(tmp_path / name / "model.safetensors"))
    return str(tmp_path / name)


def test_timm_folders_the_zoo_cannot_build_or_trust_are_refused_in_one_line(tmp_path):
    def folder(name: str, config: dict):
        return config_folder(tmp_path, name, config)

    with pytest.raises(SourceError, match="architecture 'resnet10t', which the zoo does not register"):
        zoo.load(folder("resnet", {"architecture": "resnet10t", "num_classes": 3, "pretrained_cfg": {}}))
    with pytest.raises(SourceError, match="mean .* is not a list of finite numbers"):
        zoo.load(folder("mean", {"architecture": ARCH, "pretrained_cfg": {"mean": ["__import__"]}}))
    with pytest.raises(SourceError, match="labels must be a list of names, one per class"):
        zoo.load(folder("labels", {"architecture": ARCH, "num_classes": 2, "label_names": ["a", "b", "c"], "pretrained_cfg": {}}))


def test_only_models_timm_builds_as_they_stand_are_saved_in_timms_layout(tmp_path):
    from zoo.interop import timm_arch
    from zoo.registry import state_of

    model = zoo.load(ARCH, num_classes=2)
    assert timm_arch(model, model.zoo_spec) == ARCH
    state_of(model).pruned = True  # layer widths timm would not build: the zoo's own layout
    assert timm_arch(model, model.zoo_spec) is None
    yolo = zoo.load("yolov10n")
    assert timm_arch(yolo, yolo.zoo_spec) is None
    zoo.save(yolo, tmp_path / "yolo")
    assert json.loads((tmp_path / "yolo" / "config.json").read_text())["format"] == "efficient-zoo"
    card = build_card(tmp_path / "yolo", bench_dirs=())
    assert card.data.library_name == "efficient-zoo" and "timm" not in card.text


# -- transformers (RT-DETR, RT-DETRv2, D-FINE) -------------------------------------------------------------------------

DETR = "dfine_n"  # the smallest transformers-built detector; 100 queries allow 320-pixel inputs
DETR_LABELS = ("cat", "dog", "cow")


def detr_config(name: str = DETR, **changes):
    """transformers' config of a registered variant with 100 queries and DETR_LABELS, as a user's fine-tune has."""
    from zoo.models.rtdetr import build_config

    kwargs = zoo.info(name).default_kwargs
    config = build_config(kwargs["kind"], kwargs["backbone"], dict(kwargs["config"], num_queries=100), len(DETR_LABELS))
    config.id2label = dict(enumerate(DETR_LABELS))
    config.label2id = {name: i for i, name in enumerate(DETR_LABELS)}
    for key, value in changes.items():
        setattr(config, key, value)
    return config


def test_a_zoo_saved_detr_loads_in_transformers_with_the_same_detections_labels_and_preprocessing(hub_env, hub, tmp_path):
    transformers = pytest.importorskip("transformers")
    from PIL import Image

    torch.manual_seed(5)
    model = zoo.load(DETR, labels=DETR_LABELS, num_queries=100).eval()
    model.zoo_spec = dataclasses.replace(model.zoo_spec, input_size=(3, 320, 320), interpolation="bicubic")
    folder = zoo.save(model, tmp_path / "saved")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "preprocessor_config.json"]
    staged = tmp_path / "push"  # what zoo push uploads: the processor's settings too, and a card naming transformers
    assert stage_for_push(folder, staged, bench_dirs=(), repo_id="me/dfine-pets") == [
        "README.md", "config.json", "model.safetensors", "preprocessor_config.json"]
    card = (staged / "README.md").read_text()
    assert "\nlibrary_name: transformers\n" in card and "\npipeline_tag: object-detection\n" in card
    assert 'AutoModelForObjectDetection.from_pretrained("me/dfine-pets")' in card and 'zoo.load("hf-hub:me/dfine-pets")' in card
    hub.add("me/dfine-pets", files_of(staged))

    image = Image.fromarray((torch.rand(240, 200, 3) * 255).byte().numpy())
    for source in ("me/dfine-pets", str(folder)):
        theirs = transformers.AutoModelForObjectDetection.from_pretrained(source).eval()
        processor = transformers.AutoImageProcessor.from_pretrained(source)
        assert type(theirs).__name__ == "DFineForObjectDetection" and theirs.config.id2label == dict(enumerate(DETR_LABELS))
        assert (processor.size.height, processor.size.width, processor.resample, processor.do_normalize, processor.do_pad) == (320, 320, 3, False, False)
        pixels = processor(images=image, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            found = processor.post_process_object_detection(theirs(pixel_values=pixels), threshold=0.0, target_sizes=[(320, 320)])[0]
            ours = model(pixels)[0]
        assert len(found["scores"]) == 100, source
        torch.testing.assert_close(found["boxes"], ours[:, :4], rtol=0, atol=1e-4)
        torch.testing.assert_close(found["scores"], ours[:, 4], rtol=0, atol=1e-6)
        assert torch.equal(found["labels"], ours[:, 5].long()), source

    x = torch.rand(1, 3, 320, 320)
    for source in ("hf-hub:me/dfine-pets", str(folder)):  # the zoo reads its own folders back whole
        again = zoo.load(source).eval()
        assert again.zoo_spec.labels == DETR_LABELS and again.zoo_spec.preprocessing() == model.zoo_spec.preprocessing()
        with torch.no_grad():
            assert torch.equal(again(x), model(x)), source


@pytest.mark.parametrize("name", [DETR, "rtdetr_r18", "rtdetrv2_r18"])  # each model type renames its own keys
def test_a_folder_and_a_hub_repo_written_by_transformers_load_in_the_zoo_with_the_same_outputs(name, hub_env, hub, tmp_path):
    transformers = pytest.importorskip("transformers")
    from safetensors import safe_open

    torch.manual_seed(6)
    theirs = transformers.AutoModelForObjectDetection.from_config(detr_config(name)).eval()
    theirs.save_pretrained(tmp_path / "hf")
    transformers.RTDetrImageProcessor(size={"height": 288, "width": 320}, do_normalize=True, image_mean=[0.5] * 3,
                                      image_std=[0.25] * 3).save_pretrained(tmp_path / "hf")
    with safe_open(str(tmp_path / "hf" / "model.safetensors"), "pt") as f:  # transformers' older names, renamed on loading
        assert any(".fc1." in key for key in f.keys()) and not any(".mlp." in key for key in f.keys())
    hub.add("someone/dfine-pets", files_of(tmp_path / "hf"))
    x = torch.rand(1, 3, 320, 320)
    with torch.no_grad():
        expected = theirs(pixel_values=x)
        for source in (str(tmp_path / "hf"), "hf-hub:someone/dfine-pets"):
            ours = zoo.load(source).eval()
            assert (ours.zoo_spec.name, ours.zoo_spec.labels, ours.max_det) == (name, DETR_LABELS, 100)
            assert ours.zoo_spec.preprocessing() == {"input_size": (3, 288, 320), "mean": (0.5,) * 3, "std": (0.25,) * 3,
                                                     "interpolation": "bilinear", "crop_pct": 1.0}
            out = ours.detr(pixel_values=x)
            torch.testing.assert_close(out.logits, expected.logits, rtol=0, atol=0)
            torch.testing.assert_close(out.pred_boxes, expected.pred_boxes, rtol=0, atol=0)


def test_transformers_folders_the_zoo_cannot_build_or_trust_are_refused_in_one_line(tmp_path):
    def folder(name: str, config: dict):
        return config_folder(tmp_path, name, config)

    pytest.importorskip("transformers")
    good = detr_config().to_dict()
    with pytest.raises(SourceError, match="a transformers model of type 'detr', which the zoo does not register"):
        zoo.load(folder("detr", {**good, "model_type": "detr"}))
    with pytest.raises(SourceError, match="a d_fine model whose layer sizes match none of the zoo's variants"):
        zoo.load(folder("deeper", detr_config(decoder_layers=4).to_dict()))
    with pytest.raises(SourceError, match=r"transformers cannot read this d_fine config.json \(.*divisible.*\); nothing was built"):
        zoo.load(folder("invalid", {**good, "d_model": 100}))
    with pytest.raises(SourceError, match="id2label must name classes 0 to N-1"):
        zoo.load(folder("labels", {**good, "id2label": {"0": "cat", "7": "dog"}}))
    with pytest.raises(SourceError, match="num_queries 1000000000 is not a whole number from 1 to 10000"):
        zoo.load(folder("queries", {**good, "num_queries": 10**9}))
    padded = folder("padded", good)
    (tmp_path / "padded" / "preprocessor_config.json").write_text(json.dumps({"do_pad": True}))
    with pytest.raises(SourceError, match="pads or does not resize"):
        zoo.load(padded)
