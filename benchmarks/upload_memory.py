"""Peak memory and time of decoding one upload for the explorer (``decode_upload``).

Each case is decoded in a fresh Python process, which reads the file, clears its peak resident
size (``/proc/self/clear_refs``, Linux) and reports how far decoding raised it (VmHWM - VmRSS
before), so memory freed by earlier cases cannot hide any. Cases: 4400x4400 PNGs (RGB, grey,
palette; a few hundred KB each) and a 24-megapixel 6000x4000 JPEG photo, fitted to a 24x24 grey
and a 32x32 RGB input.

    python benchmarks/upload_memory.py
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _report import command_line, machine
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


def main() -> None:
    rows = ["| upload | file | input | peak MiB | ms | outcome |", "|---|--:|---|--:|--:|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, content in cases().items():
            path = Path(tmp) / "upload"
            path.write_bytes(content)
            for volume in VOLUMES:
                got = measure(path, volume)
                rows.append(f"| {name} | {len(content) / 1000:.0f} KB | "
                            f"{'x'.join(map(str, volume))} | {got['mib']:.1f} | {got['ms']:.0f} | "
                            f"{got['outcome'][:80]} |")
    print("\n".join(rows))
    print(f"\nMachine: {machine()}.\n\nCommand: `{command_line()}`")


if __name__ == "__main__":
    main()
