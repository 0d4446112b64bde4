"""Time until the explorer's first view is drawn, in Debian's Chromium, on localhost.

Starts `convscope serve` (bundled models and samples only, --data-dir pointing nowhere) on a free
port, then loads the page ``--repeats`` times in a fresh browser context each (cold caches) and
measures from navigation start until the network view's volume diagram is in the page and its
labels are drawn. Writes the "page_load" section of docs/benchmarks.md with --write-doc.

    python benchmarks/page_load.py --write-doc
"""

from __future__ import annotations

import argparse
import tempfile
import time

from _report import command_line, machine, median, start_server, write_section
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write-doc", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as empty:
        server, url = start_server(empty)
        try:
            times = []
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                for _ in range(args.repeats + 1):  # the first load warms the server's caches
                    context = browser.new_context()
                    page = context.new_page()
                    start = time.perf_counter()
                    page.goto(url)
                    page.wait_for_function("document.querySelector('svg.network-svg')"
                                           "?.textContent.includes('24x24x8')", polling=10)
                    times.append(time.perf_counter() - start)
                    context.close()
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=10)
    first, warm = times[0], times[1:]
    body = "\n".join([
        "## Explorer page load (`benchmarks/page_load.py`)",
        "",
        "From navigation to the network view drawn (volume diagram with its `24x24x8` label) "
        "in headless Debian Chromium, a fresh browser context (cold cache) per load, against "
        "`convscope serve` on 127.0.0.1 with its bundled models; target: interactive within 1 s.",
        "",
        "| first load after server start s | median of next loads s | max s | loads |",
        "|---:|---:|---:|---:|",
        f"| {first:.2f} | {median(warm):.2f} | {max(warm):.2f} | {len(warm)} |",
        "",
        f"Machine: {machine()}. Command: `{command_line()}`.",
    ])
    print(body)
    if args.write_doc:
        write_section("page_load", body)


if __name__ == "__main__":
    main()
