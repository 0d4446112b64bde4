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
from .metrics import nms, xywh_to_xyxy, xyxy_to_xywh

BOX_CHANNELS = 5  # objectness, tx, ty, tw, th
MAX_LOG_SIZE = 1.0  # decode clamps tw, th here: boxes up to e times the image, then clipped


def encode_targets(
    boxes: torch.Tensor, classes: torch.Tensor, grid: int, image_size: int, num_classes: int
) -> dict[str, torch.Tensor]:
    """Per-cell training targets for ``boxes`` (N, B, 4) xywh px and ``classes`` (N, B).

    Class -1 marks padding. The cell containing a box's centre is responsible for it (a
    centre on the right or bottom image edge belongs to the last cell). When several boxes
    fall in one cell the one with the largest area is kept (the first of equal ones): a cell
    predicts one box. Returns, with S = ``grid``:

    - ``objectness`` float32 (N, S, S): 1 at responsible cells, else 0;
    - ``offset`` float32 (N, 2, S, S): box centre within its cell, (x, y) in [0, 1];
    - ``size`` float32 (N, 2, S, S): ``log(w / P), log(h / P)``;
    - ``classes`` int64 (N, S, S): the box class, -1 at cells without a box.
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

    def grid_of(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(n, grid, grid, *t.shape[1:])

    return {
        "objectness": grid_of(objectness),
        "offset": grid_of(offset).permute(0, 3, 1, 2).contiguous(),
        "size": grid_of(size).permute(0, 3, 1, 2).contiguous(),
        "classes": grid_of(target_classes),
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
) -> dict[str, torch.Tensor]:
    """The loss terms for ``output`` (N, 5 + C, S, S) and :func:`encode_targets` targets.

    - ``objectness``: BCE-with-logits averaged over all cells; responsible cells weigh
      ``obj_pos_weight`` because they are few (a handful of S * S cells per image);
    - ``box``: squared error of ``sigmoid(tx), sigmoid(ty)`` against the centre offsets plus
      squared error of ``tw, th`` against ``log(w / P), log(h / P)``, summed over the 4
      coordinates, averaged over responsible cells, times ``box_weight``;
    - ``class``: cross-entropy at responsible cells, averaged, times ``class_weight``;
    - ``total``: their sum.

    Box and class terms are 0 for a batch without boxes. Half-precision outputs are computed
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
    cls_t = targets["classes"].to(output.device)[pos]
    if len(cls_t) and int(cls_t.max()) >= num_classes:
        raise ConvscopeError(f"targets hold class {int(cls_t.max())} but the output has only "
                             f"{num_classes} class channels")
    class_loss = F.cross_entropy(cells[:, BOX_CHANNELS:], cls_t, reduction="sum")
    box = box_weight * box_err / num_pos
    cls = class_weight * class_loss / num_pos
    return {"objectness": objectness, "box": box, "class": cls,
            "total": objectness + box + cls}


def yolo_loss(
    output: torch.Tensor,
    targets: dict[str, torch.Tensor],
    obj_pos_weight: float = 5.0,
    box_weight: float = 1.0,
    class_weight: float = 1.0,
) -> torch.Tensor:
    """The total of :func:`yolo_loss_parts` (a scalar to backpropagate)."""
    return yolo_loss_parts(output, targets, obj_pos_weight, box_weight, class_weight)["total"]


@torch.no_grad()
def decode(
    output: torch.Tensor,
    image_size: int,
    conf_threshold: float = 0.05,
    iou_threshold: float = 0.5,
    max_detections: int = 100,
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Detections per image from an output volume (N, 5 + C, S, S), on the CPU.

    Each cell proposes its box with score ``sigmoid(objectness) * max softmax class prob`` and
    that class; boxes are clipped to the image, those scoring below ``conf_threshold`` are
    dropped, per-class :func:`convscope.metrics.nms` runs at ``iou_threshold``, and at most
    ``max_detections`` best remain. Returns ``[(boxes (K, 4) xywh px, scores (K,), classes
    (K,) int64)]``, highest score first.
    """
    _check_output(output)
    out = output.detach().float().cpu()
    n, _, s, _ = out.shape
    cell = image_size / s
    prob, cls = out[:, BOX_CHANNELS:].softmax(1).max(1)
    score = out[:, 0].sigmoid() * prob
    steps = torch.arange(s, dtype=out.dtype)
    cx = (steps[None, None, :] + out[:, 1].sigmoid()) * cell
    cy = (steps[None, :, None] + out[:, 2].sigmoid()) * cell
    wh = out[:, 3:5].clamp(max=MAX_LOG_SIZE).exp() * image_size
    xyxy = xywh_to_xyxy(torch.stack((cx - wh[:, 0] / 2, cy - wh[:, 1] / 2, wh[:, 0], wh[:, 1]),
                                    -1))
    boxes = xyxy_to_xywh(xyxy.clamp(0, image_size)).reshape(n, s * s, 4)
    score, cls = score.reshape(n, s * s), cls.reshape(n, s * s)
    results = []
    for i in range(n):
        keep = torch.nonzero(score[i] >= conf_threshold).squeeze(1)
        keep = keep[nms(boxes[i, keep], score[i, keep], iou_threshold, cls[i, keep])]
        keep = keep[:max_detections]
        results.append((boxes[i, keep], score[i, keep], cls[i, keep]))
    return results
