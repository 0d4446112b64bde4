"""The live view's wire format (one WebSocket, ``/api/models/{id}/live``; docs/api.md).

A frame, page -> server, binary: ``b"CSF1"``, width and height (uint16 little-endian), channels
(uint8: 1 grey, 3 RGB, 4 RGBA whose alpha is dropped), 3 zero bytes, then width * height *
channels pixel bytes, row-major, channels last. The page sends the frame centre-cropped to the
model input's aspect and reduced to a few times its size; the server fits it as every picture
is fitted (:func:`convscope.images.fit_prepared`).

A result, server -> page, binary: ``b"CSR1"``, the header's length (uint32 LE), the header
(UTF-8 JSON: ``seq``, ``ms``, ``layers`` [{index, shape [D, H, W], dtype, min, max, offset,
length}], ``probabilities``, ``prediction``, ``stream``), zero bytes to a multiple of 4, then
the layers' data at their ``offset`` from there: maps (H x W > 1) as ``uint8`` levels over the
layer's [min, max] (the page draws a layer's maps grey over that range anyway), vectors as
little-endian ``float32``.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import torch

from ..errors import ImageError

FRAME_MAGIC, RESULT_MAGIC = b"CSF1", b"CSR1"
FRAME_HEADER = struct.Struct("<4sHHB3x")
MAX_FRAME_SIDE = 1024
FRAME_CHANNELS = (1, 3, 4)
MAX_FRAME_BYTES = FRAME_HEADER.size + MAX_FRAME_SIDE * MAX_FRAME_SIDE * 4


def decode_frame(message: bytes) -> torch.Tensor:
    """A frame message as uint8 (C, H, W), C 1 or 3: ImageError naming what is wrong."""
    if len(message) > MAX_FRAME_BYTES:
        raise ImageError(f"a frame of {len(message):,} bytes; at most {MAX_FRAME_BYTES:,} are "
                         f"accepted ({MAX_FRAME_SIDE} px a side)", status=413)
    if len(message) < FRAME_HEADER.size:
        raise ImageError(f"a frame of {len(message)} bytes is shorter than its "
                         f"{FRAME_HEADER.size}-byte header; send CSF1 frames (docs/api.md)")
    magic, width, height, channels = FRAME_HEADER.unpack_from(message)
    if magic != FRAME_MAGIC:
        raise ImageError(f"not a frame: it starts with {magic!r}, not {FRAME_MAGIC!r} "
                         "(docs/api.md, the live view)")
    if not (1 <= width <= MAX_FRAME_SIDE and 1 <= height <= MAX_FRAME_SIDE) \
            or channels not in FRAME_CHANNELS:
        raise ImageError(f"a {width}x{height} frame of {channels} channels: frames are 1.."
                         f"{MAX_FRAME_SIDE} px a side with 1, 3 or 4 channels")
    expected = FRAME_HEADER.size + width * height * channels
    if len(message) != expected:
        raise ImageError(f"a {width}x{height}x{channels} frame needs {expected:,} bytes, got "
                         f"{len(message):,}")
    pixels = np.frombuffer(message, np.uint8, offset=FRAME_HEADER.size)
    image = torch.from_numpy(pixels.reshape(height, width, channels).copy()).permute(2, 0, 1)
    return image[:3] if channels == 4 else image


def encode_frame(image: np.ndarray) -> bytes:
    """A uint8 (H, W, C) array as a frame message (the page's side, for tests and scripts)."""
    pixels = np.ascontiguousarray(image if image.ndim == 3 else image[:, :, None], np.uint8)
    height, width, channels = pixels.shape
    return FRAME_HEADER.pack(FRAME_MAGIC, width, height, channels) + pixels.tobytes()


def encode_result(header: dict, layers: dict[int, torch.Tensor]) -> bytes:
    """A result message: ``header`` plus each layer's output (D, H, W) at its offset."""
    described, chunks, offset = [], [], 0
    for index, output in layers.items():
        values = output.float().numpy()
        low, high = float(values.min()), float(values.max())
        if not (np.isfinite(low) and np.isfinite(high)):
            values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
            low, high = float(values.min()), float(values.max())
        if values.shape[1] * values.shape[2] > 1:
            span = high - low if high > low else 1.0
            data = np.rint((values - low) * (255.0 / span)).astype(np.uint8).tobytes()
            dtype = "uint8"
        else:
            data, dtype = values.astype("<f4").tobytes(), "float32"
        data += b"\0" * (-len(data) % 4)
        described.append({"index": index, "shape": list(values.shape), "dtype": dtype,
                          "min": low, "max": high, "offset": offset, "length": len(data)})
        chunks.append(data)
        offset += len(data)
    text = json.dumps({**header, "layers": described}, allow_nan=False,
                      separators=(",", ":")).encode("utf-8")
    text += b" " * (-(len(text) + 8) % 4)
    return RESULT_MAGIC + struct.pack("<I", len(text)) + text + b"".join(chunks)


def decode_result(message: bytes) -> tuple[dict, dict[int, np.ndarray]]:
    """A result message as (header, each layer's values as float32 (D, H, W)): for tests."""
    assert message[:4] == RESULT_MAGIC
    (length,) = struct.unpack_from("<I", message, 4)
    header = json.loads(message[8:8 + length])
    base, layers = 8 + length, {}
    for layer in header["layers"]:
        raw = message[base + layer["offset"]:base + layer["offset"] + layer["length"]]
        size = int(np.prod(layer["shape"]))
        if layer["dtype"] == "uint8":
            levels = np.frombuffer(raw, np.uint8, size).astype(np.float32)
            values = layer["min"] + levels * ((layer["max"] - layer["min"]) / 255.0)
        else:
            values = np.frombuffer(raw, "<f4", size)
        layers[layer["index"]] = values.reshape(layer["shape"])
    return header, layers
