"""Train your own on the Live page in Chromium: two classes recorded from two different fake
cameras (two browsers on one explorer, whose example set outlives a page) and from uploaded
pictures, trained, predicted live, the /classification messages received by a python-osc
server; then saved, cleared, loaded and predicting the same."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
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
FRAMES = "Number(document.querySelector('.view-live')?.dataset.frames ?? 0)"
COUNT = "Number(document.querySelector('.teach')?.dataset.count ?? -1)"
PREDICTED = "document.querySelector('.teach')?.dataset.predicted"
SHOWN_THUMBS_MATCH_COUNT = """(i) => {
  const row = document.querySelectorAll('.teach-class')[i];
  const count = Number(row.querySelector('.teach-count').textContent);
  return row.querySelectorAll('.teach-thumb').length === Math.min(12, count);
}"""


@pytest.fixture(scope="module")
def cameras(tmp_path_factory) -> Iterator[list[object]]:
    """Two Chromiums, each with its own fake camera (different colour and noise)."""
    folder = tmp_path_factory.mktemp("cameras")
    with playwright_api.sync_playwright() as p:
        browsers = [p.chromium.launch(executable_path=str(CHROMIUM), args=[
            *BROWSER_ARGS, "--use-file-for-fake-video-capture="
            f"{write_y4m(folder / f'camera{seed}.y4m', frames=20, seed=seed)}"])
            for seed in (0, 2)]
        yield browsers
        for browser in browsers:
            browser.close()


def live(page) -> None:
    page.goto(f"/#/live?model={MODEL}")
    page.get_by_role("button", name="Webcam").click()
    page.wait_for_function(f"{FRAMES} >= 3")
    page.wait_for_function(f"{COUNT} >= 0")


def hold(page, button, until: str) -> None:
    """Press ``button`` (a pointer held down on it) until ``until`` is true in the page."""
    button.dispatch_event("pointerdown", {"pointerId": 1})
    page.wait_for_function(until)
    button.dispatch_event("pointerup", {"pointerId": 1})


def pictures(folder: Path, colour: tuple[int, int, int], count: int) -> list[str]:
    paths = []
    for i in range(count):
        array = np.random.default_rng(i).integers(0, 60, (60, 80, 3)) + np.array(colour)
        buffer = io.BytesIO()
        Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).save(buffer, "PNG")
        (folder / f"p{i}.png").write_bytes(buffer.getvalue())
        paths.append(str(folder / f"p{i}.png"))
    return paths


def test_record_two_cameras_train_predict_osc_save_and_load(cameras, tmp_path: Path) -> None:
    from convscope.server import create_app

    with served(create_app(runs_dir=tmp_path)) as url, OscListener() as osc, \
            watched_page(cameras[0], url, timeout_ms=30_000) as first, \
            watched_page(cameras[1], url, timeout_ms=30_000) as second:
        live(first)
        first.locator("h2").click()
        first.keyboard.down("1")  # ml4a's keys: hold 1 to record class 1
        first.wait_for_function(f"{COUNT} >= 8")
        first.keyboard.up("1")
        live(second)
        hold(second, second.get_by_role("button", name="record 2"), f"{COUNT} >= 16")
        recorded = int(second.evaluate(COUNT))
        second.locator(".teach-class").nth(1).locator("input[type=file]").set_input_files(
            pictures(tmp_path, (20, 30, 200), 3))  # three uploaded pictures of class 2
        second.wait_for_function(f"{COUNT} >= {recorded + 3}")
        counts = second.locator(".teach-count").all_inner_texts()
        assert int(counts[0]) >= 8 and int(counts[1]) >= 8
        # the latest 12 (a page records its own frames); a thumbnail and its count arrive in
        # separate messages, so the two agree once both have come
        second.wait_for_function(SHOWN_THUMBS_MATCH_COUNT, arg=1)
        second.get_by_label("classes to host:port").fill(f"127.0.0.1:{osc.port}")
        second.get_by_label("classes to host:port").dispatch_event("change")
        second.get_by_label("teach OSC out").check()
        second.get_by_role("button", name="Train").click()
        second.wait_for_function("document.querySelector('.teach-score').textContent"
                                 ".includes('validation accuracy')")
        second.wait_for_function(f"{PREDICTED} === '2'")
        first.wait_for_function(f"{PREDICTED} === '1'")
        assert "Predicted class: 2" in second.locator(".teach-result").inner_text()
        got = osc.wait_for(6)
        assert {address for address, _ in got} == {"/classification"}
        assert {args for _, args in got} == {(1,), (2,)}  # each page's frames, its class
        second.get_by_label("save as").fill("two-cameras")
        second.get_by_role("button", name="Save", exact=True).click()
        second.wait_for_function("document.querySelector('.teach-where').textContent"
                                 ".includes('two-cameras')")
        total = int(second.evaluate(COUNT))
        second.get_by_role("button", name="Clear examples").click()
        second.wait_for_function(f"{COUNT} === 0")
        assert second.locator(".teach-thumb").count() == 0
        second.get_by_label("saved sets").select_option("two-cameras")
        second.get_by_role("button", name="Load").click()
        second.wait_for_function(f"{COUNT} === {total}")
        second.evaluate("document.querySelector('.teach').dataset.predicted = ''")
        second.wait_for_function(f"{PREDICTED} === '2'")
        first.evaluate("document.querySelector('.teach').dataset.predicted = ''")
        first.wait_for_function(f"{PREDICTED} === '1'")
    assert (tmp_path / "teach" / "two-cameras" / "head.safetensors").is_file()
