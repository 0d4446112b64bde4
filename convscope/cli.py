"""The ``convscope`` command: models, summary, train, eval, serve, import-convnetjs, export."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from functools import partial
from pathlib import Path

from .config import TrainConfig, allowed_values
from .errors import ConvscopeError
from .scenes import SCENE_KINDS
from .tasks import task_names
from .tta import with_tta


def port_number(text: str) -> int:
    """``--port``'s type: a TCP port, 1 to 65535, or 0 (any free port)."""
    port = int(text) if text.strip().isdecimal() else -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number: use 1 to 65535, "
                                         "or 0 for any free port")
    return port


def _cmd_models(args: argparse.Namespace) -> None:
    from .registry import list_models
    from .spec import resolve

    if args.recipe:
        print(_recipe_text(args.recipe))
        return
    rows = [(e.name, e.dataset, sum(layer.num_params for layer in resolve(e.spec)),
             e.description) for e in list_models()]
    width = max(len(r[0]) for r in rows)
    print(f"{'name':<{width}}  {'data':<8} {'params':>9}  description")
    for name, dataset, params, description in rows:
        print(f"{name:<{width}}  {dataset:<8} {params:>9,}  {description}")


def _recipe_text(name: str) -> str:
    """The settings a named model trains with: its recipe's, then the defaults."""
    from .config import resolve_config
    from .registry import get_model_entry

    entry = get_model_entry(name)
    config = resolve_config(entry.recipe, {"model": name, "data": entry.dataset})
    lines = [f"{name} trains on {entry.dataset} with (* from its recipe, the rest defaults; "
             "any `convscope train` option overrides them):"]
    for key, value in config.to_dict().items():
        mark = "*" if key in entry.recipe else " "
        lines.append(f"  {mark} --{key.replace('_', '-'):<18} {value}")
    return "\n".join(lines)


def _cmd_summary(args: argparse.Namespace) -> None:
    from .runs import build_from_info, load_run
    from .summary import summarize, summarize_module
    from .user_module import resolve_model_ref

    ref = args.model
    if (Path(ref) / "config.yaml").exists():
        run = load_run(ref)
        spec, name = run.model_info.get("spec"), run.model_info.get("ref")
        build = partial(build_from_info, run.model_info, run.path, args.trust_code)
    else:
        model = resolve_model_ref(ref)
        spec, name, build = model.spec, model.ref, model.build
    if spec is not None:
        from .spec import resolve

        print(summarize(resolve(spec)))
        return
    if not args.input:
        raise ConvscopeError(f"{name} is a Python module: give its input volume with "
                             f"--input WxHxD (e.g. --input 28x28x1)")
    width, height, depth = (int(v) for v in args.input.split("x"))
    print(summarize_module(build(), (depth, height, width)))


# TrainConfig fields that `train` declares itself (positional-like choices of what to train)
OWN_OPTIONS = ("model", "data", "task")
TYPES = {"int": int, "float": float, "str": str}


def _train_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(TrainConfig) if f.name not in OWN_OPTIONS]


def _add_train_settings(parser: argparse.ArgumentParser) -> None:
    """One option per :class:`TrainConfig` field, with the field's help text, default and
    allowed values (unset options leave the setting to the model's recipe)."""
    choices = allowed_values()
    for f in _train_fields():
        kind = str(f.type).split(" |")[0]
        options = {"help": f"{f.metadata['help']} (default: {f.metadata['default']}, "
                           "or the model's recipe)"}
        if kind == "bool":
            options["action"] = argparse.BooleanOptionalAction
        else:
            options.update(type=TYPES[kind], choices=choices.get(f.name),
                           metavar=f.metadata["metavar"])
        parser.add_argument("--" + f.name.replace("_", "-"), **options)


def _train_settings(args: argparse.Namespace) -> dict:
    return {f.name: getattr(args, f.name) for f in _train_fields()}


def _cmd_train(args: argparse.Namespace) -> None:
    from .interrupts import sigterm_as_interrupt
    from .trainer import resume, train
    from .user_module import parse_model_args

    if args.resume:
        given = {k: v for k, v in _train_settings(args).items() if v is not None}
        if given or args.model or args.model_args or args.data or args.out or args.task:
            raise ConvscopeError("--resume continues a run with its saved settings; "
                                 "leave out the other options")
    with sigterm_as_interrupt():  # SIGTERM stops a run as Ctrl-C does: with a checkpoint
        if args.resume:
            run = resume(args.resume, nproc=args.nproc, trust_code=args.trust_code)
        else:
            model = args.model if args.model_args is None else \
                (args.model, parse_model_args(args.model_args))
            run = train(model, args.data, task=args.task, out=args.out, nproc=args.nproc,
                        **_train_settings(args))
    if run.results and "test" in run.results:
        print(f"evaluate it: convscope eval {run.path}")


def _cmd_eval(args: argparse.Namespace) -> None:
    from .device import autocast_for, model_device, resolve_precision, scoring_precision
    from .runs import open_run
    from .tasks import get_task

    run = open_run(args.run, trust_code=args.trust_code)
    data = args.data or run.config.data
    config = dataclasses.replace(run.config, data=data,
                                 data_dir=args.data_dir or run.config.data_dir)
    task = get_task(config.task)
    train_set, val_set, test_set = task.load_data(config)
    dataset = {"train": train_set, "val": val_set, "test": test_set}[args.split]
    if dataset is None:
        raise ConvscopeError(f"{data} has no test split; use --split val")
    precision = scoring_precision(config.precision)
    used = resolve_precision(precision, model_device(run.model))
    with autocast_for(precision, run.model):
        result = task.evaluate(with_tta(run.model, config.tta), dataset)
    if args.json:
        print(json.dumps({"run": str(run.path), "data": data, "task": config.task,
                          "split": args.split, "arithmetic": used, **result}, indent=2))
    else:
        views = f", test-time augmentation {config.tta}" if config.tta != "none" else ""
        why = " (trained in bf16; this machine has no native bf16)" \
            if config.precision == "bf16" and used == "fp32" else ""
        print(f"{run.path}: {run.config.model} on {data} ({config.task}, {args.split}, "
              f"{len(dataset)} examples{views}, {used}{why})")
        print(task.report(result))


def _cmd_scenes(args: argparse.Namespace) -> None:
    from .data import load_dataset
    from .scenes import make_scenes, write_scenes

    if args.count < 1:
        raise ConvscopeError(f"--count must be at least 1, got {args.count}")
    digits = load_dataset("mnist", args.split, data_dir=args.data_dir)
    scenes = make_scenes(args.kind, digits, args.count, seed=args.seed, size=args.size)
    path = write_scenes(scenes, args.out, args.kind, progress=True)
    masks = " and masks" if args.kind == "segment" else ""
    print(f"wrote {len(scenes)} {args.kind} scenes{masks} ({scenes.size}x{scenes.size} px, "
          f"MNIST {args.split} digits, seed {args.seed}) to {args.out}; annotations: {path}")


def _cmd_serve(args: argparse.Namespace) -> None:
    from .server.serve import serve

    serve([Path(r) for r in args.run], Path(args.runs) if args.runs else None, args.data_dir,
          args.host, args.port, open_browser=not args.no_browser,
          allow_hosts=args.allow_host, allow_origins=args.allow_origin)


def _cmd_import_convnetjs(args: argparse.Namespace) -> None:
    from .convnetjs import import_convnetjs

    run = import_convnetjs(args.file, args.out, data=args.data, input_offset=args.input_offset,
                           run_eval=args.eval, data_dir=args.data_dir)
    params = sum(p.numel() for p in run.model.parameters())
    print(f"imported {args.file} ({len(run.model.layers)} layers, {params:,} parameters) "
          f"into {run.path}")
    if run.results and "test" in run.results:
        test = run.results["test"]
        print(f"test accuracy {100 * test['accuracy']:.2f}% ({test['correct']} / {test['total']})")
    print(f"evaluate it: convscope eval {run.path}")


def _cmd_export(args: argparse.Namespace) -> None:
    from .convnetjs import export_convnetjs, load_exact
    from .onnx_export import export_onnx
    from .runs import open_run

    run = open_run(args.run, trust_code=args.trust_code)
    stem = run.path / "model" if Path(args.run).exists() else Path(args.run)  # bundled: here
    if args.format == "convnetjs":
        path = export_convnetjs(load_exact(run), args.out or Path(f"{stem}.convnetjs.json"))
    else:
        width, height, depth = run.data_info["input"]
        path = export_onnx(run.model, args.out or Path(f"{stem}.onnx"), (depth, height, width))
    print(f"wrote {path}")


def _cmd_predict(args: argparse.Namespace) -> int:
    from .predict import predict_files
    from .runs import open_run

    run = open_run(args.model, trust_code=args.trust_code)
    how = "json" if args.json else "csv" if args.csv else "text"
    return 1 if predict_files(run, args.files, args.top, how, args.invert) else 0


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="classify your own PNG/JPEG pictures with a run or a "
                       "bundled model", description="Each picture is fitted as the explorer "
                       "fits an upload (EXIF orientation, centre crop, resize; for MNIST "
                       "models a photo's dark ink on light paper is inverted and the digit "
                       "centred as MNIST's were, see --invert). A file that "
                       "cannot be read gets one 'error: PATH: ...' line on stderr, the others "
                       "are still predicted, and the exit status is then 1 (2: no prediction "
                       "at all could be made, e.g. an unknown model).")
    p.add_argument("model", metavar="MODEL_OR_RUN",
                   help="a run directory or a bundled model's name (e.g. mnist-convnetjs)")
    p.add_argument("files", nargs="+", metavar="FILE_OR_FOLDER", help="PNG or JPEG files, or "
                   "folders (searched recursively; other files are skipped with a warning)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="a JSON list of {path, predictions}")
    out.add_argument("--csv", action="store_true", help="path,class,probability rows")
    p.add_argument("--top", type=int, default=3, metavar="K", help="classes shown per picture "
                   "(default 3)")
    p.add_argument("--invert", choices=("auto", "on", "off"), default="auto",
                   help="invert the pictures' grey levels: auto (default) for a model of light-"
                   "on-dark data such as MNIST when a picture's background is light, on, off")
    _add_trust_code(p)
    p.set_defaults(func=_cmd_predict)


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="the web explorer: look inside models, train live")
    p.add_argument("run", nargs="*", metavar="RUN", help="run directories to offer")
    p.add_argument("--runs", metavar="DIR", help="offer every run in DIR (and DIR/live/); "
                   "live training writes to DIR/live/ (default runs/live/)")
    p.add_argument("--data-dir", help="where datasets live (default $CONVSCOPE_DATA, "
                   "else a per-user cache); else the bundled samples are used")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: "
                   "this machine only; 0.0.0.0 exposes it to the network)")
    p.add_argument("--port", type=port_number, default=8000,
                   help="port (default 8000; 0: any free)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="also answer requests whose Host is NAME (repeatable; default: "
                   "127.0.0.1, localhost, ::1 and --host's name; others get 403)")
    p.add_argument("--allow-origin", action="append", default=[], metavar="URL",
                   help="also accept changes and WebSockets from pages at URL, e.g. "
                   "https://tools.example.org (repeatable; default: the server's own origin)")
    p.set_defaults(func=_cmd_serve)


def _add_trust_code(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trust-code", action="store_true", help="a run of a Python model: "
                        "import the model code the run keeps (this runs that code; only for "
                        "runs you trust)")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model and evaluate it on the test set")
    p.add_argument("--task", choices=task_names(),
                   help="what to learn (default: the model's, else classify)")
    p.add_argument("--model", "--recipe", dest="model", help="registry name, spec .json/.yaml "
                   "or file.py:factory (default: the task's model, mnist-convnetjs for classify); "
                   "a named model trains with its recipe (see `convscope models --recipe NAME`), "
                   "which the options below override; --recipe is an alias")
    p.add_argument("--data", help="mnist, cifar10, fsdd, fsdd-holdout-<speaker> or an image "
                   "folder (default: the model's dataset)")
    p.add_argument("--model-args", metavar="JSON", help="keyword arguments for a file.py:factory "
                   """model, as a JSON object (e.g. '{"num_classes": 5}'); kept in the run""")
    p.add_argument("--out", help="run directory (default runs/<model>-<data>-<time>)")
    p.add_argument("--resume", metavar="RUN", help="continue an interrupted run")
    _add_trust_code(p)
    _add_train_settings(p)
    p.add_argument("--nproc", type=int, default=1, metavar="N", help="train data-parallel in N "
                   "processes on this machine, one GPU each with --device cuda (default 1; "
                   "for several machines use torchrun, see docs/distributed.md)")
    p.set_defaults(func=_cmd_train)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convscope",
        description="Train convolutional networks on real data and look inside them.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list the named models, or one model's recipe")
    p.add_argument("--recipe", metavar="NAME", help="show the training settings of the named "
                   "model NAME (its recipe over the defaults)")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("summary", help="layer volumes, parameters and multiply-adds of a model")
    p.add_argument("model", help="registry name, spec .json/.yaml, file.py:factory or run dir")
    p.add_argument("--input", help="input volume WxHxD for a file.py:factory module")
    _add_trust_code(p)
    p.set_defaults(func=_cmd_summary)

    _add_train(sub)

    p = sub.add_parser("eval", help="evaluate a run: accuracy, recall, precision, confusion")
    p.add_argument("run", help="run directory or bundled model name")
    p.add_argument("--data", help="dataset (default: the one it was trained on)")
    p.add_argument("--split", choices=["test", "val", "train"], default="test")
    p.add_argument("--data-dir")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _add_trust_code(p)
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("import-convnetjs", help="a ConvNetJS snapshot (.json) as a run directory")
    p.add_argument("file", help="ConvNetJS Net.toJSON() file")
    p.add_argument("--out", help="run directory (default runs/<file name>)")
    p.add_argument("--data", help="the image set it classifies (default: mnist for 1-channel, "
                   "cifar10 for 3-channel input)")
    p.add_argument("--input-offset", type=float, help="added to convscope's byte/255 - 0.5 "
                   "inputs: 0.5 for networks trained on byte/255 (ConvNetJS's MNIST demo)")
    p.add_argument("--eval", action="store_true", help="evaluate on the official test set")
    p.add_argument("--data-dir")
    p.set_defaults(func=_cmd_import_convnetjs)

    p = sub.add_parser("export", help="write a run's network as ConvNetJS JSON or ONNX")
    p.add_argument("run", help="run directory or bundled model name")
    p.add_argument("--format", choices=["convnetjs", "onnx"], required=True)
    p.add_argument("--out", help="file to write (default <run>/model.convnetjs.json or "
                   "<run>/model.onnx; for a bundled model <name>.convnetjs.json or <name>.onnx "
                   "here)")
    _add_trust_code(p)
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("scenes", help="scenes of MNIST digits for localization, detection "
                       "and segmentation, as PNGs and annotations.json")
    p.add_argument("kind", choices=SCENE_KINDS)
    p.add_argument("--split", choices=["train", "test"], default="train",
                   help="MNIST split the digits come from (default train)")
    p.add_argument("--count", type=int, default=1000, help="number of scenes (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, help="canvas side in px (default 64 for localize, "
                   "96 for detect and segment)")
    p.add_argument("--out", required=True, help="directory to write")
    p.add_argument("--data-dir")
    p.set_defaults(func=_cmd_scenes)

    _add_predict(sub)
    _add_serve(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)  # None, or a command's own exit status (predict's 1)
    except ConvscopeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file error no command translated: still one line, never a trace
        print(f"error: {_os_error_text(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        hint = _interrupted_hint(args, getattr(exc, "run_dir", None), argv)
        print(f"\ninterrupted{': ' + hint if hint else '.'}", file=sys.stderr)
        return 130
    return code or 0


def _os_error_text(exc: OSError) -> str:
    """One line for an OS error: the path and the fix where the error says which."""
    from ._io import NO_SPACE, NOT_WRITABLE, write_error

    if exc.filename and exc.errno in NO_SPACE + NOT_WRITABLE:
        return str(write_error(Path(exc.filename), exc.errno))
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror or exc}{where}; check the path and its permissions"


def _interrupted_hint(args: argparse.Namespace, run_dir: Path | None, argv: list[str]) -> str:
    """What an interrupted command left, and the command that carries on from there."""
    from .runs import CHECKPOINT, CONFIG

    if args.command == "scenes":
        return (f"{args.out} may hold only some of the scenes; write them again with: "
                f"{shlex.join(['convscope', *argv])}")
    if args.command != "train":
        return ""
    run = run_dir or args.resume or args.out
    if run and (Path(run) / CHECKPOINT).exists():
        return f"the run is saved in {run}; continue it with: convscope train --resume {run}"
    if run and (Path(run) / CONFIG).exists():
        return (f"{run} has no checkpoint yet; start it again from the first step with: "
                f"convscope train --resume {run}")
    return "it stopped before training began; nothing was saved"


if __name__ == "__main__":
    sys.exit(main())
