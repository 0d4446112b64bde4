"""One input for a model: a dataset sample, a drawing's pixels or an uploaded PNG/JPEG, fitted to
the model's input volume by :func:`convscope.images.fit_to_volume`, the one single-image fit
(re-exported here, with the upload limits). Uploads are decoded by
:func:`convscope.images.fit_image_bytes` (as ``convscope predict`` decodes files), a few at a
time (:func:`decode_upload`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Literal

import numpy as np
import torch
from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..augment import BYTE_SCALE, INPUT_OFFSET
from ..data.catalog import preparation_for
from ..errors import ImageError
from ..images import (  # noqa: F401 (re-exported: the server's names for them)
    INVERT_CHOICES,
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_PIXELS,
    ORIENTATION,
    PLAIN,
    Preparation,
    check_byte_size,
    convert_channels,
    fit_box,
    fit_image_bytes,
    fit_prepared,
    fit_to_volume,
)
from ..spec import Volume
from .errors import ApiError
from .samples import Samples

MAX_DRAWING_SIDE = 512
MAX_CONCURRENT_DECODES = 2
DECODE_WAIT_S = 30.0
MAX_PENDING_UPLOADS = 64  # read, waiting or decoding (at most 64 x 5 MB held); more: 503
_DECODES = threading.BoundedSemaphore(MAX_CONCURRENT_DECODES)
_PENDING = threading.BoundedSemaphore(MAX_PENDING_UPLOADS)


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


def resolve_input(ref: InputRef, samples: Samples, volume: Volume,
                  dataset: str | None = None) -> torch.Tensor:
    """The referenced image fitted to ``volume``, uint8 (depth, sy, sx). Pixels (a drawing,
    or the fitted bytes of an earlier upload) are prepared for a model of ``dataset`` as its
    catalogue entry says, never inverted: a drawing is centred as MNIST's digits for an MNIST
    model (:func:`convscope.images.fit_prepared`, the one centring), pixels of the input's size
    are taken as they are."""
    if ref.sample is not None:
        return fit_to_volume(samples.get(ref.sample.dataset).image(ref.sample.index), volume)
    p = ref.pixels
    array = np.asarray(p.data, dtype=np.uint8).reshape(p.height, p.width, p.depth)
    prep = PLAIN if dataset is None else preparation_for(dataset, "off")
    return fit_prepared(torch.from_numpy(array).permute(2, 0, 1), volume, prep)


def decode_upload(content: bytes, volume: Volume, prep: Preparation = PLAIN) -> torch.Tensor:
    """An uploaded PNG or JPEG fitted to ``volume`` by :func:`convscope.images.fit_image_bytes`
    (EXIF orientation applied, large photos decoded reduced, prepared as ``prep`` says: see
    :func:`upload_preparation`): 400 for anything else, 413 past 5 MB, past 20 decoded
    megapixels or past Pillow's decompression-bomb limit. At most ``MAX_CONCURRENT_DECODES``
    uploads are decoded at once, the others wait."""
    try:
        check_byte_size(content)
        with decode_slot():
            return fit_image_bytes(content, volume, prep=prep)
    except ImageError as exc:
        raise ApiError(exc.status, str(exc)) from None


def upload_preparation(dataset: str, invert: str) -> Preparation:
    """How an upload is prepared for a model of ``dataset`` (its catalogue entry's polarity
    and centring; ``invert``: the request's ``auto``, ``on`` or ``off``): 400 for another
    ``invert``."""
    if invert not in INVERT_CHOICES:
        raise ApiError(400, f"invert must be one of {', '.join(INVERT_CHOICES)}, got "
                            f"{invert!r}")
    return preparation_for(dataset, invert)


def decode_slot() -> AbstractContextManager[None]:
    """One of the ``MAX_CONCURRENT_DECODES`` decoding slots; 503 after ``DECODE_WAIT_S``."""
    return _slot(_DECODES, DECODE_WAIT_S, f"the server is busy decoding "
                 f"{MAX_CONCURRENT_DECODES} other uploads; try again in a moment")


def pending_upload() -> AbstractContextManager[None]:
    """One of the ``MAX_PENDING_UPLOADS`` uploads the server takes at a time (take it before
    reading the body, so that waiting uploads hold at most that many bodies): 503 past that."""
    return _slot(_PENDING, None, f"the server is busy with {MAX_PENDING_UPLOADS} other "
                 "uploads; try again in a moment")


@contextmanager
def _slot(slots: threading.BoundedSemaphore, wait_s: float | None,
          busy: str) -> Iterator[None]:
    """One of ``slots``, waited for up to ``wait_s`` seconds (None: not at all), else 503
    ``busy``."""
    taken = slots.acquire(timeout=wait_s) if wait_s is not None else slots.acquire(False)
    if not taken:
        raise ApiError(503, busy)
    try:
        yield
    finally:
        slots.release()


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
