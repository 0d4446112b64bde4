"""benchmarks/time_to_accuracy.py: medians per recipe, verdicts against the targets, the report;
and `convscope train --recipe NAME`, an alias of --model."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import time_to_accuracy as bench  # noqa: E402

from convscope.cli import build_parser  # noqa: E402

MNIST_99 = bench.Target("mnist", 0.99, 15, 10)


CEILING = {"conv_best_gflops": 100.0, "matmul_gflops": 150.0, "threads": 2, "runs": 5,
           "others_cpu": 0.0, "load_avg": 1.0}


def run(recipe: str, seed: int, acc: float, wall: float, dataset: str = "mnist",
        others: float | None = 0.0, settings: dict | None = None) -> dict:
    return {"recipe": recipe, "dataset": dataset, "seed": seed, "test_acc": acc, "wall_s": wall,
            "cpu_s": 2 * wall, "others_cpu": others, "load_avg": 1.0, "train_s": wall - 3,
            "examples_per_s": 5000.0, "epochs": 1, "threads": 2,
            "settings": settings or {"epochs": 4}}


def test_summarize_takes_medians_per_recipe():
    runs = [run("a", 0, 0.989, 14.0), run("a", 1, 0.992, 30.0), run("a", 2, 0.991, 13.0),
            run("b", 0, 0.996, 80.0)]
    summary = bench.summarize(runs)
    assert list(summary) == ["a", "b"]
    assert summary["a"] == {"dataset": "mnist", "runs": 3, "test_acc": 0.991, "wall_s": 14.0,
                            "precision": "fp32", "isa_limit": None, "limit_prefix": "",
                            "cpu": None}
    assert summary["b"]["runs"] == 1 and summary["b"]["wall_s"] == 80.0


def test_the_avx2_limit_reaches_mkl_and_aten_too():
    assert bench.isa_env(None) == {}
    assert bench.isa_env("AVX2") == {"ONEDNN_MAX_CPU_ISA": "AVX2",
                                     "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                                     "ATEN_CPU_CAPABILITY": "avx2"}
    new = {**run("a", 0, 0.99, 9.0), "isa_limit": "AVX2", "isa_env": bench.isa_env("AVX2")}
    old = {**run("a", 0, 0.99, 9.0), "isa_limit": "AVX2"}  # logged before the other limits
    assert bench.limit_prefix(new) == ("ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 "
                                       "ATEN_CPU_CAPABILITY=avx2 ")
    assert bench.limit_prefix(old) == "ONEDNN_MAX_CPU_ISA=AVX2 "
    assert bench.limit_prefix(run("a", 0, 0.99, 9.0)) == ""


def test_judge_picks_the_fastest_recipe_that_reaches_the_accuracy():
    recipes = {"slow": {"dataset": "mnist", "test_acc": 0.995, "wall_s": 80.0},
               "fast": {"dataset": "mnist", "test_acc": 0.991, "wall_s": 12.0},
               "faster": {"dataset": "mnist", "test_acc": 0.985, "wall_s": 5.0}}
    assert bench.judge(MNIST_99, recipes) == ("fast", "met")
    assert bench.judge(MNIST_99, recipes, bench.BF16) == ("fast", "not met (12.0 s)")
    assert bench.judge(bench.Target("mnist", 0.995, 120, 60), recipes) == ("slow", "met")
    assert bench.judge(bench.Target("mnist", 0.995, 60, 60), recipes) == \
        ("slow", "not met (80.0 s)")
    assert bench.judge(bench.Target("mnist", 0.999, 60, 60), recipes) == \
        ("slow", "not met (accuracy 99.50%)")
    assert bench.judge(bench.Target("cifar10", 0.9, 900, 900), recipes) == \
        (None, "not measured")


def test_targets_are_the_issues():
    assert [t.text(bench.NO_BF16) for t in bench.TARGETS] == [
        "MNIST 99% in <= 10 s", "MNIST 99.5% in <= 60 s", "CIFAR-10 90% in <= 15 min",
        "CIFAR-10 94% in <= 60 min"]
    assert [t.text(bench.BF16) for t in bench.TARGETS] == [
        "MNIST 99% in <= 8 s", "MNIST 99.5% in <= 45 s", "CIFAR-10 90% in <= 8 min",
        "CIFAR-10 94% in <= 20 min"]


def test_report_lists_targets_runs_and_busy_machines():
    runs = [run("mnist-fast", s, 0.995 + s / 1000, 70.0 + s, others=0.5 if s == 2 else 0.0)
            for s in range(3)]
    text = bench.report(runs, CEILING)
    fast = "| as above | none | `convscope train --recipe mnist-fast` | fp32 | 99.60 | 71.0 |"
    assert f"| MNIST 99.5% in <= 45 s | native bf16 {fast} not met (71.0 s) |" in text
    assert f"| MNIST 99% in <= 8 s | native bf16 {fast} not met (71.0 s) |" in text
    assert "| MNIST 99.5% in <= 60 s | no native bf16 | - | - | - | - | - | - | not measured |" \
        in text
    assert "| CIFAR-10 90% in <= 8 min | native bf16 | - | - | - | - | - | - | not measured |" \
        in text
    assert all(f"| `mnist-fast` | none | {s} | {99.5 + s / 10:.2f} | - | {70 + s:.1f} "
               f"| {140 + 2 * s:.1f} | {67 + s:.1f} | 5000 | 1.0 | {0.5 if s == 2 else 0:.2f} |"
               in text for s in range(3))
    assert "1 of 3 runs shared the machine" in text
    assert "OMP_NUM_THREADS=2" in text and "- `mnist-fast`:" in text
    gflops = 5000 * 6 * 7_864_064 / 1e9  # mnist-fast: 7.86 M forward multiply-adds
    assert f"| `mnist-fast` | native bf16 | fp32 | {gflops:.1f} | {gflops:.0f}% |" in text


def test_a_target_row_says_when_its_median_has_fewer_seeds_than_asked():
    runs = [{**run("cifar10-94", seed, 0.9412, 3100.0, dataset="cifar10"), "isa_limit": "AVX2",
             "isa_env": bench.isa_env("AVX2"), "native_bf16": False} for seed in (0, 1)]
    row = next(line for line in bench.target_rows(runs)
               if line.startswith("| CIFAR-10 94% in <= 60 min"))
    assert row.endswith("| 94.12 | 3100.0 | met (median of 2 of 3 seeds so far) |")
    assert "`ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2 " \
        "convscope train --recipe cifar10-94`" in row
    three = runs + [{**runs[0], "seed": 2}]
    assert next(line for line in bench.target_rows(three)
                if line.startswith("| CIFAR-10 94% in <= 60 min")).endswith("| met |")


def test_the_report_gives_the_accuracy_without_test_time_augmentation():
    runs = [{**run("cifar10-94", 0, 0.9412, 1700.0, dataset="cifar10"),
             "test_acc_without_tta": 0.9355}]
    assert "| `cifar10-94` | none | 0 | 94.12 | 93.55 | 1700.0 |" in bench.report(runs, CEILING)


def test_the_report_keeps_the_latest_run_per_seed_with_the_latest_settings():
    old = run("mnist-fast", 0, 0.99, 60.0, settings={"epochs": 3})
    runs = [old, run("mnist-fast", 0, 0.994, 70.0), run("mnist-fast", 0, 0.996, 72.0),
            run("mnist-fast", 1, 0.995, 71.0)]
    kept = bench.latest_runs(runs)
    assert [(r["seed"], r["test_acc"]) for r in kept] == [(0, 0.996), (1, 0.995)]
    assert "| fp32 | 99.55 | 71.5 | not met (71.5 s) (median of 2 of 3 seeds so far) |" \
        in bench.report(runs, CEILING)


def test_recipe_is_an_alias_of_model():
    parser = build_parser()
    assert parser.parse_args(["train", "--recipe", "mnist-fast"]).model == "mnist-fast"
    assert parser.parse_args(["train", "--model", "mnist-fast"]).model == "mnist-fast"


def test_gpu_report_sets_each_recipe_beside_its_cpu_median():
    import gpu

    on_gpu = [{**run("mnist-fast", s, 0.995 + s / 1000, 10.0 + s), "machine": "H100"}
              for s in range(3)]
    on_cpu = [run("mnist-fast", s, 0.994, 90.0) for s in range(3)]
    text = gpu.report(on_gpu, on_cpu)
    assert "Machine: H100;" in text
    assert "| `mnist-fast` | 3 | 99.60 | 11.0 | 8.0 | 5,000 | 99.40 | 90.0 | 8.2x |" in text
    assert "| `mnist-fast` | 2 | 99.70 | 12.0 | 9.0 | 5,000 |" in text
    assert "| - | - | -" in gpu.report(on_gpu, [])  # no CPU runs logged: no comparison
