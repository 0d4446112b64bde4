"""Peak memory and time of decoding one upload for the explorer (``decode_upload``).

Each case is decoded in a fresh Python process, which reads the file, clears its peak resident
size (``/proc/self/clear_refs``, Linux) and reports how far decoding raised it (VmHWM - VmRSS
before), so memory freed by earlier cases cannot hide any. Cases: 4400x4400 PNGs (RGB, grey,
palette; a few hundred KB each) and a 24-megapixel 6000x4000 JPEG photo, fitted to a 24x24 grey
and a 32x32 RGB input. Then --concurrent uploads at once of the palette PNG to a real
`convscope serve` (as benchmarks/load.py starts it): the server's resident memory before, at
its peak and after.

    python benchmarks/upload_memory.py [--concurrent 40]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from _report import command_line, machine, write_section
from load import memory_kib, start_server
from PIL import Image, ImageDraw

VOLUMES = ((24, 24, 1), (32, 32, 3))
CHILD = """
import io, json, sys, time
from pathlib import Path
from PIL import Image
from convscope.server.inputs import decode_upload
from convscope.spec import Volume

def kib(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])

content = Path(sys.argv[1]).read_bytes()
volume = Volume(*map(int, sys.argv[2:5]))
for fmt in ("PNG", "JPEG"):  # warm up: Pillow's plugins load on first use
    tiny = io.BytesIO()
    Image.new("RGB", (8, 8)).save(tiny, fmt)
    decode_upload(tiny.getvalue(), volume)
Path("/proc/self/clear_refs").write_text("5")
before, start = kib("VmRSS"), time.perf_counter()
try:
    decode_upload(content, volume)
    outcome = "decoded"
except Exception as exc:
    outcome = f"refused: {exc}"
print(json.dumps({"mib": (kib("VmHWM") - before) / 1024, "ms": 1000 * (time.perf_counter() - start),
                  "outcome": outcome}))
"""


def picture(width: int, height: int, mode: str) -> Image.Image:
    """Flat colour with overlapping ellipses: large, yet a small file."""
    image = Image.new("RGB", (width, height), (30, 60, 90))
    draw = ImageDraw.Draw(image)
    for i in range(0, min(width, height), min(width, height) // 22):
        draw.ellipse((i, i // 2, i + width // 5, i // 2 + height // 8), fill=(200, i % 255, 40))
    return image.convert(mode)


def encoded(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


def cases() -> dict[str, bytes]:
    return {"4400x4400 RGB PNG": encoded(picture(4400, 4400, "RGB"), "PNG"),
            "4400x4400 grey PNG": encoded(picture(4400, 4400, "L"), "PNG"),
            "4400x4400 palette PNG": encoded(picture(4400, 4400, "RGB").quantize(16), "PNG"),
            "6000x4000 JPEG (24 MP)": encoded(picture(6000, 4000, "RGB"), "JPEG")}


def measure(path: Path, volume: tuple[int, int, int]) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), *map(str, volume)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def concurrent_uploads(content: bytes, count: int) -> str:
    """``count`` uploads of ``content`` at once to a fresh server: statuses and its memory."""
    with tempfile.TemporaryDirectory() as empty:
        server, host, port = start_server(empty)
        try:
            url = f"http://{host}:{port}/api/models/cifar10-convnetjs/activations/upload?layers=1"
            files = {"image": ("upload.png", content, "image/png")}
            httpx.post(url, files=files, timeout=120)  # warm up
            before, statuses = memory_kib(server.pid), []
            start = time.perf_counter()
            threads = [threading.Thread(target=lambda: statuses.append(
                httpx.post(url, files=files, timeout=300).status_code)) for _ in range(count)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall, after = time.perf_counter() - start, memory_kib(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    return (f"{count} concurrent uploads of the {len(content) / 1000:.0f} KB palette PNG: "
            f"statuses {sorted(set(statuses))} in {wall:.1f} s; server RSS "
            f"{before['VmRSS'] / 1024:.0f} MiB before, peak {after['VmHWM'] / 1024:.0f} MiB, "
            f"{after['VmRSS'] / 1024:.0f} MiB after.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrent", type=int, default=40,
                        help="uploads at once to a real server (0: skip)")
    parser.add_argument("--write-doc", action="store_true",
                        help="write the tables to docs/benchmarks.md")
    args = parser.parse_args()
    rows = ["| upload | file | input | peak MiB | ms | outcome |", "|---|--:|---|--:|--:|---|"]
    made = cases()
    with tempfile.TemporaryDirectory() as tmp:
        for name, content in made.items():
            path = Path(tmp) / "upload"
            path.write_bytes(content)
            for volume in VOLUMES:
                got = measure(path, volume)
                rows.append(f"| {name} | {len(content) / 1000:.0f} KB | "
                            f"{'x'.join(map(str, volume))} | {got['mib']:.1f} | {got['ms']:.0f} | "
                            f"{got['outcome'][:80]} |")
    parts = ["## Memory of one upload (`benchmarks/upload_memory.py`)", "Each upload is decoded "
             "and fitted in a fresh process; peak is how far decoding raised its resident "
             "memory (VmHWM).", "\n".join(rows)]
    if args.concurrent:
        parts.append(concurrent_uploads(made["4400x4400 palette PNG"], args.concurrent))
    parts.append(f"Machine: {machine()}.\n\nCommand: `{command_line()}`")
    body = "\n\n".join(parts)
    print(body)
    if args.write_doc:
        write_section("upload_memory", body)


if __name__ == "__main__":
    main()
