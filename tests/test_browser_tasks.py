"""The Scenes and Audio views in a real browser (Debian's Chromium driven by Playwright) against
the real server: untrained zoo networks saved as runs, scenes made of the bundled MNIST digits
and synthetic FSDD recordings. Writes docs/screenshots/scenes-detect.png, scenes-segment.png
and audio.png (1280x800)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from _task_runs import tone, wav_bytes, write_fsdd, write_task_run
from served import CHROMIUM, served, watched_page

from convscope.bundle import BUNDLED

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's Chromium is not installed at /usr/bin/chromium")
playwright_api = pytest.importorskip("playwright.sync_api")
uvicorn = pytest.importorskip("uvicorn")

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
# The page reports refused requests itself; Chromium also logs them (not a page failure).
REFUSED = "the server responded with a status of 400"
COLOURS = """canvas => {
  const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const seen = new Set();
  for (let i = 0; i < d.length && seen.size < 4; i += 4) {
    seen.add(d[i] * 65536 + d[i + 1] * 256 + d[i + 2]);
  }
  return seen.size;
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app on a free port with a detect, a segment and an audio run, the bundled MNIST
    sample (its scenes) and 12 test recordings; yields its base URL."""
    from convscope.server import create_app

    tmp = tmp_path_factory.mktemp("explorer-tasks")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVSCOPE_CACHE", str(tmp / "cache"))
        data = tmp / "data"
        write_fsdd(data)
        for task in ("detect", "segment", "audio"):
            write_task_run(tmp / "runs" / task, task)
        with served(create_app(runs_dir=tmp / "runs", data_dir=str(data),
                               bundled_dir=BUNDLED)) as url:
            yield url


@pytest.fixture
def page(browser, server: str) -> Iterator[object]:
    """A 1280x800 page; the test fails if the page logs an error (other than a refusal)."""
    with watched_page(browser, server, expected=REFUSED) as tab:
        yield tab


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def wait_for_text(page, selector: str, text: str) -> None:
    page.wait_for_function("([s, t]) => document.querySelector(s)?.innerText.includes(t)",
                           arg=[selector, text])


def test_detection_scenes_grid_threshold_and_a_drawn_scene(page):
    page.goto("/#/scenes?model=run-detect")
    scene = page.locator("canvas.scene-canvas")
    scene.wait_for()
    wait_for_text(page, ".input-status", "test scene 0")
    assert page.locator("#nav a[data-view=confusion]").is_hidden()  # not for detectors
    assert page.locator("#nav a[data-view=scenes]").is_visible()
    assert page.locator("#dataset-picker").input_value() == "mnist-detect-scenes"
    listed = page.locator(".scene-side").inner_text()
    assert "after non-maximum suppression" in listed and "the scene holds" in listed

    page.get_by_label("confidence threshold").fill("0.02")  # untrained: weak guesses only
    page.wait_for_function("c => Number(c.dataset.boxes) > 0", arg=scene.element_handle())
    assert page.locator(".detections li").count() == int(scene.get_attribute("data-boxes"))
    page.get_by_role("checkbox", name="grid").check()
    scene = page.locator("canvas.scene-canvas")
    assert scene.get_attribute("data-grid") == "on"
    assert 0 < int(scene.get_attribute("data-cells")) <= 144  # of the 12 x 12 cells
    page.get_by_role("checkbox", name="ground truth").check()
    assert page.locator("canvas.scene-canvas").get_attribute("data-truth") == "on"
    assert "grid=1" in page.url and "threshold=0.02" in page.url
    page.get_by_role("button", name="next scene").click()
    wait_for_text(page, ".input-status", "test scene 1")
    page.locator(".maps-detail .map-tile").first.wait_for()
    screenshot(page, "scenes-detect")

    page.get_by_role("button", name="Draw a scene").click()
    pad = page.locator(".scene-pad canvas.pad").bounding_box()
    for (x0, y0), (x1, y1) in (((60, 50), (60, 130)), ((180, 150), (230, 250))):  # a 1, a 7ish
        page.mouse.move(pad["x"] + x0, pad["y"] + y0)
        page.mouse.down()
        page.mouse.move(pad["x"] + x1, pad["y"] + y1, steps=5)
        page.mouse.up()
    wait_for_text(page, ".input-status", "your scene")
    scene = page.locator("canvas.scene-canvas")
    assert scene.get_attribute("data-truth") == "off"  # a drawing has no ground truth
    assert page.get_by_role("checkbox", name="ground truth").is_disabled()
    assert scene.evaluate(COLOURS) > 2


def test_segmentation_scenes_show_both_masks_and_the_unet_layers(page):
    page.goto("/#/scenes?model=run-segment&truth=1")
    page.locator("canvas.truth-canvas").wait_for()
    legend = page.locator(".mask-legend li")
    assert legend.count() == 11 and legend.last.inner_text().startswith("background")
    assert page.locator("canvas.truth-canvas").evaluate(COLOURS) > 2
    page.locator(".layer-button", has_text="concat").first.click()
    wait_for_text(page, ".maps-detail h3", "concat + layer")  # (the first layer's maps were up)
    tiles = page.locator(".maps-detail .map-tile")
    tiles.first.wait_for()
    assert tiles.count() > 8  # the upsampled maps plus the encoder's
    page.locator(".layer-list").evaluate("e => e.scrollIntoView({block: 'start'})")
    page.evaluate("() => window.scrollTo(0, 0)")
    screenshot(page, "scenes-segment")

    page.goto("/#/confusion?model=run-segment")  # a classifier's view: said why not
    wait_for_text(page, "main .notice", "segmentation model")
    assert page.locator("main .notice a").get_attribute("href").startswith("#/scenes")


def test_audio_page_plays_uploads_and_refuses_clearly(page):
    page.goto("/#/audio?model=run-audio")
    spectrogram = page.locator("canvas.spectrogram-image")
    spectrogram.wait_for()
    wait_for_text(page, ".input-status", "recording 0_ann_0")
    assert "Prediction:" in page.locator(".probabilities").inner_text()
    assert page.locator(".probabilities .bar-row").count() == 10
    page.get_by_label("test recording").select_option("7")
    wait_for_text(page, ".input-status", "recording 1_bob_1")
    assert page.locator("audio.player").get_attribute("src").endswith("/api/audio/recordings/7.wav")
    page.wait_for_function("a => a.readyState >= 1 && Math.abs(a.duration - 0.5) < 0.01",
                           arg=page.locator("audio.player").element_handle())
    assert page.locator("canvas.waveform-canvas").evaluate(COLOURS) > 2
    assert "spoken: 1" in page.locator(".probabilities").inner_text()
    page.locator(".maps-detail .map-tile").first.wait_for()
    screenshot(page, "audio")

    upload = page.locator("input[type=file][accept*=wav]")
    sound = np.concatenate([np.zeros(4000, np.float32), tone(4, 0.6, 22050)])
    upload.set_input_files(files=[{"name": "four.wav", "mimeType": "audio/wav",
                                   "buffer": wav_bytes(sound, rate=22050)}])
    wait_for_text(page, ".input-status", "uploaded four.wav")
    assert "spoken:" not in page.locator(".probabilities").inner_text()  # no label to compare
    assert "null" not in page.locator("main").inner_text()
    assert page.locator("audio.player").get_attribute("src").startswith("blob:")
    upload.set_input_files(files=[{"name": "quiet.wav", "mimeType": "audio/wav",
                                   "buffer": wav_bytes(np.zeros(8000, np.float32))}])
    wait_for_text(page, ".audio-message .error", "silent")
    upload.set_input_files(files=[{"name": "notes.wav", "mimeType": "audio/wav",
                                   "buffer": b"these are not samples"}])
    wait_for_text(page, ".audio-message .error", "not a WAV file")


def test_recording_in_the_page_is_sent_as_a_wav(page):
    page.goto("/#/audio?model=run-audio")
    page.locator("canvas.spectrogram-image").wait_for()
    header = page.evaluate("""async () => {
      const {encodeWav} = await import('/static/wav.js');
      const bytes = encodeWav(new Float32Array([0, 0.5, -1]), 16000);
      const view = new DataView(bytes.buffer);
      const {boxIou} = await import('/static/views/scenes.js');
      return {riff: String.fromCharCode(...bytes.slice(0, 4)), rate: view.getUint32(24, true),
              bits: view.getUint16(34, true), size: view.getUint32(40, true),
              samples: [view.getInt16(44, true), view.getInt16(46, true), view.getInt16(48, true)],
              iou: boxIou([0, 0, 2, 2], [1, 1, 2, 2])};
    }""")
    assert header == {"riff": "RIFF", "rate": 16000, "bits": 16, "size": 6,
                      "samples": [0, 16384, -32767], "iou": pytest.approx(1 / 7)}
    microphones = page.evaluate("async () => (await navigator.mediaDevices.enumerateDevices())"
                                ".filter(d => d.kind === 'audioinput').length")
    if not microphones:
        pytest.skip("this Chromium offers no fake microphone (--use-fake-device-for-media-stream)")
    with page.expect_response(lambda r: r.url.endswith("/audio/upload")) as sent:
        page.get_by_role("button", name="Record", exact=True).click()
        page.get_by_role("button", name="Stop", exact=True).wait_for()
        page.wait_for_timeout(1200)
        page.get_by_role("button", name="Stop", exact=True).click()
    # Chromium's fake microphone beeps now and then: the clip is heard or said to be silent.
    if sent.value.ok:
        wait_for_text(page, ".input-status", "your recording")
    else:
        wait_for_text(page, ".audio-message .error", "silent")
    assert page.get_by_role("button", name="Record", exact=True).is_visible()
