"""The ``convscope`` command: models, summary, train, eval, serve, import-convnetjs,
import-weights, export."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import shlex
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from .config import TrainConfig, allowed_values
from .errors import ConvscopeError
from .explain_methods import ALL as EXPLAIN_METHODS
from .explain_methods import METHODS
from .tasks import task_names
from .wavenet import DEFAULT_TEMPERATURE, PEAK


class LazyChoices(Sequence):
    """An option's choices read from ``module.name`` only when they are checked or shown, so
    building the parser imports no PyTorch (give the option a metavar: argparse then never
    lists the choices while building)."""

    def __init__(self, module: str, name: str) -> None:
        self._where = module, name

    def _values(self) -> Sequence:
        module, name = self._where
        return getattr(importlib.import_module(module), name)

    def __getitem__(self, index):
        return self._values()[index]

    def __len__(self) -> int:
        return len(self._values())


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
    rows = [(e.name, e.dataset or "-", sum(layer.num_params for layer in resolve(e.spec)),
             ("[untrained] " if e.untrained else "") + e.description) for e in list_models()]
    width = max(len(r[0]) for r in rows)
    digits = max(len(f"{r[2]:,}") for r in rows)
    print(f"{'name':<{width}}  {'data':<8} {'params':>{digits}}  description")
    for name, dataset, params, description in rows:
        print(f"{name:<{width}}  {dataset:<8} {params:>{digits},}  {description}")


def _recipe_text(name: str) -> str:
    """The settings a named model trains with: its recipe's, then the defaults."""
    from .config import resolve_config
    from .registry import get_model_entry

    entry = get_model_entry(name)
    config = resolve_config(entry.recipe, {"model": name,
                                                  "data": entry.dataset or "IMAGE_FOLDER"})
    on = entry.dataset or "your image folder (--data)"
    lines = [f"{name} trains on {on} with (* from its recipe, the rest defaults; "
             "any `convscope train` option overrides them):"]
    for key, value in config.to_dict().items():
        mark = "*" if key in entry.recipe else " "
        lines.append(f"  {mark} --{key.replace('_', '-'):<18} {value}")
    return "\n".join(lines)


def _cmd_summary(args: argparse.Namespace) -> None:
    from .runs import build_from_info, load_run
    from .summary import summarize, summarize_module
    from .user_module import resolve_model_ref

    ref, recorded = args.model, None
    if (Path(ref) / "config.yaml").exists():
        run = load_run(ref)
        spec, name = run.model_info.get("spec"), run.model_info.get("ref")
        build = partial(build_from_info, run.model_info, run.path, args.trust_code)
        note = ""  # a run has weights
        recorded = run.data_info.get("input")  # [width, height, depth]
    else:
        model = resolve_model_ref(ref)
        spec, name, build = model.spec, model.ref, model.build
        note = _untrained_note(name)
    if spec is not None:
        from .spec import resolve

        print(summarize(resolve(spec)))
        if note:
            print(note)
        return
    if args.input:
        width, height, depth = (int(v) for v in args.input.split("x"))
    elif isinstance(recorded, list) and len(recorded) == 3:  # what the run trained on
        width, height, depth = (int(v) for v in recorded)
    else:
        raise ConvscopeError(f"{name} is a Python module: give its input volume with "
                             f"--input WxHxD (e.g. --input 28x28x1)")
    print(summarize_module(build(), (depth, height, width)))


def _untrained_note(name: str | None) -> str:
    """A line for a registered architecture convscope has no weights for, else ''."""
    from .registry import list_models

    if not any(e.untrained and e.name == name for e in list_models()):
        return ""
    return (f"untrained: convscope has no weights for {name}; train it, or bring pretrained "
            f"ones: convscope import-weights {name} WEIGHTS.safetensors --out RUN_DIR")


# TrainConfig fields that `train` declares itself (positional-like choices of what to train)
OWN_OPTIONS = ("model", "data", "task")
TYPES = {"int": int, "float": float, "str": str}


def _train_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(TrainConfig) if f.name not in OWN_OPTIONS]


def _add_train_settings(parser: argparse.ArgumentParser, recipe: tuple[str, dict] | None = None
                        ) -> None:
    """One option per :class:`TrainConfig` field, with the field's help text, default and
    allowed values (unset options leave the setting to the model's recipe); with ``recipe``
    (a model's name and recipe, for ``train --model NAME --help``) the recipe's values too."""
    choices = allowed_values()
    for f in _train_fields():
        kind = str(f.type).split(" |")[0]
        options = {"help": f"{f.metadata['help']} ({_default_text(f, recipe)})"}
        if kind == "bool":
            options["action"] = argparse.BooleanOptionalAction
        else:
            options.update(type=TYPES[kind], choices=choices.get(f.name),
                           metavar=f.metadata["metavar"])
        parser.add_argument("--" + f.name.replace("_", "-"), **options)


def _default_text(f: dataclasses.Field, recipe: tuple[str, dict] | None) -> str:
    """"default: 64, or the model's recipe", or with a model's recipe "default: 64;
    mnist-convnetjs's recipe: 20"."""
    default = f"default: {f.metadata['default']}"
    if recipe is None:
        return default + ", or the model's recipe"
    name, values = recipe
    if f.name not in values:
        return default
    value = values[f.name]
    shown = {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value
    return f"{default}; {name}'s recipe: {shown}".replace("%", "%%")


def _help_recipe(argv: list[str]) -> tuple[str, dict] | None:
    """For ``train --model NAME --help``: NAME and its recipe (None otherwise)."""
    if not argv or argv[0] != "train" or not {"-h", "--help"} & set(argv):
        return None
    ref = None
    for i, word in enumerate(argv):
        for option in ("--model", "--recipe"):
            if word == option and i + 1 < len(argv):
                ref = argv[i + 1]
            elif word.startswith(option + "="):
                ref = word.split("=", 1)[1]
    if ref is None:
        return None
    from .user_module import resolve_model_ref

    return ref, resolve_model_ref(ref).recipe


def _train_settings(args: argparse.Namespace) -> dict:
    return {f.name: getattr(args, f.name) for f in _train_fields()}


def _cmd_train(args: argparse.Namespace) -> None:
    from .interrupts import sigterm_as_interrupt
    from .trainer import resume, train

    if args.resume:
        given = {k: v for k, v in _train_settings(args).items() if v is not None}
        given.pop("epochs", None)  # --resume --epochs N extends the run to N epochs
        given.pop("data_dir", None)  # where its data is now (a moved folder)
        if given or args.model or args.model_args or args.out or args.task or args.config:
            raise ConvscopeError("--resume continues a run with its saved settings; "
                                 "leave out the other options (all but --epochs N, which "
                                 "extends the run to N epochs, and --data / --data-dir, "
                                 "which say where its data is now)")
    with sigterm_as_interrupt():  # SIGTERM stops a run as Ctrl-C does: with a checkpoint
        if args.resume:
            run = resume(args.resume, nproc=args.nproc, trust_code=args.trust_code,
                         epochs=args.epochs, data=args.data, data_dir=args.data_dir)
        else:
            model, data, task, settings = _what_to_train(args)
            run = train(model, data, task=task, out=args.out, nproc=args.nproc, **settings)
    if run.results and "test" in run.results:
        print(f"evaluate it: convscope eval {run.path}")


def _what_to_train(args: argparse.Namespace) -> tuple[object, str | None, str | None, dict]:
    """(model, data, task, settings) of ``train``: the options given, over ``--config``'s."""
    from .config_file import read_config_file
    from .user_module import parse_model_args

    given = {k: v for k, v in _train_settings(args).items() if v is not None}
    if not args.config:
        model = args.model if args.model_args is None else \
            (args.model, parse_model_args(args.model_args))
        return model, args.data, args.task, given
    saved, saved_model = read_config_file(args.config)
    data, task = args.data or saved.get("data"), args.task or saved.get("task")
    try:  # the file's values, checked as the options are (in the file's own context)
        TrainConfig.from_dict({k: v for k, v in {**saved, "data": data, "task": task}.items()
                               if v is not None})
    except ConvscopeError as exc:
        raise ConvscopeError(f"--config {args.config}: {exc}") from None
    model = args.model or saved_model or saved.get("model")
    if args.model_args is not None:  # keyword arguments for the factory given or saved
        model = (args.model or saved.get("model"), parse_model_args(args.model_args))
    settings = {k: v for k, v in saved.items() if k not in OWN_OPTIONS}
    return model, data, task, {**settings, **given}


def _cmd_eval(args: argparse.Namespace) -> None:
    from .device import autocast_for, model_device, resolve_precision, scoring_precision
    from .runs import open_run
    from .tasks import get_task
    from .tta import with_tta

    run = open_run(args.run, trust_code=args.trust_code)
    run.model  # noqa: B018 (a Python model's --trust-code check comes before reading data)
    config = run.data_config(args.data, args.data_dir, args.split)  # found from any folder
    data, task = config.data, get_task(config.task)
    dataset = task.load_split(config, args.split, run.data_info,  # only the split scored
                              **task.data_options(run.model))
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
    path = write_scenes(scenes, args.out, args.kind, progress=True, format=args.format)
    masks = " and masks" if args.kind == "segment" else ""
    print(f"wrote {len(scenes)} {args.kind} scenes{masks} ({scenes.size}x{scenes.size} px, "
          f"MNIST {args.split} digits, seed {args.seed}) to {args.out}; annotations: {path}")


def _cmd_serve(args: argparse.Namespace) -> None:
    from .extras import require_extra

    require_extra("serve", feature="convscope serve")
    from .server.serve import serve

    serve([Path(r) for r in args.run], Path(args.runs) if args.runs else None, args.data_dir,
          args.host, args.port, open_browser=not args.no_browser,
          allow_hosts=args.allow_host, allow_origins=args.allow_origin,
          trust_code=args.trust_code, modules=args.module, module_input=_module_input(args))


def _module_input(args: argparse.Namespace):
    """``--module-input WxHxD`` as a Volume (None: the default)."""
    if not args.module_input:
        return None
    from .live.cli import parse_volume

    return parse_volume(args.module_input)


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


def _cmd_import_weights(args: argparse.Namespace) -> None:
    from .import_weights import import_weights

    run = import_weights(args.model, args.weights, args.out)
    params = sum(p.numel() for p in run.model.parameters())
    print(f"mapped {args.weights} onto {args.model} ({params:,} parameters) in {run.path}")
    print(f"look inside it: convscope serve {run.path}")


def _cmd_export(args: argparse.Namespace) -> None:
    from .convnetjs import export_convnetjs, load_exact
    from .onnx_export import export_onnx, run_metadata
    from .runs import open_run

    run = open_run(args.run, trust_code=args.trust_code)
    stem = run.path / "model" if Path(args.run).exists() else Path(args.run)  # bundled: here
    if args.format == "convnetjs":
        path = export_convnetjs(load_exact(run), args.out or Path(f"{stem}.convnetjs.json"))
    else:
        width, height, depth = run.data_info["input"]
        path = export_onnx(run.model, args.out or Path(f"{stem}.onnx"), (depth, height, width),
                           run_metadata(run))
    print(f"wrote {path}")


def _cmd_report(args: argparse.Namespace) -> None:
    from .report import write_report

    print(f"wrote {write_report(args.run, args.out, args.data_dir, args.trust_code)}")


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="one self-contained HTML page about a run (opens offline)",
                       description="Settings, machine, curves, per-class scores, confusion "
                       "matrix, first-layer weights and the most confused test examples, with "
                       "every picture embedded.")
    p.add_argument("run", metavar="RUN", help="a run directory or a bundled model's name")
    p.add_argument("--out", help="the HTML file (default: RUN/report.html; for a bundled "
                   "model NAME-report.html here)")
    p.add_argument("--data-dir", help="where the test set is, for the confused examples "
                   "(default: the run's, $CONVSCOPE_DATA, else the bundled sample)")
    _add_trust_code(p)
    p.set_defaults(func=_cmd_report)


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


def _cmd_generate(args: argparse.Namespace) -> None:
    from .wavenet.generation import check_peak, generate

    check_peak(args.peak)  # before the clip is generated
    clip = generate(args.run, args.digit, args.speaker, args.from_wav, args.seconds, args.seed,
                    temperature=args.temperature)
    clip.write(args.out, args.peak)
    what = f"resynthesised from {args.from_wav}" if args.from_wav else f"digit {args.digit}"
    level = f"peak {args.peak:g}" if args.peak else "as drawn"
    print(f"wrote {args.out}: {len(clip.samples) / clip.rate:.3f} s at {clip.rate} Hz ({what}, "
          f"{level})")


def _add_generate(sub) -> None:
    p = sub.add_parser("generate", help="say a digit with a WaveNet run (or resynthesise a "
                       "recording from its spectrogram)")
    p.add_argument("run", help="a WaveNet run directory (convscope train --task wavenet) or "
                   "bundled model name")
    p.add_argument("--digit", type=int, required=True, help="the digit to say (0-9)")
    p.add_argument("--speaker", help="whose voice (one of the model's speakers; default: any)")
    p.add_argument("--from-wav", metavar="FILE", help="a WAV of one spoken digit to "
                   "resynthesise from its log-mel spectrogram (a vocoder)")
    p.add_argument("--seconds", type=float, metavar="T", help="how long (default 1.008, one "
                   "clip; with --from-wav at most that)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling (default 0)")
    p.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE, metavar="T",
                   help="sampling temperature, 0 to 2 (default %(default)g; lower: surer "
                   "samples, 0: always the likeliest)")
    p.add_argument("--peak", type=float, default=PEAK, metavar="P", help="scale the written "
                   "clip to this peak, 0 to 1 (default %(default)g, the training clips' level; 0: "
                   "as drawn)")
    p.add_argument("--out", required=True, metavar="FILE.wav", help="the WAV file to write")
    p.set_defaults(func=_cmd_generate)


def _cmd_explain(args: argparse.Namespace) -> int:
    from .explain_files import explain_files
    from .runs import open_run

    run = open_run(args.model, trust_code=args.trust_code)
    return 1 if explain_files(run, args.files, args.method, args.layer, args.target, args.out,
                              args.invert, args.samples) else 0


def _add_explain(sub) -> None:
    p = sub.add_parser("explain", help="why a classifier answers as it does: Grad-CAM, "
                       "HiResCAM, saliency or occlusion maps of your pictures",
                       description="For each picture (fitted as predict fits it) writes "
                       "OUT/<name>.<method>.png (the map over the input) and "
                       "OUT/<name>.<method>.npy (the raw map, float32 at the input's "
                       "resolution). See docs/explain.md.")
    p.add_argument("model", metavar="MODEL_OR_RUN",
                   help="a run directory or a bundled model's name (e.g. mnist-convnetjs)")
    p.add_argument("files", nargs="+", metavar="IMAGE_OR_FOLDER", help="PNG or JPEG files, or "
                   "folders (searched recursively)")
    p.add_argument("--method", choices=METHODS, default=METHODS[0],
                   help="the map: " + ", ".join(m.label for m in EXPLAIN_METHODS)
                   + f" (default: {METHODS[0]})")
    p.add_argument("--layer", metavar="L", help="Grad-CAM's or HiResCAM's layer: its index "
                   "(convscope summary) or module name (default: the last conv layer)")
    p.add_argument("--class", dest="target", metavar="C", help="the class to explain, by name "
                   "or index (default: the predicted class)")
    p.add_argument("--samples", type=int, metavar="N", help="SmoothGrad's noisy copies "
                   "(default 16; 1: the plain gradient)")
    p.add_argument("--out", required=True, metavar="DIR", help="where the PNG and .npy files go")
    p.add_argument("--invert", choices=("auto", "on", "off"), default="auto",
                   help="invert the pictures' grey levels, as for predict")
    _add_trust_code(p)
    p.set_defaults(func=_cmd_explain)


def _cmd_cache(args: argparse.Namespace) -> None:
    from .data.cache import cache_info_text, clear_cache, human_size

    if args.action == "info":
        print(cache_info_text())
        return
    removed, folder = clear_cache()
    count = len(removed)
    print(f"removed {count} decoded-cache entr{'y' if count == 1 else 'ies'} from {folder}, "
          f"freeing {human_size(sum(e.size for e in removed))}")


def _add_cache(sub) -> None:
    p = sub.add_parser("cache", help="the decoded-data cache: where it is and how big, or "
                       "empty it", description="Decoded datasets and image folders are kept in "
                       "$CONVSCOPE_CACHE (default ~/.cache/convscope/decoded), at most "
                       "$CONVSCOPE_CACHE_MAX bytes (default 2G; least recently used entries go "
                       "first). Removing them only costs decoding again.")
    p.add_argument("action", choices=["info", "clear"], help="info: location, entries and "
                   "total size; clear: remove convscope's entries (nothing else)")
    p.set_defaults(func=_cmd_cache)


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
    p.add_argument("--module", action="append", default=[], metavar="FILE.py:FACTORY",
                   help="also offer the nn.Module this factory returns (e.g. a pretrained "
                   "torchvision net), without a run; needs --trust-code (repeatable)")
    p.add_argument("--module-input", metavar="WxHxD", help="--module's input size (default "
                   "224x224x3)")
    _add_trust_code(p)
    p.set_defaults(func=_cmd_serve)


def _cmd_stream(args: argparse.Namespace) -> None:
    from .live.cli import stream_command

    stream_command(args)


def _add_stream(sub) -> None:
    p = sub.add_parser("stream", help="send each camera or video frame's features over OSC "
                       "(to Wekinator and other creative tools), without a browser")
    p.add_argument("--source", required=True, metavar="CAMERA|VIDEO|FOLDER", help="a camera "
                   "index (0), a video file or a folder of PNG/JPEG pictures")
    p.add_argument("--model", help="a run directory, a bundled model or file.py:factory with "
                   "--trust-code (default cifar10-94 where it is bundled, else "
                   "cifar10-ordinary: a 32x32 view of each frame)")
    p.add_argument("--layer", default="probs", help="probs (the class probabilities, default), "
                   "or a layer's index or name (`convscope summary` lists them): its "
                   "activations, flattened")
    p.add_argument("--osc", metavar="HOST:PORT",
                   help="where to send (default 127.0.0.1:6448, Wekinator's input; with --head "
                   "127.0.0.1:8000 for classes, 127.0.0.1:12000 for sliders)")
    p.add_argument("--address", help="the OSC address (default /wek/inputs; with --head "
                   "/classification for classes, /wek/outputs for sliders)")
    p.add_argument("--frames", type=int, metavar="N", help="stop after N frames (default: "
                   "until the source ends or Ctrl-C)")
    p.add_argument("--fps", type=float, metavar="F", help="at most F frames a second "
                   "(default: as fast as they come)")
    p.add_argument("--input", metavar="WxHxD", help="a file.py:factory model's input size "
                   "(default 224x224x3)")
    p.add_argument("--invert", choices=("auto", "on", "off"), default="auto",
                   help="invert grey levels for light-on-dark models (MNIST): auto (default), "
                   "on, off")
    p.add_argument("--head", metavar="DIR", help="send the predictions of a head trained on "
                   "the Live page or with convscope.live.Teacher (a saved set's folder): one "
                   "int to /classification, or one float per output to /wek/outputs; "
                   "its model and layer unless --model is given")
    _add_trust_code(p)
    p.set_defaults(func=_cmd_stream)


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", metavar="DIR", help="where datasets live (default "
                        "$CONVSCOPE_DATA, else a per-user cache; missing files are downloaded)")


def _add_trust_code(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trust-code", action="store_true", help="a run of a Python model: "
                        "import the model code the run keeps (this runs that code; only for "
                        "runs you trust)")


def _add_train(sub, recipe: tuple[str, dict] | None = None) -> None:
    p = sub.add_parser("train", help="train a model and evaluate it on the test set",
                       epilog="A named model's recipe values are shown beside the defaults by "
                       "`convscope train --model NAME --help`.")
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
    p.add_argument("--resume", metavar="RUN", help="continue an interrupted run; with "
                   "--epochs N, extend a run (finished or not) to N epochs in all")
    p.add_argument("--config", metavar="FILE", help="a YAML file of training settings "
                   "(keys: the option names, e.g. 'batch_size: 128'), or a run's config.yaml "
                   "to train that run again; options given here override it")
    _add_trust_code(p)
    _add_train_settings(p, recipe)
    p.add_argument("--nproc", type=int, default=1, metavar="N", help="train data-parallel in N "
                   "processes on this machine, one GPU each with --device cuda (default 1; "
                   "for several machines use torchrun, see docs/distributed.md)")
    p.set_defaults(func=_cmd_train)


def version() -> str:
    """convscope's version: the installed package's, else the source tree's ``__version__``."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("convscope")
    except PackageNotFoundError:
        from . import __version__

        return __version__


def _add_imports_and_export(sub) -> None:
    """``import-convnetjs``, ``import-weights`` and ``export``: networks in and out."""
    p = sub.add_parser("import-convnetjs", help="a ConvNetJS snapshot (.json) as a run directory")
    p.add_argument("file", help="ConvNetJS Net.toJSON() file")
    p.add_argument("--out", help="run directory (default runs/<file name>)")
    p.add_argument("--data", help="the image set it classifies (default: mnist for 1-channel, "
                   "cifar10 for 3-channel input)")
    p.add_argument("--input-offset", type=float, help="added to convscope's byte/255 - 0.5 "
                   "inputs: 0.5 for networks trained on byte/255 (ConvNetJS's MNIST demo)")
    p.add_argument("--eval", action="store_true", help="evaluate on the official test set")
    _add_data_dir(p)
    p.set_defaults(func=_cmd_import_convnetjs)

    p = sub.add_parser("import-weights", help="pretrained weights (.safetensors or .onnx) "
                       "mapped onto a registered model or spec, as a run directory")
    p.add_argument("model", metavar="NAME_OR_SPEC", help="registry name (e.g. alexnet) or spec "
                   "file")
    p.add_argument("weights", metavar="WEIGHTS_FILE", help=".safetensors or .onnx file; its "
                   "tensors are matched to the layers in order and by shape")
    p.add_argument("--out", required=True, help="run directory to write")
    p.set_defaults(func=_cmd_import_weights)

    p = sub.add_parser("export", help="write a run's network as ConvNetJS JSON or ONNX")
    p.add_argument("run", help="run directory or bundled model name")
    p.add_argument("--format", choices=["convnetjs", "onnx"], required=True,
                   help="convnetjs: ConvNetJS's Net.toJSON() (spec models of its layer kinds); "
                   "onnx: an ONNX graph for other runtimes")
    p.add_argument("--out", help="file to write (default <run>/model.convnetjs.json or "
                   "<run>/model.onnx; for a bundled model <name>.convnetjs.json or <name>.onnx "
                   "here)")
    _add_trust_code(p)
    p.set_defaults(func=_cmd_export)


def _add_scenes(sub) -> None:
    p = sub.add_parser("scenes", help="scenes of MNIST digits for localization, detection "
                       "and segmentation, as PNGs and annotations (native, COCO or YOLO)")
    p.add_argument("kind", choices=LazyChoices("convscope.scenes", "SCENE_KINDS"), metavar="KIND",
                   help="what the scenes are for: %(choices)s")
    p.add_argument("--split", choices=["train", "test"], default="train",
                   help="MNIST split the digits come from (default train)")
    p.add_argument("--count", type=int, default=1000, help="number of scenes (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the digits, places and "
                   "clutter chosen (default 0; the same seed writes the same scenes)")
    p.add_argument("--size", type=int, help="canvas side in px (default 64 for localize, "
                   "96 for detect and segment)")
    p.add_argument("--out", required=True, help="directory to write")
    p.add_argument("--format", default="native", metavar="FORMAT",
                   choices=LazyChoices("convscope.scene_formats", "SCENE_FORMATS"),
                   help="annotations as %(choices)s: native: annotations.json; coco: "
                   "instances.json (boxes, and RLE masks for segment); yolo: images/, labels/ "
                   "(class cx cy w h), classes.txt and data.yaml (default native)")
    _add_data_dir(p)
    p.set_defaults(func=_cmd_scenes)


def build_parser(recipe: tuple[str, dict] | None = None) -> argparse.ArgumentParser:
    """The ``convscope`` parser (torch-free); ``recipe``: a model's name and recipe, whose
    values ``train --help`` then shows beside the defaults."""
    parser = argparse.ArgumentParser(
        prog="convscope",
        description="Train convolutional networks on real data and look inside them.")
    parser.add_argument("--version", action="version", version=f"convscope {version()}")
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

    _add_train(sub, recipe)
    _add_generate(sub)

    p = sub.add_parser("eval", help="evaluate a run: accuracy, recall, precision, confusion")
    p.add_argument("run", help="run directory or bundled model name")
    p.add_argument("--data", help="dataset (default: the one it was trained on)")
    p.add_argument("--split", choices=["test", "val", "train"], default="test",
                   help="which split to score (default test; val: the training run's held-out "
                   "validation examples)")
    _add_data_dir(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _add_trust_code(p)
    p.set_defaults(func=_cmd_eval)

    _add_imports_and_export(sub)
    _add_scenes(sub)
    _add_predict(sub)
    _add_stream(sub)
    _add_explain(sub)
    _add_report(sub)
    _add_serve(sub)
    _add_cache(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        return _run(argv)
    except BrokenPipeError:  # the reader went away (`convscope models | head -3`): quietly
        _silence_stdout()
        return 141  # 128 + SIGPIPE, as a shell reports a command a closed pipe ended


def _silence_stdout() -> None:
    """Point stdout at the null device, so Python's flush at exit does not fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file (a test's capture): nothing to flush
        pass


def _run(argv: list[str]) -> int:
    try:
        recipe = _help_recipe(argv)
    except ConvscopeError as exc:  # `train --model NAME --help` of a model that is not known
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args = build_parser(recipe).parse_args(argv)
    try:
        code = args.func(args)  # None, or a command's own exit status (predict's 1)
        sys.stdout.flush()  # a closed pipe is found here, not at exit
    except ConvscopeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # stdout's reader went away: main() ends quietly
        raise
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
