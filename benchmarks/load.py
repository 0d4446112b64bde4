"""The explorer under load: --clients concurrent clients request activations for --seconds.

Starts `convscope serve` (bundled models and samples only, --data-dir pointing nowhere) on a
free port in a subprocess. Each client keeps one HTTP/1.1 keep-alive connection and, in turn,
asks one of the bundled MNIST and CIFAR convnets (--models) for the activations of a random
bundled sample: of one random layer each (--layers one, what the explorer's layer views ask),
or of every layer (--layers all). Reports requests/s, p50/p99 latency, errors, the server's
resident memory (VmRSS after warm-up and at the end, peak VmHWM, sampled from /proc) and the CPU
time of this load generator itself, since it shares the machine's cores with the server.

The client is plain asyncio streams with a minimal HTTP/1.1 reader, to keep its own CPU use low.

    python benchmarks/load.py [--clients 50] [--seconds 60] [--layers one|all] [--write-doc]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from _report import append_record, command_line, machine, write_section
from _report import start_server as serve

MODELS = ("mnist-convnetjs", "mnist-ordinary", "cifar10-convnetjs", "cifar10-ordinary")
GOAL_RPS, GOAL_P99_MS = 400, 250


@dataclass
class Target:
    """A model to ask: its id, its dataset's sample count and its number of layers."""

    model: str
    dataset: str
    samples: int
    layers: int


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


def start_server(data_dir: str) -> tuple[subprocess.Popen, str, int]:
    """`convscope serve` on a free port (``_report.start_server``): the process, its host and
    port."""
    server, url = serve(data_dir)
    host, port = url.split("//", 1)[1].rstrip("/").rsplit(":", 1)
    return server, host, int(port)


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of process ``pid`` in KiB, from /proc (empty off Linux)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in lines)
            if k in ("VmRSS", "VmHWM")}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far, from /proc (0 off Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class MemoryWatch(threading.Thread):
    """Samples a process's VmRSS every ``interval`` s until stopped; keeps the largest seen."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.max_rss = pid, interval, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            self.max_rss = max(self.max_rss, memory_kib(self.pid).get("VmRSS", 0))


async def request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str,
                  host: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """One HTTP/1.1 keep-alive request; the status and the body (Content-Length framed)."""
    head = (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    writer.write(head.encode("ascii") + body)
    header = await reader.readuntil(b"\r\n\r\n")
    status = int(header[9:12])
    length = 0
    for line in header.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, await reader.readexactly(length)


async def get_json(host: str, port: int, path: str) -> dict:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        status, body = await request(reader, writer, "GET", host, path)
    finally:
        writer.close()
    if status != 200:
        raise SystemExit(f"GET {path}: HTTP {status}: {body[:200]!r}")
    return json.loads(body)


async def targets(host: str, port: int, wanted: list[str]) -> list[Target]:
    """The wanted models the server offers, with their sample counts and layer counts."""
    offered = {m["id"] for m in (await get_json(host, port, "/api/models"))["models"]}
    chosen = []
    for model in (m for m in wanted if m in offered):
        description = await get_json(host, port, f"/api/models/{model}")
        dataset = description["dataset"]
        total = (await get_json(host, port, f"/api/datasets/{dataset}/samples?limit=1"))["total"]
        chosen.append(Target(model, dataset, total, len(description["layers"])))
    if not chosen:
        raise SystemExit(f"the server offers none of {', '.join(wanted)}")
    return chosen


def request_body(target: Target, rng: random.Random, layers: str) -> bytes:
    body: dict = {"sample": {"dataset": target.dataset, "index": rng.randrange(target.samples)}}
    if layers == "one":
        body["layers"] = [rng.randrange(target.layers)]
    return json.dumps(body).encode()


async def client(number: int, host: str, port: int, chosen: list[Target], layers: str,
                 stop_at: float, tally: Tally | None) -> None:
    """Requests until ``stop_at`` (monotonic) on one connection; ``tally`` None: warm-up."""
    rng = random.Random(number)
    reader, writer = await asyncio.open_connection(host, port)
    turn = number
    try:
        while time.monotonic() < stop_at:
            target = chosen[turn % len(chosen)]
            turn += 1
            path = f"/api/models/{target.model}/activations"
            start = time.perf_counter()
            try:
                status, body = await request(reader, writer, "POST", host, path,
                                             request_body(target, rng, layers))
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                if tally is not None:
                    tally.error(type(exc).__name__)
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            if tally is None:
                continue
            if status == 200 and body.startswith(b'{"image"'):
                tally.latencies_ms.append(1000 * (time.perf_counter() - start))
            else:
                tally.error(f"HTTP {status}")
    finally:
        writer.close()


async def load(host: str, port: int, server: int, args: argparse.Namespace
               ) -> tuple[Tally, dict]:
    chosen = await targets(host, port, args.models.split(","))
    loop = asyncio.get_running_loop()
    warm_until = time.monotonic() + args.warmup
    await asyncio.gather(*(client(i, host, port, chosen, args.layers, warm_until, None)
                           for i in range(args.clients)))
    tally = Tally()
    rss_start = memory_kib(server).get("VmRSS", 0) / 1024
    before, server_before, start = os.times(), cpu_seconds(server), loop.time()
    stop_at = time.monotonic() + args.seconds
    await asyncio.gather(*(client(i, host, port, chosen, args.layers, stop_at, tally)
                           for i in range(args.clients)))
    wall, after = loop.time() - start, os.times()
    cpu = (after.user - before.user) + (after.system - before.system)
    return tally, {"wall_s": wall, "client_cpu_s": cpu, "models": [t.model for t in chosen],
                   "server_cpu_s": cpu_seconds(server) - server_before,
                   "server_start_rss_mib": rss_start}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as empty:
        server, host, port = start_server(empty)
        try:
            watch = MemoryWatch(server.pid)
            watch.start()
            tally, info = asyncio.run(load(host, port, server.pid, args))
            watch.done.set()
            watch.join()
            memory = memory_kib(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    lat = tally.latencies_ms
    return {"clients": args.clients, "seconds": args.seconds, "layers": args.layers,
            **info, "requests": len(lat), "requests_per_s": len(lat) / info["wall_s"],
            "p50_ms": percentile(lat, 0.50), "p99_ms": percentile(lat, 0.99),
            "max_ms": max(lat, default=float("nan")), "errors": sum(tally.errors.values()),
            "error_kinds": tally.errors, "server_max_rss_mib": watch.max_rss / 1024,
            "server_end_rss_mib": memory.get("VmRSS", 0) / 1024,
            "server_peak_mib": memory.get("VmHWM", 0) / 1024,
            "client_cpu_per_s": info["client_cpu_s"] / info["wall_s"],
            "server_cpu_ms_per_request": 1000 * info["server_cpu_s"] / max(1, len(lat)),
            "machine": machine(),
            "load_avg": os.getloadavg()[0], "time": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                  time.gmtime())}


def _row(record: dict) -> list[str]:
    ok = record["requests_per_s"] >= GOAL_RPS and record["p99_ms"] <= GOAL_P99_MS
    errors = f"{record['errors']}" + (f" ({record['error_kinds']})" if record["errors"] else "")
    return ["one random layer" if record["layers"] == "one" else "every layer",
            f"{record['requests_per_s']:.0f}", f"{record['p50_ms']:.0f}",
            f"{record['p99_ms']:.0f}", f"{record['max_ms']:.0f}", errors,
            f"{record['server_start_rss_mib']:.0f} / {record['server_end_rss_mib']:.0f} / "
            f"{record['server_peak_mib']:.0f}", f"{record['server_cpu_ms_per_request']:.2f} ms",
            f"{record['client_cpu_s']:.1f} s ({record['client_cpu_per_s']:.2f} cores)",
            "met" if ok else "**not met**"]


def report(records: list[dict]) -> str:
    """The section of docs/benchmarks.md: a row per run of this command."""
    header = ["layers per request", "requests/s", "p50 ms", "p99 ms", "max ms", "errors",
              "server RSS start / end / peak MiB", "server CPU per request",
              "load generator CPU", "goal"]
    table = "\n".join("| " + " | ".join(cells) + " |"
                      for cells in (header, ["--:"] * len(header), *map(_row, records)))
    first = records[0]
    loads = ", ".join(f"{r['load_avg']:.1f}" for r in records)
    return (f"## Explorer under load (`benchmarks/load.py`)\n\n"
            f"{first['clients']} concurrent keep-alive clients asked `POST /api/models/{{id}}/"
            f"activations` (a random bundled sample per request) of "
            f"{', '.join(first['models'])} in turn for {first['wall_s']:.0f} s per row, against "
            f"`convscope serve` in a subprocess on the same machine (the load generator's own "
            f"CPU use is shown: it shares the cores).\n\n{table}\n\n"
            f"Goal: at least {GOAL_RPS} requests/s and p99 at most {GOAL_P99_MS} ms, with "
            f"memory flat.\n\n"
            f"Machine: {first['machine']}; 1-minute load average at the end of each row: "
            f"{loads}.\n\nCommand: `{command_line()}`")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of untimed load first")
    parser.add_argument("--layers", nargs="+", choices=("one", "all"), default=["one", "all"],
                        help="one random layer per request, or every layer; a run (and a row) "
                             "for each given (default both)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated model ids")
    parser.add_argument("--log", type=Path, help="append the run's record to this JSON-lines log")
    parser.add_argument("--write-doc", action="store_true",
                        help="write the table to docs/benchmarks.md")
    args = parser.parse_args()
    if args.clients < 1 or args.seconds <= 0:
        parser.error("--clients must be at least 1 and --seconds positive")
    records = []
    for layers in args.layers:
        records.append(run(argparse.Namespace(**{**vars(args), "layers": layers})))
        if args.log:
            append_record(args.log, records[-1])
    body = report(records)
    print(body)
    if args.write_doc:
        write_section("load", body)


if __name__ == "__main__":
    main()
