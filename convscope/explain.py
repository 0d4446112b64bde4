"""Why a classifier gave its answer: maps, at the input's resolution, of where in the input a
class's score comes from, for a SpecNet or any ``nn.Module`` (its nodes as
:func:`convscope.probes.network_graph` lists them).

- :func:`gradcam`: Grad-CAM (Selvaraju et al. 2017) on any node with maps: the node's maps
  weighted by the spatial mean of the score's gradient with respect to them, summed, rectified
  and resized (bilinear) to the input.
- :func:`hirescam`: HiResCAM (Draelos & Carin 2020) on any node with maps: the node's maps
  times the score's gradient with respect to them, position by position, summed over channels,
  rectified and resized like Grad-CAM's. It differs from Grad-CAM where the layers after the
  node weigh positions differently (a fully connected head); after global average pooling
  the two agree.
- :func:`saliency`: the gradient of the score with respect to the input (Simonyan et al.
  2014), its absolute value's maximum over channels, averaged over noisy copies of the input
  (SmoothGrad, Smilkov et al. 2017; one copy without noise is the plain gradient).
- :func:`occlusion`: how much the score drops when a square window of the input is covered
  by the input's mean (Zeiler & Fergus 2014), averaged over the windows covering each pixel.

The score explained is a class's raw output (a logit, before any softmax): for a localizer,
one of its class scores, before the box. Inputs ``x`` (D, H, W) are in the model's input
convention (:func:`convscope.augment.to_input`); maps are float32 CPU tensors (H, W).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .device import model_device
from .explain_methods import LAYER_METHODS, METHODS
from .module_graph import volume_of
from .probes import INPUT, OUTPUT, Node, ProbeError, first_tensor, network_graph

RESIZES = ("bilinear", "nearest")  # how a layer's map is brought to the input's resolution
EXPLAINED_TASKS = ("classify", "localize")  # tasks with one score per class
SMOOTH_SAMPLES = 16  # SmoothGrad's noisy copies
SMOOTH_NOISE = 0.15  # their noise's standard deviation, as a fraction of the input's range
MAX_SMOOTH_SAMPLES = 256
OCCLUSION_BATCH = 64


class ExplainError(ProbeError):
    """A map asked of a method, layer or class that cannot give one."""


@dataclass(frozen=True)
class Explanation:
    """A map (H, W) at the input's resolution of where ``target``'s score comes from;
    ``layer``: the node Grad-CAM read (None for the other methods); ``score``: the class's
    score for the input as given."""

    method: str
    map: torch.Tensor
    target: int
    layer: int | None
    score: float


def class_scores(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's outputs for the batch ``x`` flattened to (N, outputs): a class's score is
    one column (a SpecNet's logits, without its trailing softmax)."""
    out = first_tensor(model(x))
    if out is None:
        raise ExplainError(f"{type(model).__name__} returned no tensor; a map needs one score "
                           "per class")
    return out.float().flatten(1)


def map_layers(model: nn.Module, volume) -> list[Node]:
    """The nodes Grad-CAM can read: those after the input whose output has maps (more than
    one position)."""
    nodes = network_graph(model, volume).nodes
    return [n for n in nodes[1:]
            if n.name not in (INPUT, OUTPUT) and n.out_volume.sx * n.out_volume.sy > 1]


def default_layer(model: nn.Module, volume) -> Node:
    """Grad-CAM's usual choice: the network's final feature maps (the last node with maps,
    after the last conv layer's pooling, normalisation and activation)."""
    layers = map_layers(model, volume)
    if not layers:
        raise ExplainError("the network has no layer with maps (all are 1x1): Grad-CAM and "
                           "HiResCAM need one; use --method saliency or occlusion")
    return layers[-1]


def resolve_layer(model: nn.Module, volume, layer: int | str | None) -> Node:
    """The node named by ``layer``: its index (a number is read as one), else its dotted
    name, or None for :func:`default_layer`."""
    if layer is None:
        return default_layer(model, volume)
    layers = map_layers(model, volume)
    text = str(layer).strip()
    found = [n for n in layers if text.isdigit() and n.index == int(text)]  # an index first
    found = found or [n for n in layers if n.name == text]
    if not found:
        choices = ", ".join(f"{n.index} ({n.type})" for n in layers) or "none"
        raise ExplainError(f"layer {text} has no maps to explain with: choose one of {choices}")
    return found[0]


def resolve_target(target: int | str | None, classes: list[str], scores: torch.Tensor) -> int:
    """A class by name or index (None: the predicted one, the best of the ``classes``' scores
    in ``scores``, the model's outputs for one input)."""
    count = len(classes) or scores.numel()
    if target is None:
        return int(scores[:count].argmax())
    text = str(target).strip()
    if text in classes:
        return classes.index(text)
    if text.lstrip("-").isdigit() and 0 <= int(text) < count:
        return int(text)
    names = f" ({', '.join(classes)})" if classes and len(classes) <= 20 else ""
    raise ExplainError(f"class {text!r} does not exist: give a class name{names} or an index "
                       f"0..{count - 1}")


def _eval(model: nn.Module) -> Callable[[], None]:
    """Put ``model`` in eval mode; the returned function puts it back."""
    was_training = model.training
    if was_training:
        model.eval()
    return model.train if was_training else (lambda: None)


def _check_input(x: torch.Tensor) -> None:
    if x.dim() != 3:
        raise ExplainError(f"explain one input shaped (depth, height, width), got "
                           f"{tuple(x.shape)}")


def maps_and_gradients(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                       layer: Node) -> tuple[torch.Tensor, torch.Tensor]:
    """Node ``layer``'s output for the batch ``inputs`` (N, D, H, W) and the gradient of each
    input's ``targets`` score (N class indices) with respect to it: float (N, C, h, w), on the
    CPU. The model runs in eval mode, so the inputs do not interact."""
    module = model.get_submodule(layer.name)
    caller, seen = threading.get_ident(), []

    def hook(_module: nn.Module, _args: tuple, output) -> None:
        out = first_tensor(output)
        if threading.get_ident() == caller and not seen and out is not None:
            seen.append(out)

    handle = module.register_forward_hook(hook)
    restore = _eval(model)
    try:
        with torch.enable_grad():
            inputs = inputs.float().to(model_device(model)).requires_grad_(True)  # a graph
            scores = class_scores(model, inputs)
            if not seen:
                raise ExplainError(f"layer {layer.index} ({layer.name}) was not called")
            picked = scores[torch.arange(len(inputs)), torch.as_tensor(targets).long()]
            maps = seen[0]
            (grads,) = torch.autograd.grad(picked.sum(), maps, allow_unused=True)
            grads = torch.zeros_like(maps) if grads is None else grads
    finally:
        handle.remove()
        restore()
    return tuple(t.detach().float().reshape(len(inputs), -1, t.shape[-2], t.shape[-1]).cpu()
                 for t in (maps, grads))


def weigh(maps: torch.Tensor, grads: torch.Tensor, method: str = "gradcam") -> torch.Tensor:
    """Class maps (N, h, w) from a layer's ``maps`` and their gradients (N, C, h, w):
    Grad-CAM weighs each channel by its gradient's spatial mean, HiResCAM each value by its
    own gradient; then the sum over channels, rectified."""
    if method not in LAYER_METHODS:
        raise ExplainError(f"{method!r} does not read a layer: choose one of "
                           f"{', '.join(LAYER_METHODS)}")
    weights = grads.mean(dim=(2, 3), keepdim=True) if method == "gradcam" else grads
    return F.relu((weights * maps).sum(1))


def check_resize(resize: str) -> None:
    if resize not in RESIZES:
        raise ExplainError(f"unknown resize {resize!r}: choose one of {', '.join(RESIZES)}")


def to_input_size(found: torch.Tensor, size: tuple[int, int], resize: str = "bilinear"
                  ) -> torch.Tensor:
    """Layer maps (N, h, w) brought to the input's ``size``: ``bilinear`` (align_corners
    False: each map cell's value lands at the centre of the input patch it covers) or
    ``nearest`` (each cell fills its patch)."""
    check_resize(resize)
    options = {"align_corners": False} if resize == "bilinear" else {}
    return F.interpolate(found[:, None], size=tuple(size), mode=resize, **options)[:, 0]


def _layer_map(model: nn.Module, x: torch.Tensor, target: int, layer: Node, method: str,
               resize: str) -> torch.Tensor:
    _check_input(x)
    maps, grads = maps_and_gradients(model, x[None], torch.tensor([target]), layer)
    if not grads.any():
        raise ExplainError(f"the class score does not change with layer {layer.index} "
                           f"({layer.type}) for this input: the layer feeds another head (such "
                           "as a box) or none of its units reach the score; choose a layer on "
                           "the class's path")
    return to_input_size(weigh(maps, grads, method), x.shape[-2:], resize)[0]


def gradcam(model: nn.Module, x: torch.Tensor, target: int, layer: Node,
            resize: str = "bilinear") -> torch.Tensor:
    """Grad-CAM of ``target`` on node ``layer`` for the input ``x``, at ``x``'s resolution."""
    return _layer_map(model, x, target, layer, "gradcam", resize)


def hirescam(model: nn.Module, x: torch.Tensor, target: int, layer: Node,
             resize: str = "bilinear") -> torch.Tensor:
    """HiResCAM of ``target`` on node ``layer`` for the input ``x``, at ``x``'s resolution:
    the positive part of the maps times their gradients, summed over channels."""
    return _layer_map(model, x, target, layer, "hirescam", resize)


def saliency(model: nn.Module, x: torch.Tensor, target: int, samples: int = SMOOTH_SAMPLES,
             noise: float = SMOOTH_NOISE, seed: int = 0) -> torch.Tensor:
    """SmoothGrad: the mean over ``samples`` copies of ``x`` with Gaussian noise (standard
    deviation ``noise`` times ``x``'s range; seeded) of the score's absolute gradient,
    maximum over channels. ``samples=1, noise=0``: the plain gradient's."""
    _check_input(x)
    if not 1 <= samples <= MAX_SMOOTH_SAMPLES or noise < 0:
        raise ExplainError(f"SmoothGrad needs 1..{MAX_SMOOTH_SAMPLES} samples and noise >= 0, "
                           f"got {samples} and {noise}")
    x = x.cpu() if x.is_floating_point() else x.float().cpu()
    sigma = noise * float(x.max() - x.min())
    generator = torch.Generator().manual_seed(seed)
    noisy = x[None] + sigma * torch.randn(samples, *x.shape, generator=generator, dtype=x.dtype)
    restore = _eval(model)
    try:
        with torch.enable_grad():
            inputs = noisy.to(model_device(model)).requires_grad_(True)
            (grads,) = torch.autograd.grad(class_scores(model, inputs)[:, target].sum(), inputs)
    finally:
        restore()
    return grads.detach().float().abs().amax(1).mean(0).cpu()  # the mean of the copies' maps


def occlusion_window(height: int, width: int) -> tuple[int, int]:
    """The default window side (about a seventh of the input's shorter side, at least 2) and
    stride (half the window)."""
    side = max(2, round(min(height, width) / 7))
    return side, max(1, side // 2)


def _starts(size: int, window: int, stride: int) -> list[int]:
    """Window starts along one side: every ``stride``, the last flush with the edge."""
    starts = list(range(0, max(size - window, 0) + 1, stride))
    if starts[-1] != max(size - window, 0):
        starts.append(size - window)
    return starts


def forward_passes(method: str, samples: int, height: int, width: int) -> int:
    """What a map of ``method`` costs, in forward passes (a backward pass counted as two)."""
    if method == "saliency":
        return 3 * samples
    if method == "occlusion":
        side, stride = occlusion_window(height, width)
        return 1 + len(_starts(height, side, stride)) * len(_starts(width, side, stride))
    return 3


@torch.no_grad()
def occlusion(model: nn.Module, x: torch.Tensor, target: int, window: int | None = None,
              stride: int | None = None) -> torch.Tensor:
    """The drop in ``target``'s score when a ``window`` x ``window`` square is filled with
    ``x``'s per-channel mean, averaged at each pixel over the windows covering it (windows
    every ``stride`` pixels, the last flush with the edge; defaults: :func:`occlusion_window`)."""
    _check_input(x)
    height, width = x.shape[-2:]
    side, step = occlusion_window(height, width)
    window, stride = window or side, stride or step
    if window < 1 or stride < 1:
        raise ExplainError(f"occlusion needs a window and stride of at least 1, got {window} "
                           f"and {stride}")
    window = min(window, height, width)
    x = x.float().to(model_device(model))
    fill = x.mean(dim=(1, 2), keepdim=True)
    places = [(top, left) for top in _starts(height, window, stride)
              for left in _starts(width, window, stride)]
    restore = _eval(model)
    try:
        base = class_scores(model, x[None])[0, target]
        drops = []
        for i in range(0, len(places), OCCLUSION_BATCH):
            batch = x[None].repeat(len(places[i:i + OCCLUSION_BATCH]), 1, 1, 1)
            for j, (top, left) in enumerate(places[i:i + OCCLUSION_BATCH]):
                batch[j, :, top:top + window, left:left + window] = fill
            drops.append(base - class_scores(model, batch)[:, target])
    finally:
        restore()
    total = torch.zeros(height, width, dtype=torch.float64)
    covered = torch.zeros(height, width, dtype=torch.float64)
    for (top, left), drop in zip(places, torch.cat(drops).double().cpu(), strict=True):
        total[top:top + window, left:left + window] += drop
        covered[top:top + window, left:left + window] += 1
    return (total / covered).float()


def explain(model: nn.Module, x: torch.Tensor, method: str = "gradcam",
            target: int | str | None = None, layer: int | str | None = None,
            classes: list[str] | None = None, samples: int = SMOOTH_SAMPLES,
            resize: str = "bilinear") -> Explanation:
    """A map of ``method`` for ``x`` (D, H, W) and class ``target`` (name or index; None: the
    predicted one among the first ``len(classes)`` outputs); ``layer`` (index or dotted name;
    None: :func:`default_layer`) and ``resize`` (:func:`to_input_size`) for Grad-CAM and
    HiResCAM; ``samples``: SmoothGrad's noisy copies."""
    if method not in METHODS:
        raise ExplainError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    _check_input(x)
    volume = volume_of((1, *x.shape))
    node = resolve_layer(model, volume, layer) if method in LAYER_METHODS else None
    check_resize(resize)  # before any pass of the model
    restore = _eval(model)
    try:
        with torch.no_grad():
            scores = class_scores(model, x[None].float().to(model_device(model)))[0].cpu()
    finally:
        restore()
    index = resolve_target(target, list(classes or []), scores)
    if not 0 <= index < scores.numel():
        raise ExplainError(f"class {index} is past the model's {scores.numel()} outputs")
    if method in LAYER_METHODS:
        found = (gradcam if method == "gradcam" else hirescam)(model, x, index, node, resize)
    elif method == "saliency":
        found = saliency(model, x, index, samples, SMOOTH_NOISE if samples > 1 else 0.0)
    else:
        found = occlusion(model, x, index)
    return Explanation(method, found, index, None if node is None else node.index,
                       float(scores[index]))
