"""One training step of a registered WaveNet on the CPU: forward, loss, backward, Adam step.

Random packed clips of the model's window (batch 8, the recipe's), the registry recipe's
learning rate; each precision computes as training would (bf16: under autocast). Reported: the
median of ``--steps`` steps after ``--warmup``, in ms, and the median step time x the recipe's
steps per epoch. bf16 is skipped on a CPU without native bf16 (it is emulated there, and
``--precision auto`` never picks it).

    python benchmarks/wavenet_step.py [--model fsdd-wavenet] [--steps 8] [--warmup 2]
"""

from __future__ import annotations

import argparse
import time

import torch
from _report import command_line, machine, median

from convscope.device import autocast_for, native_bf16
from convscope.model import build_model
from convscope.registry import get_model_entry
from convscope.tasks.wavenet import sample_nll

CPU = torch.device("cpu")
STEPS_PER_EPOCH = 320  # fsdd-wavenet's recipe: 2,565 training windows in batches of 8


def step_times(name: str, precision: str, steps: int, warmup: int) -> list[float]:
    """Seconds of each of ``steps`` training steps (after ``warmup``) in ``precision``."""
    entry = get_model_entry(name)
    torch.manual_seed(0)
    model = build_model(entry.spec).train()
    batch, length = entry.recipe["batch_size"], entry.spec[0]["sx"]
    x = torch.randint(0, 256, (batch, 1, 1, length)).float() / 255 - 0.5
    samples = entry.spec[1]["samples"]
    codes = torch.randint(0, 256, (batch, samples))
    optimizer = torch.optim.Adam(model.parameters(), entry.recipe["lr"])
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        with autocast_for(precision, CPU):
            output = model(x)
        loss = sample_nll(output, codes).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fsdd-wavenet")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    print(f"{command_line()}\n{machine()}\n")
    print("| precision | median step (ms) | fastest (ms) | x 320 steps (s) |")
    print("|---|---:|---:|---:|")
    for precision in ("fp32", "bf16"):
        if precision == "bf16" and not native_bf16(CPU):
            print("| bf16 | skipped: no native bf16 | | |")
            continue
        times = step_times(args.model, precision, args.steps, args.warmup)
        mid = median(times)
        print(f"| {precision} | {1000 * mid:.1f} | {1000 * min(times):.1f} | "
              f"{STEPS_PER_EPOCH * mid:.1f} |")


if __name__ == "__main__":
    main()
