"""COCO detection metrics: known answers on hand-made boxes, edge cases, and the batch accumulator."""
from __future__ import annotations

import pytest
import torch

from zoo.errors import BadArgumentError
from zoo.metrics import DetectionMetric, coco_detection_metrics

BOXES = torch.tensor([[10.0, 10.0, 50.0, 50.0], [60.0, 20.0, 140.0, 120.0]])  # 40x40 (small-ish), 80x100


def target(boxes=BOXES, labels=(0, 1), image_id=0):
    return {"boxes": torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.long), "image_id": image_id}


def rows(boxes, scores, classes, pad=0):
    """Detector-style rows (x1, y1, x2, y2, score, class), with ``pad`` zero rows after them."""
    det = torch.cat([torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                     torch.tensor(scores, dtype=torch.float32)[:, None], torch.tensor(classes, dtype=torch.float32)[:, None]], 1)
    return torch.cat([det, torch.zeros(pad, 6)])


def test_perfect_predictions():
    m = coco_detection_metrics([rows(BOXES, [0.9, 0.8], [0, 1], pad=5)], [target()], 2, ["cat", "dog"])
    assert m["map"] == pytest.approx(1.0) and m["map50"] == pytest.approx(1.0) and m["map75"] == pytest.approx(1.0)
    assert m["mar100"] == pytest.approx(1.0)
    assert m["per_class"] == pytest.approx({"cat": 1.0, "dog": 1.0})
    assert m["images"] == 1 and m["objects"] == 2
    assert m["map_medium"] == pytest.approx(1.0) and m["map_small"] == 0.0 and m["map_large"] == 0.0  # undefined -> 0
    assert set(m) >= {"map", "map50", "map75", "map_small", "map_medium", "map_large", "mar100", "per_class", "images", "objects"}


def test_boxes_shifted_by_half_a_width_miss():
    shifted = BOXES.clone()
    half = (shifted[:, 2] - shifted[:, 0]) / 2
    shifted[:, 0] += half
    shifted[:, 2] += half  # IoU 1/3 < 0.5
    m = coco_detection_metrics([rows(shifted, [0.9, 0.8], [0, 1])], [target()], 2)
    assert m["map50"] == 0.0 and m["map"] == 0.0


def test_one_of_two_objects_missed():
    m = coco_detection_metrics([rows(BOXES[:1], [0.9], [0])], [target(labels=(0, 0))], 1)
    assert 0.4 < m["map50"] < 0.6 and m["mar100"] == pytest.approx(0.5)


def test_wrong_class_scores_zero():
    m = coco_detection_metrics([rows(BOXES, [0.9, 0.8], [1, 0])], [target()], 2)
    assert m["map"] == 0.0 and m["map50"] == 0.0 and m["per_class"] == {"0": 0.0, "1": 0.0}


def test_empty_predictions_and_empty_data():
    for empty in (torch.zeros(0, 6), torch.zeros(300, 6)):  # nothing, or padding only
        m = coco_detection_metrics([empty], [target()], 2)
        assert m["map"] == 0.0 and m["mar100"] == 0.0 and m["objects"] == 2
    m = coco_detection_metrics([], [], 3)
    assert m["map"] == 0.0 and m["images"] == 0 and m["per_class"] == {"0": 0.0, "1": 0.0, "2": 0.0}


def test_images_without_ground_truth():
    no_gt = target(boxes=torch.zeros(0, 4), labels=())
    m = coco_detection_metrics([rows(BOXES, [0.9, 0.8], [0, 1])], [no_gt], 2)
    assert m["map"] == 0.0 and m["objects"] == 0  # undefined, reported as 0
    # A false positive on an image without objects, ranked above a true positive, lowers AP.
    clean = coco_detection_metrics([rows(BOXES[:1], [0.8], [0]), torch.zeros(0, 6)], [target(labels=(0, 0)), no_gt], 1)
    noisy = coco_detection_metrics([rows(BOXES[:1], [0.8], [0]), rows(BOXES[:1], [0.9], [0])], [target(labels=(0, 0)), no_gt], 1)
    assert noisy["map50"] < clean["map50"] and clean["images"] == 2


def test_at_most_max_dets_per_image_by_score():
    # 150 low-scoring misses plus the true boxes scored lowest: the top-100 cut removes the hits.
    misses = rows(torch.tensor([[200.0, 200.0, 210.0, 210.0]]).repeat(150, 1), [0.9] * 150, [0] * 150)
    det = torch.cat([misses, rows(BOXES, [0.1, 0.1], [0, 1])])
    assert coco_detection_metrics([det], [target()], 2)["mar100"] == 0.0
    assert coco_detection_metrics([det], [target()], 2, max_dets=200)["mar200"] == pytest.approx(1.0)


def test_detection_metric_accumulates_like_one_shot():
    torch.manual_seed(0)
    dets, targets = [], []
    for i in range(4):
        gt = torch.rand(3, 2) * 200
        boxes = torch.cat([gt, gt + 20 + torch.rand(3, 2) * 60], 1)
        noisy = boxes + torch.randn(3, 4) * 6
        dets.append(torch.cat([rows(noisy, torch.rand(3).tolist(), [i % 2, 1, 0]), torch.zeros(2, 6)]))
        targets.append(target(boxes, labels=(i % 2, 1, 0), image_id=i % 2))  # ids repeat per batch: harmless
    one_shot = coco_detection_metrics(dets, targets, 2)
    metric = DetectionMetric(2)
    metric.update(torch.stack(dets[:2]), targets[:2])  # [B, K, 6], as a detector returns
    metric.update(torch.stack(dets[2:]), targets[2:])
    assert len(metric) == 4
    accumulated = metric.compute()
    assert accumulated.pop("per_class") == pytest.approx(one_shot.pop("per_class"))
    assert accumulated == pytest.approx(one_shot)
    assert 0 < one_shot["map"] < 1
    metric.reset()
    assert len(metric) == 0 and metric.compute()["images"] == 0


def test_bad_input_is_a_clear_error():
    with pytest.raises(BadArgumentError, match="predictions for 1 images but targets for 2"):
        coco_detection_metrics([torch.zeros(0, 6)], [target(), target()], 2)
    with pytest.raises(BadArgumentError, match="label 5 outside 0..1"):
        coco_detection_metrics([torch.zeros(0, 6)], [target(labels=(0, 5))], 2)
    with pytest.raises(BadArgumentError, match="3 class_names for 2 classes"):
        coco_detection_metrics([torch.zeros(0, 6)], [target()], 2, ["a", "b", "c"])


def test_detections_on_crowd_regions_are_neither_matched_nor_penalised():
    crowd = dict(target(), crowd_boxes=torch.tensor([[150.0, 150.0, 250.0, 250.0]]), crowd_labels=torch.tensor([0]))
    on_crowd = rows([*BOXES.tolist(), [160.0, 160.0, 240.0, 240.0]], [0.9, 0.8, 0.95], [0, 1, 0])
    with_crowd = coco_detection_metrics([on_crowd], [crowd], 2)
    without = coco_detection_metrics([on_crowd], [target()], 2)
    assert with_crowd["map"] == pytest.approx(1.0) and with_crowd["objects"] == 2
    assert without["map"] < 1.0  # the same detection is a false positive where no crowd is annotated
    metric = DetectionMetric(2)
    metric.update(on_crowd[None], [crowd])
    assert metric.compute()["map"] == pytest.approx(1.0)


DDP_SCRIPT = '''
import os, sys, json, torch, torch.distributed as dist
from zoo.metrics import DetectionMetric, coco_detection_metrics

def data():
    g = torch.Generator().manual_seed(0)
    preds, targets = [], []
    for i in range(7):
        boxes = torch.rand(3, 2, generator=g) * 100
        boxes = torch.cat([boxes, boxes + 20 + torch.rand(3, 2, generator=g) * 40], 1)
        noisy = boxes + torch.randn(3, 4, generator=g) * 3
        preds.append(torch.cat([noisy, torch.rand(3, 1, generator=g), torch.tensor([[0.], [1.], [0.]])], 1))
        targets.append({"boxes": boxes, "labels": torch.tensor([0, 1, 1]), "image_id": i})
    return preds, targets

def main(rank):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[1])
    dist.init_process_group("gloo", rank=rank, world_size=2)
    preds, targets = data()
    order = list(range(7)) + [0]  # a distributed sampler pads 7 images to 8: image 0 twice
    mine = order[rank::2]
    metric = DetectionMetric(2)
    for i in mine:
        metric.update([preds[i]], [targets[i]])
    result = metric.compute()
    if rank == 0:
        whole = coco_detection_metrics(preds, targets, 2)
        print(json.dumps({"ddp": [result["map"], result["map50"], result["images"]], "one": [whole["map"], whole["map50"], whole["images"]]}))
    dist.destroy_process_group()

if __name__ == "__main__":
    torch.multiprocessing.spawn(main, nprocs=2)
'''


def test_under_ddp_every_rank_scores_all_images_once(tmp_path):
    """Two gloo processes, each with its shard of a padded distributed split (one image on both ranks): compute()
    gathers both shards, counts the repeated image once, and gives the one-process numbers."""
    import json
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "ddp_metric.py").write_text(DDP_SCRIPT)
    out = subprocess.run([sys.executable, str(tmp_path / "ddp_metric.py"), str(port)], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["ddp"][2] == got["one"][2] == 7 and got["one"][1] > 0.3
    assert got["ddp"] == pytest.approx(got["one"], abs=1e-7)
