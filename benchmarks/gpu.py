"""GPU time to accuracy: the named recipes trained by ``convscope train --device cuda``.

Each (recipe, seed) is a fresh ``python -m convscope train --recipe NAME --seed S --device cuda``
process, timed from its start to its exit exactly as in time_to_accuracy.py (which has the
details), on the official test sets. Every run is appended to ``--log`` with the machine it ran
on (GPU, CUDA, torch), so the report can be written later on another machine with
``--report-only``; it sets each recipe's median beside its median on the CPU from
time_to_accuracy.py's log. Writes the "gpu" section of docs/benchmarks.md with ``--write-doc``.

    python benchmarks/gpu.py --data-dir ../shared/data --recipes mnist-sprint mnist-fast
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from _report import append_record, command_line, machine, median, read_records, write_section
from time_to_accuracy import decode_into_cache, latest_runs, summarize, time_run

CPU_LOG = Path("benchmarks/time_to_accuracy.jsonl")


def gpu_machine() -> str:
    """One line: the GPU and CUDA, then the CPU side (see ``machine``)."""
    return (f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda}), "
            f"{machine()}")


def report(runs: list[dict], cpu_runs: list[dict]) -> str:
    """The markdown section: per recipe the GPU medians beside the CPU medians, then every
    run."""
    runs = latest_runs(runs)
    recipes = summarize(runs)
    on_cpu = summarize(latest_runs(cpu_runs)) if cpu_runs else {}
    rows = []
    for name, s in recipes.items():
        mine = [r for r in runs if r["recipe"] == name]
        cpu = on_cpu.get(name)
        compared = (f"{100 * cpu['test_acc']:.2f} | {cpu['wall_s']:.1f} | "
                    f"{cpu['wall_s'] / s['wall_s']:.1f}x") if cpu else "- | - | -"
        rows.append(f"| `{name}` | {s['runs']} | {100 * s['test_acc']:.2f} | {s['wall_s']:.1f} "
                    f"| {median([r['train_s'] for r in mine]):.1f} "
                    f"| {median([r['examples_per_s'] for r in mine]):,.0f} | {compared} |")
    run_rows = [f"| `{r['recipe']}` | {r['seed']} | {100 * r['test_acc']:.2f} | "
                f"{r['wall_s']:.1f} | {r['train_s']:.1f} | {r['examples_per_s']:,.0f} |"
                for r in runs]
    machines = sorted({r["machine"] for r in runs})
    return "\n".join([
        "## On a GPU (`benchmarks/gpu.py`)",
        "",
        f"Machine: {'; '.join(machines)}; the CPU threads are the training process's.",
        f"Command: `{command_line()}`; the runs come from the log `benchmarks/gpu.jsonl`, "
        "appended by `python benchmarks/gpu.py --data-dir DIR --recipes NAME ...` on the GPU "
        "machine. Each run is a fresh process, `python -m convscope train --recipe NAME --seed "
        "S --device "
        "cuda`, timed from its start to its exit (imports, CUDA start-up, loading the data from "
        "the decoded-array cache, training, the final test scoring and writing the run), seeds "
        f"{', '.join(map(str, sorted({r['seed'] for r in runs})))}. The recipes are unchanged: "
        "the same settings and epochs as on the CPU, so the accuracies match the CPU's within "
        "seed noise; the CPU columns are the medians of the section \"Time to accuracy\" (2 CPU "
        "cores).",
        "",
        "| recipe | runs | median test acc % | median wall s | median train s | examples/s "
        "| CPU test acc % | CPU wall s | GPU speed-up (wall) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "| recipe | seed | test acc % | wall s | train s | examples/s |",
        "|---|---:|---:|---:|---:|---:|",
        *run_rows,
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=["mnist-sprint", "mnist-fast"],
                        help="registered models to train with their recipes")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--data-dir", help="folder with mnist/ and cifar-10-batches-bin/")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="CPU threads per run (default: every core)")
    parser.add_argument("--log", type=Path, default=Path("benchmarks/gpu.jsonl"),
                        help="every finished run is appended here (JSON lines)")
    parser.add_argument("--write-doc", action="store_true",
                        help="write the section of docs/benchmarks.md (else print it only)")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: report the runs already in --log")
    args = parser.parse_args()
    if not args.report_only:
        if not torch.cuda.is_available():
            raise SystemExit("PyTorch sees no CUDA GPU here: run this on a machine with one, "
                             "or report logged runs with --report-only")
        torch.set_num_threads(args.threads)  # so that machine() reports the runs' threads
        decode_into_cache(args.recipes, args.data_dir)
        for name in args.recipes:
            for seed in args.seeds:
                r = {**time_run(name, seed, args.threads, args.data_dir, device="cuda"),
                     "machine": gpu_machine()}
                append_record(args.log, r)
                print(f"{name} seed {seed}: test {100 * r['test_acc']:.2f}% in "
                      f"{r['wall_s']:.1f} s (train {r['train_s']:.1f} s)", flush=True)
    if not args.log.exists():
        raise SystemExit(f"{args.log}: no runs logged yet; run without --report-only first")
    body = report(read_records(args.log), read_records(CPU_LOG) if CPU_LOG.exists() else [])
    print(body)
    if args.write_doc:
        write_section("gpu", body)


if __name__ == "__main__":
    main()
