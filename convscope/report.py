"""``convscope report RUN``: one self-contained HTML page about a run, opening offline.

The page holds the run's settings, machine and data, its curves, the test scores (per class
and the confusion matrix), the first layer's weights and the test examples most often
confused; its pictures are embedded (inline SVG, base64 PNG), and it loads nothing.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import torch
import yaml

from . import __version__
from ._io import write_text_atomic
from .display import confusion_html, image_strip, percent, run_curves, table, to_uint8
from .errors import ConvscopeError
from .notebook import model_table, readable_steps, run_headline
from .runs import CONFIG, Run, open_run

STYLE = ("body{font-family:sans-serif;margin:24px;max-width:1100px;color:#222}"
         "h1{font-size:20px}h2{font-size:16px;margin-top:28px;border-bottom:1px solid #ddd}"
         "code,pre{font-size:12px}.row{display:flex;gap:24px;flex-wrap:wrap;"
         "align-items:flex-start}.note{color:#666;font-size:12px}")


def write_report(run: str | Path, out: str | Path | None = None, data_dir: str | None = None,
                 trust_code: bool = False, examples: int = 16) -> Path:
    """Write the report of ``run`` (a run directory or a bundled model's name) to ``out``
    (default: ``report.html`` in the run directory, or ``<name>-report.html`` here for a
    bundled model) and return its path."""
    loaded = open_run(run, trust_code=trust_code)
    if out is None:
        out = loaded.path / "report.html" if Path(run).exists() else Path(f"{run}-report.html")
    out = Path(out)
    write_text_atomic(out, report_html(loaded, data_dir, examples, name=str(run)))
    return out


def report_html(run: Run, data_dir: str | None = None, examples: int = 16,
                name: str | None = None) -> str:
    """The report page of ``run`` (called ``name``, by default its path); ``data_dir``: where
    its test set is (for the examples)."""
    sections = [
        f"<h1>convscope report: <code>{escape(name or str(run.path))}</code></h1>"
        f"<p><b>{escape(run_headline(run))}</b></p>",
        "<div class='row'><div><h2>Settings</h2>"
        + table(["setting", "value"], [[k, _text(v)] for k, v in run.config.to_dict().items()],
                "ll")
        + "</div><div><h2>Machine</h2>" + _machine(run) + "<h2>Data</h2>" + _data(run)
        + "</div></div>",
        "<h2>Model</h2>" + model_table(run),
    ]
    if run.metrics:
        sections.append("<h2>Curves</h2><div class='row'>"
                        + run_curves(run.metrics, readable_steps(run)) + "</div>")
    sections.append("<h2>Test results</h2>" + _results(run))
    model = _model(run)
    if isinstance(model, str):
        sections.append(f"<h2>First layer</h2><p class='note'>{escape(model)}</p>")
    else:
        sections.append("<h2>First layer</h2>" + _first_layer(model))
        sections.append("<h2>Most confused test examples</h2>"
                        + _confused(run, model, data_dir, examples))
    body = "".join(sections)
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>convscope report: {escape(Path(name or run.path).name)}</title>"
            f"<style>{STYLE}</style>"
            f"</head><body>{body}<p class='note'>made by convscope {__version__}</p>"
            "</body></html>")


def _text(value) -> str:
    return "-" if value is None else str(value)


def _environment(run: Run) -> dict | None:
    """Where the run was tested (results.json), else where it started (config.yaml)."""
    env = (run.results or {}).get("environment")
    if isinstance(env, dict):
        return env
    try:
        env = yaml.safe_load((run.path / CONFIG).read_text(encoding="utf-8"))["environment"]
    except (OSError, yaml.YAMLError, KeyError, TypeError, UnicodeDecodeError):
        return None
    return env if isinstance(env, dict) else None


def _machine(run: Run) -> str:
    env = _environment(run)
    if env is None:
        return "<p class='note'>not recorded</p>"
    rows = [[key, _text(env[key])] for key in ("convscope", "torch", "python", "machine",
                                               "threads", "precision") if key in env]
    cpu = env.get("cpu")
    if isinstance(cpu, dict):
        rows += [[f"cpu {key}", _text(value)] for key, value in cpu.items()]
    return table(["", ""], rows, "ll")


def _data(run: Run) -> str:
    info = run.data_info
    classes = info.get("classes") or []
    rows = [["name", info.get("name")], ["input (W, H, D)", info.get("input")],
            ["train / val / test", f"{info.get('train')} / {info.get('val')} / "
                                   f"{info.get('test')}"],
            ["classes", ", ".join(map(str, classes[:40])) + (" ..." if len(classes) > 40
                                                              else "")]]
    return table(["", ""], [[k, _text(v)] for k, v in rows], "ll")


def _results(run: Run) -> str:
    test = (run.results or {}).get("test")
    if not isinstance(test, dict):
        return "<p class='note'>no test scores (the run has not finished)</p>"
    if "confusion" not in test or "classes" not in test:
        from .tasks import get_task

        return f"<pre>{escape(get_task(run.config.task).report(test))}</pre>"
    totals = [sum(row) for row in test["confusion"]]
    rows = [[name, percent(r), percent(p), n] for name, r, p, n in
            zip(test["classes"], test["recall"], test["precision"], totals, strict=True)]
    return ("<div class='row'>" + table(["class", "recall", "precision", "examples"], rows,
                                        "lrrr", "per class")
            + confusion_html(test["classes"], test["confusion"]) + "</div>")


def _model(run: Run):
    """The run's network, or a sentence saying why there is none to show."""
    from .model import SpecNet

    try:
        model = run.model
    except ConvscopeError as exc:
        return f"the network cannot be loaded: {exc}"
    if not isinstance(model, SpecNet):
        return "the network is Python code, not a spec: no layer pictures"
    return model


def _first_layer(model) -> str:
    """The first weighted layer's weights as pictures: conv filters, or an fc layer's weights
    on the input as one template per hidden unit."""
    from .probes import has_weights, layer_weights

    layer = next((la for la in model.layers if has_weights(la)), None)
    if layer is None:
        return "<p class='note'>no layer with weights</p>"
    weights, _ = layer_weights(model, layer.index)
    shown = weights[:64]
    pictures = [to_uint8(w.numpy() if w.shape[0] == 3 else w.mean(0).numpy()) for w in shown]
    scale = max(1, 48 // max(weights.shape[-1], 1))
    kind = "filters" if layer.type == "conv" else "weights of each hidden unit"
    more = f" (the first {len(shown)} of {len(weights)})" if len(weights) > len(shown) else ""
    return (f"<p>layer {layer.index}: {escape(layer.type)}, {kind}{more}</p>"
            + image_strip(pictures, [str(n) for n in range(len(shown))], scale))


def _test_set(run: Run, data_dir: str | None):
    """The run's test set from ``data_dir`` (or the run's, or $CONVSCOPE_DATA) without
    downloading, else the bundled sample of it; None when neither is here."""
    from .bundle import bundled_sample
    from .data import load_dataset

    try:
        return load_dataset(run.config.data, "test", data_dir=data_dir or run.config.data_dir,
                            download=False), "the test set"
    except (ConvscopeError, OSError):
        sample = bundled_sample(run.config.data)
        return (sample, "the bundled sample of the test set") if sample is not None else \
            (None, "")


def _confused(run: Run, model, data_dir: str | None, count: int) -> str:
    """The test examples of the most frequent mistakes (actual -> predicted), most confident
    first, a few per confused pair."""
    from .probes import confusion_with_samples
    from .tasks import get_task

    if not get_task(run.config.task).classifies:
        return "<p class='note'>only for classifiers</p>"
    dataset, where = _test_set(run, data_dir)
    if dataset is None:
        return ("<p class='note'>the test set is not here: give --data-dir (or "
                "$CONVSCOPE_DATA)</p>")
    with torch.no_grad():
        found = confusion_with_samples(model, dataset, per_cell=count)
    matrix, classes = found.evaluation.confusion, found.evaluation.classes
    pairs = sorted(((matrix[a][p], a, p) for a in range(len(classes))
                    for p in range(len(classes)) if a != p and matrix[a][p]), reverse=True)
    images, labels = [], []
    per_pair = max(1, count // 4)
    for _, actual, predicted in pairs:
        for index, confidence in found.cells[actual][predicted][:per_pair]:
            images.append(dataset.images[index].numpy())
            labels.append(f"{classes[actual]} → {classes[predicted]} "
                          f"{100 * confidence:.0f}%")
        if len(images) >= count:
            break
    if not images:
        return f"<p class='note'>no mistakes on {where}</p>"
    scale = max(1, 64 // dataset.images.shape[-1])
    return (f"<p class='note'>from {escape(where)} ({len(dataset):,} images): actual → "
            f"predicted, confidence</p>" + image_strip(images[:count], labels[:count], scale))

