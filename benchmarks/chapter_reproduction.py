"""The chapter's numbers recomputed from its ConvNetJS files (``<data-dir>/ml4a/``): the CIFAR-10
convnet's summary reproduced exactly, every shipped snapshot's accuracy on the official test
set, and which stored summaries any shipped snapshot regenerates.

Every network runs as ConvNetJS runs it (float64, first maximum); inputs are ``byte/255 - 0.5``
plus the input offset (0.5: ``byte/255``, as ConvNetJS's own MNIST demo fed its networks).
Prints markdown; ``--write-doc`` also writes it as the "chapter_reproduction" section of
docs/chapter.md.

    python benchmarks/chapter_reproduction.py --data-dir ../shared/data --write-doc
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import torch
from _report import command_line, machine

from convscope.convnetjs import (
    predict_float64,
    read_snapshot,
    read_summary,
    reproduce,
    summary_dataset,
)
from convscope.data import load_dataset, resolve_data_dir
from convscope.evaluate import evaluate

DOC = Path(__file__).resolve().parent.parent / "docs" / "chapter.md"
SECTION = "chapter_reproduction"
CIFAR_NET, CIFAR_SUMMARY = "cifar10_snapshot_convnet.json", "cifar10_summary_convnet.json"
# (input offset, fit) variants: fit "crop" centre-crops larger images (convscope), "convnetjs"
# feeds them whole (ConvNetJS reads conv/pool outputs from the top-left: the ml4a demos)
VARIANTS = {"mnist": [(0.0, "crop"), (0.0, "convnetjs"), (0.5, "crop"), (0.5, "convnetjs")],
            "cifar10": [(0.0, "crop")]}


def variants(snapshot_path: Path, dataset: str) -> list[tuple[float, str]]:
    declared = read_snapshot(snapshot_path).model().input_volume.sx
    native = {"mnist": 28, "cifar10": 32}[dataset]
    return [(o, f) for o, f in VARIANTS[dataset] if declared != native or f == "crop"]


def describe(offset: float, fit: str, declared: int) -> str:
    inputs = "byte/255" if offset == 0.5 else "byte/255 - 0.5"
    if declared in (28, 32):
        return inputs
    return inputs + (", centre 24x24 crop" if fit == "crop" else ", whole 28x28 (ml4a demos)")


def reproduction(ml4a: Path, data_dir: Path) -> str:
    model = read_snapshot(ml4a / CIFAR_NET).model()
    summary = read_summary(ml4a / CIFAR_SUMMARY)
    samples = summary_dataset(summary, data_dir)
    start = time.perf_counter()
    result = reproduce(model, summary, samples)
    seconds = time.perf_counter() - start
    float32 = evaluate(read_snapshot(ml4a / CIFAR_NET).model(torch.float32), samples).correct
    same = "identical" if result.confusion == summary.confusion else "DIFFERENT"
    right = result.predictions == samples.labels
    held_out = torch.tensor([i % 10 == 0 for i in summary.samples])  # the CIFAR demo's validation
    return "\n".join([
        "### The CIFAR-10 convnet's summary, reproduced", "",
        f"`{CIFAR_NET}` on CIFAR-10 training images {summary.samples.start:,}-"
        f"{summary.samples.stop - 1:,} (official order), as ConvNetJS computes it:", "",
        "| | stored (`" + CIFAR_SUMMARY + "`) | convscope |", "|---|---:|---:|",
        f"| correct / total | {summary.correct:,} / {summary.total:,} | "
        f"{result.correct:,} / {sum(map(sum, result.confusion)):,} |",
        f"| confusion matrix | | {same} |",
        f"| `tops` entries in the same cell | {result.tops_checked:,} | "
        f"{result.tops_checked - result.tops_mismatched:,} |",
        f"| largest probability difference | | {result.max_prob_diff:.1e} |", "",
        f"Exact reproduction: **{'yes' if result.exact else 'NO'}** ({seconds:.0f} s in float64). "
        f"convscope's ordinary float32 evaluation (`convscope eval`) counts {float32:,} correct.",
        "", "Accuracy on these samples split the way ConvNetJS's CIFAR-10 demo splits its "
        "training images (every index divisible by 10 held out for validation): "
        f"{100 * right[held_out].float().mean():.1f}% on the {int(held_out.sum()):,} held-out "
        f"ones, {100 * right[~held_out].float().mean():.1f}% on the other "
        f"{int((~held_out).sum()):,}.",
    ])


def test_accuracies(ml4a: Path, data_dir: Path) -> str:
    rows = ["| snapshot | input | official test set (10,000) | first 1,000 test images* |",
            "|---|---|---:|---:|"]
    for path in sorted(ml4a.glob("*_snapshot*.json")):
        dataset = path.name.split("_", 1)[0]
        test = load_dataset(dataset, "test", data_dir=data_dir)
        for offset, fit in variants(path, dataset):
            model = read_snapshot(path, input_offset=offset).model()
            preds, _ = predict_float64(model, test.images, fit)
            right = preds == test.labels
            rows.append(f"| `{path.name}` | {describe(offset, fit, model.input_volume.sx)} | "
                        f"{100 * right.float().mean():.2f}% | "
                        f"{100 * right[:1000].float().mean():.1f}% |")
    return ("### Every shipped snapshot on the official test set\n\n" + "\n".join(rows)
            + "\n\n\\* for CIFAR-10: the test batch of ConvNetJS's CIFAR-10 demo (ml4a's "
            "`cifar10_batch_50.png`)")


def cells_off(a: list[list[int]], b: list[list[int]]) -> int:
    return int((torch.tensor(a) - torch.tensor(b)).abs().sum())


def regenerated(ml4a: Path, data_dir: Path) -> str:
    rows = ["| summary | stored correct | exactly regenerated by | closest (cells off) |",
            "|---|---:|---|---|"]
    for path in sorted(ml4a.glob("*_summary_*.json")):
        summary = read_summary(path)
        samples = summary_dataset(summary, data_dir)
        exact, best = [], None
        for net in sorted(ml4a.glob(f"{summary.dataset}_snapshot*.json")):
            for offset, fit in variants(net, summary.dataset):
                model = read_snapshot(net, input_offset=offset).model()
                result = reproduce(model, summary, samples, fit)
                off = cells_off(result.confusion, summary.confusion)
                label = f"`{net.name}` ({describe(offset, fit, model.input_volume.sx)})"
                if result.exact:
                    exact.append(label)
                if best is None or off < best[0]:
                    best = (off, label)
        rows.append(f"| `{path.name}` | {summary.correct:,} | {', '.join(exact) or 'none'} | "
                    f"{best[1]} ({best[0]:,}) |")
    return ("### Which stored summaries a shipped snapshot regenerates\n\n"
            "\"cells off\": the sum of absolute differences between the confusion matrices.\n\n"
            + "\n".join(rows))


def write_doc(body: str) -> None:
    """Replace the generated section of docs/chapter.md (between its markers)."""
    begin, end = f"<!-- begin {SECTION} -->", f"<!-- end {SECTION} -->"
    text = DOC.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{DOC} has no {begin} ... {end} section to replace")
    DOC.write_text(pattern.sub(lambda _: f"{begin}\n{body.strip()}\n{end}", text),
                   encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="folder with ml4a/, mnist/ and "
                        "cifar-10-batches-bin/ (default: $CONVSCOPE_DATA)")
    parser.add_argument("--write-doc", action="store_true",
                        help="also write the result into docs/chapter.md")
    args = parser.parse_args()
    data_dir = resolve_data_dir(args.data_dir)
    ml4a = data_dir / "ml4a"
    body = "\n\n".join([reproduction(ml4a, data_dir), test_accuracies(ml4a, data_dir),
                        regenerated(ml4a, data_dir),
                        f"Measured on {machine()} with `{command_line()}`."])
    print(body)
    if args.write_doc:
        write_doc(body)


if __name__ == "__main__":
    main()
