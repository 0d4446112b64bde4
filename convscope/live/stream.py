"""The headless stream of ``convscope stream`` (ml4a's ConvnetOSC without a window): frames from
a camera, a video file or an image folder (OpenCV; ``pip install "convscope[osc]"``), each
one's features (:class:`convscope.live.features.FeatureExtractor`) sent as one OSC message of
float32 arguments.

:func:`run_stream` takes the frames and a ``send`` function, so what is sent can be changed
(a trained head's outputs instead of the features) without touching the capture.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import ConvscopeError, ImageError
from ..extras import require
from ..images import DECODED_FORMATS, check_picture_name
from ..predict import image_files
from .features import FeatureExtractor


class SourceError(ConvscopeError):
    """A camera, video or image folder that gives no frames; names the fix."""


@dataclass
class StreamCount:
    """What a stream did: the ``frames`` processed, in ``seconds``."""

    frames: int = 0
    seconds: float = 0.0


def _cv2():
    cv2 = require("cv2", "osc", "camera and video capture")
    try:  # OpenCV's own warnings (a missing camera) would clutter the one-line error
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:
        pass
    return cv2


def open_source(source: str) -> Iterator[np.ndarray]:
    """The frames of ``source`` as uint8 RGB (H, W, 3) arrays: a camera index ("0"), a video
    file or a folder of PNG/JPEG pictures (sorted by path, each once). Checked before the
    first frame is yielded: SourceError names what is wrong."""
    text = str(source).strip()
    if text.isdigit():
        return _capture(int(text), f"camera {text}",
                        f"no camera {text} could be opened (none attached, or in use): give "
                        "another --source index, a video file or an image folder")
    path = Path(text)
    if path.is_dir():
        return _folder(path)
    if path.is_file():
        return _capture(str(path), str(path),
                        f"{path}: not a video OpenCV can read; give a video file (mp4, avi, "
                        "mkv...), a camera index or an image folder")
    raise SourceError(f"{text}: no such file or folder; give a camera index (0), a video file "
                      "or an image folder")


def _capture(what: int | str, name: str, refusal: str) -> Iterator[np.ndarray]:
    cv2 = _cv2()
    capture = cv2.VideoCapture(what)
    ok, frame = capture.read() if capture.isOpened() else (False, None)
    if not ok or frame is None:
        capture.release()
        raise SourceError(refusal)

    def frames() -> Iterator[np.ndarray]:
        nonlocal ok, frame
        try:
            while ok and frame is not None:
                yield _rgb(cv2, frame)
                ok, frame = capture.read()
        finally:
            capture.release()

    return frames()


def _rgb(cv2, frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return frame
    return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB if frame.shape[2] == 4 else cv2.COLOR_BGR2RGB)


def _folder(path: Path) -> Iterator[np.ndarray]:
    files, _skipped = image_files([path])
    if not files:
        raise SourceError(f"{path}: no PNG or JPEG pictures in it; give a folder of pictures, a "
                          "video file or a camera index")

    def frames() -> Iterator[np.ndarray]:
        for file in files:
            yield read_picture(file)

    return frames()


def read_picture(file: Path) -> np.ndarray:
    """A PNG or JPEG file as uint8 RGB (H, W, 3); a GIF... is refused by name."""
    try:
        check_picture_name(file)
        with Image.open(file, formats=DECODED_FORMATS) as picture:
            return np.array(picture.convert("RGB"))
    except ImageError as exc:
        raise SourceError(f"{exc}, or remove it from the folder") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise SourceError(f"{file}: not a readable PNG or JPEG ({exc}); remove it from the "
                          "folder") from None


def run_stream(frames: Iterator[np.ndarray], extractor: FeatureExtractor,
               send: Callable[[np.ndarray], object], limit: int | None = None,
               fps: float | None = None) -> StreamCount:
    """For each frame (at most ``limit``; at most ``fps`` a second when given): its features
    (float32, ``extractor.size`` values) given to ``send``. Ctrl-C ends it quietly."""
    count = StreamCount()
    start = time.perf_counter()
    gap = 1.0 / fps if fps else 0.0
    try:
        for frame in frames:
            if limit is not None and count.frames >= limit:
                break
            began = time.perf_counter()
            send(extractor(frame)[0])
            count.frames += 1
            if gap:
                time.sleep(max(0.0, gap - (time.perf_counter() - began)))
    except KeyboardInterrupt:
        pass
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()
    count.seconds = time.perf_counter() - start
    return count
