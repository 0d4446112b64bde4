"""The explorer's requests for one photo on AlexNet and VGG-16 (untrained, seeded weights), as
the page makes them: time (wall and CPU) and response size, in process through the real app
(routing, upload decoding, the model threads, JSON), without a network.

Per model: the first request (it builds the model), then the median of --calls calls of
(1) the upload of a 640x480 JPEG, asking for the input layer only (what the page asks for on
these nets), (2) the Maps view's request for the first conv layer and its input (the fitted
photo sent back as pixels), (3) the Weights view's request for the first conv layer. For
comparison, the size an upload asking for every layer would have (computed, not sent).

    python benchmarks/big_nets.py [--calls 5] [--threads N] [--write-doc]
"""

from __future__ import annotations

import argparse
import base64
import io
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import command_line, machine, median, write_section  # noqa: E402

from convscope import resolve  # noqa: E402
from convscope.registry import get_model_entry  # noqa: E402
from convscope.spec import activation_values  # noqa: E402

MODELS = ("alexnet", "vgg16")


def photo() -> bytes:
    y, x = np.mgrid[0:480, 0:640]
    rgb = np.stack([x * 255 // 640, y * 255 // 480, (x * y) % 256], axis=-1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def timed(call, calls: int) -> tuple[float, float, int]:
    """Median wall ms, median CPU ms (this process, all threads) and response bytes."""
    walls, cpus, size = [], [], 0
    for _ in range(calls):
        wall, cpu = time.perf_counter(), time.process_time()
        response = call()
        walls.append(1000 * (time.perf_counter() - wall))
        cpus.append(1000 * (time.process_time() - cpu))
        assert response.status_code == 200, response.text[:200]
        size = len(response.content)
    return median(walls), median(cpus), size


def measure(client, name: str, calls: int) -> list[list[str]]:
    jpeg = photo()
    upload = lambda: client.post(f"/api/models/{name}/activations/upload?layers=0",  # noqa: E731
                                 files={"image": ("photo.jpg", jpeg, "image/jpeg")})
    start = time.perf_counter()
    first = upload()
    cold = 1000 * (time.perf_counter() - start)
    image = first.json()["image"]  # the fitted photo, uint8 (depth, height, width)
    depth, height, width = image["shape"]
    hwc = np.frombuffer(base64.b64decode(image["data"]), np.uint8).reshape(depth, height, width)
    pixels = {"pixels": {"width": width, "height": height, "depth": depth,
                         "data": hwc.transpose(1, 2, 0).ravel().tolist()}, "layers": [0, 1]}
    maps = lambda: client.post(f"/api/models/{name}/activations", json=pixels)  # noqa: E731
    weights = lambda: client.get(f"/api/models/{name}/layers/1/weights")  # noqa: E731
    every = activation_values(resolve(get_model_entry(name).spec)) * 4 * 4 / 3  # float32, base64
    rows = [[name, "first upload (builds the model)", f"{cold:,.0f}", "", ""]]
    for what, call in (("upload, input layer only", upload),
                       ("Maps: layers 0 and 1 (pixels)", maps),
                       ("Weights: layer 1", weights)):
        wall, cpu, size = timed(call, calls)
        rows.append([name, what, f"{wall:,.0f}", f"{cpu:,.0f}", f"{size / 2**20:,.2f} MiB"])
    rows.append([name, "(an upload of every layer)", "", "", f"{every / 2**20:,.0f} MiB"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5, help="timed calls per request")
    parser.add_argument("--threads", type=int, help="torch intra-op threads of this process")
    parser.add_argument("--write-doc", action="store_true",
                        help="write the table to docs/benchmarks.md")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from starlette.testclient import TestClient

    from convscope.server import create_app

    with TestClient(create_app(), base_url="http://127.0.0.1") as client:
        rows = [row for name in MODELS for row in measure(client, name, args.calls)]
    header = ["model", "request", "wall ms", "CPU ms", "response"]
    table = "\n".join("| " + " | ".join(row) + " |"
                      for row in [header, ["---"] * 2 + ["--:"] * 3, *rows])
    body = (f"## AlexNet and VGG-16 in the explorer (one photo)\n\n"
            f"Requests the page makes for a 640x480 JPEG on the untrained `alexnet` (227x227x3) "
            f"and `vgg16` (224x224x3), in process through the app (no network): median of "
            f"{args.calls} calls after the first. The server computes each request's whole "
            f"forward pass on one of its model threads (one torch thread each) and sends only "
            f"the layers asked for; CPU ms counts every thread of the process (fairer than "
            f"wall ms on a machine shared with other jobs, as this one may be).\n\n{table}\n\n"
            f"Machine: {machine()}.\n\nCommand: `{command_line()}`")
    print(body)
    if args.write_doc:
        write_section("big-nets", body)


if __name__ == "__main__":
    main()
