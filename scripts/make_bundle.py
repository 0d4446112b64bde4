"""Build convscope/bundled/: the explorer's offline default models and real test-image samples.

Trains the chapter's four comparison networks, its three scene applications (localization,
detection, segmentation) and its spoken-digit network with their registry recipes (seed 0, on
the CPU with one thread per model, so the weights do not depend on the GPU, core count or
``--jobs``) on the real data in a temporary folder, keeps each finished run without its
checkpoint and with a relocatable config, draws a seeded, class-balanced sample of each
official image test set (the explorer makes its scenes from the MNIST sample) and copies FSDD's
test take 0 of every speaker and digit. Replaces convscope/bundled/.

    .venv/bin/python scripts/make_bundle.py --data-dir ../shared/data --jobs 2

``--add-run RUN --name NAME [--fp16]`` instead bundles one finished run as it is (models too
long to train here, such as ``cifar10-94``, the live view's default feature network), its
weights stored as float16 with ``--fp16``, checked on the test set (a classifier by its
accuracy, a WaveNet such as ``fsdd-wavenet`` by its test NLL), and listed in the README; the
other bundled files are kept. ``--only NAME`` retrains one of the rebuilt models exactly as a
full rebuild would and replaces it and its README row, keeping the rest.

    .venv/bin/python scripts/make_bundle.py --add-run ../runs/cifar10-94 --name cifar10-94 \
        --fp16 --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import multiprocessing
import shlex
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
import yaml
from safetensors.torch import load_file

import convscope
from convscope.bundle import BUNDLED, MODELS_DIR, SAMPLES_DIR, bundled_model_dirs, bundled_sample
from convscope.checkpoint import save_model
from convscope.data import Dataset, resolve_data_dir
from convscope.data.fsdd import FOLDER as FSDD_FOLDER
from convscope.data.fsdd import recordings
from convscope.registry import get_model_entry
from convscope.runs import CONFIG, METRICS, MODEL, RESULTS
from convscope.tasks import get_task
from convscope.tta import with_tta

MODELS = ("mnist-ordinary", "mnist-convnetjs", "cifar10-ordinary", "cifar10-convnetjs",
          "fsdd-convnet", "mnist-localizer", "mnist-yolo", "mnist-unet")
DATASETS = ("mnist", "cifar10")
SEED = 0
PER_CLASS = 30
SETTINGS = {"seed": SEED, "device": "cpu"}  # on top of each model's registry recipe
MAX_BYTES = 12 * 2**20  # cifar10-94's float16 weights are 3.8 MiB of it
ADDED_TITLE = "## Added from finished runs"  # the README's section of --add-run's models
LICENCES = {
    "mnist": "MNIST: Yann LeCun and Corinna Cortes hold the copyright; CC BY-SA 3.0 (as stated "
             "in the Keras/TensorFlow `mnist.load_data` documentation).",
    "cifar10": "CIFAR-10: no licence given by its authors; cite A. Krizhevsky, *Learning "
               "Multiple Layers of Features from Tiny Images*, 2009.",
    "fsdd": "Free Spoken Digit Dataset, Zohar Jackson and contributors, "
            "https://github.com/Jakobovski/free-spoken-digit-dataset: CC BY-SA 4.0; the files "
            "are unmodified.",
}
RECORDINGS_TAKE = 0  # of FSDD's test takes 0-4: one recording of every speaker and digit


def train(name: str, out: Path, data_dir: Path) -> float:
    """Train registry model ``name`` into ``out`` with one thread; returns the wall time in
    seconds."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    convscope.train(name, get_model_entry(name).dataset, out=out, data_dir=str(data_dir),
                    progress=False, **SETTINGS)
    return time.perf_counter() - start


def bundle_run(run_dir: Path, dest: Path, half: bool = False) -> None:
    """Copy a finished run to ``dest`` without its checkpoint and with ``data_dir`` unset;
    ``half``: its floating-point weights as float16 (loaded back into float32 modules)."""
    dest.mkdir(parents=True)
    config = yaml.safe_load((run_dir / CONFIG).read_text(encoding="utf-8"))
    config["train"]["data_dir"] = None
    (dest / CONFIG).write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    for name in (METRICS, RESULTS):
        shutil.copyfile(run_dir / name, dest / name)
    # model.safetensors records the config too: write the same weights with the relocated one.
    model = convscope.load_run(run_dir).model
    save_model(dest / MODEL, copy.deepcopy(model).half() if half else model,
               {"config": config["train"]})
    (dest / MODEL).chmod(0o644)  # written as a private temp file; package data must be readable
    trained, bundled = load_file(str(run_dir / MODEL)), load_file(str(dest / MODEL))
    trained = {k: v.half() if half and v.is_floating_point() else v for k, v in trained.items()}
    if trained.keys() != bundled.keys() or any(not torch.equal(trained[k], bundled[k])
                                               for k in trained):
        sys.exit(f"{dest / MODEL}: its weights differ from the trained run's")


def add_run(run_dir: Path, name: str, half: bool, data_dir: str | None,
            models_dir: Path = MODELS_DIR) -> dict:
    """Bundle the finished run ``run_dir`` as ``models_dir/name`` (replacing one of that name)
    and score the bundled copy on the official test set (when the data is there): its row for
    the README. Exits if the run is unfinished or the copy scores clearly worse (more than 0.5
    points of accuracy below; a WaveNet: more than 0.01 nats of test NLL above)."""
    if not (run_dir / RESULTS).is_file() or not (run_dir / MODEL).is_file():
        sys.exit(f"{run_dir}: not a finished run (no {RESULTS} or {MODEL}); let it finish")
    dest = models_dir / name
    shutil.rmtree(dest, ignore_errors=True)
    bundle_run(run_dir, dest, half)
    run = convscope.load_run(dest)
    trained = run.results["test"]
    row = {"name": name, "config": run.config.to_dict(), "half": half,
           "params": sum(p.numel() for p in run.model.parameters()),
           "trained": get_task(run.config.task).headline(trained), "bundled": None,
           "size": size_of(dest)}
    try:
        row["bundled"] = rescored(run, trained, data_dir, dest)
    except convscope.ConvscopeError as exc:
        print(f"not scored: {exc}")
    return row


WAVENET_NLL_SLACK = 0.01  # nats per sample the bundled (float16) copy may lose


def rescored(run, trained: dict, data_dir: str | None, dest: Path) -> str:
    """The bundled copy's test score as its task states it (a classifier's accuracy, a
    WaveNet's test NLL); exits if it is clearly worse than the trained run's ``trained``."""
    task = get_task(run.config.task)
    if task.name == "wavenet":
        config = dataclasses.replace(run.config, data_dir=data_dir)
        test = task.load_split(config, "test", **task.data_options(run.model))
        scored = task.evaluate(run.model, test)
        if scored["nll"] > trained["nll"] + WAVENET_NLL_SLACK:
            sys.exit(f"{dest}: test NLL {scored['nll']:.4f} from the bundle, "
                     f"{trained['nll']:.4f} in {RESULTS}")
        return task.headline(scored)
    test = convscope.load_dataset(run.config.data, "test", data_dir)
    scored = convscope.evaluate(with_tta(run.model, run.config.tta), test)  # as it was scored
    if scored.accuracy < trained["accuracy"] - 0.005:
        sys.exit(f"{dest}: {100 * scored.accuracy:.2f}% from the bundle, "
                 f"{100 * trained['accuracy']:.2f}% in {RESULTS}")
    return f"accuracy {100 * scored.accuracy:.2f}%"


def added_readme(text: str, row: dict, command: str) -> str:
    """The README with ``row``'s line in its "Added from finished runs" section."""
    title = ADDED_TITLE
    c = row["config"]
    line = (f"| `{row['name']}` | {c['data']} | {row['params']:,} | {c['epochs']} epochs "
            f"(the run's own training) | {'float16' if row['half'] else 'float32'} | "
            f"{row['trained']} | {row['bundled'] or 'not scored here'} | "
            f"{row['size'] / 1024:.0f} KiB | `{command}` |")
    if title not in text:
        text = text.rstrip() + "\n\n" + "\n".join([
            title, "",
            "Finished runs bundled as they are (`scripts/make_bundle.py --add-run`), "
            "without their checkpoint; float16 weights are loaded into float32 modules. "
            "`cifar10-94` is the live view's and `convscope stream`'s default feature "
            "network: it sees a 32x32 view of each frame.", "",
            "| model | data | params | training | weights | test (trained) "
            "| test (bundled copy) | size | command |",
            "|---|---|--:|---|---|---|---|--:|---|"]) + "\n"
    before, after = text.split(title, 1)
    rows = [ln for ln in after.rstrip().splitlines() if not ln.startswith(f"| `{row['name']}` |")]
    return before + title + "\n".join(rows) + "\n" + line + "\n"


def draw_sample(test: Dataset) -> np.ndarray:
    """Official test indices of PER_CLASS images of each class, drawn with SEED, ascending."""
    rng = np.random.default_rng(SEED)
    labels = test.labels.numpy()
    chosen = [rng.choice(np.flatnonzero(labels == k), PER_CLASS, replace=False)
              for k in range(len(test.classes))]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def write_sample(test: Dataset, path: Path) -> None:
    """Save the :func:`draw_sample` images of ``test``, with labels, classes and indices."""
    indices = draw_sample(test)
    picked = torch.from_numpy(indices)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, images=test.images[picked].numpy(),
                        labels=test.labels[picked].numpy(),
                        classes=np.array(test.classes, dtype="<U10"), indices=indices)


def copy_recordings(root: Path, dest: Path) -> int:
    """Copy FSDD's take-``RECORDINGS_TAKE`` recordings from ``root`` into ``dest``; how many."""
    dest.mkdir(parents=True)
    chosen = [path for path, _, _, take in recordings(root) if take == RECORDINGS_TAKE]
    for path in chosen:
        shutil.copyfile(path, dest / path.name)
        (dest / path.name).chmod(0o644)
    return len(chosen)


def check_relocatable(machine_paths: list[str]) -> None:
    """Fail if a bundled model file mentions a path of this machine (data or temp folder)."""
    for path in MODELS_DIR.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for machine_path in machine_paths:
                if machine_path.encode() in content:
                    sys.exit(f"{path} mentions {machine_path}: not relocatable")


def size_of(path: Path) -> int:
    """Bytes in a file, or in all files below a folder."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() \
        else path.stat().st_size


def row_line(r: dict) -> str:
    """A bundled registry model's line in the README's table (see :func:`model_row`)."""
    c = r["config"]
    recipe = (f"{c['epochs']} epochs, batch {c['batch_size']}, {c['optimizer']} lr "
              f"{c['lr']:g}, {c['schedule']}, augment {c['augment']}")
    sample = "-" if r["sample"] is None else f"{100 * r['sample']:.2f}%"
    return (f"| `{r['name']}` | {c['task']} | {c['data']} | {r['params']:,} | {recipe} "
            f"| {r['wall']:.0f} s | {r['test']} | {sample} | {r['size'] / 1024:.0f} KiB |")


def check_total() -> None:
    """Print the bundle's size; exit if it is over the budget."""
    total = size_of(BUNDLED)
    print(f"total {BUNDLED}: {total / 2**20:.2f} MiB")
    if total > MAX_BYTES:
        sys.exit(f"the bundle is over {MAX_BYTES / 2**20:.0f} MiB")


def readme(rows: list[dict], command: str, recording_count: int) -> str:
    """convscope/bundled/README.md: what each file is, how it was made, and its numbers."""
    lines = [
        "# Bundled models and test-image samples",
        "",
        "Shipped with convscope so that `convscope serve` works offline on a fresh machine. "
        "Generated, do not edit: rebuild with",
        "",
        f"    {command}",
        "",
        f"Built on {date.today().isoformat()} with torch {torch.__version__}, convscope "
        f"{convscope.__version__}, Python {sys.version.split()[0]}; trained on the CPU with one "
        "thread. Rebuilding on the same machine gives the same weights and samples (only the "
        "timings in metrics.jsonl differ).",
        "",
        "## models/\\<name\\>/",
        "",
        "One convscope run directory per model, trained with the model's registry recipe and "
        f"seed {SEED} on the official training set minus the 10% validation split: "
        "`config.yaml` (settings, spec, versions; `train.data_dir` is null so the folder "
        "can move), `metrics.jsonl` (one line per epoch), `model.safetensors` (final weights) "
        "and `results.json` (evaluation on the full official test set). The training "
        "checkpoint is left out. Open one with `convscope.load_run(path)`; "
        "`convscope.bundle.bundled_model_dirs()` lists them.",
        "",
        "The scene models (task localize, detect or segment) train on scenes made of MNIST "
        "training digits and are scored on 5,000 test scenes made only of MNIST test digits "
        "(docs/tasks.md); `fsdd-convnet` on FSDD's training takes 5-49, scored on its test "
        "takes 0-4 (300 recordings).",
        "",
        "| model | task | data | params | training | wall time | official test set "
        f"| accuracy on samples/ ({PER_CLASS * 10}) | size |",
        "|---|---|---|--:|---|--:|---|--:|--:|",
    ]
    lines += [row_line(r) for r in rows]
    lines += [
        "",
        "## samples/\\<dataset\\>.npz",
        "",
        f"`mnist.npz` and `cifar10.npz`: {PER_CLASS} images of each class, {PER_CLASS * 10} in "
        f"all, drawn without replacement from the official test set (numpy `default_rng({SEED})`"
        ", one draw per class in class order) and stored in test-set order. Arrays, for "
        "`np.load(path, allow_pickle=False)`: `images` uint8 (N, C, H, W) exactly as in the "
        "official files, `labels` int64 (N,), `classes` the class names, `indices` int64 (N,) "
        "each image's index in the official test set (0-9,999). "
        "`convscope.bundle.bundled_sample(name)` returns one as a `convscope.data.Dataset`.",
        "",
        *(f"- {LICENCES[name]}" for name in DATASETS),
        "",
        "## samples/fsdd/",
        "",
        f"{recording_count} WAV files of the Free Spoken Digit Dataset, copied unchanged: "
        f"take {RECORDINGS_TAKE} (one of the official test takes 0-4) of each speaker and digit, "
        "named `{digit}_{speaker}_{take}.wav` as in the dataset. The explorer's Audio page "
        "offers them when the data directory holds no FSDD recordings.",
        "",
        f"- {LICENCES['fsdd']}",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="folder with mnist/ and cifar-10-batches-bin/ "
                                           "(default: $CONVSCOPE_DATA, else the user cache)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="models trained at once, one process and one thread each")
    parser.add_argument("--add-run", type=Path, metavar="RUN", help="bundle this finished run "
                        "only (keeping the rest of the bundle)")
    parser.add_argument("--name", help="the bundled name of --add-run's model")
    parser.add_argument("--fp16", action="store_true", help="store --add-run's weights as "
                        "float16")
    parser.add_argument("--only", metavar="NAME", help="retrain and rebuild this registry "
                        "model only (keeping the rest of the bundle)")
    args = parser.parse_args()
    if args.add_run is not None:
        return add_one(args)
    data_dir = resolve_data_dir(args.data_dir)
    if args.only:
        return rebuild_one(args.only, data_dir)
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory(prefix="convscope-bundle-") as tmp:
        order = MODELS[::-1]  # the longest (the scene models) first
        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            walls = dict(zip(order, pool.starmap(
                train, [(name, Path(tmp) / name, data_dir) for name in order], chunksize=1),
                strict=True))
        for name in MODELS:
            print(f"trained {name} in {walls[name]:.0f} s", flush=True)
        added = keep_added(Path(tmp) / "kept")
        shutil.rmtree(BUNDLED, ignore_errors=True)
        for name in MODELS:
            bundle_run(Path(tmp) / name, MODELS_DIR / name)
        for name in added["models"]:
            shutil.move(Path(tmp) / "kept" / name, MODELS_DIR / name)
        tests = {name: convscope.load_dataset(name, "test", data_dir) for name in DATASETS}
        for name, test in tests.items():
            write_sample(test, SAMPLES_DIR / f"{name}.npz")
        recording_count = copy_recordings(data_dir / FSDD_FOLDER, SAMPLES_DIR / "fsdd")
        rows = [model_row(name, walls[name], tests) for name in MODELS]
        command = shlex.join([".venv/bin/python", "scripts/make_bundle.py", *sys.argv[1:]])
        (BUNDLED / "README.md").write_text(readme(rows, command, recording_count)
                                           + added["readme"], encoding="utf-8")
        check_relocatable([str(data_dir), tmp])

    for r in rows:
        sample = "" if r["sample"] is None else f", samples/ {100 * r['sample']:.2f}%"
        print(f"{r['name']}: test {r['test']}{sample}, {r['size'] / 1024:.0f} KiB")
    for name in DATASETS:
        print(f"samples/{name}.npz: {size_of(SAMPLES_DIR / f'{name}.npz') / 1024:.0f} KiB")
    print(f"samples/fsdd/: {recording_count} recordings, "
          f"{size_of(SAMPLES_DIR / 'fsdd') / 1024:.0f} KiB")
    check_total()


def model_row(name: str, wall: float, tests: dict[str, Dataset]) -> dict:
    """The README row of bundled registry model ``name`` (trained in ``wall`` seconds),
    checking that a bundled classifier scores on ``tests`` as its trained run did."""
    path = bundled_model_dirs()[name]
    run = convscope.load_run(path)
    task = get_task(run.config.task)
    scores_classes = run.config.task == "classify"
    if scores_classes:  # the relocated run scores as the trained one did
        test = convscope.evaluate(run.model, tests[run.config.data])
        if test.correct != run.results["test"]["correct"]:
            sys.exit(f"{path}: {test.correct} correct from the bundle, "
                     f"{run.results['test']['correct']} in {RESULTS}")
    sample = bundled_sample(run.config.data)
    return {"name": name, "config": run.config.to_dict(), "wall": wall,
            "params": sum(p.numel() for p in run.model.parameters()),
            "test": task.headline(run.results["test"]),
            "sample": convscope.evaluate(run.model, sample).accuracy if scores_classes else None,
            "size": size_of(path)}


def rebuild_one(name: str, data_dir: Path) -> None:
    """``--only NAME``: retrain one registry model of the bundle as the full rebuild does (its
    recipe, seed 0, one thread), replace its folder and its README row; the rest is kept."""
    if name not in MODELS:
        sys.exit(f"--only takes one of the rebuilt models: {', '.join(MODELS)}")
    with tempfile.TemporaryDirectory(prefix="convscope-bundle-") as tmp:
        wall = train(name, Path(tmp) / name, data_dir)
        shutil.rmtree(MODELS_DIR / name, ignore_errors=True)
        bundle_run(Path(tmp) / name, MODELS_DIR / name)
        check_relocatable([str(data_dir), tmp])
    data = get_model_entry(name).dataset  # a classifier's test set, checked by model_row
    row = model_row(name, wall, {data: convscope.load_dataset(data, "test", data_dir)}
                    if data in DATASETS else {})
    path = BUNDLED / "README.md"
    lines = [row_line(row) if ln.startswith(f"| `{name}` |") else ln
             for ln in path.read_text(encoding="utf-8").splitlines()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{name}: test {row['test']}, {row['size'] / 1024:.0f} KiB, trained in {wall:.0f} s")
    check_total()


def keep_added(folder: Path) -> dict:
    """Move the models bundled by --add-run (not in MODELS) to ``folder`` before a rebuild:
    their names, and the README's section listing them (put back after it)."""
    folder.mkdir(parents=True)
    names = [name for name in bundled_model_dirs() if name not in MODELS]
    for name in names:
        shutil.move(MODELS_DIR / name, folder / name)
    text = (BUNDLED / "README.md").read_text(encoding="utf-8") \
        if (BUNDLED / "README.md").is_file() else ""
    section = "\n" + ADDED_TITLE + text.split(ADDED_TITLE, 1)[1] if ADDED_TITLE in text else ""
    return {"models": names, "readme": section}


def add_one(args: argparse.Namespace) -> None:
    """``--add-run``: bundle one finished run and list it in the README."""
    if not args.name:
        sys.exit("--add-run needs --name (the bundled model's name)")
    row = add_run(args.add_run, args.name, args.fp16, args.data_dir)
    command = shlex.join([".venv/bin/python", "scripts/make_bundle.py", "--add-run",
                          f"runs/{args.name}", "--name", args.name,
                          *(["--fp16"] if args.fp16 else [])])
    readme_path = BUNDLED / "README.md"
    readme_path.write_text(added_readme(readme_path.read_text(encoding="utf-8"), row, command),
                           encoding="utf-8")
    check_relocatable([str(args.add_run.resolve())])
    check_total()
    print(f"{args.name}: trained {row['trained']}, bundled {row['bundled']}, "
          f"{row['size'] / 1024:.0f} KiB ({'float16' if args.fp16 else 'float32'} weights)")


if __name__ == "__main__":
    main()
