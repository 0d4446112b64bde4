"""The Live view in Chromium with a fake camera (a generated .y4m file): the first conv layer's
maps drawn as tiles with hover zoom, the fc layers and top classes, and the page's OSC stream
(space bar on/off) received by a python-osc server, each message the activations of a frame the
page sent, computed directly."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from served import BROWSER_ARGS, CHROMIUM, served, watched_page
from test_live_stream import OscListener

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from live_fps import write_y4m  # noqa: E402

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's Chromium is not installed at /usr/bin/chromium")
playwright_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("uvicorn")
pytest.importorskip("pythonosc")

MODEL = "cifar10-convnetjs"
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "screenshots" / "live.png"
FRAMES = "Number(document.querySelector('.view-live')?.dataset.frames ?? 0)"


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[object]:
    camera = write_y4m(tmp_path_factory.mktemp("camera") / "camera.y4m", frames=30)
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            *BROWSER_ARGS, f"--use-file-for-fake-video-capture={camera}"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    from convscope.server import create_app

    with served(create_app()) as url:
        yield url


def sent_frames(page) -> list[bytes]:
    """Every binary message the page sends over its WebSockets, as it sends them."""
    frames: list[bytes] = []
    page.on("websocket", lambda ws: ws.on(
        "framesent", lambda payload: isinstance(payload, bytes) and frames.append(payload)))
    return frames


def direct(frame: bytes, layer: int) -> np.ndarray:
    """Layer ``layer``'s output for a frame message, computed directly."""
    from convscope.augment import to_input
    from convscope.predict import fit_any, preparation
    from convscope.probes import activations
    from convscope.runs import open_run
    from convscope.server.frames import decode_frame

    run = open_run(MODEL)
    fitted = fit_any(decode_frame(frame), run.model.layers[0].out_volume, preparation(run))
    return activations(run.model, to_input(fitted))[layer].flatten().numpy()


def test_live_maps_from_the_fake_camera(browser, base_url: str) -> None:
    with watched_page(browser, base_url, timeout_ms=30_000) as page:
        page.goto(f"/#/live?model={MODEL}")
        page.get_by_role("button", name="Webcam").click()
        page.wait_for_function(f"{FRAMES} >= 5")
        tiles = page.locator(".tile-grid canvas")
        assert tiles.count() == 16  # conv 5x5 x16
        assert tiles.first.get_attribute("title") == "blocks.1 - 0"
        spread = page.evaluate("""() => {
            const c = document.querySelector('.tile-grid canvas');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let lo = 255, hi = 0;
            for (let i = 0; i < d.length; i += 4) {
                lo = Math.min(lo, d[i]);
                hi = Math.max(hi, d[i]);
            }
            return hi - lo;
        }""")
        assert spread > 20  # a map drawn from the camera, not a blank tile
        tiles.nth(5).hover()
        assert page.locator(".tile-zoom figcaption").inner_text() == "blocks.1 - 5"
        top = page.locator(".probabilities .bar-row")
        assert top.count() == 5  # the top 5 of CIFAR-10's classes, with their percentages
        assert top.first.locator(".bar-name").inner_text() in (
            "airplane automobile bird cat deer dog frog horse ship truck".split())
        assert top.first.locator(".bar-value").inner_text().endswith("%")
        assert "fc 10" in page.locator(".live-maps").inner_text()
        assert "32x32x3 view of each frame" in page.locator(".view-header").inner_text()
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))


def test_page_streams_over_osc_with_the_space_bar(browser, base_url: str) -> None:
    with OscListener() as osc, watched_page(browser, base_url, timeout_ms=30_000) as page:
        frames = sent_frames(page)
        page.goto(f"/#/live?model={MODEL}")
        page.get_by_label("send").select_option("9")
        page.get_by_label("OSC host:port").fill(f"127.0.0.1:{osc.port}")
        page.get_by_label("OSC host:port").dispatch_event("change")
        page.get_by_label("OSC address").fill("/page/features")
        page.get_by_label("OSC address").dispatch_event("change")
        page.get_by_role("button", name="Webcam").click()
        page.wait_for_function(f"{FRAMES} >= 3")
        assert not osc.messages  # not sending until the space bar
        page.keyboard.press("Space")  # (with the Webcam button focused: it is not pressed)
        got = osc.wait_for(5)
        page.wait_for_function("document.querySelector('.live-stream-status')"
                               ".textContent.includes('sent')")
        page.keyboard.press("Space")
        page.wait_for_function("document.querySelector('.live-stream-status')"
                               ".textContent.startsWith('not sending')")  # (after every frame)
        time.sleep(0.3)  # (the last datagrams on their way)
        stopped = len(osc.messages)
        time.sleep(0.5)
        assert len(osc.messages) == stopped  # the space bar stopped it
        sent = list(frames)
    assert len(got) >= 5
    assert {address for address, _ in got} == {"/page/features"}
    expected = [direct(frame, 9) for frame in sent]
    for _, args in got[:5]:
        assert len(args) == 320
        values = np.array(args, np.float32)
        assert any(np.allclose(values, e, rtol=1e-5, atol=1e-6) for e in expected)


def test_a_picture_streams_like_a_camera(browser, base_url: str, tmp_path: Path) -> None:
    from PIL import Image

    picture = np.zeros((120, 200, 3), np.uint8)
    picture[:, 100:] = (250, 40, 40)  # the centred square crop is half black, half red
    Image.fromarray(picture).save(tmp_path / "picture.png")
    with watched_page(browser, base_url, timeout_ms=30_000) as page:
        frames = sent_frames(page)
        page.goto(f"/#/live?model={MODEL}")
        page.locator("input[type=file][accept='image/*']").set_input_files(
            str(tmp_path / "picture.png"))
        page.wait_for_function(f"{FRAMES} >= 3")  # sent again and again, so streams go on
        seen = page.evaluate("""() => {
            const c = document.querySelector('.seen canvas');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            const right = 4 * (c.width - 1);
            return [Array.from(d.slice(0, 3)), Array.from(d.slice(right, right + 3))];
        }""")
        sent = frames[0]
    assert seen[0][0] < 30 and seen[1][0] > 200  # what the network sees: black left, red right
    from convscope.server.frames import decode_frame

    image = decode_frame(sent)
    assert image.shape[1] == image.shape[2] <= 128  # cropped square, reduced in the page


def test_a_video_file_plays_through_the_network(browser, base_url: str, tmp_path: Path) -> None:
    import cv2

    path = tmp_path / "clip.webm"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"VP80"), 10, (160, 120))
    if not writer.isOpened():
        pytest.skip("this OpenCV cannot write WebM (VP8)")
    for i in range(20):
        frame = np.full((120, 160, 3), 20, np.uint8)
        frame[30:90, 8 * i:8 * i + 40] = (30, 200, 240)
        writer.write(frame)
    writer.release()
    with watched_page(browser, base_url, timeout_ms=30_000) as page:
        frames = sent_frames(page)
        page.goto(f"/#/live?model={MODEL}")
        page.locator("input[type=file][accept='video/*']").set_input_files(str(path))
        page.wait_for_function(f"{FRAMES} >= 5")
        sent = list(frames)
    assert len(set(sent)) >= 3  # the video's frames, not one frame again
