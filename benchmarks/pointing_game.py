"""The pointing game (Zhang et al. 2016) for ``convscope explain``'s maps: on the localization
scenes (``convscope.scenes``: one MNIST test digit, 20-44 px, anywhere on a 64x64 canvas),
the fraction of test scenes whose map's maximum (its first, where tied) falls inside the
digit's true box, explaining the true class.

Two networks are scored: the class head of the bundled ``mnist-localizer`` (trained with the
box, so it was told where digits are) and a plain classifier that never saw a box, trained
here for a few minutes on localization scenes from MNIST's TRAINING digits with their class
only. Baselines: always pointing at the canvas's centre, and the expected hit rate of a point
drawn uniformly at random (the boxes' mean share of the canvas). Nothing is tuned on the test
scenes: every method runs with its defaults (Grad-CAM on the final feature maps, SmoothGrad with
16 copies, occlusion windows of 9 px every 4 px).

    CONVSCOPE_DATA=... python benchmarks/pointing_game.py [--count 300] [--write-doc]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from _report import command_line, machine, write_section

from convscope.augment import to_input
from convscope.data import train_val_split
from convscope.explain import METHODS, explain
from convscope.model import build_model
from convscope.runs import open_run
from convscope.scenes import scene_dataset

FILTERS = (8, 16, 32)
PLAIN_SPEC = [{"type": "input", "sx": 64, "sy": 64, "depth": 1},
              *[layer for filters in FILTERS for layer in (
                  {"type": "conv", "sx": 3, "filters": filters, "pad": 1, "bias": False},
                  {"type": "batchnorm"}, {"type": "relu"}, {"type": "pool", "sx": 2})],
              {"type": "conv", "sx": 3, "filters": 32, "pad": 1, "bias": False},
              {"type": "batchnorm"}, {"type": "relu"},
              {"type": "global_pool", "kind": "avg"},
              {"type": "softmax", "num_classes": 10}]
LR = 5e-3
NOTE = ("Grad-CAM misses the 90 % goal on both networks: it reads the final feature maps, 4x4 "
        "on mnist-localizer (16 px cells, and a fully connected head that weighs each position "
        "differently, which Grad-CAM's per-channel mean gradient ignores) and 8x8 on the plain "
        "classifier (8 px cells), so after the bilinear resize its maximum sits near a cell's "
        "centre, which can miss small digits; an earlier layer can be chosen (`--layer`). "
        "Occlusion, probing at 4 px steps, points best on both.")  # true of the numbers above


def train_plain(scenes: int, epochs: int, seed: int) -> tuple[torch.nn.Module, float]:
    """The plain classifier (:data:`PLAIN_SPEC`) trained with Adam on ``scenes`` training
    scenes' images and classes (a tenth held out): the network and its validation accuracy."""
    torch.manual_seed(seed)
    train, val = train_val_split(scene_dataset("localize", "train", scenes), 0.1, seed=0)
    net = build_model(PLAIN_SPEC)
    steps = epochs * (len(train) // 64)
    optimizer = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, LR, total_steps=steps)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(train))
        for i in range(0, len(train) - 63, 64):
            batch = order[i:i + 64]
            loss = F.cross_entropy(net(to_input(train.images[batch])), train.labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    net.eval()
    with torch.no_grad():
        right = (net(to_input(val.images)).argmax(1) == val.labels).float().mean().item()
    return net, right


def inside(point: tuple[int, int], box: torch.Tensor) -> bool:
    """Whether pixel (row, column) lies in the box (x, y, w, h) (its centre inside)."""
    (row, column), (x, y, w, h) = point, box.tolist()
    return x <= column + 0.5 <= x + w and y <= row + 0.5 <= y + h


def pointing(net: torch.nn.Module, test, method: str) -> tuple[float, float]:
    """The hit rate of ``method`` on ``net`` over the ``test`` scenes and seconds per map."""
    hits, start = 0, time.perf_counter()
    classes = [str(k) for k in range(10)]
    for image, label, box in zip(test.images, test.labels, test.targets["boxes"][:, 0],
                                 strict=True):
        found = explain(net, to_input(image), method, int(label), classes=classes).map
        hits += inside(divmod(int(found.argmax()), found.shape[1]), box)
    return hits / len(test), (time.perf_counter() - start) / len(test)


def baselines(test) -> tuple[float, float]:
    """The centre's hit rate and a uniformly random point's expected one."""
    size = test.images.shape[-1]
    centre = sum(inside((size // 2, size // 2), box) for box in test.targets["boxes"][:, 0])
    boxes = test.targets["boxes"][:, 0]
    share = (boxes[:, 2] * boxes[:, 3]).mean().item() / size**2
    return centre / len(test), share


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300, help="test scenes (default 300)")
    parser.add_argument("--train-scenes", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-doc", action="store_true")
    args = parser.parse_args()
    test = scene_dataset("localize", "test", args.count)
    start = time.perf_counter()
    plain, val_accuracy = train_plain(args.train_scenes, args.epochs, args.seed)
    trained_s = time.perf_counter() - start
    print(f"plain classifier: validation accuracy {100 * val_accuracy:.1f}% "
          f"({trained_s:.0f} s)", flush=True)
    nets = {"mnist-localizer (class head)": open_run("mnist-localizer").model,
            "plain classifier trained on the scenes": plain}
    rows = []
    for name, net in nets.items():
        with torch.no_grad():
            right = (net(to_input(test.images)).flatten(1)[:, :10].argmax(1) == test.labels)
        scores = {}
        for method in METHODS:
            scores[method] = pointing(net, test, method)
            print(f"  {name}: {method} {100 * scores[method][0]:.1f}%", flush=True)
        print(name, {m: f"{100 * hit:.1f}%" for m, (hit, _) in scores.items()}, flush=True)
        rows.append(f"| {name} | {100 * right.float().mean():.1f}% | "
                    + " | ".join(f"{100 * hit:.1f}% ({1000 * s:.0f} ms)"
                                 for hit, s in scores.values()) + " |")
    centre, random_share = baselines(test)
    body = "\n".join([
        "## Pointing game: where the maps point (`benchmarks/pointing_game.py`)", "",
        f"{args.count} localization test scenes (one MNIST test digit per 64x64 canvas); a hit "
        "when the map's maximum falls inside the digit's true box, explaining the true class. "
        "Time per map in brackets (CPU, one process, on a machine shared with other jobs: "
        "indicative only).", "",
        "| network | class accuracy | Grad-CAM | saliency (SmoothGrad) | occlusion |",
        "|---|---|---|---|---|", *rows, "",
        f"Baselines: always the centre {100 * centre:.1f}%; a uniformly random point "
        f"{100 * random_share:.1f}% (the boxes' mean share of the canvas).", "",
        NOTE, "",
        f"The plain classifier ({', '.join(str(f) for f in FILTERS)} filters, 3x3 conv + batch "
        "norm + ReLU + 2x2 pool each, a 3x3 conv of 32 + batch norm + ReLU at 8x8, global "
        "average pooling, fc 10: the usual all-conv classifier) was trained here on "
        f"{args.train_scenes:,} "
        f"scenes from MNIST's training digits ({args.epochs} epochs, AdamW, one-cycle {LR}, "
        f"{trained_s:.0f} s), validation accuracy {100 * val_accuracy:.1f}%; it never saw a "
        "box.", "",
        f"Machine: {machine()}.", f"Command: `{command_line()}`",
    ])
    print(body)
    if args.write_doc:
        write_section("pointing-game", body)


if __name__ == "__main__":
    main()
