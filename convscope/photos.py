"""The two steps a real photo needs before a digit model sees it, used by the one fit of
:func:`convscope.images.fit_prepared`: is its background light (:func:`light_background`, to
invert it for light-on-dark data), and the digit centred as MNIST's were made
(:func:`centre_digit`: the ink's box scaled so that its longer side is 20 px, placed by its
centre of mass in 28x28; a pen's thin line widened to MNIST's stroke width first).

A photo's paper is rarely even: :func:`centre_digit` first takes away the background (a low
percentile of each cell of a coarse grid, smoothly interpolated), so that shadows, a vignette
and the paper's grain do not count as ink. Its thresholds were chosen on photos made from
MNIST's training digits (``benchmarks/photo_digits.py``), never on the test digits scored."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

MNIST_SIDE, MNIST_BOX = 28, 20  # a digit's box is scaled to 20 px and centred in 28 x 28
GRID = 10  # cells across the longer side for the background estimate
BACKGROUND_PERCENTILE = 20  # of a cell (ink covers less than 80% of some cell of each 3x3)
MIN_CONTRAST = 24  # grey levels of ink over background; less: no ink to centre
INK_FRACTION = 0.5  # of the strongest (smoothed) ink: what counts as ink for the box
STROKE_PERCENTILE = 60  # of the ink's values: taken as full ink (255), as MNIST's strokes are
STROKE_WIDTH = 0.14  # MNIST's median stroke width, as a fraction of the digit's longer side
THIN = 0.5  # strokes thinner than half of that (a pen's line in a photo) are thickened to it


def light_background(grey: np.ndarray) -> bool:
    """Whether a grey picture (uint8 2-D) is light with darker marks: its median (the
    background, which covers most of a picture of a digit) lies in the upper half of the
    range between its darkest and lightest levels (1st and 99th percentiles)."""
    low, median, high = np.percentile(grey, (1, 50, 99))
    return bool(high > low and median > (low + high) / 2)


def centre_digit(grey: np.ndarray) -> np.ndarray | None:
    """The light ink of ``grey`` (uint8 (H, W), light on dark) as MNIST centred its digits:
    uint8 (28, 28), the ink's bounding box scaled (aspect kept) so that its longer side is
    20 px, then shifted so that its centre of mass is at the centre. (A network of another
    input size gets this fitted as its data's pictures are, e.g. centre-cropped to 24x24.)
    None when the picture holds no ink (nothing stands out from the background)."""
    ink = _ink(grey.astype(np.float32))
    smooth = np.asarray(Image.fromarray(ink.astype(np.uint8)).filter(ImageFilter.GaussianBlur(
        max(1.0, max(ink.shape) / 200))), dtype=np.float32)
    peak = float(smooth.max())
    if peak < MIN_CONTRAST:
        return None
    rows, cols = np.nonzero(smooth > INK_FRACTION * peak)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    box = ink[top:bottom, left:right]
    full = max(float(np.percentile(box[smooth[top:bottom, left:right] > INK_FRACTION * peak],
                                   STROKE_PERCENTILE)), 1.0)
    floor = 0.5 * INK_FRACTION * peak  # background left over (grain) goes to 0
    levels = np.clip((box - floor) / max(full - floor, 1.0), 0, 1) * 255
    return _placed(_thickened(levels))


def _ink(grey: np.ndarray) -> np.ndarray:
    """``grey`` less its background: a low percentile of each cell of a coarse grid (the lowest
    of it and its 8 neighbours'), bilinearly interpolated over the picture, subtracted (clipped
    at 0)."""
    height, width = grey.shape
    cell = max(1, -(-max(height, width) // GRID))
    ny, nx = -(-height // cell), -(-width // cell)
    padded = np.pad(grey, ((0, ny * cell - height), (0, nx * cell - width)), mode="edge")
    cells = padded.reshape(ny, cell, nx, cell).transpose(0, 2, 1, 3).reshape(ny, nx, -1)
    level = np.pad(np.percentile(cells, BACKGROUND_PERCENTILE, axis=2), 1, mode="edge")
    background = np.min([level[dy:dy + ny, dx:dx + nx] for dy in range(3) for dx in range(3)],
                        axis=0).astype(np.float32)  # a cell full of ink takes its neighbours
    smooth = Image.fromarray(background, mode="F").resize(
        (nx * cell, ny * cell), Image.Resampling.BILINEAR)
    return np.clip(grey - np.asarray(smooth)[:height, :width], 0, None)


def stroke_width(levels: np.ndarray) -> float:
    """The ink's mean stroke width in pixels: twice its area over its boundary's length (the
    pixels of ink, over 127, with a 4-neighbour that is not)."""
    ink = np.pad(levels > 127, 1)
    area = int(ink.sum())
    inner = ink[1:-1, 1:-1] & ink[:-2, 1:-1] & ink[2:, 1:-1] & ink[1:-1, :-2] & ink[1:-1, 2:]
    return 2 * area / max(1, area - int(inner.sum()))


def _thickened(levels: np.ndarray) -> np.ndarray:
    """``levels`` (the ink's box) with strokes thinner than ``THIN`` of MNIST's (a ballpoint
    pen's line) widened to MNIST's ``STROKE_WIDTH`` by a 3x3 maximum, repeated (each adds 2
    px), in a box grown to hold them."""
    target = STROKE_WIDTH * max(levels.shape)
    width = stroke_width(levels)
    steps = int((target - width) / 2)
    if width >= THIN * target or steps < 1:
        return levels
    image = Image.fromarray(np.pad(levels, steps).astype(np.uint8))
    for _ in range(steps):
        image = image.filter(ImageFilter.MaxFilter(3))
    return np.asarray(image, dtype=np.float32)


def _placed(levels: np.ndarray) -> np.ndarray:
    """``levels`` (float 0..255, the ink's box) scaled so that its longer side is 20 px
    (bilinear, antialiased), in a 28x28 canvas with its centre of mass at the centre."""
    sx = sy = MNIST_SIDE
    height, width = levels.shape
    scale = MNIST_BOX / max(height, width)
    new = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = np.asarray(Image.fromarray(levels.astype(np.float32), mode="F").resize(
        new, Image.Resampling.BILINEAR), dtype=np.float32).clip(0, 255)
    mass = float(small.sum())
    if mass <= 0:
        return np.zeros((sy, sx), np.uint8)
    ys, xs = np.indices(small.shape)
    dy = round((sy - 1) / 2 - float((ys * small).sum()) / mass)
    dx = round((sx - 1) / 2 - float((xs * small).sum()) / mass)
    out = np.zeros((sy, sx), np.float32)
    y0, x0 = max(0, dy), max(0, dx)
    y1, x1 = min(sy, dy + small.shape[0]), min(sx, dx + small.shape[1])
    if y1 > y0 and x1 > x0:
        out[y0:y1, x0:x1] = small[y0 - dy:y1 - dy, x0 - dx:x1 - dx]
    return np.round(out).astype(np.uint8)
