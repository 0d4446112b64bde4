"""Figures with matplotlib (the optional extra ``pip install "convscope[plot]"``).

Each function returns a :class:`matplotlib.figure.Figure` made without pyplot (no global
state; it shows itself in a notebook) and takes a run, or what the figure is of:

- :func:`curves`: loss (every logged step, train and validation per epoch) and accuracy
- :func:`confusion`: the confusion matrix of a run or an :class:`~convscope.Evaluation`
- :func:`filters`: a conv layer's filters (the first by default) as images
- :func:`activation_maps`: a layer's activation maps for one input
- the chapter's figures on any spec network: :func:`conv_step` (D1: a filter's window, its
  products and their sum), :func:`layer_maps` (D2: the maps of every layer) and
  :func:`templates` (L1: the first layer's weights as images, with bars to each class)

:func:`save` writes a figure as PNG atomically; a run writes ``curves.png`` and
``confusion.png`` when it finishes (:class:`FigureFiles`).
"""

from __future__ import annotations

import functools
import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ._io import atomic_write
from .callbacks import Callback
from .errors import ConvscopeError
from .extras import require

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .evaluate import Evaluation
    from .model import SpecNet
    from .runs import Run
    from .session import TrainingSession

CURVES, CONFUSION = "curves.png", "confusion.png"  # what a finished run gets


@functools.cache
def _figure_class():
    """matplotlib's Figure, with a PNG display for notebooks; one line naming the extra when
    matplotlib is missing."""
    Figure = require("matplotlib.figure", "plot", feature="plotting").Figure

    class ShownFigure(Figure):
        def _repr_png_(self) -> bytes:
            return png_bytes(self)

    return ShownFigure


def figure(rows: int = 1, columns: int = 1, size: tuple[float, float] = (6.4, 4.0)):
    """A new figure and its grid of axes (a 2-D array)."""
    fig = _figure_class()(figsize=size, layout="constrained")
    return fig, np.atleast_2d(fig.subplots(rows, columns, squeeze=False))


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def save(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write ``fig`` as a PNG file, atomically."""
    data = png_bytes(fig, dpi)
    atomic_write(Path(path), lambda tmp: tmp.write_bytes(data))
    return Path(path)


# ---- a run's numbers ---------------------------------------------------------------------

def curves(run: Run) -> Figure:
    """The run's loss (logged steps, train and validation per epoch) and accuracy by epoch."""
    from .display import step_epochs

    metrics, steps = run.metrics, run.steps
    has_accuracy = any("train_acc" in m or "val_acc" in m for m in metrics)
    fig, axes = figure(1, 2 if has_accuracy else 1, (10 if has_accuracy else 5.5, 3.6))
    loss = axes[0, 0]
    if steps:
        loss.plot(step_epochs(steps), [s["loss"] for s in steps],
                  color="#9ecae1", lw=1, label="train loss (steps)")
    epochs = [m["epoch"] for m in metrics]
    for key, name, colour in (("train_loss", "train loss", "#1f77b4"),
                              ("val_loss", "val loss", "#d62728")):
        _series(loss, epochs, [m.get(key) for m in metrics], name, colour)
    loss.set(xlabel="epoch", ylabel="loss", title="loss")
    loss.legend(fontsize=8)
    if has_accuracy:
        accuracy = axes[0, 1]
        for key, name, colour in (("train_acc", "train", "#1f77b4"),
                                  ("val_acc", "validation", "#d62728")):
            _series(accuracy, epochs, [m.get(key) for m in metrics], name, colour)
        accuracy.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
        accuracy.legend(fontsize=8)
    return fig


def _series(ax, xs: list, ys: list, name: str, colour: str) -> None:
    kept = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
    if kept:
        ax.plot(*zip(*kept, strict=True), marker="o", ms=3, color=colour, label=name)


def confusion(source: Run | Evaluation | dict, normalize: bool = False) -> Figure:
    """The confusion matrix (rows: actual, columns: predicted) of a run's test set, an
    :class:`~convscope.Evaluation` or its ``to_dict()``; ``normalize``: shares of each row."""
    classes, matrix = _confusion_of(source)
    counts = np.asarray(matrix, dtype=np.float64)
    shares = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    k = len(classes)
    side = min(12.0, 2.5 + 0.45 * k)
    fig, axes = figure(1, 1, (side + 1, side))
    ax = axes[0, 0]
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the actual class")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                text = f"{shares[i, j]:.2f}" if normalize else f"{int(counts[i, j])}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7 if k > 12 else 9,
                        color="white" if shares[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), classes, rotation=90 if max(map(len, classes)) > 3 else 0)
    ax.set_yticks(range(k), classes)
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    ax.set(xlabel="predicted", ylabel="actual", title=f"accuracy {100 * accuracy:.2f}%")
    return fig


def _confusion_of(source) -> tuple[list[str], list[list[int]]]:
    from .evaluate import Evaluation
    from .runs import Run

    if isinstance(source, Evaluation):
        return source.classes, source.confusion
    result = ((source.results or {}).get("test") or {}) if isinstance(source, Run) else source
    if not isinstance(result, dict) or "confusion" not in result:
        raise ConvscopeError("no confusion matrix here: it needs a finished classification run "
                             "or an Evaluation")
    return list(result["classes"]), result["confusion"]


# ---- a network's weights and activations -------------------------------------------------

def _net(source: Run | SpecNet) -> SpecNet:
    from .model import SpecNet
    from .runs import Run

    net = source.model if isinstance(source, Run) else source
    if not isinstance(net, SpecNet):
        raise ConvscopeError("figures of layers need a network built from a spec (a SpecNet); "
                             f"got {type(net).__name__}")
    return net


def _first(net: SpecNet, kind: str) -> int:
    for layer in net.layers:
        if layer.type == kind:
            return layer.index
    raise ConvscopeError(f"this network has no {kind} layer")


def _input(net: SpecNet, image) -> tuple[torch.Tensor, torch.Tensor]:
    """``image`` (a path, bytes, PIL picture, array or uint8 tensor) fitted to the network's
    input as the explorer fits an upload: (uint8 picture, model input)."""
    from .augment import to_input
    from .predict import fit_any

    picture = fit_any(image, net.input_volume)
    return picture, to_input(picture[None])[0]


def _grid(count: int, columns: int | None = None) -> tuple[int, int]:
    columns = columns or min(count, 8)
    return -(-count // columns), columns


def _show(ax, image: np.ndarray, title: str = "", cmap: str = "gray", **options) -> None:
    """An image (H, W) or (H, W, 3) on ``ax``, without ticks."""
    ax.imshow(image, cmap=cmap, interpolation="nearest", **options)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def _as_picture(weights: torch.Tensor) -> np.ndarray:
    """A (D, H, W) weight or activation volume as an image: RGB for depth 3, else the mean
    over depth; scaled from its own min to max."""
    array = weights.float().numpy()
    array = array.transpose(1, 2, 0) if array.shape[0] == 3 else array.mean(0)
    low, high = array.min(), array.max()
    return (array - low) / (high - low) if high > low else np.zeros_like(array)


def filters(source: Run | SpecNet, layer: int | None = None, columns: int | None = None) -> Figure:
    """The filters of conv layer ``layer`` (the first conv layer by default) as images: RGB
    for a colour input, else the mean over the input depth; each scaled to its own range."""
    from .probes import layer_weights

    net = _net(source)
    layer = _first(net, "conv") if layer is None else layer
    weights, _ = layer_weights(net, layer)
    rows, cols = _grid(len(weights), columns)
    fig, axes = figure(rows, cols, (1.2 * cols, 1.2 * rows + 0.4))
    for n, ax in enumerate(axes.flat):
        if n < len(weights):
            _show(ax, _as_picture(weights[n]), f"{n}")
        else:
            ax.axis("off")
    fig.suptitle(f"layer {layer} filters ({weights.shape[2]}x{weights.shape[3]})", fontsize=10)
    return fig


def activation_maps(source: Run | SpecNet, image, layer: int, columns: int | None = None,
                    limit: int = 64) -> Figure:
    """The activation maps (one per channel, at most ``limit``) of ``layer`` for ``image``."""
    from .probes import activations

    net = _net(source)
    if not 0 <= layer < len(net.layers):
        raise ConvscopeError(f"layer {layer} does not exist: this network has layers "
                             f"0..{len(net.layers) - 1}")
    _, x = _input(net, image)
    maps = activations(net, x)[layer][:limit]
    rows, cols = _grid(len(maps), columns)
    fig, axes = figure(rows, cols, (1.2 * cols, 1.2 * rows + 0.4))
    for n, ax in enumerate(axes.flat):
        if n < len(maps):
            _show(ax, maps[n].numpy(), f"{n}", cmap="viridis")
        else:
            ax.axis("off")
    fig.suptitle(f"layer {layer}: {net.layers[layer].out_volume}", fontsize=10)
    return fig


def layer_maps(source: Run | SpecNet, image, per_layer: int = 8) -> Figure:
    """The chapter's D2 figure: the input and, for every layer with a spatial output, its
    first ``per_layer`` maps in a row."""
    from .probes import activations

    net = _net(source)
    picture, x = _input(net, image)
    outputs = activations(net, x)
    shown = [i for i, out in enumerate(outputs[1:], 1) if min(out.shape[1:]) > 1]
    fig, axes = figure(len(shown) + 1, per_layer, (1.1 * per_layer, 1.1 * (len(shown) + 1)))
    _show(axes[0, 0], _as_picture(picture.float()), "input")
    for ax in axes[0, 1:]:
        ax.axis("off")
    for row, index in zip(axes[1:], shown, strict=True):
        maps = outputs[index]
        for n, ax in enumerate(row):
            if n < len(maps):
                title = f"{index}: {net.layers[index].type}" if n == 0 else ""
                _show(ax, maps[n].numpy(), title, cmap="viridis")
            else:
                ax.axis("off")
    return fig


def conv_step(source: Run | SpecNet, image, layer: int | None = None, filter: int = 0,  # noqa: A002
              x: int | None = None, y: int | None = None) -> Figure:
    """The chapter's D1 figure: filter ``filter`` of conv layer ``layer`` (the first by
    default) at output (``x``, ``y``) (by default where the filter answers most strongly):
    the layer's input with the window, the patch, the weights, their products and
    sum + bias = output (the first input channel's)."""
    from .probes import activations
    from .probes import conv_step as step_of

    net = _net(source)
    layer = _first(net, "conv") if layer is None else layer
    _, inputs = _input(net, image)
    outputs = activations(net, inputs)
    if x is None or y is None:
        answers = outputs[layer][filter].abs() if filter < len(outputs[layer]) else None
        if answers is not None:
            strongest = int(answers.argmax())
            y, x = divmod(strongest, answers.shape[1])
    step = step_of(net, inputs, layer, filter, x or 0, y or 0)
    source_maps = outputs[layer - 1]
    fig, axes = figure(1, 4, (12, 3.4))
    _show(axes[0, 0], _as_picture(source_maps), f"layer {layer - 1} output")
    height, width = step.patch.shape[1:]
    axes[0, 0].add_patch(_rectangle(step.x0 - 0.5, step.y0 - 0.5, width, height))
    for ax, values, title in ((axes[0, 1], step.patch[0], "patch"),
                              (axes[0, 2], step.weights[0], f"filter {filter} weights"),
                              (axes[0, 3], step.products[0], "patch x weights")):
        signed = ax is not axes[0, 1]
        array = values.numpy()
        limit = float(np.abs(array).max()) or 1.0
        _show(ax, array, title, cmap="RdBu_r" if signed else "gray",
              **({"vmin": -limit, "vmax": limit} if signed else {}))
        if values.numel() <= 49:
            for (i, j), value in np.ndenumerate(array):
                dark = abs(value) > 0.6 * limit if signed else value < 0.5 * limit
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if dark else "black")
    fig.suptitle(f"sum {step.sum:.3f} + bias {step.bias:.3f} = {step.output:.3f}  "
                 f"(layer {layer}, filter {filter}, output ({x or 0}, {y or 0}))", fontsize=10)
    return fig


def _rectangle(x: float, y: float, width: int, height: int):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), width, height, fill=False, edgecolor="#d62728", linewidth=2)


def templates(source: Run | SpecNet, classes: list[str] | None = None,
              limit: int = 16) -> Figure:
    """The chapter's L1 figure: the first fc layer's weights on the input, one image per hidden
    unit (at most ``limit``), and under each the bars of its weights to each class (the next
    fc layer's), where there is one."""
    from .probes import layer_weights

    net = _net(source)
    first = _first(net, "fc")
    weights, _ = layer_weights(net, first)
    later = [layer.index for layer in net.layers[first + 1:] if layer.type == "fc"]
    to_classes = layer_weights(net, later[0])[0].flatten(1) if later else None
    units = min(limit, len(weights))
    count = 0 if to_classes is None else len(to_classes)
    names = classes or getattr(source, "data_info", {}).get("classes") \
        or [str(i) for i in range(count)]
    rows = 2 if to_classes is not None else 1
    fig, axes = figure(rows, units, (1.1 * units, 1.3 * rows + 0.4))
    for n in range(units):
        _show(axes[0, n], _as_picture(weights[n]), f"unit {n}")
        if to_classes is not None:
            bars = to_classes[:, n].numpy()
            axes[1, n].bar(range(len(bars)), bars,
                           color=["#2ca02c" if b > 0 else "#d62728" for b in bars])
            axes[1, n].set_xticks(range(len(bars)), names[:len(bars)], fontsize=5,
                                  rotation=90 if max(map(len, names)) > 2 else 0)
            axes[1, n].set_yticks([])
    fig.suptitle(f"layer {first}: weights of each hidden unit"
                 + (" and its weights to each class" if to_classes is not None else ""),
                 fontsize=10)
    return fig


# ---- a finished run's figures ---------------------------------------------------------

class FigureFiles(Callback):
    """Writes ``curves.png`` and (a classifier's) ``confusion.png`` into a finished run, when
    matplotlib is installed (else nothing)."""

    def on_finish(self, session: TrainingSession, results: dict) -> None:
        if not session.world.main:
            return
        try:
            write_run_figures(session.run)
        except Exception as exc:  # noqa: BLE001 (the run is saved: a figure must not fail it)
            warnings.warn(f"{session.run.path}: no figures drawn ({exc})", stacklevel=1)


def write_run_figures(run: Run) -> list[Path]:
    """``curves.png`` and ``confusion.png`` where the run has what they show; nothing without
    matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return []
    written = []
    if run.metrics:
        written.append(save(curves(run), run.path / CURVES))
    if "confusion" in ((run.results or {}).get("test") or {}):
        written.append(save(confusion(run), run.path / CONFUSION))
    return written
