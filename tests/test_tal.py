"""Task-aligned assigner, DFL/CIoU detection loss and YOLOv10 dual-assignment loss (zoo.models._tal)."""
from __future__ import annotations

import math

import pytest
import torch

from zoo.models._tal import (
    DetectionLoss,
    DualAssignmentLoss,
    TaskAlignedAssigner,
    decode_distribution,
    distances_to_boxes,
    make_anchors,
)

NC = 3
REG = 16
STRIDES = (8, 16, 32)
SIZES = [(8, 8), (4, 4), (2, 2)]  # a 64x64 input
A = 64 + 16 + 4


def anchors():
    return make_anchors(SIZES, STRIDES, device="cpu", dtype=torch.float32)


def tiny_boxes(points: torch.Tensor, half: float = 1.0) -> torch.Tensor:
    """A 2x2 px box around every anchor: overlaps almost nothing."""
    return torch.cat((points - half, points + half), dim=-1)


def feats_from(pred: torch.Tensor) -> list[torch.Tensor]:
    """``[B, C, A]`` -> per-level ``[B, C, H, W]`` maps (inverse of flatten + concat)."""
    out, start = [], 0
    for h, w in SIZES:
        out.append(pred[:, :, start : start + h * w].reshape(pred.shape[0], pred.shape[1], h, w))
        start += h * w
    return out


def random_feats(b: int, seed: int = 0, requires_grad: bool = False) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(b, 4 * REG + NC, h, w, generator=g).requires_grad_(requires_grad) for h, w in SIZES
    ]


def two_hot_logits(dist: torch.Tensor) -> torch.Tensor:
    """``[A, 4]`` distances in stride units -> ``[4 * REG, A]`` logits whose expectation is ``dist``."""
    t = dist.clamp(0, REG - 1 - 0.01)
    left = t.floor().long()
    wl, wr = (left + 1).float() - t, t - left.float()
    probs = torch.zeros(dist.shape[0], 4, REG)
    probs.scatter_(-1, left[..., None], wl[..., None])
    probs.scatter_add_(-1, (left + 1)[..., None], wr[..., None])
    return probs.clamp(min=1e-12).log().reshape(dist.shape[0], 4 * REG).T


# --------------------------------------------------------------------------- anchors / decoding


def test_make_anchors_64x64():
    points, stride = anchors()
    assert points.shape == (A, 2) and stride.shape == (A, 1)
    assert points.dtype == torch.float32
    assert points[0].tolist() == [4.0, 4.0]
    assert points[1].tolist() == [12.0, 4.0]  # next column: x moves
    assert points[8].tolist() == [4.0, 12.0]  # next row: y moves
    assert points[63].tolist() == [60.0, 60.0]
    assert points[64].tolist() == [8.0, 8.0] and stride[64].item() == 16
    assert points[80].tolist() == [16.0, 16.0] and stride[80].item() == 32
    assert points[-1].tolist() == [48.0, 48.0]
    assert stride[:64].eq(8).all() and stride[64:80].eq(16).all() and stride[80:].eq(32).all()


def test_decode_distribution_one_hot_gives_bin():
    b, a = 2, 5
    idx = torch.randint(0, REG, (b, 4, a))
    logits = torch.nn.functional.one_hot(idx, REG).permute(0, 1, 3, 2).float() * 60.0  # [B,4,R,A]
    want = idx.transpose(1, 2).float()  # [B,A,4]
    d4 = decode_distribution(logits)
    d3 = decode_distribution(logits.reshape(b, 4 * REG, a))
    assert d4.shape == (b, a, 4)
    torch.testing.assert_close(d4, want, atol=1e-4, rtol=0)
    torch.testing.assert_close(d3, want, atol=1e-4, rtol=0)
    # uniform distribution -> mean bin
    flat = decode_distribution(torch.zeros(1, 4 * REG, 3))
    torch.testing.assert_close(flat, torch.full((1, 3, 4), (REG - 1) / 2))


def test_distances_to_boxes():
    points, stride = anchors()
    d = torch.ones(1, A, 4)
    boxes = distances_to_boxes(d, points, stride)
    assert boxes[0, 0].tolist() == [-4.0, -4.0, 12.0, 12.0]
    assert boxes[0, 80].tolist() == [-16.0, -16.0, 48.0, 48.0]


# --------------------------------------------------------------------------- assigner


def assign(assigner, scores, boxes, gt_labels, gt_boxes, gt_mask=None):
    points, _ = anchors()
    if gt_mask is None:
        gt_mask = torch.ones(gt_labels.shape, dtype=torch.bool)
    return assigner(scores, boxes, points, gt_labels, gt_boxes, gt_mask)


def test_assigner_picks_anchor_with_matching_prediction():
    points, _ = anchors()
    gt = torch.tensor([[[8.0, 8.0, 40.0, 40.0]]])
    x = 2 * 8 + 2  # P3 anchor at (20, 20)
    pred = tiny_boxes(points)[None].clone()
    pred[0, x] = gt[0, 0]
    scores = torch.full((1, A, NC), 0.5)
    labels, tboxes, tscores, fg = assign(TaskAlignedAssigner(10, NC), scores, pred, torch.tensor([[1]]), gt)
    assert fg[0, x]
    assert labels[0, x] == 1
    assert tboxes[0, x].tolist() == gt[0, 0].tolist()
    # the best-aligned anchor gets the gt's best IoU (here 1) as its class-1 target, nothing else
    assert tscores[0, x, 1].item() == pytest.approx(1.0, abs=1e-5)
    assert tscores[0, x, [0, 2]].abs().sum() == 0
    assert 1 <= fg.sum() <= 10
    assert (labels[~fg] == NC).all() and tscores[~fg].abs().sum() == 0


def test_assigner_topk1_one_anchor_per_gt():
    points, _ = anchors()
    g = torch.Generator().manual_seed(1)
    gt = torch.tensor([[[2.0, 2.0, 30.0, 30.0], [34.0, 34.0, 62.0, 62.0]],
                       [[10.0, 20.0, 50.0, 60.0], [0.0, 0.0, 0.0, 0.0]]])
    mask = torch.tensor([[True, True], [True, False]])
    gt_labels = torch.tensor([[0, 2], [1, 0]])
    pred = tiny_boxes(points, 6.0)[None].repeat(2, 1, 1) + torch.rand(2, A, 4, generator=g)
    scores = torch.rand(2, A, NC, generator=g)
    labels, tboxes, _, fg = assign(TaskAlignedAssigner(1, NC), scores, pred, gt_labels, gt, mask)
    assert fg.sum(1).tolist() == [2, 1]
    assert sorted(labels[0][fg[0]].tolist()) == [0, 2]
    assert labels[1][fg[1]].tolist() == [1]


def test_assigner_never_assigns_anchors_outside_boxes():
    points, _ = anchors()
    g = torch.Generator().manual_seed(2)
    b, m = 3, 4
    xy = torch.rand(b, m, 2, generator=g) * 40
    wh = torch.rand(b, m, 2, generator=g) * 30 + 2
    gt = torch.cat((xy, xy + wh), -1)
    gt_labels = torch.randint(0, NC, (b, m), generator=g)
    pred = tiny_boxes(points, 10.0)[None].repeat(b, 1, 1)
    scores = torch.rand(b, A, NC, generator=g)
    for k in (1, 10, 200):  # 200 > A: more than the number of candidates
        _, tboxes, _, fg = assign(TaskAlignedAssigner(k, NC), scores, pred, gt_labels, gt)
        p = points[None].expand(b, A, 2)
        inside = (p > tboxes[..., :2]).all(-1) & (p < tboxes[..., 2:]).all(-1)
        assert (inside | ~fg).all()
        # and every fg anchor is inside *some* gt of its image
        any_inside = ((p[:, None] > gt[:, :, None, :2]) & (p[:, None] < gt[:, :, None, 2:])).all(-1).any(1)
        assert (any_inside | ~fg).all()
    # a box containing a single anchor centre (20, 20): only that anchor, even with topk 10
    small = torch.tensor([[[18.0, 18.0, 22.0, 22.0]]])
    _, _, _, fg = assign(TaskAlignedAssigner(10, NC), scores[:1], pred[:1], torch.tensor([[0]]), small)
    assert fg.nonzero()[:, 1].tolist() == [2 * 8 + 2]


@pytest.mark.parametrize("better", [0, 1])
def test_assigner_conflict_goes_to_higher_iou_gt(better):
    points, _ = anchors()
    gts = torch.tensor([[[4.0, 4.0, 36.0, 36.0], [12.0, 12.0, 44.0, 44.0]]])  # both contain (20, 20)
    x = 2 * 8 + 2
    pred = tiny_boxes(points)[None].clone()
    pred[0, x] = gts[0, better] + torch.tensor([1.0, 1.0, -1.0, -1.0])  # hugs one gt, overlaps the other
    scores = torch.full((1, A, NC), 0.5)
    gt_labels = torch.tensor([[0, 1]])
    labels, tboxes, _, fg = assign(TaskAlignedAssigner(1, NC), scores, pred, gt_labels, gts)
    # with top-1 both gts want anchor x; it goes to the gt it overlaps more
    assert fg[0, x]
    assert labels[0, x].item() == better
    assert tboxes[0, x].tolist() == gts[0, better].tolist()
    assert fg.sum() == 1  # the loser has no other positive with top-1


def test_assigner_empty():
    points, _ = anchors()
    scores = torch.rand(2, A, NC)
    pred = tiny_boxes(points)[None].repeat(2, 1, 1)
    out = TaskAlignedAssigner(10, NC)(
        scores, pred, points, torch.zeros(2, 0, dtype=torch.long), torch.zeros(2, 0, 4),
        torch.zeros(2, 0, dtype=torch.bool),
    )
    labels, tboxes, tscores, fg = out
    assert labels.shape == (2, A) and tboxes.shape == (2, A, 4) and tscores.shape == (2, A, NC)
    assert not fg.any() and tscores.sum() == 0 and (labels == NC).all()
    # all gts padding -> same
    _, _, tscores, fg = TaskAlignedAssigner(10, NC)(
        scores, pred, points, torch.zeros(2, 3, dtype=torch.long), torch.rand(2, 3, 4) * 60,
        torch.zeros(2, 3, dtype=torch.bool),
    )
    assert not fg.any() and tscores.sum() == 0


def test_assigner_chunked_matches_batched():
    points, _ = anchors()
    g = torch.Generator().manual_seed(3)
    b, m = 4, 3
    xy = torch.rand(b, m, 2, generator=g) * 30
    gt = torch.cat((xy, xy + 10 + torch.rand(b, m, 2, generator=g) * 20), -1)
    gt_labels = torch.randint(0, NC, (b, m), generator=g)
    mask = torch.rand(b, m, generator=g) > 0.3
    pred = tiny_boxes(points, 8.0)[None].repeat(b, 1, 1) + torch.rand(b, A, 4, generator=g) * 4
    scores = torch.rand(b, A, NC, generator=g)
    full = TaskAlignedAssigner(10, NC)(scores, pred, points, gt_labels, gt, mask)
    chunked = TaskAlignedAssigner(10, NC, max_elements=m * A)(scores, pred, points, gt_labels, gt, mask)
    for u, v in zip(full, chunked):
        torch.testing.assert_close(u, v)


# --------------------------------------------------------------------------- loss

TARGET = {"boxes": torch.tensor([[10.0, 12.0, 40.0, 44.0]]), "labels": torch.tensor([2])}


def perfect_pred(crit: DetectionLoss, target: dict) -> torch.Tensor:
    """``[1, C, A]`` head outputs: every anchor decodes the target box, confident class at the positives."""
    points, stride = anchors()
    box = target["boxes"][0]
    dist = torch.cat((points - box[:2], box[2:] - points), -1) / stride
    pred = torch.zeros(1, 4 * REG + NC, A)
    pred[0, : 4 * REG] = two_hot_logits(dist)
    pred[0, 4 * REG :] = -12.0
    boxes = distances_to_boxes(decode_distribution(pred[:, : 4 * REG]), points, stride)
    _, _, _, fg = crit.assigner(
        torch.full((1, A, NC), 0.5), boxes, points, target["labels"][None], target["boxes"][None],
        torch.ones(1, 1, dtype=torch.bool),
    )
    assert fg.any()
    pred[0, 4 * REG + int(target["labels"][0]), fg[0]] = 12.0
    return pred


def test_perfect_prediction_beats_random():
    crit = DetectionLoss(NC)
    perfect = perfect_pred(crit, TARGET)
    lp, ip = crit(feats_from(perfect), [TARGET])
    lr, ir = crit(random_feats(1), [TARGET])
    assert torch.isfinite(lp) and torch.isfinite(lr)
    assert lp < 0.25 * lr
    assert ip["box"] < 1e-3  # decoded boxes equal the target
    assert ip["cls"] < ir["cls"] and ip["dfl"] < ir["dfl"] and ip["box"] < ir["box"]
    assert set(ip) == {"box", "cls", "dfl"}
    assert all(not v.requires_grad for v in ip.values())
    # total = gained components * batch size
    torch.testing.assert_close(lp.detach(), sum(ip.values()) * 1)


def test_gradients_flow_and_are_finite():
    crit = DetectionLoss(NC)
    feats = random_feats(2, seed=5, requires_grad=True)
    targets = [TARGET, {"boxes": torch.tensor([[30.0, 2.0, 62.0, 20.0], [0.0, 30.0, 20.0, 60.0]]),
                        "labels": torch.tensor([0, 1])}]
    loss, items = crit(feats, targets)
    loss.backward()
    for f in feats:
        assert torch.isfinite(f.grad).all()
    grads = torch.cat([f.grad.flatten(2) for f in feats], 2)
    assert grads[:, : 4 * REG].abs().sum() > 0  # box distribution
    assert grads[:, 4 * REG :].abs().sum() > 0  # classes
    assert all(math.isfinite(float(v)) for v in items.values())
    torch.testing.assert_close(loss.detach(), sum(items.values()) * 2)


def test_empty_targets():
    crit = DetectionLoss(NC)
    feats = random_feats(2, seed=6, requires_grad=True)
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
    loss, items = crit(feats, [empty, empty])
    assert torch.isfinite(loss) and loss > 0
    assert items["box"] == 0 and items["dfl"] == 0 and items["cls"] > 0
    loss.backward()
    assert all(torch.isfinite(f.grad).all() for f in feats)
    # a mixed batch, and a degenerate (zero-width) box that can never have candidates
    degenerate = {"boxes": torch.tensor([[20.0, 10.0, 20.0, 40.0]]), "labels": torch.tensor([1])}
    loss, items = crit(random_feats(3, seed=7), [empty, TARGET, degenerate])
    assert torch.isfinite(loss) and items["box"] > 0


def test_optimisation_sanity():
    torch.manual_seed(0)
    crit = DetectionLoss(NC)
    param = torch.nn.Parameter(torch.randn(1, 4 * REG + NC, A) * 0.01)
    opt = torch.optim.Adam([param], lr=0.1)
    losses, items = [], []
    for _ in range(50):
        loss, it = crit(feats_from(param), [TARGET])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        items.append(it)
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.5 * losses[0], losses
    for k in ("box", "cls", "dfl"):  # every term improves, not only the (large) classification one
        assert items[-1][k] < 0.5 * items[0][k], (k, items[0][k], items[-1][k])


def test_autocast_bf16_inputs_give_float32_loss():
    crit = DetectionLoss(NC)
    feats = [f.bfloat16() for f in random_feats(1, seed=8)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, items = crit(feats, [TARGET])
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_dual_assignment_loss():
    crit = DualAssignmentLoss(NC)
    outputs = {"one2many": random_feats(2, seed=9, requires_grad=True),
               "one2one": random_feats(2, seed=10, requires_grad=True)}
    targets = [TARGET, {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
    loss, items = crit(outputs, targets)
    assert set(items) == {"box_o2m", "cls_o2m", "dfl_o2m", "box_o2o", "cls_o2o", "dfl_o2o"}
    assert torch.isfinite(loss) and loss.dim() == 0
    torch.testing.assert_close(loss.detach(), sum(items.values()) * 2)
    loss.backward()
    assert all(torch.isfinite(f.grad).all() for f in outputs["one2one"] + outputs["one2many"])
    # top-1 vs top-10: the one-to-one branch has at most one positive per gt
    assert crit.one2one.assigner.topk == 1 and crit.one2many.assigner.topk == 10
    assert crit.one2one.assigner.alpha == crit.one2many.assigner.alpha == 0.5
    assert crit.one2one.assigner.beta == crit.one2many.assigner.beta == 6.0


def test_assigner_overlap_is_torchvision_ciou_clamped():
    from torchvision.ops import complete_box_iou_loss

    from zoo.models._tal import _pairwise_ciou

    g = torch.Generator().manual_seed(0)
    xy = torch.rand(1, 5, 2, generator=g) * 50
    gt = torch.cat((xy, xy + 5 + torch.rand(1, 5, 2, generator=g) * 40), -1)
    xy = torch.rand(1, 7, 2, generator=g) * 50
    pred = torch.cat((xy, xy + 5 + torch.rand(1, 7, 2, generator=g) * 40), -1)
    ours = _pairwise_ciou(gt, pred)[0]
    g2, p2 = gt[0][:, None].expand(5, 7, 4).reshape(-1, 4), pred[0][None].expand(5, 7, 4).reshape(-1, 4)
    reference = (1 - complete_box_iou_loss(g2, p2, reduction="none")).clamp(min=0).reshape(5, 7)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-4)
