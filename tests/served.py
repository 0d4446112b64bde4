"""What the browser and real-server tests share: the explorer served on 127.0.0.1 in a thread,
Debian's Chromium, and a page that fails the test on any page or console error."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# Chromium's fake camera (a generated test pattern) answers getUserMedia without asking.
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run",
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


@contextmanager
def served(app) -> Iterator[str]:
    """``app`` served by uvicorn on a free port of 127.0.0.1 (as ``convscope serve`` runs it)
    until the block ends; yields its base URL ``http://127.0.0.1:PORT/``."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "the explorer server did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def chromium() -> Iterator[object]:
    """Debian's Chromium, launched by playwright with :data:`BROWSER_ARGS`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        yield browser
        browser.close()


@contextmanager
def watched_page(browser, base_url: str, timeout_ms: int = 15_000,
                 expected: str | None = None) -> Iterator[object]:
    """A 1280x800 page on ``base_url``; the test fails if the page logs an error (other than
    a console error containing ``expected``)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=base_url)
    tab = context.new_page()
    tab.set_default_timeout(timeout_ms)
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    tab.on("console", lambda m: m.type == "error" and not (expected and expected in m.text)
           and problems.append(f"console: {m.text}"))
    yield tab
    context.close()
    assert not problems, problems
