"""What runs, evaluations, networks and datasets show in a notebook: a one-line ``repr`` and
an HTML display (``_repr_html_``) built from :mod:`convscope.display`."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from .display import confusion_html, image_strip, percent, run_curves, table

if TYPE_CHECKING:
    from .data import Dataset
    from .evaluate import Evaluation
    from .model import SpecNet
    from .runs import Run

REPR_WIDTH = 119  # a repr is one line shorter than this


def shorten(text: str, width: int) -> str:
    """``text``, cut in the middle with "..." when longer than ``width``."""
    if len(text) <= width:
        return text
    keep = width - 3
    return text[:keep // 2] + "..." + text[len(text) - (keep - keep // 2):]


def run_headline(run: Run) -> str:
    """"test accuracy 98.12%", "test mean box IoU 0.9012" or where an unfinished run stands."""
    from .tasks import get_task

    test = (run.results or {}).get("test")
    if isinstance(test, dict):
        try:
            return "test " + get_task(run.config.task).headline(test)
        except (KeyError, TypeError, ValueError):
            pass
    if run.results is not None:
        return "finished"
    return f"unfinished ({len(run.metrics)} of {run.config.epochs} epochs)"


def run_repr(run: Run) -> str:
    config = run.config
    model = config.model if config.model != "<python>" else \
        "a spec" if run.model_info.get("kind") == "spec" else "a Python model"
    tail = (f": {shorten(model, 30)} on {shorten(str(config.data), 20)}, {config.epochs} "
            f"epoch{'' if config.epochs == 1 else 's'}, {run_headline(run)})")
    return f"Run({shorten(str(run.path), REPR_WIDTH - 6 - len(tail))!r}{tail}"


def readable_steps(run: Run) -> list[dict]:
    """The run's steps.jsonl lines; none where it is damaged (the epochs still show)."""
    from .errors import ConvscopeError

    try:
        return run.steps
    except ConvscopeError:
        return []


def model_table(run: Run) -> str:
    """The run's network as ``convscope summary`` prints it (a spec), else its reference."""
    spec = run.model_info.get("spec")
    if isinstance(spec, list):
        from .spec import resolve
        from .summary import summarize

        try:
            return f"<pre style='font-size:11px'>{escape(summarize(resolve(spec)))}</pre>"
        except Exception as exc:  # noqa: BLE001 (a damaged spec: say so, still show the run)
            return f"<p>model: unreadable spec ({escape(str(exc))})</p>"
    about = run.model_info.get("ref") or run.model_info.get("about", {}).get("class", "?")
    return f"<p>model: {escape(str(about))} (Python code)</p>"


def settings_rows(run: Run) -> list[list[str]]:
    config = run.config
    return [["model", config.model], ["data", config.data], ["task", config.task],
            ["epochs", config.epochs], ["batch size", config.batch_size],
            ["optimizer", f"{config.optimizer}, lr {config.lr}, {config.schedule}"],
            ["augment", config.augment], ["seed", config.seed]]


def run_html(run: Run) -> str:
    """The run's settings, result, model table, curves and (a classifier's) confusion
    matrix."""
    parts = [f"<div><p><b>Run</b> <code>{escape(str(run.path))}</code>: "
             f"{escape(run_headline(run))}</p>",
             "<div style='display:flex;gap:24px;align-items:flex-start'>",
             table(["setting", "value"], settings_rows(run), "ll"), model_table(run), "</div>"]
    if run.metrics:
        parts.append(f"<div>{run_curves(run.metrics, readable_steps(run))}</div>")
    test = (run.results or {}).get("test") or {}
    if "confusion" in test and "classes" in test:
        parts.append(confusion_html(test["classes"], test["confusion"]))
    return "".join(parts) + "</div>"


def evaluation_repr(ev: Evaluation) -> str:
    return (f"Evaluation(accuracy {100 * ev.accuracy:.2f}% ({ev.correct:,} / {ev.total:,}), "
            f"{len(ev.classes)} classes)")


def evaluation_html(ev: Evaluation) -> str:
    rows = [[name, percent(r), percent(p), sum(row)] for name, r, p, row in
            zip(ev.classes, ev.recall, ev.precision, ev.confusion, strict=True)]
    return (f"<div><p><b>accuracy {100 * ev.accuracy:.2f}%</b> ({ev.correct:,} of "
            f"{ev.total:,})</p><div style='display:flex;gap:16px;align-items:flex-start'>"
            f"{table(['class', 'recall', 'precision', 'examples'], rows, 'lrrr')}"
            f"{confusion_html(ev.classes, ev.confusion)}</div></div>")


def model_repr(net: SpecNet) -> str:
    params = sum(p.numel() for p in net.parameters())
    layers = net.layers
    text = (f"SpecNet({len(layers)} layers: {layers[0].out_volume} -> "
            f"{layers[-1].out_volume}, {params:,} parameters)")
    return shorten(text, REPR_WIDTH)


def model_html(net: SpecNet) -> str:
    from .summary import summarize

    return f"<pre style='font-size:11px'>{escape(summarize(net.layers))}</pre>"


def dataset_repr(ds: Dataset) -> str:
    width, height, depth = ds.volume
    classes = ", ".join(ds.classes)
    text = (f"Dataset({ds.name!r}, {len(ds):,} images {width}x{height}x{depth}, "
            f"{len(ds.classes)} classes: {classes})")
    return text if len(text) <= REPR_WIDTH else text[:REPR_WIDTH - 4] + "...)"


def dataset_html(ds: Dataset, count: int = 16) -> str:
    """The dataset's size and classes, and its first ``count`` images with their labels."""
    width, height, depth = ds.volume
    shown = min(count, len(ds))
    images = [ds.images[i].numpy() for i in range(shown)]
    labels = [ds.classes[int(ds.labels[i])] for i in range(shown)]
    scale = max(1, 56 // max(height, 1))
    names = ", ".join(ds.classes[:20]) + (", ..." if len(ds.classes) > 20 else "")
    return (f"<div><p><b>Dataset</b> {escape(ds.name)}: {len(ds):,} images of "
            f"{width}x{height}x{depth}, {len(ds.classes)} classes ({escape(names)})</p>"
            f"{image_strip(images, labels, scale) if shown else ''}</div>")
