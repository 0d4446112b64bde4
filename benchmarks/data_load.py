"""Load time of full MNIST and CIFAR-10 (train + test): cold decoded cache, then warm.

The cold run decodes the official files into a fresh temporary cache dir (the source files may
already sit in the OS page cache); the warm runs read that cache. Prints a markdown table;
``--write-doc`` also writes it as the "data_load" section of docs/benchmarks.md.

    python benchmarks/data_load.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

from _report import command_line, machine, median, write_section

from convscope.data import load_dataset, resolve_data_dir
from convscope.errors import DataError

SPLITS = ("train", "test")


def load_both(name: str, data_dir: str) -> int:
    """Load the train and test splits; returns the number of images."""
    return sum(len(load_dataset(name, split, data_dir, download=False)) for split in SPLITS)


def timed(name: str, data_dir: str) -> tuple[float, int]:
    start = time.perf_counter()
    count = load_both(name, data_dir)
    return time.perf_counter() - start, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="folder with mnist/ and cifar-10-batches-bin/ "
                        "(default: $CONVSCOPE_DATA)")
    parser.add_argument("--repeats", type=int, default=5, help="warm loads per dataset")
    parser.add_argument("--write-doc", action="store_true",
                        help="also write the table into docs/benchmarks.md")
    args = parser.parse_args()
    data_dir = str(resolve_data_dir(args.data_dir))

    cache = tempfile.mkdtemp(prefix="convscope-bench-cache-")
    os.environ["CONVSCOPE_CACHE"] = cache
    rows = []
    try:
        for name in ("mnist", "cifar10"):
            cold, count = timed(name, data_dir)
            warm = [timed(name, data_dir)[0] for _ in range(args.repeats)]
            rows.append(f"| {name} | {count:,} | {cold:.3f} | {median(warm):.3f} | "
                        f"{min(warm):.3f} |")
    except DataError as exc:
        parser.exit(1, f"error: {exc}\n")
    finally:
        shutil.rmtree(cache, ignore_errors=True)

    table = "\n".join([
        "| dataset | images (train + test) | cold s | warm median s | warm min s |",
        "|---|---:|---:|---:|---:|",
        *rows,
    ])
    body = (f"## Data loading\n\n`{command_line()}` ({args.repeats} warm loads each)\n\n"
            f"{table}\n\nMachine: {machine()}\n")
    print(body)
    if args.write_doc:
        write_section("data_load", body)


if __name__ == "__main__":
    main()
