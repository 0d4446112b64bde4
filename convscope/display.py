"""HTML pieces for notebooks (``_repr_html_``) and ``convscope report``, with no dependency:
tables, a confusion matrix, line charts as inline SVG and images as embedded PNG.

Everything here is self-contained (no script, no stylesheet or font from elsewhere), so a
page made of it opens offline; every text shown is escaped.
"""

from __future__ import annotations

import base64
import io
import math
from html import escape

import numpy as np

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


def table(header: list[str], rows: list[list], align: str = "", title: str = "") -> str:
    """An HTML table; ``align`` has "l" or "r" per column (default: left)."""
    def cells(row: list, tag: str) -> str:
        return "".join(f'<{tag} style="text-align:{"right" if align[i:i + 1] == "r" else "left"}'
                       f';padding:1px 8px">{escape(str(v))}</{tag}>' for i, v in enumerate(row))

    caption = f"<caption style='text-align:left'><b>{escape(title)}</b></caption>" if title else ""
    body = "".join(f"<tr>{cells(row, 'td')}</tr>" for row in rows)
    return (f'<table style="border-collapse:collapse;font-size:12px">{caption}'
            f"<tr>{cells(header, 'th')}</tr>{body}</table>")


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def confusion_html(classes: list[str], confusion: list[list[int]]) -> str:
    """The confusion matrix (rows: actual, columns: predicted), cells shaded by their share of
    the row, with each class's recall and precision."""
    k = len(classes)
    rows_total = [sum(row) for row in confusion]
    cols_total = [sum(confusion[i][j] for i in range(k)) for j in range(k)]
    head = "".join(f'<th style="padding:2px 4px;writing-mode:vertical-rl">{escape(c)}</th>'
                   for c in classes)
    body = []
    for i, row in enumerate(confusion):
        cells = []
        for j, count in enumerate(row):
            share = count / rows_total[i] if rows_total[i] else 0.0
            colour = f"rgba(31,119,180,{share:.3f})" if i == j else f"rgba(214,39,40,{share:.3f})"
            text = "#fff" if share > 0.6 else "#000"
            cells.append(f'<td style="background:{colour};color:{text};text-align:right;'
                         f'padding:2px 4px">{count}</td>')
        recall = row[i] / rows_total[i] if rows_total[i] else None
        body.append(f'<tr><th style="text-align:right;padding:2px 4px">{escape(classes[i])}'
                    f'</th>{"".join(cells)}<td style="padding:2px 6px">{percent(recall)}</td></tr>')
    precision = "".join(
        f'<td style="padding:2px 4px;text-align:right">'
        f'{percent(confusion[j][j] / cols_total[j] if cols_total[j] else None)}</td>'
        for j in range(k))
    return ('<table style="border-collapse:collapse;font-size:11px">'
            '<caption style="text-align:left"><b>confusion matrix</b> (rows: actual, columns: '
            f'predicted)</caption><tr><th></th>{head}<th>recall</th></tr>{"".join(body)}'
            f'<tr><th style="text-align:right">precision</th>{precision}<td></td></tr></table>')


def png_uri(image: np.ndarray, scale: int = 1) -> str:
    """A ``data:image/png;base64,...`` URI of a uint8 image (H, W), (H, W, 3) or (C, H, W)
    with 1 or 3 channels, each pixel ``scale`` times larger."""
    from PIL import Image

    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[2] not in (1, 3):
        array = array.transpose(1, 2, 0)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    picture = Image.fromarray(array)
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale),
                                 Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def image_strip(images: list[np.ndarray], labels: list[str], scale: int = 2) -> str:
    """Images side by side, each with its label underneath."""
    figures = "".join(
        f'<figure style="display:inline-block;margin:2px;text-align:center;font-size:10px">'
        f'<img src="{png_uri(image, scale)}" style="image-rendering:pixelated"'
        f' alt="{escape(label)}"><figcaption>{escape(label)}</figcaption></figure>'
        for image, label in zip(images, labels, strict=True))
    return f"<div>{figures}</div>"


def to_uint8(weights: np.ndarray) -> np.ndarray:
    """Weights (any range) as a uint8 image: each array scaled from its own min to max."""
    weights = np.asarray(weights, dtype=np.float64)
    low, high = weights.min(), weights.max()
    scaled = (weights - low) / (high - low) if high > low else np.zeros_like(weights)
    return (255 * scaled).round().astype(np.uint8)


def line_chart(series: list[tuple[str, list[float], list[float]]], x_label: str,
               title: str, width: int = 420, height: int = 200) -> str:
    """An inline SVG line chart of ``(name, xs, ys)`` series (a series of one point is a
    dot), with axes, ticks and a legend."""
    points = [(x, y) for _, xs, ys in series for x, y in zip(xs, ys, strict=True)
              if y is not None and math.isfinite(y)]
    if not points:
        return ""
    left, right, top, bottom = 48, 10, 22, 30
    x0, x1 = _span([x for x, _ in points])
    y0, y1 = _span([y for _, y in points])

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def py(y: float) -> float:
        return height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)

    parts = [f'<svg width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="10" role="img"><title>{escape(title)}</title>',
             f'<text x="{left}" y="13" font-size="12" font-weight="bold">{escape(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{width - left - right}" '
             f'height="{height - top - bottom}" fill="none" stroke="#999"/>']
    for tick in _ticks(y0, y1):
        parts.append(f'<text x="{left - 4}" y="{py(tick) + 3:.1f}" text-anchor="end">'
                     f'{tick:.3g}</text>')
    for tick in _ticks(x0, x1):
        parts.append(f'<text x="{px(tick):.1f}" y="{height - bottom + 12}" '
                     f'text-anchor="middle">{tick:.3g}</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 4}" '
                 f'text-anchor="middle">{escape(x_label)}</text>')
    legend = "".join(f'<tspan fill="{COLOURS[n % len(COLOURS)]}" dx="8">{escape(name)}</tspan>'
                     for n, (name, _, _) in enumerate(series))
    parts.append(f'<text x="{width - right}" y="13" text-anchor="end">{legend}</text>')
    for n, (_, xs, ys) in enumerate(series):
        colour = COLOURS[n % len(COLOURS)]
        kept = [(px(x), py(y)) for x, y in zip(xs, ys, strict=True)
                if y is not None and math.isfinite(y)]
        if len(kept) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in kept)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                         f'stroke-width="1.5"/>')
        if len(kept) < 20:
            parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>'
                      for x, y in kept]
    return "".join(parts) + "</svg>"


def _span(values: list[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    if high - low < 1e-12:
        return low - 0.5, high + 0.5
    pad = (high - low) * 0.05
    return low - pad, high + pad


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values within [low, high]."""
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if raw <= m * step)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def step_epochs(steps: list[dict]) -> list[float]:
    """Where each line of steps.jsonl lies in epochs (epoch 1 ends at 1.0)."""
    return [s["epoch"] - 1 + s.get("step", 0) / max(1, s.get("steps_per_epoch") or 1)
            for s in steps]


def run_curves(metrics: list[dict], steps: list[dict]) -> str:
    """The loss chart (steps, train and validation per epoch) and, where there is one, the
    accuracy chart of a run, as inline SVG."""
    epochs = [m["epoch"] for m in metrics]
    loss = [("train loss (steps)", step_epochs(steps),
             [s["loss"] for s in steps])] if steps else []
    loss.append(("train loss", epochs, [m.get("train_loss") for m in metrics]))
    if any("val_loss" in m for m in metrics):
        loss.append(("val loss", epochs, [m.get("val_loss") for m in metrics]))
    accuracy = [(name, epochs, [m.get(key) for m in metrics])
                for key, name in (("train_acc", "train accuracy"), ("val_acc", "val accuracy"))
                if any(key in m for m in metrics)]
    charts = [line_chart(loss, "epoch", "loss")]
    if accuracy:
        charts.append(line_chart(accuracy, "epoch", "accuracy"))
    return "".join(charts)
