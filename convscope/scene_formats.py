"""Scene annotations in the formats other tools read: COCO and YOLO (``convscope scenes
--format``), beside convscope's own ``annotations.json`` (:func:`convscope.scenes.write_scenes`).

- ``coco``: ``instances.json`` beside the scene PNGs: ``images`` (id, file_name, width,
  height), ``annotations`` (id, image_id, category_id, bbox ``[x, y, w, h]`` in pixels, area,
  iscrowd 0; for ``segment`` scenes also ``segmentation``, an uncompressed RLE of the pixels of
  the digit's class inside its box) and ``categories``. Category ids are the digit + 1 (id 0
  is the background in torchvision's detection models); each category's name is the digit.
- ``yolo``: ``images/scene_00000.png`` and ``labels/scene_00000.txt`` (one ``class cx cy w h``
  line per digit, normalised to the canvas side, class = the digit), ``classes.txt`` (one name
  a line) and ``data.yaml`` (Ultralytics: ``path``, ``train``, ``val``, ``nc``, ``names``).
  ``segment`` scenes also write ``masks/mask_00000.png`` (pixel value = class, 10 =
  background); YOLO's polygon format is not written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._io import write_json_atomic, write_text_atomic, write_yaml_atomic, writing

SCENE_FORMATS = ("native", "coco", "yolo")
COCO_FILE = "instances.json"


def image_dir(out: Path, format: str) -> Path:  # noqa: A002 (the option's name)
    """Where a format keeps the scene PNGs (YOLO: ``images/``, beside ``labels/``)."""
    return out / "images" if format == "yolo" else out


def mask_dir(out: Path, format: str) -> Path:  # noqa: A002
    return out / "masks" if format == "yolo" else out


def coco_document(files: list[str], size: int, classes: list[str], objects: list[list[tuple]],
                  masks: np.ndarray | None = None) -> dict:
    """The COCO ``instances`` document of scenes ``files`` (``size`` px square): per scene its
    objects as ``(class, (x, y, w, h))``; ``masks`` (N, H, W) class per pixel, for
    ``segmentation``."""
    images, annotations = [], []
    for i, (name, found) in enumerate(zip(files, objects, strict=True)):
        images.append({"id": i + 1, "file_name": name, "width": size, "height": size})
        for cls, (x, y, w, h) in found:
            annotation = {"id": len(annotations) + 1, "image_id": i + 1, "category_id": cls + 1,
                          "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0}
            if masks is not None:
                inside = np.zeros(masks[i].shape, dtype=bool)
                inside[y:y + h, x:x + w] = masks[i, y:y + h, x:x + w] == cls
                annotation["segmentation"] = rle(inside)
                annotation["area"] = int(inside.sum())
            annotations.append(annotation)
    categories = [{"id": k + 1, "name": name, "supercategory": "digit"}
                  for k, name in enumerate(classes)]
    return {"info": {"description": "MNIST digit scenes made by convscope"},
            "images": images, "annotations": annotations, "categories": categories}


def rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed run-length encoding of a boolean (H, W) mask: run lengths in
    column-major order, starting with a run of zeros."""
    flat = np.asarray(mask, dtype=bool).flatten(order="F")
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    return {"size": list(mask.shape), "counts": counts}


def yolo_lines(size: int, found: list[tuple]) -> str:
    """One ``class cx cy w h`` line per object, the box normalised to the canvas side."""
    return "".join(f"{cls} {(x + w / 2) / size:.6f} {(y + h / 2) / size:.6f} "
                   f"{w / size:.6f} {h / size:.6f}\n" for cls, (x, y, w, h) in found)


def write_coco(out: Path, files: list[str], size: int, classes: list[str],
               objects: list[list[tuple]], masks: np.ndarray | None) -> Path:
    path = out / COCO_FILE
    write_json_atomic(path, coco_document(files, size, classes, objects, masks))
    return path


def write_yolo(out: Path, files: list[str], size: int, classes: list[str],
               objects: list[list[tuple]]) -> Path:
    labels = out / "labels"
    with writing(labels):
        labels.mkdir(parents=True, exist_ok=True)
        for name, found in zip(files, objects, strict=True):
            (labels / Path(name).with_suffix(".txt").name).write_text(
                yolo_lines(size, found), encoding="utf-8")
    write_text_atomic(out / "classes.txt", "".join(f"{name}\n" for name in classes))
    path = out / "data.yaml"
    write_yaml_atomic(path, {"path": str(out.resolve()), "train": "images", "val": "images",
                             "nc": len(classes), "names": dict(enumerate(classes))})
    return path
