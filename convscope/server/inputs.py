"""One input for a model: a dataset sample, a drawing's pixels or an uploaded PNG/JPEG, fitted to
the model's input volume by :func:`fit_to_volume`, the one single-image fit: the aspect ratio
kept by a centre crop, a centre crop if a little larger (as evaluation fits data), else one
bilinear resize, then grey <-> RGB conversion. (Training's batches are fitted by
:mod:`convscope.augment`.)"""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
import torch
from fastapi import Request
from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..augment import BYTE_SCALE, INPUT_OFFSET
from ..spec import Volume
from .errors import ApiError
from .samples import Samples

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_UPLOAD_PIXELS = 20_000_000
MAX_DRAWING_SIDE = 512
GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}  # PIL modes without colour


class SampleRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset: str
    index: int


class Pixels(BaseModel):
    """A drawing: ``data`` holds width * height * depth bytes, row-major, channels last."""

    model_config = ConfigDict(extra="forbid")
    width: int = Field(ge=1, le=MAX_DRAWING_SIDE)
    height: int = Field(ge=1, le=MAX_DRAWING_SIDE)
    depth: Literal[1, 3]
    data: list[int]

    @model_validator(mode="after")
    def _check_data(self) -> Pixels:
        expected = self.width * self.height * self.depth
        if len(self.data) != expected:
            raise ValueError(f"data has {len(self.data)} values; {self.width}x{self.height}x"
                             f"{self.depth} needs {expected}")
        if self.data and not 0 <= min(self.data) <= max(self.data) <= 255:
            raise ValueError("data values must be bytes, 0..255")
        return self


class InputRef(BaseModel):
    """Exactly one of ``sample`` or ``pixels``."""

    model_config = ConfigDict(extra="forbid")
    sample: SampleRef | None = None
    pixels: Pixels | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> InputRef:
        if (self.sample is None) == (self.pixels is None):
            raise ValueError("give exactly one input: 'sample' or 'pixels'")
        return self


def resolve_input(ref: InputRef, samples: Samples, volume: Volume) -> torch.Tensor:
    """The referenced image fitted to ``volume``, uint8 (depth, sy, sx)."""
    if ref.sample is not None:
        image = samples.get(ref.sample.dataset).image(ref.sample.index)
    else:
        p = ref.pixels
        array = np.asarray(p.data, dtype=np.uint8).reshape(p.height, p.width, p.depth)
        image = torch.from_numpy(array).permute(2, 0, 1)
    return fit_to_volume(image, volume)


def fit_to_volume(image: torch.Tensor | Image.Image, volume: Volume) -> torch.Tensor:
    """One image (uint8 (C, H, W) or a decoded picture) as uint8 (depth, sy, sx): centre-cropped
    to the volume's aspect ratio, then brought to its size as evaluation brings a dataset (a
    centre crop when it is at most twice as large, else ONE bilinear resize), and its channels
    converted (grey <-> RGB)."""
    planes = image.split() if isinstance(image, Image.Image) else \
        [Image.fromarray(plane.numpy()) for plane in image.contiguous()]
    box = fit_box(planes[0].size, volume)
    size = (volume.sx, volume.sy)
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
    raise ApiError(400, f"cannot convert a {channels}-channel image to the model's {depth} "
                        "channels")


def decode_upload(content: bytes) -> Image.Image:
    """An uploaded PNG or JPEG, turned as its EXIF orientation says, as a grey ("L") or colour
    ("RGB") picture (fit it with :func:`fit_to_volume`): 400 for anything else, 413 past 5 MB
    or 20 megapixels (decompression bombs too)."""
    if len(content) > MAX_UPLOAD_BYTES:
        raise ApiError(413, f"the upload has {len(content):,} bytes; at most "
                            f"{MAX_UPLOAD_BYTES:,} (5 MB) are accepted")
    try:
        picture = Image.open(io.BytesIO(content), formats=("PNG", "JPEG"))
    except Image.DecompressionBombError as exc:
        raise ApiError(413, f"the image is too large to decode safely: {exc}") from None
    except (UnidentifiedImageError, OSError):
        raise ApiError(400, "the upload is not a PNG or JPEG image") from None
    if picture.width * picture.height > MAX_UPLOAD_PIXELS:
        raise ApiError(413, f"the image is {picture.width}x{picture.height} "
                            f"({picture.width * picture.height / 1e6:.1f} megapixels); at most "
                            f"{MAX_UPLOAD_PIXELS / 1e6:.0f} megapixels are accepted")
    try:
        picture = ImageOps.exif_transpose(picture)
        return picture.convert("L" if picture.mode in GREY_MODES else "RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ApiError(400, f"the image could not be decoded: {exc}") from None


def _aspect_size(size: tuple[int, int], aspect: float) -> tuple[int, int]:
    """The largest (width, height) inside ``size`` with width / height == ``aspect``."""
    width, height = size
    return max(1, min(width, round(height * aspect))), max(1, min(height, round(width / aspect)))


def input_convention(volume: Volume) -> dict:
    """What a model takes (the ``input`` of its description): a ``sx`` x ``sy`` x ``depth``
    volume of ``byte * scale + offset`` (see :func:`convscope.augment.to_input`)."""
    return {"sx": volume.sx, "sy": volume.sy, "depth": volume.depth,
            "scale": 1 / BYTE_SCALE, "offset": INPUT_OFFSET}


async def read_file_field(request: Request, field: str, what: str) -> bytes:
    """The bytes of the one file field ``field`` of a multipart form (one byte past the upload
    cap at most, so that the decoder can say it is too large)."""
    async with request.form(max_files=1, max_fields=0) as form:
        upload = form.get(field)
        if upload is None or isinstance(upload, str):
            raise ApiError(400, f"send {what} as multipart/form-data with one file field "
                                f"named {field!r}")
        return await upload.read(MAX_UPLOAD_BYTES + 1)
