"""Top images per filter (Zeiler & Fergus 2014, their figure 2): for each channel of each conv
layer, the test images that excite it most (its largest value anywhere in its map), with where
(the map position) and the input patch that position sees (its receptive field). Computed in
one pass over the images for every conv layer at once and cached on disk (atomically) under
the decoded-data cache (``$CONVSCOPE_CACHE/top-images``), keyed by the model's weights and the
images, so each model's is computed once.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ._io import atomic_write
from .augment import to_input
from .data.paths import decoded_cache_dir
from .device import model_device
from .images import fit_to_volume
from .probes import LayerNotFound, Node, ProbeError, network_graph

TOP = 9  # images kept per channel
BATCH = 128
CACHE_VERSION = 1


def top_images_dir() -> Path:
    """Where the computed top images are kept: ``top-images`` in the decoded-data cache."""
    return decoded_cache_dir() / "top-images"


@dataclass(frozen=True)
class Field:
    """A node's receptive field along one side: output position ``p`` sees input pixels
    ``start + p * jump`` to that plus ``size`` (exclusive), before clipping to the input."""

    jump: int
    size: int
    start: int


def receptive_field(nodes: list[Node], index: int) -> tuple[Field, Field] | None:
    """The (x, y) receptive fields of node ``index``'s positions, followed back through the
    nodes each reads (conv and pool windows widen and stride it; other nodes keep it); None
    where a node on the way changes the size in another way."""
    chain, node = [], nodes[index]
    while node.index != 0:
        chain.append(node)
        if node.input_from is None:
            return None
        node = nodes[node.input_from]
    fields = [Field(1, 1, 0), Field(1, 1, 0)]
    for node in reversed(chain):
        p = node.params
        if node.type in ("conv", "pool") and "sx" in p:
            sizes = (p["sx"], p.get("sy", p["sx"]))
            stride, pad = p.get("stride", 1), p.get("pad", 0)
            fields = [Field(f.jump * stride, f.size + (k - 1) * f.jump, f.start - pad * f.jump)
                      for f, k in zip(fields, sizes, strict=True)]
        elif node.in_volume is None or (node.in_volume.sx, node.in_volume.sy) != \
                (node.out_volume.sx, node.out_volume.sy):
            return None
    return fields[0], fields[1]


def patch_box(fields: tuple[Field, Field] | None, x: int, y: int, width: int,
              height: int) -> list[int]:
    """The input patch (x, y, w, h) that map position (``x``, ``y``) sees, clipped to the
    ``width`` x ``height`` input (the whole input where the field is unknown)."""
    if fields is None:
        return [0, 0, width, height]
    (fx, fy) = fields
    left, top = fx.start + x * fx.jump, fy.start + y * fy.jump
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + fx.size, width), min(top + fy.size, height)
    return [x0, y0, max(x1 - x0, 0), max(y1 - y0, 0)]


def conv_nodes(model: nn.Module, volume) -> list[Node]:
    """The conv layers whose channels get top images."""
    return [n for n in network_graph(model, volume).nodes if n.type == "conv"]


@dataclass(frozen=True)
class TopImages:
    """Per conv node index: ``values`` (channels, k) the channel's largest value in each top
    image, ``indices`` (channels, k) the images' indices, most exciting first, and
    ``positions`` (channels, k, 2) the map position (x, y) of that value."""

    values: dict[int, np.ndarray]
    indices: dict[int, np.ndarray]
    positions: dict[int, np.ndarray]


def fitted(images: torch.Tensor, volume) -> torch.Tensor:
    """uint8 images (N, D, H, W) fitted to the model's input ``volume`` as the explorer fits
    a sample."""
    if tuple(images.shape[1:]) == volume.shape:
        return images
    return torch.stack([fit_to_volume(image, volume) for image in images])


@torch.no_grad()
def compute_top_images(model: nn.Module, images: torch.Tensor, volume, k: int = TOP
                       ) -> TopImages:
    """One pass over uint8 ``images`` (N, D, H, W; fitted to ``volume`` batch by batch):
    every conv channel's ``k`` most exciting images."""
    nodes = conv_nodes(model, volume)
    if not nodes:
        raise ProbeError("the network has no conv layer: top images need one")
    caller, seen = threading.get_ident(), {}
    modules = {model.get_submodule(n.name): n.index for n in nodes}

    def hook(module: nn.Module, _args: tuple, output) -> None:
        if threading.get_ident() == caller and isinstance(output, torch.Tensor):
            seen.setdefault(modules[module], output)

    best: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
    handles = [m.register_forward_hook(hook) for m in modules]
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(images), BATCH):
            seen.clear()
            batch = fitted(images[start:start + BATCH], volume)
            model(to_input(batch).to(model_device(model)))
            for index, out in seen.items():
                flat = out.detach().float().cpu().flatten(2)  # (B, C, positions)
                value, where = flat.max(2)
                ids = torch.arange(start, start + len(batch))[:, None].expand_as(value)
                best[index] = _merge(best.get(index), value.T, ids.T, where.T, k)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    widths = {n.index: n.out_volume.sx for n in nodes}
    return TopImages(
        {i: v.numpy() for i, (v, _, _) in best.items()},
        {i: ids.numpy() for i, (_, ids, _) in best.items()},
        {i: np.stack([w.numpy() % widths[i], w.numpy() // widths[i]], -1)
         for i, (_, _, w) in best.items()})


def _merge(kept, values: torch.Tensor, ids: torch.Tensor, where: torch.Tensor, k: int):
    """The ``k`` best per channel (row) of what was kept and a batch's (channels, B)
    values; ties go to the earlier image."""
    if kept is not None:
        values, ids, where = (torch.cat([a, b], 1) for a, b in zip(kept, (values, ids, where),
                                                                   strict=True))
    order = values.sort(dim=1, descending=True, stable=True).indices[:, :k]  # kept ones first
    return (values.gather(1, order), ids.gather(1, order), where.gather(1, order))


def fingerprint(model: nn.Module, images: torch.Tensor) -> str:
    """A key naming the model's weights (every tensor of its state) and the images."""
    digest = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    digest.update(str(tuple(images.shape)).encode())
    digest.update(images.contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


def _load(path: Path) -> TopImages | None:
    try:
        with np.load(path, allow_pickle=False) as archive:
            parts: dict[str, dict[int, np.ndarray]] = {"values": {}, "indices": {},
                                                         "positions": {}}
            for key in archive.files:
                what, _, index = key.partition("_")
                parts[what][int(index)] = archive[key]
    except (OSError, ValueError, KeyError, EOFError):
        return None  # missing or damaged: computed again
    return TopImages(parts["values"], parts["indices"], parts["positions"])


def _save(path: Path, found: TopImages) -> None:
    arrays = {f"{what}_{i}": array for what in ("values", "indices", "positions")
              for i, array in getattr(found, what).items()}

    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)


def top_images(model: nn.Module, images: torch.Tensor, volume, k: int = TOP,
               cache: Path | None = None) -> TopImages:
    """:func:`compute_top_images`, read from the cache when this model's weights and these
    images were done before (``cache``: default :func:`top_images_dir`), else computed and
    written there."""
    path = (cache or top_images_dir()) / f"{fingerprint(model, images)}-k{k}.npz"
    found = _load(path) if path.is_file() else None
    if found is None:
        found = compute_top_images(model, images, volume, k)
        _save(path, found)
    return found


def channel_tops(model: nn.Module, found: TopImages, volume, layer: int, channel: int
                 ) -> list[dict]:
    """Channel ``channel`` of conv layer ``layer``: its top images as ``{"index", "value",
    "position": [x, y], "box": [x, y, w, h]}`` (the patch in the fitted input)."""
    nodes = network_graph(model, volume).nodes
    if layer not in found.values:
        convs = ", ".join(str(i) for i in found.values) or "none"
        raise LayerNotFound(f"layer {layer} is not a conv layer: top images exist for layers "
                            f"{convs}")
    values = found.values[layer]
    if not 0 <= channel < len(values):
        raise ProbeError(f"channel {channel} does not exist: layer {layer} has channels "
                         f"0..{len(values) - 1}")
    fields = receptive_field(nodes, layer)
    return [{"index": int(index), "value": float(value), "position": [int(x), int(y)],
             "box": patch_box(fields, int(x), int(y), volume.sx, volume.sy)}
            for value, index, (x, y) in zip(values[channel], found.indices[layer][channel],
                                            found.positions[layer][channel], strict=True)]
