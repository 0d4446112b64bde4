"""Frames per second of the explorer's Live view, end to end, in Debian's Chromium with a fake
camera: the camera's frame grabbed and reduced in the page, sent over the view's WebSocket, the
layers shown computed and sent back, drawn (tiles, strips, top classes).

Starts `convscope serve` (bundled models) on a free port, writes a moving test pattern as a
.y4m file that Chromium plays as its camera (``--use-fake-device-for-media-stream
--use-file-for-fake-video-capture=FILE``), opens ``#/live`` for each model, presses Webcam,
waits ``--warmup`` seconds and counts the results drawn during ``--seconds``. Writes the
"live_fps" section of docs/benchmarks.md with --write-doc.

    python benchmarks/live_fps.py --write-doc
    python benchmarks/live_fps.py --run runs/cifar10-94 --models run-cifar10-94 ... --write-doc

``--run DIR`` offers a run too (as ``run-<name>``): the speed of a network does not depend on
its weights, so an unfinished run measures its architecture.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import command_line, machine, start_server, write_section
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--use-fake-ui-for-media-stream",
         "--use-fake-device-for-media-stream"]
MODELS = ("mnist-convnetjs", "mnist-ordinary", "cifar10-convnetjs", "cifar10-ordinary",
          "cifar10-94")
CAMERA_FPS = 30


def write_y4m(path: Path, frames: int = 60, width: int = 320, height: int = 240,
              seed: int = 0, fps: int = CAMERA_FPS) -> Path:
    """A .y4m video (4:2:0) that Chromium's fake camera plays in a loop: a bright square
    moving over a seeded noise background (``seed`` makes two different "cameras")."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 120, (height, width), dtype=np.uint8)
    chroma = np.full((height // 2, width // 2), 128 + 40 * (seed % 3 - 1), np.uint8)
    with Path(path).open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            luma = background.copy()
            x = (i * 7) % (width - 60)
            luma[60:120, x:x + 60] = 235
            out.write(b"FRAME\n" + luma.tobytes() + chroma.tobytes() + chroma.tobytes())
    return Path(path)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process ``pid`` has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(browser, url: str, model: str, warmup: float, seconds: float, server: int) -> dict:
    """Frames drawn per second on ``#/live`` of ``model``, and the server's CPU time a frame
    (``server``: its process id)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(f"{url}#/live?model={model}")
    page.get_by_role("button", name="Webcam").click()
    page.wait_for_function("Number(document.querySelector('.view-live')?.dataset.frames) > 0",
                           timeout=30_000)
    time.sleep(warmup)
    count = "Number(document.querySelector('.view-live').dataset.frames)"
    first, start, cpu = page.evaluate(count), time.perf_counter(), cpu_seconds(server)
    time.sleep(seconds)
    last, elapsed = page.evaluate(count), time.perf_counter() - start
    cpu = cpu_seconds(server) - cpu
    server_ms = page.evaluate("document.querySelector('.live-rate').textContent")
    context.close()
    return {"model": model, "fps": (last - first) / elapsed, "frames": last - first,
            "rate_text": server_ms, "cpu_ms": 1000 * cpu / max(1, last - first)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--run", action="append", default=[], metavar="DIR",
                        help="also offer this run (id run-<name>)")
    parser.add_argument("--write-doc", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]  # other work on the machine, before this script's own
    with tempfile.TemporaryDirectory() as folder:
        camera = write_y4m(Path(folder) / "camera.y4m")
        server, url = start_server(folder, args.run)
        results = []
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                    *FLAGS, f"--use-file-for-fake-video-capture={camera}"])
                for model in args.models:
                    try:
                        results.append(measure(browser, url, model, args.warmup, args.seconds,
                                               server.pid))
                    except Exception as exc:  # noqa: BLE001 (a model not bundled here)
                        print(f"{model}: skipped ({type(exc).__name__}: {exc})")
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=10)
    rows = [f"| `{r['model']}` | {r['fps']:.1f} | {r['frames']} | {r['cpu_ms']:.1f} | "
            f"{r['rate_text']} |" for r in results]
    body = "\n".join([
        "## Live view: frames per second, end to end (Chromium, fake camera)", "",
        f"Measured by `{command_line()}` on {machine()}. A 320x240 {CAMERA_FPS} frames/s fake "
        "camera (a generated .y4m); each frame is cropped and reduced in the page, sent over the "
        "Live view's WebSocket, the shown layers (the first conv layer's maps and every fc "
        "layer) computed on one torch thread and drawn. Each camera frame is sent once, so "
        f"{CAMERA_FPS} is the ceiling. Frames/s: results drawn during "
        f"{args.seconds:g} s after {args.warmup:g} s of warm-up. The goal is 15 frames/s. "
        f"1-minute load average before the script started: {load_before:.1f} (on a busy "
        "machine the figures are a lower bound).", "",
        "| model | frames/s | frames counted | server CPU ms a frame | the page's own reading |",
        "|---|---|---|---|---|", *rows, "",
        "Server CPU ms a frame: the `convscope serve` process's CPU time (all its threads: "
        "the WebSocket, decoding, the model) over the frames counted; fairer than wall time "
        "on a shared machine.",
        *(f"`run-{Path(run).name}`: the network of the run `{run}` as it is (frames/s do not "
          "depend on its weights, so an unfinished run measures its architecture)."
          for run in args.run),
    ])
    print(body)
    if args.write_doc:
        write_section("live_fps", body)


if __name__ == "__main__":
    main()
