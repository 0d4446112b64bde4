"""One optimizer step on the CPU: convscope's FlatOptimizer against torch's own optimizers.

For each model's registry recipe (its optimizer, momentum, weight decay, parameter groups), this
times ``optimizer.step()`` on random gradients for four ways of stepping the same parameters:
torch's default (foreach), torch's ``fused=True``, FlatOptimizer over the default, and
FlatOptimizer over fused. Each way gets its own fresh model. The ways take turns within each
repeat, so a slow moment of the machine hits all of them. Reported: the median step time over
``--repeats`` blocks of ``--steps`` steps each. Writes the "optimizer_step" section of
docs/benchmarks.md with ``--write-doc``.

    python benchmarks/optimizer_step.py [--models mnist-convnetjs cifar10-convnetjs cifar10-fast]
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import torch
from _report import command_line, machine, median, write_section

from convscope.config import TrainConfig, resolve_config
from convscope.flat_optimizer import FlatOptimizer
from convscope.model import build_model
from convscope.optimizers import make_optimizer, param_groups
from convscope.registry import get_model_entry

DEFAULT_MODELS = ["mnist-convnetjs", "cifar10-convnetjs", "mnist-fast", "cifar10-fast"]
WAYS = ("torch", "torch fused", "flat", "flat over fused")


def optimizer_for(way: str, name: str) -> tuple[object, TrainConfig, torch.nn.Module]:
    """A fresh model of ``name`` (the same weights for every way; the same gradients for the
    two flat ways, and for the two torch ways), its optimizer stepped ``way`` and its config."""
    entry = get_model_entry(name)
    config = resolve_config(entry.recipe, {})
    torch.manual_seed(0)
    module = build_model(entry.spec).to(memory_format=torch.channels_last)
    groups = param_groups(config, module)
    make = partial(make_optimizer, config, fused="fused" in way)
    if way.startswith("flat"):
        optimizer = FlatOptimizer(groups, make)
        grads = optimizer.grads
    else:
        optimizer = make(groups)
        params = [p for group in groups for p in group["params"]]
        for p in params:
            p.grad = torch.zeros_like(p)
        grads = [p.grad for p in params]
    for grad in grads:
        grad.normal_()
    return optimizer, config, module


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def time_steps(optimizer, steps: int) -> float:
    """Microseconds per ``optimizer.step()``, over ``steps`` steps after 20 untimed ones."""
    for _ in range(20):
        optimizer.step()
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.step()
    return 1e6 * (time.perf_counter() - start) / steps


def measure(name: str, steps: int, repeats: int) -> dict:
    made = {way: optimizer_for(way, name) for way in WAYS}
    times: dict[str, list[float]] = {way: [] for way in WAYS}
    for _ in range(repeats):
        for way in WAYS:
            times[way].append(time_steps(made[way][0], steps))
    config = made["torch"][1]
    params = sum(p.numel() for p in build_model(get_model_entry(name).spec).parameters())
    return {"model": name, "optimizer": config.optimizer, "params": params,
            "groups": len(param_groups(config, build_model(get_model_entry(name).spec))),
            **{way: median(times[way]) for way in WAYS},
            "fused bitwise": same_weights(made["flat"][2], made["flat over fused"][2])}


def report(rows: list[dict], steps: int, repeats: int) -> str:
    header = "| model | optimizer | parameters | groups | " + " | ".join(
        f"{way} µs" for way in WAYS) + " | fastest | fused weights bitwise equal |"
    lines = [header, "|---|---|--:|--:|" + "--:|" * len(WAYS) + "---|---|"]
    for r in rows:
        fastest = min(WAYS, key=lambda way: r[way])
        lines.append(f"| {r['model']} | {r['optimizer']} | {r['params']:,} | {r['groups']} | "
                     + " | ".join(f"{r[way]:.0f}" for way in WAYS)
                     + f" | {fastest} | {'yes' if r['fused bitwise'] else 'no'} |")
    return "\n".join([
        "## One optimizer step: FlatOptimizer and torch's fused optimizers "
        "(`benchmarks/optimizer_step.py`)", "",
        f"Median over {repeats} blocks of {steps} `step()` calls on random gradients, the ways "
        "taking turns within each block; each model with its registry recipe's optimizer and "
        "parameter groups. \"flat\" is convscope's FlatOptimizer (each group one flat tensor) "
        "over torch's default (foreach) optimizer, as training uses it. Every way starts from "
        "the same weights and steps as often; the two flat ways on the same gradients. The "
        "last column says whether flat-over-fused ends with exactly the weights of flat. Where "
        "it does not, switching training to fused kernels would move every recorded result, "
        "so training keeps the default kernels.", "",
        *lines, "", f"Machine: {machine()}.", "", f"Command: `{command_line()}`"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write-doc", action="store_true")
    args = parser.parse_args()
    rows = [measure(name, args.steps, args.repeats) for name in args.models]
    body = report(rows, args.steps, args.repeats)
    print(body)
    if args.write_doc:
        write_section("optimizer_step", body)


if __name__ == "__main__":
    main()
