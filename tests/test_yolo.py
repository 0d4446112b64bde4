"""YOLO target encoding, loss and decoding: round trip, hand cases and a tiny training run."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from convscope.errors import ConvscopeError
from convscope.metrics import box_iou_paired, mean_average_precision, nms
from convscope.yolo import decode, encode_targets, yolo_loss, yolo_loss_parts

CONFIDENT = 20.0


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny ops run fastest on one thread, and far faster than two on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def perfect_output(targets: dict[str, torch.Tensor], num_classes: int) -> torch.Tensor:
    """The logits (N, 5 + C, S, S) that decode to exactly the encoded targets."""
    obj = targets["objectness"]
    pos = obj > 0.5
    n, s, _ = obj.shape
    out = torch.zeros(n, 5 + num_classes, s, s, dtype=torch.float64)
    out[:, 0] = torch.where(pos, CONFIDENT, -CONFIDENT)
    out[:, 1:3] = torch.logit(targets["offset"].double().clamp(1e-6, 1 - 1e-6))
    out[:, 3:5] = targets["size"].double()
    classes = targets["region"].clamp_min(0)  # the class wherever the class loss looks
    out[:, 5:] = CONFIDENT * nn.functional.one_hot(classes, num_classes).permute(0, 3, 1, 2)
    return out.float()


def scene_targets():
    """Two 64 px scenes (grid 8, cell 8 px), padded to 4 boxes with class -1."""
    boxes = torch.tensor([
        [[3.0, 5.0, 14.0, 20.0], [30.5, 8.25, 12.0, 10.0], [40.0, 44.0, 24.0, 20.0],
         [0.0, 0.0, 0.0, 0.0]],
        [[0.0, 0.0, 64.0, 64.0], [50.0, 2.0, 9.0, 13.0], [0.0, 0.0, 0.0, 0.0],
         [0.0, 0.0, 0.0, 0.0]],
    ])
    classes = torch.tensor([[3, 0, 9, -1], [1, 7, -1, -1]])
    return boxes, classes


def test_encode_known_box():
    boxes = torch.tensor([[[3.0, 5.0, 14.0, 20.0]]])  # centre (10, 15): cell row 1, col 1
    t = encode_targets(boxes, torch.tensor([[4]]), grid=8, image_size=64, num_classes=10)
    assert t["objectness"].shape == (1, 8, 8) and t["objectness"].sum() == 1
    assert t["objectness"][0, 1, 1] == 1
    assert t["offset"][0, :, 1, 1].tolist() == pytest.approx([0.25, 0.875])
    assert t["size"][0, :, 1, 1].tolist() == pytest.approx([math.log(14 / 64), math.log(20 / 64)])
    assert t["classes"][0, 1, 1] == 4 and (t["classes"] == -1).sum() == 63
    assert t["offset"].shape == t["size"].shape == (1, 2, 8, 8)


def test_encode_collisions_edges_and_errors():
    # two boxes centred in cell (0, 0): the larger one wins whatever the order
    small, large = [1.0, 1.0, 4.0, 4.0], [0.0, 0.0, 6.0, 6.0]
    for pair, cls in (([small, large], [1, 2]), ([large, small], [2, 1])):
        t = encode_targets(torch.tensor([pair]), torch.tensor([cls]), 8, 64, 10)
        assert t["classes"][0, 0, 0] == 2 and t["objectness"].sum() == 1
    # a whole-image box has its centre on a cell corner: the cell right/below of it
    t = encode_targets(torch.tensor([[[0.0, 0.0, 64.0, 64.0]]]), torch.tensor([[0]]), 8, 64, 10)
    assert t["objectness"][0, 4, 4] == 1 and t["offset"][0, :, 4, 4].tolist() == [0.0, 0.0]
    # a centre on the far edge belongs to the last cell
    t = encode_targets(torch.tensor([[[60.0, 60.0, 8.0, 8.0]]]), torch.tensor([[0]]), 8, 64, 10)
    assert t["objectness"][0, 7, 7] == 1 and t["offset"][0, :, 7, 7].tolist() == [1.0, 1.0]
    with pytest.raises(ConvscopeError, match="positive width"):
        encode_targets(torch.tensor([[[1.0, 1.0, 0.0, 4.0]]]), torch.tensor([[0]]), 8, 64, 10)
    with pytest.raises(ConvscopeError, match="outside"):
        encode_targets(torch.tensor([[[70.0, 1.0, 4.0, 4.0]]]), torch.tensor([[0]]), 8, 64, 10)
    with pytest.raises(ConvscopeError, match=r"\[0, 10\)"):
        encode_targets(torch.tensor([[[1.0, 1.0, 4.0, 4.0]]]), torch.tensor([[10]]), 8, 64, 10)
    with pytest.raises(ConvscopeError, match=r"\(N, B, 4\)"):
        encode_targets(torch.zeros(2, 4), torch.zeros(2, dtype=torch.int64), 8, 64, 10)


def test_encode_class_region():
    # 64 px, grid 8: cell centres at 4, 12, ..., 60. Box 1 (centre 32, 32) claims cells whose
    # centres lie within 8 px of its centre; box 2 (centre 40, 28) within 6 px across, 6 down.
    boxes = torch.tensor([[[16.0, 16.0, 32.0, 32.0], [28.0, 16.0, 24.0, 24.0]]])
    for second, shared in ((5, -1), (3, 3)):
        t = encode_targets(boxes, torch.tensor([[3, second]]), grid=8, image_size=64,
                           num_classes=10)
        want = torch.full((8, 8), -1)
        want[3:5, 3:5] = 3
        want[3, 4] = shared  # claimed by both boxes: kept only when their classes agree
        want[3, 5] = second  # box 2's responsible cell
        assert torch.equal(t["region"][0], want)
        assert t["classes"][0, 4, 4] == 3 and t["classes"][0, 3, 5] == second
    # the class term looks at every region cell and nowhere else
    out = perfect_output(t, 10)
    assert yolo_loss_parts(out, t)["class"].item() < 1e-5
    out[0, 5:, 0, 0] = out[0, 5:, 0, 0].flip(0)
    assert yolo_loss_parts(out, t)["class"].item() < 1e-5
    out[0, 5:, 3, 3] = out[0, 5:, 3, 3].flip(0)
    assert yolo_loss_parts(out, t)["class"].item() > 1
    # region 0 keeps just the responsible cells
    t = encode_targets(boxes, torch.tensor([[3, 5]]), 8, 64, 10, region=0.0)
    assert torch.equal(t["region"], t["classes"])


def test_encode_decode_round_trip_is_exact():
    boxes, classes = scene_targets()
    targets = encode_targets(boxes, classes, grid=8, image_size=64, num_classes=10)
    detections = decode(perfect_output(targets, 10), image_size=64)
    for (got_boxes, scores, got_classes), want_boxes, want_classes in zip(
        detections, boxes, classes, strict=True
    ):
        valid = want_classes >= 0
        order = torch.argsort(got_classes)
        want_order = torch.argsort(want_classes[valid])
        assert got_classes[order].tolist() == want_classes[valid][want_order].tolist()
        assert torch.allclose(got_boxes[order], want_boxes[valid][want_order], rtol=0, atol=1e-4)
        assert bool((scores > 0.99).all())


def test_decode_threshold_clipping_nms_and_limit():
    out = torch.full((1, 7, 2, 2), -10.0)  # 2 classes, 2x2 grid on a 20 px image (cell 10)
    out[0, 0] = torch.tensor([[5.0, 5.0], [0.0, -10.0]])  # cells (0,0), (0,1) confident
    out[0, 1:3] = 0.0  # centres at the cell middles: (5, 5), (15, 5), (5, 15)
    out[0, 3:5] = math.log(1.0)  # 20 x 20 boxes: they overlap a lot and stick out
    out[0, 5, 0, 0] = out[0, 5, 0, 1] = 10.0  # both class 0 ...
    out[0, 6, 1, 0] = 10.0  # ... and cell (1, 0) class 1 with score 0.5
    boxes, scores, classes = decode(out, image_size=20, conf_threshold=0.1)[0]
    # cell (0, 1)'s clipped box [5,0,20,15] has IoU 150/300 = 0.5 with (0, 0)'s [0,0,15,15]:
    # not above 0.5, so both class-0 boxes survive; the class-1 box has its own class.
    assert classes.tolist() == [0, 0, 1]
    assert torch.allclose(boxes, torch.tensor([[0.0, 0, 15, 15], [5, 0, 15, 15], [0, 5, 15, 15]]))
    assert scores[2].item() == pytest.approx(0.5, abs=1e-3)
    assert decode(out, 20, conf_threshold=0.1, iou_threshold=0.4)[0][2].tolist() == [0, 1]
    assert decode(out, 20, conf_threshold=0.6)[0][2].tolist() == [0, 0]
    assert len(decode(out, 20, conf_threshold=0.1, max_detections=1)[0][0]) == 1
    # huge tw, th do not overflow: the box is the whole image
    out[0, 3:5] = 1e4
    assert decode(out, 20, conf_threshold=0.6)[0][0][0].tolist() == [0.0, 0.0, 20.0, 20.0]
    with pytest.raises(ConvscopeError, match=r"\(N, 5 \+ C, S, S\)"):
        decode(torch.zeros(1, 5, 2, 2), 20)


def reference_decode(output: torch.Tensor, image_size: int, conf: float, iou: float,
                     candidates: int):
    """decode's rule written plainly, one image and one (cell, class) pair at a time."""
    n, channels, s, _ = output.shape
    cell = image_size / s
    results = []
    for i in range(n):
        rows = []
        for r in range(s):
            for c in range(s):
                v = output[i, :, r, c]
                cx, cy = (c + v[1].sigmoid()) * cell, (r + v[2].sigmoid()) * cell
                w, h = v[3:5].clamp(max=1.0).exp() * image_size
                x0, y0 = (cx - w / 2).clamp(0, image_size), (cy - h / 2).clamp(0, image_size)
                x1, y1 = (cx + w / 2).clamp(0, image_size), (cy + h / 2).clamp(0, image_size)
                probs = v[5:].softmax(0) * v[0].sigmoid()
                for k in range(channels - 5):
                    rows.append((float(probs[k]), k * s * s + r * s + c, k,
                                 [x0, y0, x1 - x0, y1 - y0]))
        rows.sort(key=lambda row: (-row[0], row[1]))
        rows = [row for row in rows[:candidates] if row[0] >= conf]
        boxes = torch.tensor([row[3] for row in rows]).reshape(-1, 4)
        scores = torch.tensor([row[0] for row in rows])
        classes = torch.tensor([row[2] for row in rows], dtype=torch.int64)
        keep = nms(boxes, scores, iou, classes)
        results.append((boxes[keep], scores[keep], classes[keep]))
    return results


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_decode_matches_plain_per_image_nms(seed):
    g = torch.Generator().manual_seed(seed)
    out = torch.randn(3, 5 + 3, 4, 4, generator=g) * 2
    got = decode(out, image_size=32, conf_threshold=0.02, iou_threshold=0.3, max_candidates=20)
    want = reference_decode(out, 32, 0.02, 0.3, 20)
    for (boxes, scores, classes), (w_boxes, w_scores, w_classes) in zip(got, want, strict=True):
        assert len(scores) > 1 and classes.tolist() == w_classes.tolist()
        assert torch.allclose(scores, w_scores) and torch.allclose(boxes, w_boxes, atol=1e-4)


def test_decode_proposes_second_guesses_and_caps_candidates():
    out = torch.full((1, 7, 2, 2), -10.0)  # 2 classes, 2x2 grid, 20 px image
    out[0, 0, 0, 0] = 10.0  # one confident cell, hesitating: 3 to 1 for class 1
    out[0, 5, 0, 0], out[0, 6, 0, 0] = 0.0, math.log(3.0)
    boxes, scores, classes = decode(out, 20, conf_threshold=0.1)[0]
    assert classes.tolist() == [1, 0] and scores.tolist() == pytest.approx([0.75, 0.25], 1e-3)
    assert torch.equal(boxes[0], boxes[1])  # one box, proposed once per class
    assert decode(out, 20, conf_threshold=0.1, max_candidates=1)[0][2].tolist() == [1]
    with pytest.raises(ConvscopeError, match="max_candidates"):
        decode(out, 20, max_candidates=0)


def test_iou_term_is_one_minus_giou():
    # one 8 px cell of a 64 px image (grid 8); target box centred in the cell, 16 x 8 px
    targets = encode_targets(torch.tensor([[[20.0, 8.0, 16.0, 8.0]]]), torch.tensor([[1]]),
                             grid=8, image_size=64, num_classes=2)
    out = perfect_output(targets, 2)
    assert yolo_loss_parts(out, targets, iou_weight=1.0)["iou"].item() == pytest.approx(0, abs=1e-5)
    out[0, 3, 1, 3] += math.log(2.0)  # predicted 32 x 8 px, same centre: IoU 0.5, hull = union
    parts = yolo_loss_parts(out, targets, iou_weight=3.0)
    assert parts["iou"].item() == pytest.approx(3 * 0.5, abs=1e-4)
    # a thin box inside the target: the hull is the union, GIoU = IoU = 2 / 16
    out = perfect_output(targets, 2)
    out[0, 3, 1, 3] = math.log(2 / 64)
    assert yolo_loss_parts(out, targets, iou_weight=1.0)["iou"].item() == pytest.approx(
        1 - 2 / 16, abs=1e-4)
    # disjoint boxes: GIoU = 0 - (hull - union) / hull, below 0
    thin = encode_targets(torch.tensor([[[24.5, 8.0, 2.0, 8.0]]]), torch.tensor([[1]]), 8, 64, 2)
    out = perfect_output(thin, 2)
    out[0, 1, 1, 3] = math.log(0.9 / 0.1)  # centre x 24 + 0.9 * 8 = 31.2: [30.2, 32.2]
    pred = torch.tensor([[30.2, 8.0, 2.0, 8.0]])
    assert box_iou_paired(pred, torch.tensor([[24.5, 8.0, 2.0, 8.0]])).item() == 0
    hull, union = (32.2 - 24.5) * 8, 2 * 16
    assert yolo_loss_parts(out, thin, iou_weight=1.0)["iou"].item() == pytest.approx(
        1 + (hull - union) / hull, abs=1e-4)


def test_loss_is_zero_at_perfect_output_and_gradients_are_consistent():
    boxes, classes = scene_targets()
    targets = encode_targets(boxes, classes, grid=8, image_size=64, num_classes=10)
    perfect = perfect_output(targets, 10).requires_grad_()
    parts = yolo_loss_parts(perfect, targets)
    assert parts["total"].item() < 1e-5
    parts["total"].backward()
    assert perfect.grad.abs().max().item() < 1e-5
    # analytic gradients match finite differences at a random point (float64, small grid)
    small = encode_targets(torch.tensor([[[1.0, 2.0, 5.0, 6.0], [9.0, 9.0, 4.0, 3.0]]]),
                           torch.tensor([[0, 2]]), grid=2, image_size=16, num_classes=3)
    g = torch.Generator().manual_seed(0)
    out = torch.randn(1, 8, 2, 2, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda o: yolo_loss(o, small, iou_weight=2.0), (out,))
    # no boxes at all: box and class terms are zero, nothing is NaN
    empty = encode_targets(torch.zeros(1, 3, 4), torch.full((1, 3), -1), 8, 64, 10)
    parts = yolo_loss_parts(torch.randn(1, 15, 8, 8), empty)
    assert parts["box"].item() == 0 and parts["class"].item() == 0
    assert torch.isfinite(parts["total"])
    with pytest.raises(ConvscopeError, match="grid=4"):
        yolo_loss(torch.zeros(2, 15, 4, 4), targets)
    with pytest.raises(ConvscopeError, match="class channels"):
        yolo_loss(torch.zeros(2, 8, 8, 8), targets)


def hand_scenes() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two 32 px images with bright shapes: class 0 a filled square, class 1 a hollow one."""
    images = torch.zeros(2, 1, 32, 32)
    boxes = torch.tensor([[[2.0, 3.0, 8.0, 8.0], [18.0, 17.0, 10.0, 10.0]],
                          [[20.0, 2.0, 9.0, 9.0], [4.0, 20.0, 8.0, 8.0]]])
    classes = torch.tensor([[0, 1], [0, 1]])
    for i in range(2):
        for (x, y, w, h), c in zip(boxes[i].int().tolist(), classes[i].tolist(), strict=True):
            images[i, 0, y:y + h, x:x + w] = 1.0
            if c == 1:
                images[i, 0, y + 2:y + h - 2, x + 2:x + w - 2] = 0.0
    return images - 0.5, boxes, classes


def tiny_head() -> nn.Module:
    """32 px -> a 4x4 grid of 5 + 2 channels."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 7, 1),
    )


def test_tiny_conv_head_learns_hand_made_scenes():
    torch.manual_seed(0)
    images, boxes, classes = hand_scenes()
    targets = encode_targets(boxes, classes, grid=4, image_size=32, num_classes=2)
    model = tiny_head()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(50):
        loss = yolo_loss(model(images), targets)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    with torch.no_grad():
        detections = decode(model(images), image_size=32)
    result = mean_average_precision(detections, list(zip(boxes, classes, strict=True)), 2)
    assert result["map"] > 0.7  # 1.0 with this seed; other seeds: 0.62 to 1.0


def test_loss_under_bf16_autocast():
    torch.manual_seed(0)
    images, boxes, classes = hand_scenes()
    targets = encode_targets(boxes, classes, grid=4, image_size=32, num_classes=2)
    model = tiny_head()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(images)
        assert out.dtype == torch.bfloat16
        loss = yolo_loss(out.float(), targets)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    # the bf16 output itself is accepted too and gives the same loss
    assert yolo_loss(out, targets).item() == pytest.approx(loss.item())
