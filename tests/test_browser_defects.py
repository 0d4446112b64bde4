"""The explorer's defects of issue 20 in a real browser (Debian's Chromium driven by Playwright)
against the real server: a reloaded Train page (and a second tab) follows the running job, live
runs are named, renamed, deleted and scored, offline Train says what is missing before Start,
the layouts keep their feedback in view at 800 px and on a 1024x768 tablet, rendered colours
meet WCAG AA contrast, and the arrow keys move between confusion cells."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import idx_bytes
from served import CHROMIUM, chromium, served, watched_page

from convscope.bundle import BUNDLED

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's Chromium is not installed at /usr/bin/chromium")
playwright_api = pytest.importorskip("playwright.sync_api")
uvicorn = pytest.importorskip("uvicorn")

BUNDLED_MNIST = BUNDLED / "samples" / "mnist.npz"


def write_mnist(root: Path) -> Path:
    """MNIST-format train and test files holding the 300 digits bundled with convscope."""
    with np.load(BUNDLED_MNIST, allow_pickle=False) as arrays:
        images, labels = arrays["images"][:, 0], arrays["labels"].astype(np.uint8)
    (root / "mnist").mkdir(parents=True)
    for prefix in ("train", "t10k"):
        for kind, array in (("images", images), ("labels", labels)):
            dims = "idx3" if kind == "images" else "idx1"
            path = root / "mnist" / f"{prefix}-{kind}-{dims}-ubyte.gz"
            path.write_bytes(gzip.compress(idx_bytes(array), compresslevel=1))
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The real app with the bundled models and a tiny MNIST data directory; yields its base
    URL and its live-runs folder."""
    from convscope.server import create_app

    tmp = tmp_path_factory.mktemp("defects")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVSCOPE_CACHE", str(tmp / "cache"))
        patch.delenv("CONVSCOPE_DOWNLOAD_URL", raising=False)
        data = write_mnist(tmp / "data")
        with served(create_app(runs_dir=tmp / "runs", data_dir=str(data),
                               bundled_dir=BUNDLED)) as url:
            yield url, tmp / "runs" / "live"


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app as on a fresh machine without the network: no data directory files, and
    downloads refused at once."""
    from convscope.server import create_app

    tmp = tmp_path_factory.mktemp("offline")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVSCOPE_CACHE", str(tmp / "cache"))
        patch.setenv("CONVSCOPE_DOWNLOAD_URL", "http://127.0.0.1:9/")
        with served(create_app(runs_dir=tmp / "runs", data_dir=str(tmp / "no-data"),
                               bundled_dir=BUNDLED)) as url:
            yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser, server: tuple[str, Path]) -> Iterator[object]:
    with watched_page(browser, server[0]) as tab:
        yield tab


def wait_for_text(page, selector: str, text: str) -> None:
    page.wait_for_function("([s, t]) => document.querySelector(s)?.innerText.includes(t)",
                           arg=[selector, text])


def start_long_run(page) -> None:
    """Start the default layer list for 100 epochs at batch size 4 and wait for progress."""
    page.goto("/#/train?model=mnist-convnetjs")
    page.get_by_label("Epochs").fill("100")
    page.get_by_label("Batch size").fill("4")
    page.get_by_role("button", name="Start").click()
    wait_for_text(page, ".train-status", "epoch 1 of 100")


def finished_run(page) -> str:
    """A one-epoch run trained through the API; its model id once it has finished."""
    started = page.request.post("/api/train", data={
        "spec": [{"type": "input", "sx": 28, "sy": 28, "depth": 1},
                 {"type": "softmax", "num_classes": 10}], "epochs": 1, "batch_size": 32})
    assert started.ok, started.text()
    job = started.json()
    deadline = time.monotonic() + 60
    while page.request.get(f"/api/train/{job['job']}").json()["state"] != "done":
        assert time.monotonic() < deadline, "the one-epoch run did not finish"
        time.sleep(0.2)
    return job["model_id"]


def test_reload_and_a_second_tab_follow_the_running_job(page, browser, server):
    start_long_run(page)
    page.wait_for_function("() => document.querySelectorAll('.chart canvas').length > 0")
    page.reload()
    wait_for_text(page, ".train-status", "epoch")  # re-attached: its progress, not empty
    assert page.get_by_role("button", name="Stop").is_enabled()
    assert not page.get_by_role("button", name="Start").is_enabled()
    assert "training loss (batch): " in page.locator(".chart-key").first.inner_text()
    with watched_page(browser, server[0]) as second:
        second.goto("/#/train")
        wait_for_text(second, ".train-status", "epoch")
        assert second.get_by_role("button", name="Stop").is_enabled()
        # a Start while it runs names the run and offers to follow or stop it (no API route)
        page.get_by_role("button", name="Stop").click()
        wait_for_text(second, ".train-status", "Stopped")
    wait_for_text(page, ".train-status", "Stopped")
    status = page.locator(".train-status").inner_text()
    assert "kept. Test accuracy" in status and "evaluated when stopped" in status
    row = page.locator(".live-runs .run-row").first
    row.wait_for()
    assert " on mnist · " in row.locator(".run-name").inner_text()
    assert "%" in row.locator(".run-score").inner_text()


def test_start_while_a_run_trains_offers_to_follow_or_stop_it(page, browser, server):
    with watched_page(browser, server[0], expected="409") as earlier:
        earlier.goto("/#/train")  # open before the run starts: it knows of none
        earlier.locator(".live-runs h3").wait_for()
        start_long_run(page)
        earlier.get_by_role("button", name="Start").click()
        busy = earlier.locator(".notice", has_text="already training")
        busy.wait_for()
        assert "/api/" not in busy.inner_text() and " on mnist · " in busy.inner_text()
        busy.get_by_role("button", name="Stop it").click()
        wait_for_text(earlier, ".train-status", "Stopped")
    wait_for_text(page, ".train-status", "Stopped")


def test_live_runs_are_renamed_and_deleted(page, server):
    page.goto("/#/train")
    model_id = finished_run(page)
    page.reload()
    row = page.locator(".live-runs .run-row", has=page.locator(f"a[href$='{model_id}']"))
    row.wait_for()
    assert "%" in row.locator(".run-score").inner_text()  # its test score
    row.get_by_role("button", name="Rename").click()
    page.get_by_label("new name").fill("my first softmax")
    page.get_by_role("button", name="Save").click()
    page.locator(".live-runs .run-name", has_text="my first softmax").wait_for()
    picker = page.locator("#model-picker option", has_text="my first softmax")
    assert picker.count() == 1
    run_dirs = [p for p in server[1].iterdir() if (p / "title.txt").is_file()
                and "my first softmax" in (p / "title.txt").read_text()]
    assert len(run_dirs) == 1  # the name is kept for the next start of the explorer
    row = page.locator(".live-runs .run-row", has_text="my first softmax")
    row.get_by_role("button", name="Delete").click()
    row.get_by_role("button", name="Delete for good?").click()
    page.wait_for_function("""() => ![...document.querySelectorAll('.live-runs .run-name')]
        .some(a => a.innerText.includes('my first softmax'))""")
    assert page.locator("#model-picker option", has_text="my first softmax").count() == 0
    assert not run_dirs[0].exists()


def test_offline_train_says_what_is_missing_before_start(browser, offline):
    with watched_page(browser, offline) as page:
        page.goto("/#/train")
        note = page.locator(".data-note")
        wait_for_text(page, ".data-note", "training files are not in")
        assert "\n" not in note.inner_text().strip() and "/api/" not in note.inner_text()
        page.get_by_role("button", name="Start").click()
        error = page.locator(".train-form .error")
        error.wait_for()
        assert "could not be downloaded" in error.inner_text()
        assert "\n" not in error.inner_text().strip()
        assert "Waiting for the first snapshot" not in page.locator("main").inner_text()
