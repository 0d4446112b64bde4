"""This machine's fp32 ceiling: matmul and conv2d forward+backward GFLOP/s at torch's threads.

A 2048^3 matmul and a 3x3 64->64-channel conv2d on a 256x64x32x32 batch (forward, then the
gradients of input and weights), the conv in the default (NCHW) and the channels-last memory
format. Each figure is the median of ``--runs`` timed calls after one warm-up call. Prints a
markdown section; ``--write-doc`` writes it as "ceiling" in docs/benchmarks.md.
:func:`measure_ceiling` is what speed_side_by_side.py compares training against.

    python benchmarks/ceiling.py --write-doc
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from _report import command_line, machine, median, watched_quietly, write_section

MATMUL_SIZE = 2048
CONV_SHAPE = {"batch": 256, "channels": 64, "side": 32, "kernel": 3}


def _median_seconds(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up: allocations, oneDNN primitive creation
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return median(times)


def matmul_gflops(runs: int, size: int = MATMUL_SIZE) -> float:
    """GFLOP/s of an fp32 ``size`` x ``size`` by ``size`` x ``size`` matmul (2 size^3 FLOPs)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator)
    b = torch.randn(size, size, generator=generator)
    return 2 * size**3 / _median_seconds(lambda: a @ b, runs) / 1e9


def conv_gflops(runs: int, channels_last: bool) -> float:
    """GFLOP/s of the fp32 conv2d of ``CONV_SHAPE`` (same padding, no bias): forward plus the
    gradients of its input and weights, 3 x 2 x multiply-adds."""
    batch, channels, side, kernel = (CONV_SHAPE[k] for k in ("batch", "channels", "side",
                                                               "kernel"))
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, side, side, generator=generator)
    weight = torch.randn(channels, channels, kernel, kernel, generator=generator) * 0.05
    grad = torch.randn(batch, channels, side, side, generator=generator)
    if channels_last:
        x, weight, grad = (t.contiguous(memory_format=torch.channels_last)
                           for t in (x, weight, grad))
    x.requires_grad_(True)
    weight.requires_grad_(True)

    def step() -> None:
        out = F.conv2d(x, weight, padding=kernel // 2)
        torch.autograd.grad(out, (x, weight), grad)

    macs = batch * side * side * channels * channels * kernel * kernel
    return 3 * 2 * macs / _median_seconds(step, runs) / 1e9


def measure_ceiling(runs: int = 5, busy: float = 0.1, retries: int = 3) -> dict:
    """Measure the ceiling (again while other processes keep more than ``busy`` cores busy, at
    most ``retries`` times). Returns ``threads``, ``runs``, ``matmul_gflops``, ``conv_gflops``
    (NCHW), ``conv_channels_last_gflops``, ``conv_best_gflops`` (the faster format) and the
    load meanwhile (``others_cpu`` cores, ``load_avg``, ``wall_s``, ``tries``)."""
    def measure() -> dict:
        return {"matmul_gflops": matmul_gflops(runs),
                "conv_gflops": conv_gflops(runs, channels_last=False),
                "conv_channels_last_gflops": conv_gflops(runs, channels_last=True)}

    figures, load = watched_quietly(measure, busy, retries)
    best = max(figures["conv_gflops"], figures["conv_channels_last_gflops"])
    return {"threads": torch.get_num_threads(), "runs": runs, **figures,
            "conv_best_gflops": best, **load}


def describe_load(load: dict) -> str:
    """The load of a :func:`watched` record, in words."""
    others = "not recorded" if load["others_cpu"] is None else f"{load['others_cpu']:.2f}"
    return f"other processes' CPU {others} cores, 1-minute load {load['load_avg']:.1f}"


def report(ceiling: dict, busy: float) -> str:
    c, s = ceiling, CONV_SHAPE
    conv = (f"conv2d {s['kernel']}x{s['kernel']}, {s['channels']}->{s['channels']} channels, "
            f"{s['side']}x{s['side']}, batch {s['batch']}, forward + input and weight gradients")
    return "\n".join([
        "## Machine ceiling (`benchmarks/ceiling.py`)",
        "",
        f"`{command_line()}`: fp32, {c['threads']} torch threads, median of {c['runs']} timed "
        f"calls after one warm-up; during the measurement {describe_load(c)} "
        f"(measured {c['tries']} time(s): again while other processes used more than "
        f"{busy:g} cores).",
        "",
        "| operation | GFLOP/s |",
        "|---|---:|",
        f"| matmul {MATMUL_SIZE}x{MATMUL_SIZE} @ {MATMUL_SIZE}x{MATMUL_SIZE} "
        f"| {c['matmul_gflops']:.1f} |",
        f"| {conv}, NCHW | {c['conv_gflops']:.1f} |",
        f"| {conv}, channels-last | {c['conv_channels_last_gflops']:.1f} |",
        "",
        "FLOPs: 2 per multiply-add; the conv counts 3 x its forward multiply-adds (forward, "
        "input gradient, weight gradient). Machine: " + machine() + ".",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed calls per operation")
    parser.add_argument("--busy", type=float, default=0.1,
                        help="measure again while other processes use more CPU cores")
    parser.add_argument("--retries", type=int, default=3, help="measurements again, at most")
    parser.add_argument("--write-doc", action="store_true",
                        help="also write the section into docs/benchmarks.md")
    args = parser.parse_args()
    body = report(measure_ceiling(args.runs, args.busy, args.retries), args.busy)
    print(body)
    if args.write_doc:
        write_section("ceiling", body)


if __name__ == "__main__":
    main()
