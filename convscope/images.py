"""One picture fitted to a model's input volume: the one single-image fit of the explorer's
uploads and drawings, ``convscope predict`` and :meth:`convscope.runs.Run.predict`.

:func:`fit_to_volume` keeps the aspect ratio by a centre crop, a centre crop if a little larger
(as evaluation fits data), else one bilinear resize, then converts grey <-> RGB. (Training's
batches are fitted by :mod:`convscope.augment`.) :func:`fit_image_bytes` decodes a PNG or JPEG
at a reduced size where the input is much smaller, turned as its EXIF orientation says. Free of
the server: its errors are :class:`convscope.errors.ImageError` (the server answers them with
their HTTP ``status``).

A :class:`Preparation` (what the model's data is like, from its catalogue entry, and the user's
``invert`` choice) adds two steps for real photos (:mod:`convscope.photos`): the picture is
inverted where the data is light on dark and the picture has a light background, and a digit is
centred as MNIST's were made (its ink's box scaled to 20 px, placed by centre of mass in
28x28)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError
from .photos import MNIST_SIDE, centre_digit, light_background
from .spec import Volume

# Which picture files convscope reads, by suffix: PNG and JPEG decode; the other common image
# formats are refused by name (an error saying to convert them, never skipped as stray files).
DECODED_FORMATS = ("PNG", "JPEG")  # Pillow's names of the formats decoded
DECODED_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".jpe"})
REFUSED_SUFFIXES = {".gif": "GIF", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
                    ".webp": "WebP"}  # suffix -> the format's name, as errors say it
IMAGE_SUFFIXES = DECODED_SUFFIXES | REFUSED_SUFFIXES.keys()  # pictures; other files are not
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
CENTRING_GAP = 8  # a picture to centre keeps at least 8x the volume's size (small digits in it)
INVERT_CHOICES = ("auto", "on", "off")
POLARITIES = ("any", "light-on-dark")  # a dataset's pictures: anything, or light ink on dark
CENTRINGS = ("mnist",)  # how a dataset's objects were centred (None: not at all)


@dataclass(frozen=True)
class Preparation:
    """How a picture is prepared for a model, beyond fitting its size.

    ``polarity`` and ``centre`` describe the model's data (its catalogue entry's fields);
    ``invert`` is the user's choice: ``auto`` inverts a picture with a light background for
    light-on-dark data, ``on`` always inverts, ``off`` never does."""

    polarity: str = "any"
    centre: str | None = None
    invert: str = "auto"

    def __post_init__(self) -> None:
        if self.invert not in INVERT_CHOICES:
            raise ImageError(f"invert must be one of {', '.join(INVERT_CHOICES)}, got "
                             f"{self.invert!r}")
        if self.polarity not in POLARITIES:
            raise ImageError(f"polarity must be one of {', '.join(POLARITIES)}, got "
                             f"{self.polarity!r}")
        if self.centre is not None and self.centre not in CENTRINGS:
            raise ImageError(f"centre must be one of {', '.join(CENTRINGS)} or none, got "
                             f"{self.centre!r}")

    @property
    def may_invert(self) -> bool:
        """Whether some picture would be inverted."""
        return self.invert == "on" or (self.invert == "auto" and self.polarity != "any")

    def inverts(self, grey: np.ndarray) -> bool:
        """Whether the grey picture ``grey`` (uint8 2-D) is to be inverted."""
        if self.invert != "auto":
            return self.invert == "on"
        return self.polarity == "light-on-dark" and light_background(grey)


PLAIN = Preparation()  # fitting only (inverts nothing: "auto" for data of any polarity)


def is_picture(path: str | Path) -> bool:
    """Whether ``path``'s suffix names a picture (decoded or refused), not a stray file."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def check_picture_name(path: str | Path) -> None:
    """ImageError naming the format for a picture whose suffix convscope refuses (GIF...)."""
    refused = REFUSED_SUFFIXES.get(Path(path).suffix.lower())
    if refused is not None:
        raise ImageError(f"{path} is a {refused} picture; convscope reads PNG and JPEG only: "
                         "convert it to PNG")


def picture_file_bytes(path: str | Path) -> bytes:
    """The bytes of the picture file ``path``, refused by name first when its format is not
    read (:func:`check_picture_name`)."""
    check_picture_name(path)
    return Path(path).read_bytes()


def check_byte_size(content: bytes, max_bytes: int = MAX_UPLOAD_BYTES) -> None:
    """ImageError (413) for an encoded picture over ``max_bytes``."""
    if len(content) > max_bytes:
        raise ImageError(f"the upload has {len(content):,} bytes; at most {max_bytes:,} "
                         f"({max_bytes / 1024 / 1024:g} MB) are accepted", status=413)


def fit_image_bytes(content: bytes, volume: Volume,
                    max_bytes: int | None = MAX_UPLOAD_BYTES,
                    prep: Preparation = PLAIN) -> torch.Tensor:
    """A PNG or JPEG fitted to ``volume`` (see :func:`fit_prepared`) as uint8
    (depth, sy, sx), turned as its EXIF orientation says: ImageError 400 for anything else,
    413 past ``max_bytes`` (None: no cap), past 20 decoded megapixels or past Pillow's
    decompression-bomb limit.

    Memory stays near the size decoded: a picture far larger than the volume is reduced by a
    whole factor first (a JPEG is even decoded at 1/2, 1/4 or 1/8 scale, so large photos are
    accepted), in bands, converted to grey or RGB as it goes."""
    if max_bytes is not None:
        check_byte_size(content, max_bytes)
    picture = _open_picture(content)
    gap = CENTRING_GAP if prep.centre else REDUCING_GAP
    try:
        picture = _upright_reduced(picture, volume, gap)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageError(f"the image could not be decoded: {exc}") from None
    return fit_prepared(picture, volume, prep)


def fit_picture(picture: Image.Image, volume: Volume, prep: Preparation = PLAIN) -> torch.Tensor:
    """An opened PIL picture, turned as its EXIF orientation says, fitted to ``volume``."""
    upright = ImageOps.exif_transpose(picture)
    return fit_prepared(upright.convert("L" if upright.mode in GREY_MODES else "RGB"), volume,
                        prep)


def fit_prepared(image: torch.Tensor | Image.Image, volume: Volume,
                 prep: Preparation = PLAIN) -> torch.Tensor:
    """The one fit of a single picture (uint8 (C, H, W) or a decoded "L"/"RGB" picture) as
    uint8 (depth, sy, sx): inverted where ``prep`` says so, then, for data centred like MNIST,
    its ink centred (:func:`convscope.photos.centre_digit`; the whole picture, uncropped), else
    fitted by :func:`fit_to_volume` (a centred digit, 28x28, as MNIST's own pictures are). A
    picture of MNIST's size or the volume's is taken as centred already (a dataset's sample, a
    drawing from the explorer's pad) and only inverted."""
    if prep.centre is None and not prep.may_invert:
        return fit_to_volume(image, volume)
    grey = _grey_array(image)
    invert = prep.inverts(grey)
    if prep.centre == "mnist" and grey.shape not in ((MNIST_SIDE,) * 2, (volume.sy, volume.sx)):
        centred = centre_digit(255 - grey if invert else grey)
        if centred is not None:  # (None: no ink to centre; fitted as it is)
            return fit_to_volume(torch.from_numpy(centred)[None], volume)
    fitted = fit_to_volume(image, volume)
    return 255 - fitted if invert else fitted


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


def _grey_array(image: torch.Tensor | Image.Image) -> np.ndarray:
    """The picture's grey levels (luminance), uint8 (H, W)."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("L"), dtype=np.uint8)
    return convert_channels(image, 1)[0].numpy() if image.shape[0] in (1, 3) else \
        image[0].numpy()


def _open_picture(content: bytes) -> Image.Image:
    """The upload opened (nothing decoded yet): 400 unless PNG or JPEG, 413 for bombs."""
    try:
        return Image.open(io.BytesIO(content), formats=DECODED_FORMATS)
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


def _upright_reduced(picture: Image.Image, volume: Volume,
                     gap: int = REDUCING_GAP) -> Image.Image:
    """``picture`` decoded, upright, as "L" or "RGB": reduced by a whole factor where it is
    more than ``2 * gap`` times as large as the volume (what :func:`fit_to_volume` takes from
    it then stays at least ``gap`` times the volume's size)."""
    if picture.format != "JPEG":
        _check_decoded_size(picture)  # (a PNG's EXIF may follow its pixels: read after)
    turn = EXIF_TURNS.get(picture.getexif().get(ORIENTATION, 1))
    sideways = turn in (Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE,
                        Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270)
    grey = picture.mode in GREY_MODES
    factor = _reduction(picture.size, volume, sideways, gap)
    if factor > 1:
        mode = "L" if grey or volume.depth == 1 else "RGB"  # the model's depth from here on
        picture.draft(mode, (picture.width // factor, picture.height // factor))  # JPEG only
        _check_decoded_size(picture)
        picture = _reduced(picture, _reduction(picture.size, volume, sideways, gap), mode)
        return picture if turn is None else picture.transpose(turn)
    _check_decoded_size(picture)
    picture = ImageOps.exif_transpose(picture)
    return picture.convert("L" if grey else "RGB")


def _reduction(size: tuple[int, int], volume: Volume, sideways: bool,
               gap: int = REDUCING_GAP) -> int:
    """The whole factor to reduce a ``size`` picture by (1: none) before fitting it."""
    upright = size[::-1] if sideways else size
    width, height = _aspect_size(upright, volume.sx / volume.sy)
    return max(1, min(width // (gap * volume.sx), height // (gap * volume.sy)))


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
