"""WaveNet (`convscope train --task wavenet`): generation speed and quality judged by
convscope's own spoken-digit classifier.

- Speed: samples per second of the cached ("fast WaveNet") generation of one clip, wall clock
  and per CPU second of this process (the machine may be shared: both are reported, with the
  cores other processes kept busy meanwhile).
- Vocoder: FSDD's official test recordings resynthesised from their log-mel spectrograms
  (conditioned also on their digit and speaker); the judge's accuracy on the originals and on
  the resynthesised audio, and the mean absolute difference of their log-mel images in dB.
- Label-conditioned: ``--per-digit`` clips per digit generated from the digit alone (no
  recording, no speaker), and as many from the digit and a speaker (the model's speakers in
  turn); the share the judge hears as the requested digit. Generation from labels conditions
  on the model's prototype image of the digit (its mean training log-mel image); a model that
  has them is also scored without them.

``--temperature`` is the sampling temperature of every clip (see ``convscope generate``);
``--vocoder-seeds K`` resynthesises each recording K times, with seeds ``i``, ``1000 + i``, ...
With ``--split val`` the sampling is chosen without the test set: the vocoder resynthesises the
training recordings the run held out for validation, and the label-conditioned clips use seeds
1000, 1001, ... (the test report's are 0, 1, ...); nothing is written to docs/benchmarks.md.

    python benchmarks/wavenet.py --run RUN [--judge fsdd-convnet] [--clips 300]
        [--per-digit 20] [--temperature T] [--split test|val] [--vocoder-seeds K]
        [--data-dir DIR] [--write-doc]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from _report import command_line, machine, watched, write_section

from convscope.audio import (
    FRAMES,
    N_MELS,
    SAMPLE_RATE,
    TOP_DB,
    is_silent,
    read_wav,
    spectrogram_images,
)
from convscope.data.dataset import split_indices
from convscope.data.fsdd import FOLDER, TEST_TAKES, load_fsdd_recordings, recordings
from convscope.data.paths import resolve_data_dir
from convscope.runs import open_run
from convscope.tasks import get_task
from convscope.wavenet import DEFAULT_TEMPERATURE
from convscope.wavenet.generation import generate, wavenet_of

VAL_SEEDS = 1000  # the first seed of the label-conditioned clips with --split val


def speed(run, seconds: float) -> dict:
    """Wall and CPU samples/s of generating ``seconds`` of one digit."""
    cpu = time.process_time()
    clip, load = watched(lambda: generate(run, 3, seconds=seconds, seed=0))
    cpu = time.process_time() - cpu
    n = len(clip.samples)
    return {"samples": n, "wall_s": load["wall_s"], "cpu_s": cpu,
            "samples_per_s": n / load["wall_s"], "samples_per_cpu_s": n / cpu,
            "others_cpu": load["others_cpu"], "load_avg": load["load_avg"]}


def judge(judge_run, clips: list[tuple[np.ndarray, int]]) -> tuple[np.ndarray, torch.Tensor]:
    """The judge's predicted digits (-1: a silent clip, no digit heard) and the log-mel images
    (zeros for a silent clip) of ``(samples, rate)`` clips."""
    heard = np.full(len(clips), -1)
    images = torch.zeros((len(clips), 1, N_MELS, FRAMES), dtype=torch.uint8)
    sounding = [i for i, (samples, _) in enumerate(clips) if not is_silent(samples)]
    if sounding:
        images[sounding] = spectrogram_images([clips[i] for i in sounding])
        probabilities = get_task("audio").predict(judge_run.model, images[sounding])
        heard[sounding] = probabilities.argmax(1).numpy()
    return heard, images


def test_recordings(data_dir: str | None, count: int) -> list[tuple]:
    """``count`` official test recordings spread over digits, speakers and takes."""
    found = [r for r in recordings(resolve_data_dir(data_dir) / FOLDER) if r[3] < TEST_TAKES]
    found.sort(key=lambda r: (r[3], r[1], r[2]))  # take 0 of everyone first, then take 1...
    return found[:count]


def validation_recordings(run, data_dir: str | None) -> list[tuple]:
    """The official training recordings ``run`` held out for validation (its own split)."""
    _, found = load_fsdd_recordings(resolve_data_dir(data_dir) / FOLDER, "train")
    _, held = split_indices(len(found), run.config.val_fraction, seed=0)
    return [found[i] for i in held.tolist()]


def vocoder(run, judge_run, chosen: list[tuple], temperature: float, first_seed: int = 0) -> dict:
    """The judge on ``chosen`` recordings and on their resynthesis (recording ``i`` sampled
    with seed ``first_seed + i``)."""
    originals, resynthesised, digits = [], [], []
    speakers = wavenet_of(run).speakers
    for i, (path, digit, speaker, _take) in enumerate(chosen):
        samples, rate = read_wav(path)
        originals.append((samples, rate))
        clip = generate(run, digit, speaker if speaker in speakers else None, from_wav=path,
                        seed=first_seed + i, temperature=temperature)
        resynthesised.append((clip.samples, SAMPLE_RATE))
        digits.append(digit)
        print(f"  vocoded {i + 1}/{len(chosen)}: {path.name}", flush=True)
    truth = np.array(digits)
    said, images = judge(judge_run, originals)
    heard, again = judge(judge_run, resynthesised)
    distance = (images.float() - again.float()).abs().mean() * TOP_DB / 255.0
    return {"clips": len(chosen), "accuracy_originals": float((said == truth).mean()),
            "accuracy_resynthesised": float((heard == truth).mean()),
            "logmel_distance_db": float(distance)}


def label_conditioned(run, judge_run, per_digit: int, temperature: float, first_seed: int = 0,
                      speakers: list[str] | None = None, prototype: bool = True) -> dict:
    """``per_digit`` clips of each digit (seeds ``first_seed``, ``first_seed + 1``, ...), from
    the digit alone or, with ``speakers``, from the digit and each speaker in turn; without the
    model's prototype images unless ``prototype``."""
    clips, truth = [], []
    for digit in range(10):
        for i in range(per_digit):
            speaker = speakers[i % len(speakers)] if speakers else None
            clip = generate(run, digit, speaker, seed=first_seed + i, temperature=temperature,
                            prototype=prototype)
            clips.append((clip.samples, SAMPLE_RATE))
            truth.append(digit)
        print(f"  generated digit {digit}", flush=True)
    heard, _ = judge(judge_run, clips)
    truth = np.array(truth)
    per = [float((heard[truth == d] == d).mean()) for d in range(10)]
    return {"per_digit": per_digit, "accuracy": float((heard == truth).mean()),
            "accuracy_per_digit": per}


def report(result: dict) -> str:
    s, v, g = result["speed"], result["vocoder"], result["label"]
    others = f"{s['others_cpu']:.1f}" if s["others_cpu"] is not None else "?"
    where = "held-out training" if result.get("split") == "val" else "test"
    return "\n".join([
        "## WaveNet: generation speed and quality", "",
        f"Run `{result['run']}` ({result['trained']}), judged by `{result['judge']}`. "
        f"Machine: {result['machine']}. Command: `{result['command']}`. Sampling temperature "
        f"{result.get('temperature', 1.0):g}.", "",
        "| measure | value | goal |", "|---|---|---|",
        f"| cached generation, one clip of {s['samples']} samples | {s['samples_per_s']:,.0f} "
        f"samples/s wall, {s['samples_per_cpu_s']:,.0f} per CPU second (other processes kept "
        f"{others} cores busy; load {s['load_avg']:.1f}) | >= 8,000 |",
        f"| vocoder: judge's accuracy, {v['clips']} {where} recordings | originals "
        f"{100 * v['accuracy_originals']:.1f}%, resynthesised "
        f"{100 * v['accuracy_resynthesised']:.1f}% | >= 95% of the originals' |",
        *[f"| vocoder again, recording i sampled with seed {VAL_SEEDS * k} + i | resynthesised "
          f"{100 * again['accuracy_resynthesised']:.1f}% | |"
          for k, again in enumerate(result.get("vocoder_again", []), 1)],
        f"| vocoder: log-mel distance (mean absolute, dB) | {v['logmel_distance_db']:.1f} | |",
        *[f"| label-conditioned, {how}: {r['per_digit']} clips per digit heard as the digit "
          f"| {100 * r['accuracy']:.1f}% (per digit: "
          f"{', '.join(f'{100 * a:.0f}' for a in r['accuracy_per_digit'])}) | >= 50% |"
          for how, r in (("the digit alone", g),
                         ("digit and speaker (the speakers in turn)", result.get("label_speakers")),
                         ("the digit alone, without the prototype image (the labels' embeddings "
                          "only)", result.get("label_plain"))) if r],
    ])


def measure(args, run, judge_run) -> dict:
    """Speed, the vocoder and the label-conditioned clips, on ``args.split``."""
    val = args.split == "val"
    metrics = run.path / "metrics.jsonl"
    epochs = len(metrics.read_text().splitlines()) if metrics.exists() else 0
    stopped = "stopped early" if not (run.path / "results.json").exists() else "finished"
    result = {"run": str(args.run), "judge": args.judge, "machine": machine(),
              "command": command_line(), "split": args.split,
              "temperature": args.temperature,
              "trained": f"{epochs} of {run.config.epochs} epochs, {stopped}",
              "speed": speed(run, args.speed_seconds)}
    print(json.dumps(result["speed"]), flush=True)
    chosen = validation_recordings(run, args.data_dir)[:args.clips] if val else \
        test_recordings(args.data_dir, args.clips)
    result["vocoder"] = vocoder(run, judge_run, chosen, args.temperature)
    print(json.dumps(result["vocoder"]), flush=True)
    result["vocoder_again"] = [vocoder(run, judge_run, chosen, args.temperature, VAL_SEEDS * k)
                               for k in range(1, args.vocoder_seeds)]
    first = VAL_SEEDS if val else 0
    result["label"] = label_conditioned(run, judge_run, args.per_digit, args.temperature, first)
    print(json.dumps(result["label"]), flush=True)
    net = wavenet_of(run)
    result["label_speakers"] = label_conditioned(run, judge_run, args.per_digit,
                                                 args.temperature, first, net.speakers)
    if net.prototype(0, len(net.speakers)) is not None:  # else the rows above are these
        result["label_plain"] = label_conditioned(run, judge_run, args.per_digit,
                                                  args.temperature, first, prototype=False)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a WaveNet run directory")
    parser.add_argument("--judge", default="fsdd-convnet", help="a spoken-digit classifier "
                        "run or bundled model (default: the bundled fsdd-convnet)")
    parser.add_argument("--clips", type=int, default=300, help="recordings to vocode")
    parser.add_argument("--per-digit", type=int, default=20)
    parser.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE)
    parser.add_argument("--split", choices=("test", "val"), default="test",
                        help="val: choose settings on held-out training recordings and other "
                        "seeds (nothing written to the docs)")
    parser.add_argument("--vocoder-seeds", type=int, default=1, metavar="K",
                        help="resynthesise each recording K times (seeds i, 1000 + i, ...): "
                        "less sampling noise when choosing settings on --split val")
    parser.add_argument("--speed-seconds", type=float, default=1.008)
    parser.add_argument("--data-dir")
    parser.add_argument("--write-doc", action="store_true")
    args = parser.parse_args()
    result = measure(args, open_run(args.run), open_run(args.judge))
    print(report(result))
    if args.write_doc and args.split == "test":
        write_section("wavenet", report(result))
    Path(__file__).with_suffix(".jsonl").open("a").write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
