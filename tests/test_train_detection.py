"""Detection training end to end: a tiny yolov10n_shapes run, its run dir, reload, eval, export, errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import zoo
from zoo.cli import main as cli
from zoo.train import compose, record_result, run

from conftest import DETECTION_TINY as TINY

TINY_DATA = ["data=shapes_det", "data.val_images=8", "data.image_size=64", "data.img_size=64"]


@pytest.fixture
def run_dir(detection_run) -> Path:
    return detection_run


def test_run_dir_has_detection_report_and_reloads(run_dir):
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert {"map", "map50", "map75", "per_class", "images", "objects"} <= set(metrics)
    assert metrics["images"] == 8 and metrics["objects"] > 8
    assert set(metrics["per_class"]) == {"circle", "square", "triangle", "cross"}
    for png in ("per_class_ap.png", "predictions.png"):
        assert (run_dir / "eval" / png).read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["val_map50"] == metrics["map50"]

    model = zoo.load(str(run_dir)).eval()
    spec = model.zoo_spec
    assert spec.name == "yolov10n" and spec.num_classes == 4 and spec.labels == ("circle", "square", "triangle", "cross")
    assert spec.input_size == (3, 64, 64) and spec.std == (1.0, 1.0, 1.0)
    from_ckpt = zoo.load(str(run_dir / "checkpoints" / "last.ckpt")).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(from_ckpt(x), model(x))


def test_zoo_eval_and_export_of_a_detection_run(run_dir, tmp_path, capsys):
    assert cli(["eval", str(run_dir), *TINY_DATA, "--out", str(tmp_path / "ev")]) == 0
    out = capsys.readouterr().out
    assert "mAP@[.5:.95]" in out and "mAP@.5" in out and "8 images" in out
    again = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert again["map50"] == json.loads((run_dir / "eval" / "metrics.json").read_text())["map50"]
    assert cli(["eval", str(run_dir), "data=digits"]) == 2
    assert "evaluate it on detection data" in capsys.readouterr().err

    result = zoo.export(str(run_dir), "onnx", out=tmp_path / "det.onnx")
    assert result.verification["real"]["ok"] and result.outputs[0]["shape"][1:] == [300, 6]


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["train", "recipe=quickstart", "model.name=yolov10n"], "yolov10n is a detection model but recipe 'quickstart' trains classification"),
        (["train", "recipe=yolov10n_shapes", "model.name=mobileone_s0"], "use a classification recipe"),
        (["train", "recipe=yolov10n_shapes", "data.img_size=100"], "multiple of 32"),
    ],
)
def test_mismatched_recipes_get_one_clear_line(capsys, argv, needle):
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert needle in err[-1] and err[-1].startswith("zoo train: error:")


def test_record_result_of_a_detection_run(tmp_path, monkeypatch):
    import zoo.config

    original = (zoo.config.recipes_dir() / "yolov10n_shapes.yaml").read_text()
    (tmp_path / "yolov10n_shapes.yaml").write_text(original)
    monkeypatch.setattr(zoo.config, "recipes_dir", lambda: tmp_path)
    summary = {"task": "detection", "val_map": 0.5123, "val_map50": 0.8123, "epochs": 8, "wall_time_s": 700.0,
               "machine": {"cpu": "Test CPU", "threads": 2, "gpu": None, "torch": "x", "lightning": "y", "date": "2026-01-01"}}
    record_result("yolov10n_shapes", summary, "zoo train recipe=yolov10n_shapes record_result=true")
    text = (tmp_path / "yolov10n_shapes.yaml").read_text()
    assert "# val/map50: 0.8123  val/map: 0.5123" in text and "wall time: 700 s" in text


def test_detection_kd_is_zero_for_the_teachers_own_outputs_and_trains_the_student():
    from zoo.plugins.distill import detection_kd

    torch.manual_seed(0)
    teacher = zoo.load("yolov10n", num_classes=4).eval()
    student = zoo.load("yolov10n", num_classes=4).train()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        target = teacher.head_outputs(x)
    cls_kd, box_kd = detection_kd(target, target, 2.0, teacher.head.reg_max)
    assert abs(cls_kd.item()) < 1e-5 and abs(box_kd.item()) < 1e-5
    cls_kd, box_kd = detection_kd(student(x), target, 2.0, teacher.head.reg_max)
    assert cls_kd.item() > 1e-4 and box_kd.item() > 1e-4
    (cls_kd + box_kd).backward()
    assert student.head.cls_o2m[0][-1].weight.grad.abs().sum() > 0


def test_detector_distills_from_a_larger_yolov10(tmp_path):
    import csv

    teacher = zoo.save(zoo.load("yolov10s", num_classes=4), tmp_path / "teacher")  # any scale: same anchor grid
    cfg = compose("yolov10n_shapes", [f"out_dir={tmp_path}", *TINY, "trainer.limit_train_batches=2", "plugins=[distill]",
                                      f"plugins.distill.teacher={teacher}", "plugins.distill.pretrained=false"])
    run(cfg, tmp_path / "student")
    rows = list(csv.DictReader(open(tmp_path / "student" / "logs" / "metrics.csv")))
    assert [float(r["train/distill_cls_kd"]) for r in rows if r.get("train/distill_cls_kd")]
    assert cli(["train", "recipe=yolov10n_shapes", "plugins=[distill]", "plugins.distill.teacher=mobilenetv3_small_100",
                "plugins.distill.features=[a:b]"]) == 2  # refused before any training
