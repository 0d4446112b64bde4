"""Detection, localization and segmentation metrics on plain tensors.

Boxes are ``(x, y, w, h)`` in pixels with ``(x, y)`` the top-left corner ("xywh") unless a
name says ``xyxy`` (corners ``x0, y0, x1, y1``). Widths and heights must be non-negative.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .errors import ConvscopeError

Detections = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # boxes (K,4), scores, classes
GroundTruth = tuple[torch.Tensor, torch.Tensor]  # boxes (G,4), classes (G,), -1 = padding


def xywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """``(x, y, w, h)`` -> ``(x0, y0, x1, y1)`` along the last dimension."""
    x, y, w, h = boxes.unbind(-1)
    return torch.stack((x, y, x + w, y + h), dim=-1)


def xyxy_to_xywh(boxes: torch.Tensor) -> torch.Tensor:
    """``(x0, y0, x1, y1)`` -> ``(x, y, w, h)`` along the last dimension."""
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack((x0, y0, x1 - x0, y1 - y0), dim=-1)


def _check_boxes(boxes: torch.Tensor, name: str) -> None:
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ConvscopeError(f"{name} must be a (K, 4) tensor of xywh boxes, "
                             f"got shape {tuple(boxes.shape)}")


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of every xywh box in ``a`` (N, 4) with every one in ``b`` (M, 4).

    Returns (N, M); two empty (zero-area) boxes have IoU 0.
    """
    _check_boxes(a, "a")
    _check_boxes(b, "b")
    a, b = xywh_to_xyxy(a), xywh_to_xyxy(b)
    lo = torch.maximum(a[:, None, :2], b[None, :, :2])
    hi = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (hi - lo).clamp_min(0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return inter / union.clamp_min(torch.finfo(union.dtype).tiny)


def box_iou_paired(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Elementwise IoU of matched xywh boxes ``a[i]`` and ``b[i]``: (N, 4) x (N, 4) -> (N,)."""
    _check_boxes(a, "a")
    _check_boxes(b, "b")
    if a.shape != b.shape:
        raise ConvscopeError(f"paired boxes need equal shapes, got {tuple(a.shape)} "
                             f"and {tuple(b.shape)}")
    a, b = xywh_to_xyxy(a), xywh_to_xyxy(b)
    inter = (torch.minimum(a[:, 2:], b[:, 2:]) - torch.maximum(a[:, :2], b[:, :2]))
    inter = inter.clamp_min(0).prod(-1)
    union = (a[:, 2:] - a[:, :2]).prod(-1) + (b[:, 2:] - b[:, :2]).prod(-1) - inter
    return inter / union.clamp_min(torch.finfo(union.dtype).tiny)


def mean_box_iou(pred_boxes: torch.Tensor, true_boxes: torch.Tensor) -> float:
    """Mean IoU of matched xywh box pairs (localization: one predicted box per true box)."""
    if len(pred_boxes) == 0:
        raise ConvscopeError("mean_box_iou got no boxes; pass at least one (pred, true) pair")
    return float(box_iou_paired(pred_boxes.double(), true_boxes.double()).mean())


def nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    iou_threshold: float = 0.5,
    classes: torch.Tensor | None = None,
) -> torch.Tensor:
    """Greedy non-maximum suppression; returns kept indices (int64), highest score first.

    Boxes are visited by descending score (ties: lower index first); a box is dropped when its
    IoU with an already kept box is greater than ``iou_threshold``. With ``classes`` only
    boxes of the same class suppress each other.
    """
    _check_boxes(boxes, "boxes")
    if scores.shape != boxes.shape[:1] or (classes is not None and classes.shape != scores.shape):
        raise ConvscopeError(f"nms needs one score (and class) per box: boxes "
                             f"{tuple(boxes.shape)}, scores {tuple(scores.shape)}")
    order = torch.argsort(scores, descending=True, stable=True)
    overlaps = box_iou(boxes[order], boxes[order]) > iou_threshold
    if classes is not None:
        cls = classes[order]
        overlaps &= cls[:, None] == cls[None, :]
    overlaps = overlaps.cpu().numpy()
    suppressed = np.zeros(len(order), dtype=bool)
    kept = []
    for i in range(len(order)):
        if not suppressed[i]:
            kept.append(i)
            suppressed |= overlaps[i]
    return order[torch.as_tensor(kept, dtype=torch.int64, device=order.device)]


def average_precision(
    recall: Sequence[float] | np.ndarray | torch.Tensor,
    precision: Sequence[float] | np.ndarray | torch.Tensor,
) -> float:
    """All-point interpolated AP (PASCAL VOC 2010+): the area under the precision envelope.

    ``recall`` / ``precision`` are the values after each detection in descending-score order.
    The envelope at recall r is the best precision at any recall >= r (0 beyond the last
    point); the area is summed over the steps where recall changes.
    """
    rec = np.concatenate(([0.0], np.asarray(recall, dtype=np.float64), [1.0]))
    prec = np.concatenate(([0.0], np.asarray(precision, dtype=np.float64), [0.0]))
    prec = np.maximum.accumulate(prec[::-1])[::-1]
    steps = np.flatnonzero(rec[1:] != rec[:-1])
    return float(np.sum((rec[steps + 1] - rec[steps]) * prec[steps + 1]))


def _class_detections(
    detections: Sequence[Detections], ground_truths: Sequence[GroundTruth], num_classes: int
) -> tuple[list[list], list[int]]:
    """Per class: (scores, IoUs with that image's GT of the class or None) per image; GT counts."""
    per_class: list[list] = [[] for _ in range(num_classes)]
    num_gt = [0] * num_classes
    for i, ((boxes, scores, classes), (gt_boxes, gt_classes)) in enumerate(
        zip(detections, ground_truths, strict=True)
    ):
        classes, gt_classes = classes.cpu().long().numpy(), gt_classes.cpu().long().numpy()
        gt_keep = gt_classes >= 0
        for name, cls in (("detection", classes), ("ground-truth", gt_classes[gt_keep])):
            if len(cls) and (cls.min() < 0 or cls.max() >= num_classes):
                raise ConvscopeError(f"image {i}: {name} classes must lie in [0, {num_classes}) "
                                     f"(ground truth may use -1 for padding), got "
                                     f"[{cls.min()}, {cls.max()}]")
        ious = box_iou(boxes.cpu().double(), gt_boxes.cpu().double()).numpy()
        scores = scores.cpu().double().numpy()
        for c in np.unique(np.concatenate((classes, gt_classes[gt_keep]))):
            gt_c, det_c = gt_classes == c, classes == c
            num_gt[c] += int(gt_c.sum())
            if det_c.any():
                per_class[c].append((scores[det_c], ious[det_c][:, gt_c] if gt_c.any() else None))
    return per_class, num_gt


def _match_class(entries: list, iou_threshold: float) -> np.ndarray:
    """TP flags of one class's detections, in descending-score order over all images."""
    if not entries:
        return np.zeros(0, dtype=bool)
    scores = np.concatenate([s for s, _ in entries])
    owner = np.concatenate([np.full(len(s), e) for e, (s, _) in enumerate(entries)])
    local = np.concatenate([np.arange(len(s)) for s, _ in entries])
    matched = [None if ious is None else np.zeros(ious.shape[1], dtype=bool)
               for _, ious in entries]
    order = np.argsort(-scores, kind="stable")
    tp = np.zeros(len(order), dtype=bool)
    for rank, k in enumerate(order):
        ious = entries[owner[k]][1]
        if ious is None:
            continue
        row = np.where(matched[owner[k]], -1.0, ious[local[k]])
        best = int(row.argmax())
        if row[best] >= iou_threshold:
            tp[rank] = True
            matched[owner[k]][best] = True
    return tp


def mean_average_precision(
    detections: Sequence[Detections],
    ground_truths: Sequence[GroundTruth],
    num_classes: int,
    iou_threshold: float = 0.5,
) -> dict:
    """Mean average precision over classes at one IoU threshold.

    ``detections[i]`` is ``(boxes (K, 4) xywh, scores (K,), classes (K,))`` for image i and
    ``ground_truths[i]`` is ``(boxes (G, 4), classes (G,))``; ground truth with class -1 is
    padding and ignored. Per class, detections from all images are taken by descending score;
    each one is a true positive when the unmatched ground truth of its class in its image with
    the highest IoU has IoU >= ``iou_threshold`` (it then becomes matched), else a false
    positive (so duplicates are false positives). AP is :func:`average_precision`.

    Returns ``{"map", "ap", "iou_threshold", "num_gt", "num_detections", "true_positives"}``:
    ``ap[c]`` is None for a class without ground truth (its detections count nowhere) and
    ``map`` is the mean over the other classes (None when no class has ground truth).
    """
    if len(detections) != len(ground_truths):
        raise ConvscopeError(f"mean_average_precision needs one detection entry per image: "
                             f"got {len(detections)} detections, {len(ground_truths)} GT")
    per_class, num_gt = _class_detections(detections, ground_truths, num_classes)
    aps: list[float | None] = []
    num_det, true_pos = [], []
    for c in range(num_classes):
        tp = _match_class(per_class[c], iou_threshold)
        num_det.append(len(tp))
        true_pos.append(int(tp.sum()))
        if num_gt[c] == 0:
            aps.append(None)
            continue
        ctp = np.cumsum(tp)
        aps.append(average_precision(ctp / num_gt[c], ctp / np.arange(1, len(tp) + 1)))
    valid = [ap for ap in aps if ap is not None]
    return {
        "map": float(np.mean(valid)) if valid else None,
        "ap": aps,
        "iou_threshold": iou_threshold,
        "num_gt": num_gt,
        "num_detections": num_det,
        "true_positives": true_pos,
    }


def segmentation_confusion(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """Pixel confusion matrix (num_classes, num_classes), int64: rows = target, cols = pred."""
    if pred.shape != target.shape:
        raise ConvscopeError(f"segmentation pred and target shapes differ: "
                             f"{tuple(pred.shape)} vs {tuple(target.shape)}")
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    for name, t in (("pred", pred), ("target", target)):
        if len(t) and (int(t.min()) < 0 or int(t.max()) >= num_classes):
            raise ConvscopeError(f"segmentation {name} values must lie in [0, {num_classes}), "
                                 f"got [{int(t.min())}, {int(t.max())}]")
    counts = torch.bincount(target * num_classes + pred, minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes).cpu()


def iou_per_class(confusion: torch.Tensor) -> list[float | None]:
    """IoU = TP / (TP + FP + FN) per class; None for a class in neither target nor prediction."""
    confusion = confusion.double()
    tp = confusion.diagonal()
    union = confusion.sum(0) + confusion.sum(1) - tp
    return [None if u == 0 else float(t / u) for t, u in zip(tp, union, strict=True)]


def mean_iou(confusion: torch.Tensor) -> float | None:
    """Mean of :func:`iou_per_class` over classes present in target or prediction."""
    ious = [iou for iou in iou_per_class(confusion) if iou is not None]
    return float(np.mean(ious)) if ious else None
