"""MobileCLIP / MobileCLIP2 whole: official-layout weights through the Hub stand-in, zero-shot parity with open_clip,
one-tower loading, tower sizes against the papers, zoo.save round trips. (The zero-shot classifier's exports:
tests/test_export.py.)"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import save as safetensors_bytes

import zoo
from zoo.errors import BadArgumentError

open_clip = pytest.importorskip("open_clip")

NAME, CONFIG, REPO = "mobileclip2_s0", "MobileCLIP2-S0", "timm/MobileCLIP2-S0-OpenCLIP"
LABELS = ["forklift", "pallet", "person"]


@pytest.fixture(scope="module")
def official():
    """open_clip's own model, random weights (seeded; BatchNorm statistics and logit scale moved off their defaults)
    in the layout the official repos publish."""
    torch.manual_seed(0)
    model = open_clip.create_model(CONFIG).eval()
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith(("running_mean", "running_var")):
                buffer.copy_(torch.rand_like(buffer) + (0.5 if name.endswith("var") else -0.5))
        model.logit_scale.fill_(4.2)
    return model


@pytest.fixture
def served(hub, official):
    hub.add(REPO, {"open_clip_model.safetensors": safetensors_bytes({k: v.contiguous() for k, v in official.state_dict().items()})})
    return hub


def open_clip_logits(model, images, labels, templates) -> torch.Tensor:
    """Zero-shot logits as open_clip computes them (its classifier builder, its encoders, its temperature)."""
    from open_clip.zero_shot_classifier import build_zero_shot_classifier

    with torch.no_grad():
        classifier = build_zero_shot_classifier(model, open_clip.get_tokenizer(CONFIG), labels, templates)
        return model.logit_scale.exp() * model.encode_image(images, normalize=True) @ classifier


def test_zero_shot_logits_equal_open_clips_on_the_official_weights(hub_env, served, official):
    from open_clip.zero_shot_metadata import SIMPLE_IMAGENET_TEMPLATES

    model = zoo.load(NAME, pretrained=True, labels=LABELS).eval()
    assert model.zoo_spec.labels == tuple(LABELS) and model.zoo_spec.tag == "dfndr2b"
    images = torch.rand(2, 3, 256, 256)
    with torch.no_grad():
        ours = model(images)
    theirs = open_clip_logits(official, images, LABELS, SIMPLE_IMAGENET_TEMPLATES)
    assert ours.shape == (2, 3)
    assert (ours - theirs).abs().max().item() <= 1e-5
    assert served.count("GET", REPO, "open_clip_model.safetensors") == 1

    # each tower alone, from the same download (cache hit), equals open_clip's encoder
    image_tower = zoo.load(NAME, pretrained=True, tower="image").eval()
    text_tower = zoo.load(NAME, pretrained=True, tower="text").eval()
    assert image_tower.text is None and text_tower.visual is None
    tokens = text_tower.tokenize(["a photo of a forklift", "two pallets"])
    with torch.no_grad():
        assert torch.allclose(image_tower(images), official.encode_image(images, normalize=True), atol=1e-6)
        assert torch.allclose(text_tower(tokens), official.encode_text(tokens, normalize=True), atol=1e-6)
    assert served.count("GET", REPO, "open_clip_model.safetensors") == 1


def test_user_templates_and_a_saved_classifier_keep_their_head(tmp_path):
    torch.manual_seed(0)
    templates = ["a photo of a {}.", "a blurry photo of a {}."]
    model = zoo.load(NAME, labels=LABELS, templates=templates).eval()
    images = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        expected = model.logit_scale.exp() * model.encode_image(images) @ torch.stack(
            [torch.nn.functional.normalize(model.encode_text(model.tokenize([t.format(c) for t in templates])).mean(0), dim=0)
             for c in LABELS]).T
        assert (model(images) - expected).abs().max().item() <= 1e-5

    zoo.save(model, tmp_path / "clip")
    again = zoo.load(tmp_path / "clip").eval()  # the head is read from the weights, not recomputed
    assert again.zoo_spec.labels == tuple(LABELS) and again.templates == tuple(templates)
    with torch.no_grad():
        assert torch.equal(again(images), model(images))
    relabelled = zoo.load(tmp_path / "clip", labels=["cat", "dog"]).eval()  # new labels: a new zero-shot head
    with torch.no_grad():
        assert relabelled(images).shape == (1, 2)
        assert torch.allclose(relabelled.head.weight[0], torch.nn.functional.normalize(
            relabelled.encode_text(relabelled.tokenize([t.format("cat") for t in templates])).mean(0), dim=0), atol=1e-6)


def test_text_tower_exports_token_ids_to_embeddings_with_a_fixed_context(tmp_path):
    """The text tower alone is an ONNX graph from int64 token ids [1, context] to the normalised embedding; the same
    captions give the same embedding in onnxruntime as in PyTorch."""
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = zoo.load(NAME, tower="text", text_context=16).eval()
    assert model.zoo_spec.input_size == (16,) and model.zoo_spec.vocab == 49408
    result = zoo.export(model, "onnx", out=tmp_path / "text.onnx")
    assert result.inputs == [{"name": "input_ids", "dtype": "int64", "shape": [1, 16]}]
    assert result.metadata["tower"] == "text" and result.metadata["vocab_size"] == "49408"
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    tokens = model.tokenize(["a red circle at the top left"])
    embedding = session.run(None, {"input_ids": tokens.numpy()})[0]
    with torch.no_grad():
        assert np.abs(embedding - model.encode_text(tokens).numpy()).max() <= 1e-5
    assert abs(np.linalg.norm(embedding) - 1) <= 1e-5
    with pytest.raises(BadArgumentError, match="token ids"):
        zoo.export(model, "onnx", imgsz=64, out=tmp_path / "again.onnx")


@pytest.mark.parametrize("name", zoo.list_models("mobileclip*"))
def test_each_tower_has_the_papers_parameter_count(name):
    """Counted on the meta device (no memory, no time); the FastViT towers in their deploy form, as the papers count."""
    spec = zoo.info(name)
    with torch.device("meta"):
        model = spec.builder()
    for tower, module in (("image", model.visual), ("text", model.text)):
        reported = spec.reported_value(f"{tower}_params")
        measured = sum(p.numel() for p in module.parameters())
        assert abs(measured - reported.value * 1e6) <= 0.01 * reported.value * 1e6 + reported.rounding * 1e6, (tower, measured, reported)


def _apple_layout(state_dict: dict) -> dict:
    """Our MobileCLIP-S0 weights in apple/ml-mobileclip's layout (``mobileclip_s0.pt``): timm's FastViT names back to
    the original MCi ones (the inverse of the renames timm's converter documents), MCt's keys as they are."""
    import re

    blocks, downsamples, position = {0: 0, 1: 2, 2: 4, 3: 7}, {1: 1, 2: 3, 3: 5}, {3: 6}  # MCi0's flat network
    out = {"logit_scale": state_dict["logit_scale"]}
    for key, value in state_dict.items():
        if key.startswith("text."):
            out["text_encoder." + key.removeprefix("text.")] = value
        elif key.startswith("visual.trunk."):
            k = key.removeprefix("visual.trunk.")
            if k == "head.fc.bias":
                continue
            if k == "head.fc.weight":
                out["image_encoder.model.head.proj"] = value.T
                continue
            k = re.sub(r"^stages\.(\d)\.downsample\.proj", lambda m: f"network.{downsamples[int(m[1])]}.proj", k)
            k = re.sub(r"^stages\.(\d)\.pos_emb\.pos_enc", lambda m: f"network.{position[int(m[1])]}.pe", k)
            k = re.sub(r"^stages\.(\d)\.blocks", lambda m: f"network.{blocks[int(m[1])]}", k)
            for theirs, ours in (("stem", "patch_embed"), ("conv_kxk", "rbr_conv"), ("conv_scale", "rbr_scale"),
                                 ("identity", "rbr_skip"), ("final_conv", "conv_exp"), ("large_conv", "lkb_origin"),
                                 ("mlp", "convffn"), ("se.fc1", "se.reduce"), ("se.fc2", "se.expand"), (".gamma", "")):
                k = k.replace(theirs, ours)
            out["image_encoder.model." + k] = value
    return out


def mct_reference(text, tokens: torch.Tensor) -> torch.Tensor:
    """MCt written out from the layer table (docs/research/mobileclip.md), with torch's own attention module: an
    independent check of the fused projection's row order, the RepMixer algebra and the end-of-text pooling."""
    def bn(x, norm):
        return torch.nn.functional.batch_norm(x, norm.running_mean, norm.running_var, norm.weight, norm.bias, eps=norm.eps)

    def dwconv(x, conv):
        return torch.nn.functional.conv2d(x, conv.weight, padding=(0, 5), groups=x.shape[1])

    def repmixer(x, block):  # x: [B, L, D]
        y = x.permute(0, 2, 1)[:, :, None]
        mixer = block.token_mixer
        mixed = bn(y, mixer.mixer.rbr_skip) + bn(dwconv(y, mixer.mixer.rbr_conv[0].conv), mixer.mixer.rbr_conv[0].bn)
        y = y + mixer.layer_scale * (mixed - bn(y, mixer.norm.rbr_skip))
        ffn = block.convffn
        hidden = torch.nn.functional.gelu(ffn.fc1(bn(dwconv(y, ffn.conv.conv), ffn.conv.bn)))
        y = y + block.layer_scale * ffn.fc2(hidden)
        return y[:, :, 0].permute(0, 2, 1)

    x = text.embedding_layer.weight[tokens] + text.positional_embedding.pos_embed.pos_embed[0, 0]
    for layer in text.transformer:
        if not hasattr(layer, "pre_norm_mha"):
            x = repmixer(x, layer)
            continue
        attention = torch.nn.MultiheadAttention(512, 8, batch_first=True)
        attention.in_proj_weight.data, attention.in_proj_bias.data = (layer.pre_norm_mha[1].qkv_proj.weight.data,
                                                                      layer.pre_norm_mha[1].qkv_proj.bias.data)
        attention.out_proj.weight.data, attention.out_proj.bias.data = (layer.pre_norm_mha[1].out_proj.weight.data,
                                                                        layer.pre_norm_mha[1].out_proj.bias.data)
        normed = layer.pre_norm_mha[0](x)
        x = x + attention(normed, normed, normed, need_weights=False)[0]
        x = x + layer.pre_norm_ffn[4](torch.nn.functional.gelu(layer.pre_norm_ffn[1](layer.pre_norm_ffn[0](x))))
    x = text.final_layer_norm(x)
    return torch.stack([x[i, int(tokens[i].argmax())] for i in range(len(tokens))]) @ text.projection_layer


def test_mobileclip_s0_text_tower_is_mct_and_loads_apples_own_release(hub_env, hub, tmp_path):
    """MCt has the release's 42,441,216 parameters and 109 keys, computes what its layer table says, and the whole
    model loads from apple/MobileCLIP-S0's pickled state dict (image keys in the original MCi names) only when
    pickles are allowed, then equals the model the weights came from."""
    from zoo.errors import UnsafeWeightsError

    torch.manual_seed(0)
    source = zoo.load("mobileclip_s0").eval()
    with torch.no_grad():
        for name, buffer in source.named_buffers():
            if name.endswith(("running_mean", "running_var")):
                buffer.copy_(torch.rand_like(buffer) + (0.5 if name.endswith("var") else -0.5))
        for name, p in source.named_parameters():
            if "layer_scale" in name:
                p.uniform_(0.1, 0.5)  # far from the 1e-5 start, so the RepMixer blocks count
        source.visual.trunk.head.fc.bias.zero_()  # the release's projection has no bias
    assert sum(p.numel() for p in source.text.parameters()) == 42_441_216 and len(source.text.state_dict()) == 109
    tokens = source.tokenize(["a photo of a forklift", "two pallets on the floor"])
    with torch.no_grad():
        assert (source.text(tokens) - mct_reference(source.text, tokens)).abs().max().item() <= 1e-5

    buffer = tmp_path / "mobileclip_s0.pt"
    torch.save(_apple_layout(source.state_dict()), buffer)
    hub.add("apple/MobileCLIP-S0", {"mobileclip_s0.pt": buffer.read_bytes()})
    with pytest.raises(UnsafeWeightsError, match="allow_pickle=True"):
        zoo.load("mobileclip_s0", pretrained=True)
    loaded = zoo.load("mobileclip_s0", pretrained=True, allow_pickle=True, labels=LABELS).eval()
    images = torch.rand(2, 3, 256, 256)
    with torch.no_grad():
        assert (loaded.encode_image(images) - source.encode_image(images)).abs().max().item() <= 1e-6
        assert (loaded.encode_text(tokens) - source.encode_text(tokens)).abs().max().item() <= 1e-6
        assert loaded.logit_scale.item() == source.logit_scale.item()
    text_only = zoo.load("mobileclip_s0", pretrained=True, allow_pickle=True, tower="text").eval()
    with torch.no_grad():
        assert torch.equal(text_only(tokens), loaded.encode_text(tokens))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"tower": "audio"}, "tower must be one of both, image, text"),
    ({"templates": ["a photo"]}, "templates must be prompts with one {}"),
    ({"templates": "fancy"}, "templates must be 'simple', 'openai'"),
    ({"tower": "text", "labels": ["cat"]}, "the text tower has no classifier"),
])
def test_bad_arguments_say_what_to_pass(kwargs, message):
    with pytest.raises(BadArgumentError, match=message.replace("{", r"\{").replace("(", r"\(")):
        zoo.load(NAME, **kwargs)


def test_embed_writes_each_towers_normalised_rows_with_their_names(tmp_path):
    from PIL import Image
    from safetensors import safe_open

    from zoo.data.classification import eval_transform
    from zoo.embed import embed

    torch.manual_seed(0)
    model = zoo.load(NAME).eval()
    (tmp_path / "photos").mkdir()
    for name, colour in (("b.png", (0, 0, 255)), ("a.jpg", (255, 0, 0))):
        Image.new("RGB", (90, 60), colour).save(tmp_path / "photos" / name)
    (tmp_path / "notes.txt").write_text("a red square\n\n  a blue square \n")

    result = embed(model, tmp_path / "photos", tmp_path / "images.safetensors")
    with safe_open(str(tmp_path / "images.safetensors"), "pt") as f:
        rows, meta = f.get_tensor("embeddings"), f.metadata()
    assert meta["kind"] == "image" and json.loads(meta["items"]) == ["a.jpg", "b.png"] == result["items"]
    transform = eval_transform(model.zoo_spec.preprocessing())
    with torch.no_grad():
        expected = model.encode_image(torch.stack([transform(Image.open(tmp_path / "photos" / n).convert("RGB"))
                                                   for n in ("a.jpg", "b.png")]))
    assert torch.allclose(rows, expected, atol=1e-5) and torch.allclose(rows.norm(dim=1), torch.ones(2))

    result = embed(model, tmp_path / "notes.txt", tmp_path / "texts.npy")
    assert result["items"] == ["a red square", "a blue square"]  # blank lines skipped, spaces trimmed
    with torch.no_grad():
        expected = model.encode_text(model.tokenize(result["items"]))
    assert torch.allclose(torch.from_numpy(np.load(tmp_path / "texts.npy")), expected, atol=1e-5)
    assert (tmp_path / "texts.json").is_file()

    with pytest.raises(BadArgumentError, match="must end in .safetensors or .npy"):
        embed(model, tmp_path / "notes.txt", tmp_path / "texts.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(zoo.errors.DataError, match="holds no images"):
        embed(model, tmp_path / "empty", tmp_path / "x.npy")


# -- image-text training and retrieval -------------------------------------------------------------------------------


def test_retrieval_recall_counts_repeated_captions_by_hand():
    """4 images captioned a, b, a, c against the 3 distinct captions; the similarities below, ranked by hand."""
    from zoo.metrics import retrieval_recall

    similarity = torch.tensor([[0.0, 0.6, -0.4], [0.2, 0.7, -0.2], [0.3, -0.5, 0.25], [0.2, 0.9, -0.6]])
    images, texts = similarity, torch.eye(3)  # image @ text.T reproduces the table
    scores = retrieval_recall(images, texts, ["a", "b", "a", "c"], ks=(1, 2))
    # image to text, top 1: b (miss), b (hit), a (hit), b (miss); top 2 adds a for image 0, and c is last for image 3
    assert scores["i2t_r1"] == 0.5 and scores["i2t_r2"] == 0.75
    # text to image, top 1: a -> image 2 (an "a": hit), b -> image 3 (a "c": miss), c -> image 2 (miss)
    assert scores["t2i_r1"] == pytest.approx(1 / 3) and scores["t2i_r2"] == pytest.approx(2 / 3)
    with pytest.raises(BadArgumentError, match="3 distinct captions"):
        retrieval_recall(images, torch.eye(2), ["a", "b", "a", "c"])


def test_clip_loss_is_clips_with_unique_captions_and_shares_repeats():
    from zoo.tasks.image_text import clip_loss

    torch.manual_seed(0)
    image = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    text = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    scale = torch.tensor(2.0)
    logits = scale.exp() * image @ text.T
    expected = (torch.nn.functional.cross_entropy(logits, torch.arange(4)) + torch.nn.functional.cross_entropy(logits.T, torch.arange(4))) / 2
    assert torch.allclose(clip_loss(image, text, scale, ["a", "b", "c", "d"]), expected)
    # images 0 and 2 share a caption: each of them matches both texts, half each
    targets = torch.tensor([[0.5, 0, 0.5, 0], [0, 1, 0, 0], [0.5, 0, 0.5, 0], [0, 0, 0, 1]])
    shared = (torch.nn.functional.cross_entropy(logits, targets) + torch.nn.functional.cross_entropy(logits.T, targets)) / 2
    assert torch.allclose(clip_loss(image, text, scale, ["a", "b", "a", "d"]), shared)
    assert torch.allclose(clip_loss(image, text, torch.tensor(9.0), ["a", "b", "c", "d"]),
                          clip_loss(image, text, torch.tensor(math.log(100.0)), ["a", "b", "c", "d"]))  # capped at 100


def test_shape_captions_say_what_is_drawn_and_where():
    from zoo.data.shapes import CAPTION_COLOURS, caption_sample

    places = {"top left": (16, 16), "top right": (48, 16), "bottom left": (16, 48), "bottom right": (48, 48), "centre": (32, 32)}
    seen = set()
    for index in range(40):
        image, caption = caption_sample(3, "train", index, 64)
        words = caption.split(" at the ")
        colour = words[0].split()[1]
        x, y = places[words[1]]
        assert image.getpixel((x, y)) == CAPTION_COLOURS[colour], caption  # the shape covers its place's centre
        seen.add(caption)
    assert caption_sample(3, "train", 7, 64)[1] == caption_sample(3, "train", 7, 64)[1]
    assert len(seen) > 25 and not any(c.startswith("a orange") for c in seen)  # "an orange"


def test_image_text_task_trains_and_locks_towers():
    from zoo.tasks.image_text import ImageTextTask, clip_loss

    torch.manual_seed(0)
    captions = ["a red circle at the centre", "a blue square at the top left", "a green cross at the bottom right", "a red circle at the centre"]
    images = torch.rand(4, 3, 32, 32)
    task = ImageTextTask(zoo.load(NAME, text_context=8), lock_text=True)
    frozen = {k: v.clone() for k, v in task.model.text.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in task.model.parameters() if p.requires_grad], lr=1e-3)
    task.model.train()
    losses = []
    for _ in range(4):
        image, text = task._embed(task.model, images, captions)
        loss = clip_loss(image, text, task.model.logit_scale, captions)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(torch.equal(v, task.model.text.state_dict()[k]) for k, v in frozen.items())
    with pytest.raises(zoo.errors.ConfigError, match="not an image-text model"):
        ImageTextTask(zoo.load("mobilenetv3_small_100"))


def test_distill_matches_the_batchs_similarities_to_a_clip_teachers():
    """The image-text distillation term is KL(teacher || student) of both similarity softmaxes, zero for the teacher's
    own embeddings; its gradient moves a student towards a teacher of another text tower (MobileCLIP-S0's MCt)."""
    from zoo.errors import ConfigError
    from zoo.plugins.distill import Distill, similarity_kd
    from zoo.tasks.image_text import ImageTextTask

    torch.manual_seed(0)
    captions = ["a red circle at the centre", "a blue square at the top left", "a green cross at the bottom right",
                "a yellow triangle at the top right"]
    images = torch.rand(4, 3, 64, 64)
    task = ImageTextTask(zoo.load(NAME, text_context=8))
    plugin = Distill(teacher="mobileclip_s0", pretrained=False)
    plugin.check([plugin], "image-text")
    plugin.setup(None, task, "fit")
    teacher = plugin.teacher
    with torch.no_grad():
        teacher.logit_scale.fill_(math.log(100.0))  # a confident teacher: its similarities far from the student's
        t_image, t_text = teacher.encode_image(images), teacher.encode_text(teacher.tokenize(captions))
        own = similarity_kd(t_image, t_text, teacher.logit_scale, t_image, t_text, teacher.logit_scale)
        image, text = task._embed(task.model, images, captions)
        s = task.model.logit_scale.exp() * image @ text.T
        t = teacher.logit_scale.exp() * t_image @ t_text.T
        by_hand = sum((p.softmax(-1) * (p.log_softmax(-1) - q.log_softmax(-1))).sum(-1).mean() for p, q in ((t, s), (t.T, s.T))) / 2
        assert abs(own.item()) < 1e-6
        assert similarity_kd(image, text, task.model.logit_scale, t_image, t_text, teacher.logit_scale).item() == pytest.approx(
            by_hand.item(), rel=1e-5)
    task.model.eval()  # BatchNorm's running statistics, as the teacher's: the loss is a function of the weights alone
    before, items = plugin.loss(images, task._embed(task.model, images, captions), captions)
    before.backward()
    grads = {n: p.grad for n, p in task.model.named_parameters() if p.grad is not None}
    assert any(n.startswith("visual.") for n in grads) and any(n.startswith("text.") for n in grads)
    norm = torch.sqrt(sum((g ** 2).sum() for g in grads.values()))
    with torch.no_grad():  # a short step down the gradient: the student's similarities move towards the teacher's
        for n, p in task.model.named_parameters():
            if n in grads:
                p -= 1e-3 * grads[n] / norm
        after, _ = plugin.loss(images, task._embed(task.model, images, captions), captions)
    assert after.item() < before.item() and items["kd"].item() == before.item()
    classifier = Distill(teacher="mobilenetv3_small_100", pretrained=False)
    classifier.check([classifier], "image-text")
    with pytest.raises(ConfigError, match="not an image-text model with both towers"):
        classifier.setup(None, task, "fit")
    with pytest.raises(ConfigError, match="drop plugins.distill.features"):
        Distill(teacher="mobileclip_s0", features=["a:b"]).check([], "image-text")


def test_zoo_eval_reports_retrieval_on_captions(tmp_path, capsys):
    from zoo.cli import main

    assert main(["eval", NAME, "data=shape_captions", "data.val_images=24", "data.batch_size=12", "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["pairs"] == 24 and {"i2t_r1", "t2i_r1", "i2t_r10"} <= metrics.keys()
    assert metrics["i2t_r1"] <= metrics["i2t_r5"] <= metrics["i2t_r10"]
    assert (tmp_path / "retrievals.png").stat().st_size > 10_000
    assert "image-to-text R@1" in capsys.readouterr().out


def test_zoo_eval_zero_shot_on_labelled_data_prompts_with_the_names_given(tmp_path, capsys):
    from zoo.cli import main

    names = "zero,one,two,three,four,five,six,seven,eight,nine"
    argv = ["eval", NAME, "data=digits", "data.img_size=64", "data.val_fraction=0.05", "--out", str(tmp_path)]
    assert main([*argv, "--labels", names]) == 0
    out = capsys.readouterr().out
    assert "zero-shot: 10 classes prompted as zero, one, two" in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["classes"] == [str(d) for d in range(10)] and metrics["samples"] == 90  # the data's names in the report
    assert main([*argv, "--labels", "zero,one"]) == 2
    assert "--labels must name the data's 10 classes" in capsys.readouterr().err
