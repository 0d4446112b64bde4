"""YOLO v1-style detection with one box per grid cell: target encoding, loss and decoding.

The network outputs a volume (N, 5 + C, S, S) whose channels at each cell are
``[objectness, tx, ty, tw, th, class scores (C)]``. For an image of P x P pixels the cell
size is P / S. The predicted box of cell (row, col) has its centre at
``((col + sigmoid(tx)) * P / S, (row + sigmoid(ty)) * P / S)`` and its size
``(exp(tw) * P, exp(th) * P)``: offsets are sigmoids so a cell predicts centres inside
itself, and sizes use the log parameterisation (relative errors, scale-free; decoding clamps
``tw, th <= 1`` so exp cannot overflow). Boxes are xywh in pixels as in :mod:`convscope.metrics`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import ConvscopeError
from .metrics import xyxy_to_xywh

BOX_CHANNELS = 5  # objectness, tx, ty, tw, th
MAX_LOG_SIZE = 1.0  # decode clamps tw, th here: boxes up to e times the image, then clipped


def encode_targets(
    boxes: torch.Tensor, classes: torch.Tensor, grid: int, image_size: int, num_classes: int,
    region: float = 0.5,
) -> dict[str, torch.Tensor]:
    """Per-cell training targets for ``boxes`` (N, B, 4) xywh px and ``classes`` (N, B).

    Class -1 marks padding. The cell containing a box's centre is responsible for it (a
    centre on the right or bottom image edge belongs to the last cell). When several boxes
    fall in one cell the one with the largest area is kept (the first of equal ones): a cell
    predicts one box. Returns, with S = ``grid``:

    - ``objectness`` float32 (N, S, S): 1 at responsible cells, else 0;
    - ``offset`` float32 (N, 2, S, S): box centre within its cell, (x, y) in [0, 1];
    - ``size`` float32 (N, 2, S, S): ``log(w / P), log(h / P)``;
    - ``classes`` int64 (N, S, S): the box class, -1 at cells without a box;
    - ``region`` int64 (N, S, S): the class of the boxes whose centre part (the box shrunk
      about its centre to ``region`` of its width and height) holds the cell's centre, and at
      responsible cells their box's class; -1 elsewhere and where boxes of different classes
      claim a cell. More cells to learn classes from (the loss's class term uses them).
    """
    if boxes.dim() != 3 or boxes.shape[-1] != 4 or classes.shape != boxes.shape[:2]:
        raise ConvscopeError(f"encode_targets needs boxes (N, B, 4) and classes (N, B), got "
                             f"{tuple(boxes.shape)} and {tuple(classes.shape)}")
    if grid < 1 or image_size < 1:
        raise ConvscopeError(f"grid and image_size must be positive, got {grid}, {image_size}")
    n = boxes.shape[0]
    valid = classes >= 0
    cls = classes[valid].long()
    image = torch.arange(n, device=boxes.device)[:, None].expand_as(classes)[valid]
    x, y, w, h = boxes[valid].double().unbind(-1)
    if len(cls) and int(cls.max()) >= num_classes:
        raise ConvscopeError(f"box classes must lie in [0, {num_classes}) or be -1 (padding), "
                             f"got {int(cls.max())}")
    if bool(((w <= 0) | (h <= 0)).any()):
        raise ConvscopeError("every box needs a positive width and height; drop empty boxes "
                             "or mark them as padding with class -1")
    cx, cy = x + w / 2, y + h / 2
    if bool(((cx < 0) | (cx > image_size) | (cy < 0) | (cy > image_size)).any()):
        raise ConvscopeError(f"a box centre lies outside the {image_size}x{image_size} image; "
                             "boxes are (x, y, w, h) in pixels with (x, y) the top-left corner")
    cell = image_size / grid
    col = (cx / cell).floor().long().clamp(0, grid - 1)
    row = (cy / cell).floor().long().clamp(0, grid - 1)
    key = (image * grid + row) * grid + col
    by_area = torch.argsort(w * h, descending=True, stable=True)
    ranked = by_area[torch.argsort(key[by_area], stable=True)]
    first = torch.ones_like(ranked, dtype=torch.bool)
    first[1:] = key[ranked[1:]] != key[ranked[:-1]]
    win = ranked[first]
    cells = n * grid * grid
    objectness = torch.zeros(cells, dtype=torch.float32, device=boxes.device)
    objectness[key[win]] = 1.0
    offset = torch.zeros(cells, 2, dtype=torch.float32, device=boxes.device)
    offset[key[win]] = torch.stack((cx / cell - col, cy / cell - row), -1)[win].float()
    size = torch.zeros(cells, 2, dtype=torch.float32, device=boxes.device)
    size[key[win]] = torch.stack((w, h), -1)[win].div(image_size).log().float()
    target_classes = torch.full((cells,), -1, dtype=torch.int64, device=boxes.device)
    target_classes[key[win]] = cls[win]
    centre = (torch.arange(grid, dtype=torch.float64, device=boxes.device) + 0.5) * cell
    inside = (((centre - cx[:, None]).abs() <= region * w[:, None] / 2)[:, None, :]
              & ((centre - cy[:, None]).abs() <= region * h[:, None] / 2)[:, :, None])
    box, r, c = inside.nonzero(as_tuple=True)
    at = torch.cat(((image[box] * grid + r) * grid + c, key[win]))
    claims = torch.cat((cls[box], cls[win]))
    lowest = torch.full((cells,), num_classes, device=boxes.device).scatter_reduce(
        0, at, claims, "amin")
    highest = torch.full((cells,), -1, device=boxes.device).scatter_reduce(0, at, claims, "amax")
    region_classes = torch.where(lowest == highest, lowest, -1)
    region_classes[key[win]] = cls[win]

    def grid_of(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(n, grid, grid, *t.shape[1:])

    return {
        "objectness": grid_of(objectness),
        "offset": grid_of(offset).permute(0, 3, 1, 2).contiguous(),
        "size": grid_of(size).permute(0, 3, 1, 2).contiguous(),
        "classes": grid_of(target_classes),
        "region": grid_of(region_classes),
    }


def _check_output(output: torch.Tensor) -> int:
    """The number of classes of a (N, 5 + C, S, S) output volume."""
    if output.dim() != 4 or output.shape[1] <= BOX_CHANNELS or output.shape[2] != output.shape[3]:
        raise ConvscopeError(f"a YOLO output must be (N, 5 + C, S, S) with C >= 1, got "
                             f"{tuple(output.shape)}; end the network with a conv layer of "
                             "5 + num_classes filters")
    return output.shape[1] - BOX_CHANNELS


def yolo_loss_parts(
    output: torch.Tensor,
    targets: dict[str, torch.Tensor],
    obj_pos_weight: float = 5.0,
    box_weight: float = 1.0,
    class_weight: float = 1.0,
    iou_weight: float = 0.0,
) -> dict[str, torch.Tensor]:
    """The loss terms for ``output`` (N, 5 + C, S, S) and :func:`encode_targets` targets.

    - ``objectness``: BCE-with-logits averaged over all cells; responsible cells weigh
      ``obj_pos_weight`` because they are few (a handful of S * S cells per image);
    - ``box``: squared error of ``sigmoid(tx), sigmoid(ty)`` against the centre offsets plus
      squared error of ``tw, th`` against ``log(w / P), log(h / P)``, summed over the 4
      coordinates, averaged over responsible cells, times ``box_weight``;
    - ``iou``: ``1 - GIoU`` of the predicted and true boxes at responsible cells, averaged,
      times ``iou_weight``: an error in the metric's own terms, so a pixel off a thin digit
      costs more than a pixel off a wide one;
    - ``class``: cross-entropy at the cells of ``targets["region"]`` (at responsible cells
      for targets without it), averaged, times ``class_weight``;
    - ``total``: their sum.

    Box, IoU and class terms are 0 for a batch without boxes. Half-precision outputs are computed
    in float32, so an output from a bf16 autocast region works.
    """
    num_classes = _check_output(output)
    if output.dtype in (torch.float16, torch.bfloat16):
        output = output.float()
    n, _, s, _ = output.shape
    if targets["objectness"].shape != (n, s, s):
        raise ConvscopeError(f"targets are for a {tuple(targets['objectness'].shape)} grid but "
                             f"the output is (N, S, S) = {(n, s, s)}; encode targets with "
                             f"grid={s}")
    obj_t = targets["objectness"].to(output)
    objectness = F.binary_cross_entropy_with_logits(
        output[:, 0], obj_t, pos_weight=torch.tensor(obj_pos_weight, dtype=output.dtype,
                                                     device=output.device)
    )
    pos = obj_t > 0.5
    num_pos = max(int(pos.sum()), 1)
    cells = output.permute(0, 2, 3, 1)[pos]  # (P, 5 + C)
    offset_t = targets["offset"].to(output).permute(0, 2, 3, 1)[pos]
    size_t = targets["size"].to(output).permute(0, 2, 3, 1)[pos]
    box_err = (cells[:, 1:3].sigmoid() - offset_t).square().sum() + (
        cells[:, 3:5] - size_t).square().sum()
    region = targets.get("region", targets["classes"].where(pos, -1)).to(output.device)
    cls_t = region[region >= 0]
    if len(cls_t) and int(cls_t.max()) >= num_classes:
        raise ConvscopeError(f"targets hold class {int(cls_t.max())} but the output has only "
                             f"{num_classes} class channels")
    class_logits = output.permute(0, 2, 3, 1)[region >= 0][:, BOX_CHANNELS:]
    class_loss = F.cross_entropy(class_logits, cls_t, reduction="sum") / max(len(cls_t), 1)
    box = box_weight * box_err / num_pos
    iou = iou_weight * (1 - _giou(cells[:, 1:3].sigmoid(), cells[:, 3:5].clamp(max=MAX_LOG_SIZE),
                                  offset_t, size_t, s)).sum() / num_pos
    cls = class_weight * class_loss
    return {"objectness": objectness, "box": box, "iou": iou, "class": cls,
            "total": objectness + box + iou + cls}


def _giou(offset: torch.Tensor, log_size: torch.Tensor, offset_t: torch.Tensor,
          log_size_t: torch.Tensor, grid: int) -> torch.Tensor:
    """Generalised IoU of paired boxes given as centre offsets in their cell (P, 2) and
    ``log(w / P), log(h / P)`` (P, 2), both in the same cell (units: cells)."""
    half, half_t = log_size.exp() * (grid / 2), log_size_t.exp() * (grid / 2)
    lo, hi, lo_t, hi_t = offset - half, offset + half, offset_t - half_t, offset_t + half_t
    inter = (torch.minimum(hi, hi_t) - torch.maximum(lo, lo_t)).clamp_min(0).prod(-1)
    union = (hi - lo).prod(-1) + (hi_t - lo_t).prod(-1) - inter
    hull = (torch.maximum(hi, hi_t) - torch.minimum(lo, lo_t)).prod(-1)
    return inter / union - (hull - union) / hull


def yolo_loss(
    output: torch.Tensor,
    targets: dict[str, torch.Tensor],
    obj_pos_weight: float = 5.0,
    box_weight: float = 1.0,
    class_weight: float = 1.0,
    iou_weight: float = 0.0,
) -> torch.Tensor:
    """The total of :func:`yolo_loss_parts` (a scalar to backpropagate)."""
    return yolo_loss_parts(output, targets, obj_pos_weight, box_weight, class_weight,
                           iou_weight)["total"]


def _batched_nms(boxes: torch.Tensor, valid: torch.Tensor, classes: torch.Tensor,
                 iou_threshold: float) -> torch.Tensor:
    """Greedy per-class NMS on every image at once: ``boxes`` (N, K, 4) xyxy sorted by
    descending score, ``valid`` (N, K) candidates; returns the kept mask (N, K).

    Same rule as :func:`convscope.metrics.nms`: a box is dropped when its IoU with an already
    kept, higher-ranked box of its class is greater than ``iou_threshold``.
    """
    lo = torch.maximum(boxes[:, :, None, :2], boxes[:, None, :, :2])
    hi = torch.minimum(boxes[:, :, None, 2:], boxes[:, None, :, 2:])
    inter = (hi - lo).clamp_min(0).prod(-1)
    area = (boxes[..., 2:] - boxes[..., :2]).prod(-1)
    union = (area[:, :, None] + area[:, None, :] - inter).clamp_min(torch.finfo(area.dtype).tiny)
    overlaps = (inter / union > iou_threshold) & (classes[:, :, None] == classes[:, None, :])
    keep = valid.clone()
    for i in range(boxes.shape[1] - 1):
        keep[:, i + 1:] &= ~(keep[:, i, None] & overlaps[:, i, i + 1:])
    return keep


@torch.no_grad()
def decode(
    output: torch.Tensor,
    image_size: int,
    conf_threshold: float = 0.05,
    iou_threshold: float = 0.5,
    max_detections: int = 100,
    max_candidates: int = 50,
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Detections per image from an output volume (N, 5 + C, S, S), on the CPU.

    Each cell proposes its box once per class, scored ``sigmoid(objectness) * softmax class
    prob`` (a digit the net hesitates about is also proposed, lower, as its second guess); boxes
    are clipped to the image, proposals scoring below ``conf_threshold`` are dropped, only the
    ``max_candidates`` best of an image enter per-class non-maximum suppression at
    ``iou_threshold`` (as :func:`convscope.metrics.nms`, all images at once), and at most
    ``max_detections`` best remain. Returns ``[(boxes (K, 4) xywh px, scores (K,),
    classes (K,) int64)]``, highest score first (ties: the lower class, then the earlier cell
    in row-major order).
    """
    _check_output(output)
    if max_candidates < 1:
        raise ConvscopeError(f"max_candidates must be at least 1, got {max_candidates}")
    out = output.detach().float().cpu()
    n, _, s, _ = out.shape
    cell = image_size / s
    prob = out[:, BOX_CHANNELS:].softmax(1) * out[:, :1].sigmoid()
    score = prob.reshape(n, -1)  # class-major: index = class * S * S + cell
    order = torch.argsort(score, dim=1, descending=True, stable=True)[:, :max_candidates]
    score, cls, order = score.gather(1, order), order // (s * s), order % (s * s)
    raw = out[:, 1:5].reshape(n, 4, s * s).gather(2, order[:, None].expand(-1, 4, -1))
    cx = (order % s + raw[:, 0].sigmoid()) * cell
    cy = (order // s + raw[:, 1].sigmoid()) * cell
    wh = raw[:, 2:4].clamp(max=MAX_LOG_SIZE).exp() * image_size
    xyxy = torch.stack((cx - wh[:, 0] / 2, cy - wh[:, 1] / 2, cx + wh[:, 0] / 2,
                        cy + wh[:, 1] / 2), -1).clamp(0, image_size)
    keep = _batched_nms(xyxy, score >= conf_threshold, cls, iou_threshold)
    boxes = xyxy_to_xywh(xyxy)
    results = []
    for i in range(n):
        kept = keep[i].nonzero().squeeze(1)[:max_detections]
        results.append((boxes[i, kept], score[i, kept], cls[i, kept]))
    return results
