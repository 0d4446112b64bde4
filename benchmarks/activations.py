"""Server-side time of the explorer's activations endpoint for one input, per model.

For each bundled model (else the registry's mnist-ordinary, mnist-convnetjs, cifar10-ordinary
and cifar10-convnetjs with fresh weights): the median over --calls calls, after warm-up, of
(1) the probe (every layer's output) and (2) the probe plus the JSON the endpoint returns
(tensors base64-encoded, then serialised). Target: (2) <= 30 ms.

    python benchmarks/activations.py [--calls 50] [--threads N] [--write-doc]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import command_line, machine, median, write_section  # noqa: E402

from convscope import build_model, get_model_entry, load_run  # noqa: E402
from convscope.augment import to_input  # noqa: E402
from convscope.model import SpecNet  # noqa: E402
from convscope.probes import activations  # noqa: E402
from convscope.server.app import BUNDLED  # noqa: E402
from convscope.server.encode import activations_json, dumps  # noqa: E402

FALLBACK = ("mnist-ordinary", "mnist-convnetjs", "cifar10-ordinary", "cifar10-convnetjs")
TARGET_MS = 30.0


def models() -> tuple[list[tuple[str, SpecNet]], str]:
    """The bundled models, else fresh registry models; and which of the two they are."""
    runs = sorted(p.parent for p in (BUNDLED / "models").glob("*/config.yaml"))
    if runs:
        return [(run.name, load_run(run).model) for run in runs], "bundled (trained) weights"
    torch.manual_seed(0)
    return [(name, build_model(get_model_entry(name).spec).eval()) for name in FALLBACK], \
        "fresh weights (no bundled models found)"


def timed_ms(fn, calls: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    return median(times)


def measure(name: str, net: SpecNet, calls: int) -> list[str]:
    image = torch.randint(0, 256, net.input_volume.shape, dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(0))
    x = to_input(image)
    classes = [str(i) for i in range(net.num_classes or 0)]
    floats = sum(out.numel() for out in activations(net, x))
    size = len(dumps(activations_json(net, x, classes)))
    probe = timed_ms(lambda: activations(net, x), calls)
    endpoint = timed_ms(lambda: dumps(activations_json(net, x, classes)), calls)
    verdict = "yes" if endpoint <= TARGET_MS else "**no**"
    return [name, str(net.input_volume), str(len(net.layers)), f"{floats:,}",
            f"{size / 1024:,.0f} KiB", f"{probe:.2f}", f"{endpoint:.2f}", verdict]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50, help="timed calls per model (>= 50)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--write-doc", action="store_true",
                        help="write the table to docs/benchmarks.md")
    args = parser.parse_args()
    if args.calls < 50:
        parser.error("--calls must be at least 50")
    if args.threads:
        torch.set_num_threads(args.threads)
    chosen, which = models()
    header = ["model", "input", "layers", "floats returned", "JSON", "probe ms",
              "probe + JSON ms", f"<= {TARGET_MS:.0f} ms"]
    rows = [measure(name, net, args.calls) for name, net in chosen]
    table = "\n".join("| " + " | ".join(row) + " |"
                      for row in [header, ["---"] * 3 + ["--:"] * 5, *rows])
    body = (f"## Activations endpoint (server side)\n\n"
            f"One input's every-layer activations, {which}: median of {args.calls} calls after "
            f"5 warm-up calls. \"probe\" is `convscope.probes.activations`; \"probe + JSON\" is "
            f"what `POST /api/models/{{id}}/activations` computes after decoding the input "
            f"(base64 tensors, serialised), without HTTP.\n\n{table}\n\n"
            f"Machine: {machine()}.\n\nCommand: `{command_line()}`")
    print(body)
    if args.write_doc:
        write_section("activations", body)


if __name__ == "__main__":
    main()
