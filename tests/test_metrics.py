"""Box IoU, NMS, AP/mAP and segmentation IoU against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from convscope.errors import ConvscopeError
from convscope.metrics import (
    average_precision,
    box_iou,
    box_iou_paired,
    iou_per_class,
    mean_average_precision,
    mean_box_iou,
    mean_iou,
    nms,
    segmentation_confusion,
    xywh_to_xyxy,
    xyxy_to_xywh,
)


def t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def test_box_conversions_round_trip():
    boxes = t([[1, 2, 3, 4], [0, 0, 10, 5]])
    assert torch.equal(xywh_to_xyxy(boxes), t([[1, 2, 4, 6], [0, 0, 10, 5]]))
    assert torch.equal(xyxy_to_xywh(xywh_to_xyxy(boxes)), boxes)


def test_box_iou_known_values():
    a = t([[0, 0, 10, 10]])
    b = t([[0, 0, 10, 10], [20, 20, 5, 5], [5, 0, 10, 10], [0, 0, 10, 5], [10, 0, 10, 10],
           [3, 3, 0, 0]])
    # identical 1; disjoint 0; shifted by half: 50 / 150; half contained: 50 / 100;
    # touching edges 0; an empty box 0.
    expected = t([[1.0, 0.0, 1 / 3, 0.5, 0.0, 0.0]])
    assert torch.allclose(box_iou(a, b), expected)
    assert torch.allclose(box_iou(b, a), expected.T)
    assert box_iou(t([[0, 0, 0, 0]]), t([[0, 0, 0, 0]])).item() == 0.0
    assert box_iou(a, torch.zeros(0, 4)).shape == (1, 0)


def test_box_iou_paired_and_mean():
    a = t([[0, 0, 10, 10], [0, 0, 10, 10]])
    b = t([[0, 0, 10, 10], [5, 0, 10, 10]])
    assert torch.allclose(box_iou_paired(a, b), t([1.0, 1 / 3]))
    assert mean_box_iou(a, b) == pytest.approx((1 + 1 / 3) / 2)
    with pytest.raises(ConvscopeError, match="equal shapes"):
        box_iou_paired(a, b[:1])
    with pytest.raises(ConvscopeError, match="no boxes"):
        mean_box_iou(torch.zeros(0, 4), torch.zeros(0, 4))
    with pytest.raises(ConvscopeError, match=r"\(K, 4\)"):
        box_iou(t([1, 2, 3, 4]), a)


def test_nms_hand_examples():
    boxes = t([[0, 0, 10, 10], [1, 0, 10, 10], [20, 20, 10, 10], [5, 0, 10, 10]])
    scores = t([0.9, 0.8, 0.7, 0.95])
    # box 3 (0.95) goes first; box 0 overlaps it by 1/3 (kept); box 1 overlaps box 0 by
    # 90/110 (dropped); box 2 is far away (kept).
    assert nms(boxes, scores, 0.5).tolist() == [3, 0, 2]
    assert nms(boxes, scores, 0.3).tolist() == [3, 2]
    # per class: box 1 has its own class, so nothing suppresses it
    assert nms(boxes, scores, 0.5, classes=torch.tensor([0, 1, 0, 0])).tolist() == [3, 0, 1, 2]
    assert nms(torch.zeros(0, 4), torch.zeros(0)).tolist() == []
    with pytest.raises(ConvscopeError, match="one score"):
        nms(boxes, scores[:2])


def _iou_py(a, b) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _nms_reference(boxes, scores, threshold, classes):
    """A box survives iff no surviving box of its class with a higher score overlaps it."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    kept = []
    for i in order:
        if all(classes[i] != classes[k] or _iou_py(boxes[i], boxes[k]) <= threshold
               for k in kept):
            kept.append(i)
    return kept


@pytest.mark.parametrize("seed", range(5))
def test_nms_matches_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    n = 60
    xy = torch.rand(n, 2, generator=g) * 40
    wh = torch.rand(n, 2, generator=g) * 20 + 1
    boxes = torch.cat((xy, wh), 1).double()
    scores = torch.rand(n, generator=g).double()
    classes = torch.randint(0, 3, (n,), generator=g)
    for threshold in (0.2, 0.5, 0.7):
        for cls in (None, classes):
            ref_cls = [0] * n if cls is None else cls.tolist()
            expected = _nms_reference(boxes.tolist(), scores.tolist(), threshold, ref_cls)
            assert nms(boxes, scores, threshold, cls).tolist() == expected


def test_average_precision_hand_computed():
    # 5 detections, 4 ground truths, pattern TP FP TP FP TP:
    #   recall    .25 .25 .50 .50 .75
    #   precision 1   1/2 2/3 1/2 3/5
    # envelope: 1 up to recall .25, 2/3 up to .5, 3/5 up to .75, 0 beyond:
    # AP = .25 * 1 + .25 * 2/3 + .25 * 3/5 = 17/30
    recall = [0.25, 0.25, 0.5, 0.5, 0.75]
    precision = [1.0, 0.5, 2 / 3, 0.5, 0.6]
    assert average_precision(recall, precision) == pytest.approx(17 / 30)
    assert average_precision(torch.tensor(recall), torch.tensor(precision)) == pytest.approx(
        17 / 30)
    assert average_precision([], []) == 0.0
    assert average_precision([0.5, 1.0], [1.0, 1.0]) == pytest.approx(1.0)


def test_map_reproduces_hand_computed_pr_curve():
    gt_boxes = t([[0, 0, 10, 10], [20, 0, 10, 10], [40, 0, 10, 10], [60, 0, 10, 10]])
    far = [100, 100, 10, 10]
    det_boxes = t([gt_boxes[0].tolist(), far, gt_boxes[1].tolist(), far, gt_boxes[2].tolist()])
    scores = t([0.9, 0.8, 0.7, 0.6, 0.5])
    result = mean_average_precision(
        [(det_boxes, scores, torch.zeros(5, dtype=torch.int64))],
        [(gt_boxes, torch.zeros(4, dtype=torch.int64))], num_classes=1)
    assert result["map"] == pytest.approx(17 / 30)
    assert result["true_positives"] == [3] and result["num_gt"] == [4]


def test_map_duplicates_misses_wrong_class_and_missing_gt():
    a, b, c = [0, 0, 10, 10], [20, 20, 10, 10], [5, 5, 10, 10]
    ground_truths = [
        (t([a, b, [0, 0, 0, 0]]), torch.tensor([0, 1, -1])),  # -1: padding
        (t([c]), torch.tensor([0])),  # missed
        (torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64)),  # image without GT
    ]
    detections = [
        (t([a, [1, 0, 10, 10], b, b]), t([0.9, 0.8, 0.7, 0.5]), torch.tensor([0, 0, 0, 1])),
        (torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64)),
        (t([[50, 50, 5, 5]]), t([0.6]), torch.tensor([2])),  # class 2 has no GT anywhere
    ]
    result = mean_average_precision(detections, ground_truths, num_classes=3)
    # class 0: TP (0.9), duplicate FP (0.8), wrong-class box FP (0.7); 2 GT -> recall .5 at
    # precision 1, never more: AP .5. class 1: one TP for one GT: AP 1. class 2: no GT.
    assert result["ap"] == [pytest.approx(0.5), pytest.approx(1.0), None]
    assert result["map"] == pytest.approx(0.75)
    assert result["num_gt"] == [2, 1, 0]
    assert result["num_detections"] == [3, 1, 1]
    assert result["true_positives"] == [1, 1, 0]
    assert result["iou_threshold"] == 0.5


def test_map_matches_best_unmatched_gt_and_threshold_is_inclusive():
    gts = t([[0, 0, 10, 10], [2, 0, 10, 10]])
    # det 0 fits GT 0 exactly; det 1's best GT is GT 0 (taken), its next best, GT 1, has
    # IoU 80/120 = 2/3 >= 0.5: a true positive.
    dets = t([[0, 0, 10, 10], [0, 0, 10, 10]])
    result = mean_average_precision([(dets, t([0.9, 0.8]), torch.tensor([0, 0]))],
                                    [(gts, torch.tensor([0, 0]))], num_classes=1)
    assert result["true_positives"] == [2] and result["map"] == pytest.approx(1.0)
    # IoU exactly 1/3 counts at threshold 1/3 but not above it
    half = ([(t([[5, 0, 10, 10]]), t([1.0]), torch.tensor([0]))],
            [(t([[0, 0, 10, 10]]), torch.tensor([0]))])
    assert mean_average_precision(*half, 1, iou_threshold=1 / 3)["map"] == pytest.approx(1.0)
    assert mean_average_precision(*half, 1, iou_threshold=0.34)["map"] == 0.0


def test_map_perfect_detections_and_errors():
    g = torch.Generator().manual_seed(0)
    ground_truths, detections = [], []
    for _ in range(6):
        boxes = torch.cat((torch.rand(4, 2, generator=g) * 50,
                           torch.rand(4, 2, generator=g) * 10 + 2), 1)
        classes = torch.randint(0, 4, (4,), generator=g)
        ground_truths.append((boxes, classes))
        detections.append((boxes.clone(), torch.rand(4, generator=g), classes.clone()))
    result = mean_average_precision(detections, ground_truths, num_classes=4)
    assert result["map"] == pytest.approx(1.0)
    empty = mean_average_precision([], [], num_classes=2)
    assert empty["map"] is None and empty["ap"] == [None, None]
    with pytest.raises(ConvscopeError, match="one detection entry per image"):
        mean_average_precision(detections[:2], ground_truths, num_classes=4)
    with pytest.raises(ConvscopeError, match=r"classes must lie in \[0, 3\)"):
        mean_average_precision(detections, ground_truths, num_classes=3)


def test_segmentation_iou_hand_computed():
    pred = torch.tensor([[[0, 0], [1, 2]]], dtype=torch.uint8)
    target = torch.tensor([[[0, 1], [1, 1]]], dtype=torch.uint8)
    conf = segmentation_confusion(pred, target, num_classes=4)
    expected = torch.zeros(4, 4, dtype=torch.int64)
    expected[0, 0] = expected[1, 0] = expected[1, 1] = expected[1, 2] = 1  # rows: target
    assert torch.equal(conf, expected)
    # class 0: 1 / (1 + 2 - 1); class 1: 1 / (3 + 1 - 1); class 2: 0 / 1; class 3 absent
    assert iou_per_class(conf) == [pytest.approx(0.5), pytest.approx(1 / 3), 0.0, None]
    assert mean_iou(conf) == pytest.approx((0.5 + 1 / 3) / 3)
    # confusions of batches add up; a perfect prediction gives 1
    assert torch.equal(segmentation_confusion(torch.cat((pred, pred)), torch.cat(
        (target, target)), 4), 2 * conf)
    assert mean_iou(segmentation_confusion(target, target, 4)) == 1.0
    assert mean_iou(torch.zeros(3, 3, dtype=torch.int64)) is None
    with pytest.raises(ConvscopeError, match=r"values must lie in \[0, 2\)"):
        segmentation_confusion(pred, target, num_classes=2)
    with pytest.raises(ConvscopeError, match="shapes differ"):
        segmentation_confusion(pred, target[:, :1], num_classes=4)
