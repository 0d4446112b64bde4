"""Photos of handwritten digits: do the bundled MNIST networks keep their accuracy when the
digit is a photo of dark ink on white paper rather than MNIST's own picture?

Each of the 10,000 official MNIST test digits becomes a photo-like 640x480 JPEG: the digit as
dark ink (MNIST's grey levels as ink coverage) on off-white paper, at a random size (80 to 360
px tall) and position, under uneven lighting (a linear gradient and a vignette), with paper
texture (blotches and grain) and a slight blur, saved at JPEG quality 75-92 (seeded, into a
temporary folder). Each photo is then classified through ``convscope predict``'s own functions
(``convscope.predict.predict_one``: the explorer's one fit, with the MNIST catalogue entry's
polarity and centring) and compared with the label; the same networks are scored on the clean
test images (MNIST's own pixels). Also shown: the photos through the plain fit (no inversion,
no centring), what ``predict`` did before.

The thresholds of ``convscope.photos`` were chosen on photos of MNIST's TRAINING digits
(``--split train --count 3000 --seed 1``), never on the test photos scored here.

    python benchmarks/photo_digits.py [--count 10000] [--write-doc]
    python benchmarks/photo_digits.py --split train --count 3000 --seed 1   # development
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _report import command_line, machine, write_section
from PIL import Image, ImageFilter

from convscope.data import load_dataset
from convscope.images import PLAIN, fit_image_bytes
from convscope.predict import input_volume, predict_one
from convscope.runs import open_run
from convscope.tasks import get_task

FRAME = (640, 480)
MODELS = ("mnist-convnetjs", "mnist-ordinary")  # the bundled MNIST classifiers
TEST_SEED = 2024


def photo(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A 640x480 RGB photo-like picture of the MNIST ``digit`` (uint8 28x28, light on dark)
    written in dark ink on paper."""
    width, height = FRAME
    angle = rng.uniform(0, 2 * np.pi)
    light = 1 + rng.uniform(0.1, 0.4) * (np.cos(angle) * _XS + np.sin(angle) * _YS)  # gradient
    cx, cy = rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2)
    light *= 1 - rng.uniform(0.2, 0.8) * ((_XS - cx) ** 2 * 0.64 + (_YS - cy) ** 2 * 0.36)
    blotches = np.asarray(Image.fromarray(rng.normal(0, 1, (12, 16)).astype(np.float32), "F")
                          .resize(_FIELD[::-1], Image.Resampling.BICUBIC))
    paper = rng.uniform(205, 245)
    field = ((paper + rng.uniform(3, 10) * blotches) * light).astype(np.float32)
    grey = np.asarray(Image.fromarray(field, "F").resize(FRAME, Image.Resampling.BILINEAR))
    grey = grey + rng.standard_normal((height, width), np.float32) * np.float32(
        rng.uniform(2, 7))  # the paper's grain, the sensor's noise
    side = int(rng.integers(80, 361))  # the 28x28 field's height in the photo
    x, y = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
    cover = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC),
                       np.float32) / 255
    dark = np.float32(1 - rng.uniform(20, 80) / paper)  # the ink's darkness
    grey[y:y + side, x:x + side] *= 1 - dark * cover
    blurred = Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(rng.uniform(0.4, 1.4)))
    tint = (1.0, rng.uniform(0.96, 1.0), rng.uniform(0.86, 0.97))  # warm paper, warm light
    return Image.merge("RGB", [blurred.point(lambda v, t=t: round(v * t)) for t in tint])


_FIELD = (120, 160)  # lighting and blotches are smooth: made at 160x120, scaled up
_YS, _XS = np.mgrid[0:_FIELD[0], 0:_FIELD[1]] / np.array(_FIELD)[:, None, None] - 0.5


def write_photos(images: torch.Tensor, folder: Path, seed: int) -> list[Path]:
    """Each uint8 (1, 28, 28) image as a photo JPEG in ``folder`` (seeded, one after another)."""
    rng = np.random.default_rng(seed)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"digit_{i:05d}.jpg"
        out = io.BytesIO()
        photo(image[0].numpy(), rng).save(out, "JPEG", quality=int(rng.integers(75, 93)))
        path.write_bytes(out.getvalue())
        paths.append(path)
    return paths


def clean_accuracy(run, images: torch.Tensor, labels: torch.Tensor) -> float:
    """The network's accuracy on MNIST's own pixels, through the task's prediction."""
    task, correct = get_task(run.config.task), 0
    classes = [str(c) for c in run.data_info["classes"]]
    with torch.inference_mode():
        for image, label in zip(images, labels.tolist(), strict=True):
            probabilities = task.prediction(run.model, image, classes)["probabilities"]
            correct += int(int(np.argmax(probabilities)) == label)
    return correct / len(labels)


def photo_accuracy(run, paths: list[Path], labels: torch.Tensor) -> float:
    """The accuracy of ``convscope predict``'s path (``predict_one``) on the photos."""
    hits = [predict_one(run, path, top=1).classes[0][0] == str(label)
            for path, label in zip(paths, labels.tolist(), strict=True)]
    return sum(hits) / len(hits)


def plain_accuracy(run, paths: list[Path], labels: torch.Tensor) -> float:
    """The accuracy on the photos through the plain fit (no inversion, no centring)."""
    task, volume, correct = get_task(run.config.task), input_volume(run), 0
    classes = [str(c) for c in run.data_info["classes"]]
    with torch.inference_mode():
        for path, label in zip(paths, labels.tolist(), strict=True):
            image = fit_image_bytes(path.read_bytes(), volume, max_bytes=None, prep=PLAIN)
            probabilities = task.prediction(run.model, image, classes)["probabilities"]
            correct += int(int(np.argmax(probabilities)) == label)
    return correct / len(labels)


def measure(split: str, count: int, seed: int, models: tuple[str, ...] = MODELS) -> list[dict]:
    data = load_dataset("mnist", split, os.environ.get("CONVSCOPE_DATA"), download=False)
    images, labels = data.images[:count], data.labels[:count]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        paths = write_photos(images, Path(folder), seed)
        print(f"wrote {len(paths)} photos in {time.perf_counter() - start:.0f} s", flush=True)
        for name in models:
            run = open_run(name)
            start = time.perf_counter()
            row = {"model": name, "clean": clean_accuracy(run, images, labels),
                   "photos": photo_accuracy(run, paths, labels)}
            row["predict_s"] = time.perf_counter() - start
            row["plain"] = plain_accuracy(run, paths, labels)
            row["ratio"] = row["photos"] / row["clean"]
            print(f"{name}: clean {row['clean']:.4f}, photos {row['photos']:.4f} "
                  f"(ratio {row['ratio']:.3f}), plain fit {row['plain']:.4f}", flush=True)
            rows.append(row)
    return rows


def report(rows: list[dict], count: int, seed: int) -> str:
    lines = ["## Photos of digits (`benchmarks/photo_digits.py`)", "",
             f"{'The' if count == 10_000 else 'The first'} {count:,} official MNIST test "
             "digits, each made a 640x480 JPEG photo "
             "of dark ink on off-white paper (random size and position, a lighting gradient "
             "and vignette, paper blotches and grain, a slight blur; seed "
             f"{seed}), classified through `convscope predict`'s functions (the explorer's one "
             "fit: inverted for MNIST's light-on-dark data, the digit centred as MNIST's were). "
             "The thresholds of `convscope/photos.py` were chosen on photos of MNIST's "
             "*training* digits (another seed), never on these test photos. Goal: photo "
             "accuracy at least 95% of clean accuracy.", "",
             "| model | clean test images | photos | photos / clean | photos, plain fit "
             "(no inversion, no centring) |", "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {100 * r['clean']:.2f}% | {100 * r['photos']:.2f}% | "
              f"{r['ratio']:.3f} | {100 * r['plain']:.2f}% |" for r in rows]
    lines += ["", f"Command: `{command_line()}`. Machine: {machine()}. Scoring the clean "
              "images and the photos took " +
              ", ".join(f"{r['predict_s']:.0f} s ({r['model']})" for r in rows) +
              " (a shared machine: wall times are noisy)."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("test", "train"), default="test",
                        help="train: the development photos (thresholds are tuned on these)")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=None, help=f"default {TEST_SEED} (test)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), metavar="NAME")
    parser.add_argument("--write-doc", action="store_true",
                        help="write the section of docs/benchmarks.md (test split only)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else TEST_SEED if args.split == "test" else 1
    rows = measure(args.split, args.count, seed, tuple(args.models))
    if args.write_doc:
        if args.split != "test":
            raise SystemExit("--write-doc reports the test photos only")
        write_section("photo-digits", report(rows, args.count, seed))


if __name__ == "__main__":
    main()
