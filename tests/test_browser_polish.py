"""Defects fixed after issue 23, in a real browser (Debian's Chromium driven by Playwright)
against the real server: a reloaded Train page shows the running job's settings (and keeps them
from being edited), the Train page fine-tunes from a bundled model, and deleting the model the
picker shows moves the explorer to one that exists."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from served import CHROMIUM, served, watched_page
from test_browser import write_mnist_from_bundle

from convscope.bundle import BUNDLED
from convscope.config import OPTIMIZERS

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's Chromium is not installed at /usr/bin/chromium")
playwright_api = pytest.importorskip("playwright.sync_api")
uvicorn = pytest.importorskip("uvicorn")

SMALL = [{"type": "input", "sx": 28, "sy": 28, "depth": 1},
         {"type": "conv", "sx": 5, "filters": 4, "stride": 2, "activation": "relu"},
         {"type": "softmax", "num_classes": 10}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app with the bundled models and a tiny MNIST data directory."""
    from convscope.server import create_app

    tmp = tmp_path_factory.mktemp("polish")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVSCOPE_CACHE", str(tmp / "cache"))
        patch.delenv("CONVSCOPE_DOWNLOAD_URL", raising=False)
        data = write_mnist_from_bundle(tmp / "data")
        with served(create_app(runs_dir=tmp / "runs", data_dir=str(data),
                               bundled_dir=BUNDLED)) as url:
            yield url



def wait_for_text(page, selector: str, text: str) -> None:
    page.wait_for_function("([s, t]) => document.querySelector(s)?.innerText.includes(t)",
                           arg=[selector, text])


def wait_for_epochs(page, epochs: int) -> None:
    """Until the Train page's status shows its job running, at any epoch of ``epochs`` (a tiny
    job's epochs pass in well under a second: the page may first see any of them)."""
    page.wait_for_function("(pattern) => new RegExp(pattern).test("
                           "document.querySelector('.train-status')?.innerText ?? '')",
                           arg=rf"epoch \d+ of {epochs} ·")


def stop_and_wait(page) -> None:
    page.get_by_role("button", name="Stop").click()
    wait_for_text(page, ".train-status", "Stopped")


def test_a_reloaded_train_page_shows_the_running_jobs_settings(page):
    page.goto("/#/train?model=mnist-convnetjs")
    page.get_by_label("layer list (JSON)").fill(json.dumps(SMALL))
    page.get_by_label("Epochs").fill("77")
    page.get_by_label("Batch size").fill("3")
    page.get_by_label("learning rate").fill("0.02")
    offered = page.get_by_label("optimizer").locator("option").evaluate_all(
        "options => options.map((o) => o.value)")
    assert offered == ["", *OPTIMIZERS]  # the recipe's, then every one the server takes
    page.get_by_label("optimizer").select_option("sgd")
    page.get_by_role("button", name="Start").click()
    wait_for_epochs(page, 77)
    page.reload()
    wait_for_text(page, ".train-status", "epoch")  # re-attached
    assert page.get_by_label("Epochs").input_value() == "77"
    assert page.get_by_label("Batch size").input_value() == "3"
    assert float(page.get_by_label("learning rate").input_value()) == 0.02
    assert page.get_by_label("optimizer").input_value() == "sgd"
    assert page.get_by_label("Dataset").input_value() == "mnist"
    assert json.loads(page.get_by_label("layer list (JSON)").input_value()) == SMALL
    assert page.locator("input[name=source][value=spec]").is_checked()
    assert not page.get_by_role("button", name="Start").is_enabled()
    assert not page.get_by_label("Epochs").is_enabled()  # shown, not edited, while it runs
    stop_and_wait(page)
    assert page.get_by_role("button", name="Start").is_enabled()
    assert page.get_by_label("Epochs").is_enabled() and \
        page.get_by_label("Epochs").input_value() == "77"  # ready to run again


def test_the_train_page_fine_tunes_from_a_bundled_model(page, browser, server):
    page.goto("/#/train")
    page.get_by_label("start from").select_option("mnist-convnetjs")
    assert "Starting from mnist-convnetjs" in page.locator(".train-form").inner_text()
    assert not page.get_by_label("layer list (JSON)").is_enabled()
    page.get_by_label("freeze").select_option("features")
    page.get_by_label("Epochs").fill("50")
    page.get_by_label("Batch size").fill("4")
    page.get_by_role("button", name="Start").click()
    wait_for_epochs(page, 50)
    assert page.get_by_label("learning rate").input_value() == ""  # as written: the default
    jobs = page.request.get("/api/train").json()["jobs"]
    running = next(j for j in jobs if j["state"] == "running")
    assert running["title"].startswith("mnist-convnetjs fine-tuned on mnist")
    assert running["settings"]["init_from"] == "mnist-convnetjs"
    assert running["settings"]["freeze"] == "features"
    with watched_page(browser, server) as second:  # another tab shows the same settings
        second.goto("/#/train")
        wait_for_text(second, ".train-status", "epoch")
        assert second.get_by_label("start from").input_value() == "mnist-convnetjs"
        assert second.get_by_label("freeze").input_value() == "features"
        assert second.get_by_label("Epochs").input_value() == "50"
        assert float(second.get_by_label("learning rate").input_value()) == \
            running["settings"]["lr"]  # the learning rate it trains with
    stop_and_wait(page)


def finished_run(page) -> str:
    """A one-epoch run trained through the API; its model id once it has finished."""
    started = page.request.post("/api/train", data={"spec": SMALL, "epochs": 1,
                                                     "batch_size": 32})
    assert started.ok, started.text()
    job = started.json()
    deadline = time.monotonic() + 60
    while page.request.get(f"/api/train/{job['job']}").json()["state"] != "done":
        assert time.monotonic() < deadline, "the one-epoch run did not finish"
        time.sleep(0.2)
    return job["model_id"]


def test_deleting_the_model_shown_moves_to_one_that_exists(page):
    page.goto("/#/train")
    page.locator(".live-runs h3").wait_for()
    model_id = finished_run(page)
    page.goto(f"/#/train?model={model_id}")
    page.reload()
    picker = page.locator("#model-picker")
    page.wait_for_function("id => document.querySelector('#model-picker').value === id",
                           arg=model_id)
    row = page.locator(".live-runs .run-row", has=page.locator(f"a[href$='{model_id}']"))
    row.get_by_role("button", name="Delete").click()
    row.get_by_role("button", name="Delete for good?").click()
    page.wait_for_function("id => !location.hash.includes(id)", arg=model_id)
    page.locator(".live-runs h3").wait_for()  # the view reloaded
    shown = picker.input_value()
    models = [m["id"] for m in page.request.get("/api/models").json()["models"]]
    assert shown and shown != model_id and shown in models
    assert f"model={shown}" in page.url
    assert page.locator("#model-picker option:checked").inner_text().strip() != ""
    page.goto(f"/#/network?model={shown}")  # the explorer goes on working on it
    page.locator("svg.network-svg").wait_for()
