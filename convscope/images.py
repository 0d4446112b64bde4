"""One picture fitted to a model's input volume: the one single-image fit of the explorer's
uploads and drawings, ``convscope predict`` and :meth:`convscope.runs.Run.predict`.

:func:`fit_to_volume` keeps the aspect ratio by a centre crop, a centre crop if a little larger
(as evaluation fits data), else one bilinear resize, then converts grey <-> RGB. (Training's
batches are fitted by :mod:`convscope.augment`.) :func:`fit_image_bytes` decodes a PNG or JPEG
at a reduced size where the input is much smaller, turned as its EXIF orientation says. Free of
the server: its errors are :class:`convscope.errors.ImageError` (the server answers them with
their HTTP ``status``)."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError
from .spec import Volume

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_UPLOAD_PIXELS = 20_000_000
REDUCING_GAP = 3  # a reduced picture keeps at least 3x the volume's size for the final resize
BAND_PIXELS = 1 << 20  # a band of a reduced picture is converted at most ~1 M pixels at a time
ORIENTATION = 0x0112  # the EXIF tag
EXIF_TURNS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}  # as ImageOps.exif_transpose turns
GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}  # PIL modes without colour


def check_byte_size(content: bytes, max_bytes: int = MAX_UPLOAD_BYTES) -> None:
    """ImageError (413) for an encoded picture over ``max_bytes``."""
    if len(content) > max_bytes:
        raise ImageError(f"the upload has {len(content):,} bytes; at most {max_bytes:,} "
                         f"({max_bytes / 1024 / 1024:g} MB) are accepted", status=413)


def fit_image_bytes(content: bytes, volume: Volume,
                    max_bytes: int | None = MAX_UPLOAD_BYTES) -> torch.Tensor:
    """A PNG or JPEG fitted to ``volume`` (see :func:`fit_to_volume`) as uint8
    (depth, sy, sx), turned as its EXIF orientation says: ImageError 400 for anything else,
    413 past ``max_bytes`` (None: no cap), past 20 decoded megapixels or past Pillow's
    decompression-bomb limit.

    Memory stays near the size decoded: a picture far larger than the volume is reduced by a
    whole factor first (a JPEG is even decoded at 1/2, 1/4 or 1/8 scale, so large photos are
    accepted), in bands, converted to grey or RGB as it goes."""
    if max_bytes is not None:
        check_byte_size(content, max_bytes)
    picture = _open_picture(content)
    try:
        picture = _upright_reduced(picture, volume)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageError(f"the image could not be decoded: {exc}") from None
    return fit_to_volume(picture, volume)


def fit_picture(picture: Image.Image, volume: Volume) -> torch.Tensor:
    """An opened PIL picture, turned as its EXIF orientation says, fitted to ``volume``."""
    upright = ImageOps.exif_transpose(picture)
    return fit_to_volume(upright.convert("L" if upright.mode in GREY_MODES else "RGB"), volume)


def fit_to_volume(image: torch.Tensor | Image.Image, volume: Volume) -> torch.Tensor:
    """One image (uint8 (C, H, W) or a decoded picture) as uint8 (depth, sy, sx): centre-cropped
    to the volume's aspect ratio, then brought to its size as evaluation brings a dataset (a
    centre crop when it is at most twice as large, else ONE bilinear resize), and its channels
    converted (grey <-> RGB)."""
    size = (volume.sx, volume.sy)
    if isinstance(image, torch.Tensor):
        left, top, right, bottom = fit_box((image.shape[2], image.shape[1]), volume)
        if (right - left, bottom - top) == size:  # a crop (a dataset's own size, mostly)
            return convert_channels(image[:, top:bottom, left:right].clone(), volume.depth)
    planes = image.split() if isinstance(image, Image.Image) else \
        [Image.fromarray(plane.numpy()) for plane in image.contiguous()]
    box = fit_box(planes[0].size, volume)
    fitted = [plane.crop(box) if (box[2] - box[0], box[3] - box[1]) == size
              else plane.resize(size, Image.Resampling.BILINEAR, box=box) for plane in planes]
    stacked = np.stack([np.asarray(plane, dtype=np.uint8) for plane in fitted])
    return convert_channels(torch.from_numpy(stacked), volume.depth)


def fit_box(size: tuple[int, int], volume: Volume) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) part of a ``size`` (width, height) image that is fitted to
    ``volume``: the centred part of the volume's aspect ratio; within that, its centred
    volume-size part when it is at most twice the volume's size (evaluation's centre crop)."""
    width, height = _aspect_size(size, volume.sx / volume.sy)
    left, top = (size[0] - width) // 2, (size[1] - height) // 2
    if volume.sx <= width <= 2 * volume.sx and volume.sy <= height <= 2 * volume.sy:
        left, top = left + (width - volume.sx) // 2, top + (height - volume.sy) // 2
        width, height = volume.sx, volume.sy
    return left, top, left + width, top + height


def convert_channels(image: torch.Tensor, depth: int) -> torch.Tensor:
    """Grey -> RGB by repetition, RGB -> grey by luminance (PIL's "L" weights)."""
    channels = image.shape[0]
    if channels == depth:
        return image
    if channels == 1 and depth == 3:
        return image.expand(3, -1, -1)
    if channels == 3 and depth == 1:
        weights = torch.tensor([299, 587, 114], dtype=torch.int32)[:, None, None]
        grey = (image.int() * weights).sum(0, keepdim=True) + 500
        return grey.div(1000, rounding_mode="floor").to(torch.uint8)
    raise ImageError(f"cannot convert a {channels}-channel image to the model's {depth} "
                        "channels")


def _open_picture(content: bytes) -> Image.Image:
    """The upload opened (nothing decoded yet): 400 unless PNG or JPEG, 413 for bombs."""
    try:
        return Image.open(io.BytesIO(content), formats=("PNG", "JPEG"))
    except Image.DecompressionBombError as exc:
        raise ImageError(f"the image is too large to decode safely: {exc}",
                         status=413) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ImageError("not a PNG or JPEG image") from None


def _check_decoded_size(picture: Image.Image) -> None:
    width, height = picture.size
    if width * height > MAX_UPLOAD_PIXELS:
        raise ImageError(f"the image is {width}x{height} ({width * height / 1e6:.1f} "
                            f"megapixels) to decode; at most {MAX_UPLOAD_PIXELS / 1e6:.0f} "
                            "megapixels are decoded; scale it down or save it as JPEG (JPEG "
                            "photos larger than that are decoded at a reduced scale)",
                         status=413)


def _upright_reduced(picture: Image.Image, volume: Volume) -> Image.Image:
    """``picture`` decoded, upright, as "L" or "RGB": reduced by a whole factor where it is
    more than ``2 * REDUCING_GAP`` times as large as the volume (what :func:`fit_to_volume`
    takes from it then stays at least ``REDUCING_GAP`` times the volume's size)."""
    if picture.format != "JPEG":
        _check_decoded_size(picture)  # (a PNG's EXIF may follow its pixels: read after)
    turn = EXIF_TURNS.get(picture.getexif().get(ORIENTATION, 1))
    sideways = turn in (Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE,
                        Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270)
    grey = picture.mode in GREY_MODES
    factor = _reduction(picture.size, volume, sideways)
    if factor > 1:
        mode = "L" if grey or volume.depth == 1 else "RGB"  # the model's depth from here on
        picture.draft(mode, (picture.width // factor, picture.height // factor))  # JPEG only
        _check_decoded_size(picture)
        picture = _reduced(picture, _reduction(picture.size, volume, sideways), mode)
        return picture if turn is None else picture.transpose(turn)
    _check_decoded_size(picture)
    picture = ImageOps.exif_transpose(picture)
    return picture.convert("L" if grey else "RGB")


def _reduction(size: tuple[int, int], volume: Volume, sideways: bool) -> int:
    """The whole factor to reduce a ``size`` picture by (1: none) before fitting it."""
    upright = size[::-1] if sideways else size
    width, height = _aspect_size(upright, volume.sx / volume.sy)
    return max(1, min(width // (REDUCING_GAP * volume.sx), height // (REDUCING_GAP * volume.sy)))


def _reduced(picture: Image.Image, factor: int, mode: str) -> Image.Image:
    """``picture`` in ``mode``, each ``factor`` x ``factor`` block averaged, made band by band
    (the full-size picture is only ever held as decoded)."""
    width, height = picture.size
    reduced = Image.new(mode, (-(-width // factor), -(-height // factor)))
    rows = factor * max(1, BAND_PIXELS // (width * factor))
    for top in range(0, height, rows):
        band = picture.crop((0, top, width, min(height, top + rows))).convert(mode)
        reduced.paste(band.reduce(factor) if factor > 1 else band, (0, top // factor))
    return reduced


def _aspect_size(size: tuple[int, int], aspect: float) -> tuple[int, int]:
    """The largest (width, height) inside ``size`` with width / height == ``aspect``."""
    width, height = size
    return max(1, min(width, round(height * aspect))), max(1, min(height, round(width / aspect)))
