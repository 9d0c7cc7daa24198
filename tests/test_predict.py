"""`zoo.predict` and `zoo predict`: letterbox in, boxes mapped back to the original pixels, PNGs and JSON out."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from torch import nn

import zoo
from zoo.cli import main
from zoo.errors import BadArgumentError, DataError
from zoo.predict import predict
from zoo.registry import get_spec

GREY = (90, 120, 150)


class FakeDetector(nn.Module):
    """Always one box over the central half of the input (score 0.9, class 1), a low-score box, and padding."""

    def __init__(self) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.zeros(()))
        self.seen: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(x.shape))
        b, _, h, w = x.shape
        out = torch.zeros(b, 10, 6)
        out[:, 0] = torch.tensor([w / 4, h / 4, 3 * w / 4, 3 * h / 4, 0.9, 1.0])
        out[:, 1] = torch.tensor([0.0, 0.0, 8.0, 8.0, 0.1, 0.0])  # below conf
        return out + 0 * self.p


def fake_detector(task: str = "detection") -> FakeDetector:
    model = FakeDetector()
    model.zoo_spec = dataclasses.replace(get_spec("mobilenetv3_small_100"), name="fake_det", task=task,
                                         input_size=(3, 64, 64), num_classes=2, labels=("a", "b"))
    return model


def write_image(path: Path, width: int, height: int) -> Path:
    from PIL import Image

    Image.new("RGB", (width, height), GREY).save(path)
    return path


def read_png(path: Path) -> torch.Tensor:
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        return torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)


# (width, height) -> where the input's central half lands in the original: 200x100 is padded top and
# bottom (scale 0.32, 16 px), 60x120 left and right (scale 32/60, 16 px).
CASES = {(200, 100): [50.0, 0.0, 150.0, 100.0], (60, 120): [0.0, 30.0, 60.0, 90.0]}


def test_predict_draws_and_maps_boxes_back(tmp_path):
    images = [write_image(tmp_path / f"img{w}x{h}.png", w, h) for w, h in CASES]
    model, out = fake_detector(), tmp_path / "out"
    results = predict(model, images, out, conf=0.25)
    assert model.seen == [(2, 3, 64, 64)]  # one batch, letterboxed to the spec's size
    document = json.loads((out / "predictions.json").read_text())
    assert document["images"] == results and document["model"] == "fake_det" and document["imgsz"] == 64
    for (w, h), result, image in zip(CASES, results, images):
        assert result["file"] == str(image) and (result["width"], result["height"]) == (w, h)
        [det] = result["detections"]  # the 0.1 box is below conf; padding is gone
        assert det["box"] == pytest.approx(CASES[w, h], abs=0.01)
        assert det["score"] == pytest.approx(0.9) and det["class"] == 1 and det["label"] == "b"

        drawn = read_png(Path(result["output"]))
        assert Path(result["output"]) == out / f"{image.stem}.png"
        assert drawn.shape == (3, h, w)  # the original size, not the letterboxed one
        changed = (drawn != torch.tensor(GREY)[:, None, None]).any(0)
        x1, y1, x2, y2 = (int(v) for v in CASES[w, h])
        ys, xs = changed.nonzero(as_tuple=True)
        assert len(ys) and xs.min() >= x1 - 1 and xs.max() <= x2 + 1 and ys.min() >= y1 - 1 and ys.max() <= y2 + 1
        mid_y, mid_x = (y1 + y2) // 2, (x1 + x2) // 2
        assert changed[mid_y, max(x1 - 1, 0): x1 + 2].any() and changed[mid_y, x2 - 2: x2 + 1].any()  # left, right edge
        assert changed[max(y2 - 2, 0): y2 + 1, mid_x].any()  # bottom edge
        assert not changed[mid_y, mid_x]  # inside stays as it was


def test_predict_conf_imgsz_and_no_detections(tmp_path):
    square, wide = write_image(tmp_path / "square.jpg", 40, 40), write_image(tmp_path / "wide.png", 80, 40)
    model = fake_detector()
    [result] = predict(model, [square], tmp_path / "out", conf=0.05, imgsz=32)
    assert model.seen == [(1, 3, 32, 32)] and [d["label"] for d in result["detections"]] == ["b", "a"]  # by score
    # In the wide image the low box lies in the letterbox padding: it maps to nothing and is dropped.
    [result] = predict(model, [wide], tmp_path / "out", conf=0.05)
    assert [d["label"] for d in result["detections"]] == ["b"]
    [result] = predict(model, [wide], tmp_path / "out", conf=0.95)
    assert result["detections"] == []
    assert read_png(tmp_path / "out" / "wide.png").shape == (3, 40, 80)
    assert (read_png(tmp_path / "out" / "wide.png") == torch.tensor(GREY)[:, None, None]).all()  # nothing drawn


def test_predict_never_overwrites_its_inputs(tmp_path):
    first = write_image(tmp_path / "x.png", 30, 30)
    (tmp_path / "sub").mkdir()
    second = write_image(tmp_path / "sub" / "x.png", 30, 30)
    results = predict(fake_detector(), [first, second], tmp_path, batch_size=1, progress=True)
    assert [Path(r["output"]).name for r in results] == ["x_pred.png", "x_pred2.png"]
    assert read_png(first).shape == (3, 30, 30) and (read_png(first) == torch.tensor(GREY)[:, None, None]).all()


def test_bad_images_fail_before_anything_is_written(tmp_path):
    good = write_image(tmp_path / "good.png", 20, 20)
    (tmp_path / "notes.jpg").write_text("not an image")
    out = tmp_path / "out"
    with pytest.raises(DataError, match="missing.jpg does not exist"):
        predict(fake_detector(), [good, tmp_path / "missing.jpg"], out)
    with pytest.raises(DataError, match="cannot read image .*notes.jpg"):
        predict(fake_detector(), [good, tmp_path / "notes.jpg"], out)
    assert not out.exists()


class FakeClassifier(nn.Module):
    """Logits that rank class 2 first, then 0, then 1 (probabilities 0.665, 0.245, 0.090)."""

    def __init__(self) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.zeros(()))
        self.seen: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(x.shape))
        return torch.tensor([[1.0, 0.0, 2.0]]).expand(x.shape[0], 3) + 0 * self.p


def test_predict_classifies_and_draws_the_top_classes(tmp_path):
    model = FakeClassifier()
    model.zoo_spec = dataclasses.replace(get_spec("mobilenetv3_small_100"), name="fake_cls", input_size=(3, 48, 48),
                                         num_classes=3, labels=("cat", "dog", "eel"))
    images = [write_image(tmp_path / "wide.png", 90, 30), write_image(tmp_path / "tall.png", 20, 700)]
    results = predict(model, images, tmp_path / "out", top_k=2)
    assert model.seen == [(2, 3, 48, 48)]  # both images through the evaluation transform, one batch
    assert [[(t["label"], t["probability"]) for t in r["top"]] for r in results] == [[("eel", 0.6652), ("cat", 0.2447)]] * 2
    assert read_png(tmp_path / "out" / "wide.png").shape == (3, 84, 90 + 320)  # the image beside a panel of 2 bars
    assert read_png(tmp_path / "out" / "tall.png").shape == (3, 512, 15 + 320)  # shown at most 512 px high
    document = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert document["model"] == "fake_cls" and document["images"][1]["top"][0]["class"] == 2 and "conf" not in document


def test_predict_refuses_other_tasks_and_bad_arguments(tmp_path):
    image = write_image(tmp_path / "a.png", 20, 20)
    with pytest.raises(BadArgumentError, match="is a language-modeling model"):
        predict(fake_detector(task="language-modeling"), [image], tmp_path / "out")
    with pytest.raises(BadArgumentError, match="is a language-modeling model"):
        predict("matlm_nano", [image], tmp_path / "out")  # refused before building
    with pytest.raises(BadArgumentError, match="top_k must be >= 1"):
        predict(fake_detector(), [image], tmp_path / "out", top_k=0)
    with pytest.raises(BadArgumentError, match="conf must be between 0 and 1"):
        predict(fake_detector(), [image], tmp_path / "out", conf=25)
    with pytest.raises(BadArgumentError, match="no images"):
        predict(fake_detector(), [], tmp_path / "out")


def test_cli_predict_with_a_loaded_model(tmp_path, monkeypatch, capsys):
    images = [str(write_image(tmp_path / f"img{w}x{h}.png", w, h)) for w, h in CASES]
    loaded = []
    monkeypatch.setattr(zoo, "load", lambda source, **kw: loaded.append(source) or fake_detector(), raising=False)
    assert main(["predict", "./my-run", *images, "--out", str(tmp_path / "preds"), "--conf", "0.5"]) == 0
    assert loaded == ["./my-run"]
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{images[0]} (200x100): 1 detection (b 1)"
    assert out[-1] == f"wrote 2 images and predictions.json to {tmp_path / 'preds'}"
    assert (tmp_path / "preds" / "img60x120.png").is_file()


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["predict", "yolov10n", "MISSING", "--out", "OUT"], "MISSING does not exist"),
        (["predict", "matlm_nano", "IMAGE", "--out", "OUT"], "is a language-modeling model"),
        (["predict", "mobileclip2_s0", "IMAGE", "--out", "OUT", "--labels", "cat,,dog"], "--labels needs class names"),
        (["predict", "yolov10n", "IMAGE", "--out", "OUT", "--conf", "2"], "conf must be between 0 and 1"),
        (["predict", "yolov10n", "IMAGE", "--out", "OUT", "--imgsz", "300"], "nearest valid: 288 or 320"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, needle):
    image = write_image(tmp_path / "a.png", 20, 20)
    subst = {"MISSING": str(tmp_path / "missing.jpg"), "IMAGE": str(image), "OUT": str(tmp_path / "out")}
    argv = [subst.get(a, a) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle.replace("MISSING", subst["MISSING"]) in err
    assert len(err.splitlines()) == 1 and err.startswith("zoo predict: error:")
    assert not (tmp_path / "out").exists()


def test_cli_predict_yolov10n(tmp_path, capsys):
    image = write_image(tmp_path / "street.jpg", 96, 64)
    assert main(["predict", "yolov10n", str(image), "--out", str(tmp_path / "out"), "--imgsz", "64"]) == 0
    captured = capsys.readouterr()
    assert "street.jpg (96x64):" in captured.out and "untrained" in captured.err
    document = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert document["images"][0]["width"] == 96 and read_png(tmp_path / "out" / "street.png").shape == (3, 64, 96)


def test_cli_predict_zero_shot_labels(tmp_path, capsys):
    image = write_image(tmp_path / "yard.jpg", 80, 60)
    assert main(["predict", "mobileclip2_s0", str(image), "--labels", "forklift, pallet", "--out", str(tmp_path / "out")]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    top = json.loads((tmp_path / "out" / "predictions.json").read_text())["images"][0]["top"]
    assert sorted(t["label"] for t in top) == ["forklift", "pallet"] and sum(t["probability"] for t in top) == pytest.approx(1, abs=1e-3)
    assert line.startswith(f"{image}: {top[0]['label']} ")
    assert main(["predict", "mobileclip2_s0", str(image), "--out", str(tmp_path / "out2")]) == 2  # embeddings: no classes
    assert "give it classes with --labels" in capsys.readouterr().err

