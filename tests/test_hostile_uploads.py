"""Hostile and heavy uploads for the explorer (issue 17, point 2), and requests that ask for
less than everything: a big PNG costs about what it decodes to, a 24-megapixel phone photo is
scaled (turned as its EXIF says), bombs are refused in one line, decodes are capped in number,
and an activations request encodes only the layers it asks for."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import subprocess
import sys
import threading
import time
import zlib
from contextlib import ExitStack
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw, ImageFile, ImageOps
from test_server import png_header_only

from convscope.bundle import bundled_model_dirs
from convscope.server import compute, create_app, encode, inputs
from convscope.server.errors import ApiError
from convscope.spec import Volume

GREY, COLOUR = Volume(24, 24, 1), Volume(32, 32, 3)
PROC_PEAK = Path("/proc/self/clear_refs")


def drawing(width: int, height: int) -> Image.Image:
    """A large RGB picture that compresses well: flat colour and overlapping ellipses."""
    image = Image.new("RGB", (width, height), (30, 60, 90))
    draw = ImageDraw.Draw(image)
    step = min(width, height) // 22
    for i in range(0, min(width, height), step):
        draw.ellipse((i, i // 2, i + width // 5, i // 2 + height // 8), fill=(200, i % 255, 40))
    return image


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def reference_fit(picture: Image.Image, volume: Volume) -> torch.Tensor:
    """What the explorer always made of an upload: the whole picture decoded upright, then one
    fit (centre crop of the volume's aspect, one bilinear resize)."""
    upright = ImageOps.exif_transpose(picture)
    return inputs.fit_to_volume(upright.convert("L" if upright.mode == "L" else "RGB"), volume)


def error_line(response) -> str:
    message = response.json()["error"]
    assert "\n" not in message and "Traceback" not in message
    return message


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    """The explorer on the bundled models and samples (skip where none are bundled)."""
    if "mnist-convnetjs" not in bundled_model_dirs():
        pytest.skip("the bundled models are not installed")
    with TestClient(create_app(data_dir=str(tmp_path_factory.mktemp("no-data")))) as client:
        yield client


# ---- memory --------------------------------------------------------------------------------

PEAK_CHILD = """
import sys
from pathlib import Path
from convscope.server.inputs import decode_upload
from convscope.spec import Volume
from PIL import Image, PngImagePlugin  # (loaded before measuring)

def kib(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status")
                if line.startswith(key))

content = Path(sys.argv[1]).read_bytes()
Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
before = kib("VmRSS")
decode_upload(content, Volume(32, 32, 3))
print((kib("VmHWM") - before) / 1024)
"""


@pytest.mark.skipif(not PROC_PEAK.exists(), reason="needs Linux's /proc peak memory")
@pytest.mark.parametrize(("mode", "bound_mib"), [("P", 40), ("L", 30), ("RGB", 100)])
def test_a_big_png_costs_about_what_it_decodes_to(tmp_path: Path, mode: str, bound_mib: int):
    """A 4400x4400 PNG of a few dozen KB: Pillow holds its decoded pixels (1 byte each for
    palette and grey, 4 for RGB); nothing else full-size is made. It cost 129 MiB (palette),
    37 MiB (grey) and 147 MiB (RGB) before: converted to RGB, then split into planes."""
    picture = drawing(4400, 4400)
    picture = picture.quantize(16) if mode == "P" else picture.convert(mode)
    path = tmp_path / "big.png"
    path.write_bytes(encoded(picture, "PNG"))
    assert path.stat().st_size < 200_000
    done = subprocess.run([sys.executable, "-c", PEAK_CHILD, str(path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    peak_mib = float(done.stdout.split()[-1])
    assert peak_mib < bound_mib


def test_a_reduced_decode_gives_the_fitted_picture():
    """Reduced by a whole factor (PNG) or decoded at 1/8 scale (JPEG) before the fit, a large
    picture fits to (nearly) what a full-size decode fitted to."""
    picture = drawing(1800, 1200)
    for content, fmt in ((encoded(picture, "PNG"), "PNG"), (encoded(picture, "JPEG"), "JPEG")):
        for volume in (GREY, COLOUR):
            got = inputs.decode_upload(content, volume)
            expected = reference_fit(Image.open(io.BytesIO(content)), volume)
            assert got.shape == (volume.depth, volume.sy, volume.sx) and got.dtype == torch.uint8
            diff = (got.int() - expected.int()).abs().float()
            assert diff.mean() < 1.5, (fmt, volume, diff.mean())


def test_a_24_megapixel_phone_photo_is_scaled_not_refused(client: TestClient):
    """6000x4000, stored sideways with EXIF orientation 6 as phones do: accepted (it was a
    413), decoded at 1/8 scale, turned upright."""
    upright = drawing(4000, 6000)
    exif = Image.Exif()
    exif[inputs.ORIENTATION] = 6  # rotate 90 degrees clockwise to view
    content = encoded(upright.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=90,
                      exif=exif)
    assert Image.open(io.BytesIO(content)).size == (6000, 4000)
    got = inputs.decode_upload(content, COLOUR)
    expected = reference_fit(upright, COLOUR)
    assert (got.int() - expected.int()).abs().float().mean() < 2.0
    response = client.post("/api/models/mnist-convnetjs/activations/upload?layers=1",
                           files={"image": ("phone.jpg", content, "image/jpeg")})
    assert response.status_code == 200, response.text
    assert response.json()["image"]["shape"] == [1, 24, 24]


def test_bombs_and_huge_pngs_are_refused_in_one_line(client: TestClient):
    url = "/api/models/mnist-convnetjs/activations/upload"

    def post(content: bytes):
        return client.post(url, files={"image": ("x.png", content, "image/png")})

    bomb = post(png_header_only(30000, 30000))  # 900 megapixels: Pillow's bomb guard
    assert bomb.status_code == 413 and "too large to decode safely" in error_line(bomb)
    huge = post(png_header_only(5000, 5000))  # a PNG is decoded whole: 25 MP is too many
    assert huge.status_code == 413 and "at most 20 megapixels are decoded" in error_line(huge)
    lying = post(png_header_only(2000, 2000))  # claims pixels it does not hold
    assert lying.status_code == 400 and "could not be decoded" in error_line(lying)
    ihdr = b"IHDR\0\0\1"  # the header chunk cut short: Pillow raised ValueError, a 500
    short = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 3) + ihdr + struct.pack(">I", zlib.crc32(ihdr))
    truncated = post(short)
    assert truncated.status_code == 400 and "not a PNG or JPEG" in error_line(truncated)
    assert client.get("/api/models").status_code == 200  # still serving


# ---- at most a few decodes at once ---------------------------------------------------------


def test_at_most_a_few_uploads_are_decoded_at_once(monkeypatch: pytest.MonkeyPatch):
    running, most, lock = [0], [0], threading.Lock()
    load = ImageFile.ImageFile.load

    def slow_load(self):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        try:
            return load(self)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(ImageFile.ImageFile, "load", slow_load)
    content = encoded(drawing(300, 200), "PNG")
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        inputs.decode_upload(content, COLOUR).shape)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [(3, 32, 32)] * 8
    assert most[0] <= inputs.MAX_CONCURRENT_DECODES == 2


def test_an_upload_waits_for_a_decoding_slot_a_bounded_time(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(inputs, "DECODE_WAIT_S", 0.05)
    content = encoded(drawing(64, 64), "PNG")
    with inputs.decode_slot(), inputs.decode_slot():  # both slots taken
        with pytest.raises(ApiError) as refused:
            inputs.decode_upload(content, COLOUR)
    assert refused.value.status == 503 and "try again" in str(refused.value)
    assert inputs.decode_upload(content, COLOUR).shape == (3, 32, 32)  # the slots are back


def test_uploads_past_the_pending_cap_get_503_before_their_body_is_read(
        client: TestClient, monkeypatch: pytest.MonkeyPatch):
    """At most MAX_PENDING_UPLOADS uploads are held at once; decoding runs on the two decode
    threads (the C allocator keeps freed memory per thread: 40 pool threads kept 4.4 GB)."""
    url = "/api/models/mnist-convnetjs/activations/upload"
    content = encoded(drawing(300, 200), "PNG")
    with ExitStack() as taken:
        for _ in range(inputs.MAX_PENDING_UPLOADS):
            taken.enter_context(inputs.pending_upload())
        busy = client.post(url, files={"image": ("x.png", content, "image/png")})
    assert busy.status_code == 503 and "try again" in error_line(busy)
    threads = []
    load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: (
        threads.append(threading.current_thread().name), load(self))[1])
    assert client.post(url, files={"image": ("x.png", content)}).status_code == 200
    assert threads and all(name.startswith("convscope-decode") for name in threads)


# ---- activations: only what is asked for ---------------------------------------------------


def test_activations_of_one_layer_encode_that_layer_only(client: TestClient,
                                                        monkeypatch: pytest.MonkeyPatch):
    encoded_shapes = []
    tensor_json = encode.tensor_json

    def spy(tensor: torch.Tensor) -> dict:
        encoded_shapes.append(tuple(tensor.shape))
        return tensor_json(tensor)

    monkeypatch.setattr(encode, "tensor_json", spy)
    body = {"sample": {"dataset": "mnist", "index": 5}, "layers": [4]}
    response = client.post("/api/models/mnist-convnetjs/activations", json=body)
    assert response.status_code == 200
    layers = json.loads(response.content)["layers"]
    assert [layer["index"] for layer in layers] == [4]
    assert encoded_shapes == [(1, 24, 24), tuple(layers[0]["output"]["shape"])]  # input, layer 4


def test_models_run_on_their_own_threads_with_one_torch_thread_each():
    """One torch thread on the model threads; torch's default for other threads unchanged."""
    default = torch.get_num_threads()

    async def on_model_thread() -> tuple[int, str]:
        return await compute.run_model(lambda: (torch.get_num_threads(),
                                                threading.current_thread().name))

    threads, name = asyncio.run(on_model_thread())
    assert threads == 1 and name.startswith("convscope-model")
    later = []
    thread = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert later == [default] and torch.get_num_threads() == default
