"""WaveNet: causality, receptive field, mu-law, cached = naive generation, the task in the one
trainer, `convscope generate` and its errors, and a short real-data training run."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_clip

from convscope.audio import CLIP_SAMPLES, HOP, read_wav
from convscope.cli import main
from convscope.errors import ConvscopeError
from convscope.model import build_model
from convscope.runs import open_run
from convscope.tasks.wavenet import sample_nll
from convscope.wavenet.codec import (
    SILENCE,
    DeEmphasis,
    de_emphasis_gain,
    mu_law_decode,
    mu_law_encode,
    pack,
    pre_emphasis,
)
from convscope.wavenet.data import WINDOW_FRAMES, WINDOW_SAMPLES
from convscope.wavenet.fast import FastWaveNet, conditioning, gumbel_noise, naive_codes
from convscope.wavenet.generation import (
    GeneratedClip,
    find_wavenet,
    generate_with,
    wavenet_of,
)
from convscope.wavenet.model import WaveNet, frame_interpolation, prototypes, receptive_field

SPEAKERS = ["alice", "bob"]


def tiny(dilations=(1, 2, 4), samples=64, frames=3, seed=0) -> WaveNet:
    torch.manual_seed(seed)
    net = WaveNet(samples=samples, mels=4, frames=frames, channels=4, skip=5, head=6, cond=3,
                  cond_layers=2, dilations=list(dilations), speakers=SPEAKERS).eval()
    for p in net.parameters():  # large weights: every dependency shows
        torch.nn.init.normal_(p, std=0.7)
    return net


def packed(codes: np.ndarray, frames: int = 3, digit: int = 2, speaker: int = 1) -> torch.Tensor:
    mel = np.arange(4 * frames, dtype=np.uint8).reshape(4, frames) * 20
    row = pack(codes, mel, digit, speaker)
    return torch.from_numpy(row).float().div(255).sub(0.5)[None, None, None, :]


def test_mu_law_round_trip():
    codes = np.arange(256, dtype=np.uint8)
    assert (mu_law_encode(mu_law_decode(codes)) == codes).all()
    x = np.linspace(-1, 1, 2001)
    back = mu_law_decode(mu_law_encode(x))
    step = np.abs(np.diff(mu_law_decode(codes))).max()
    assert np.abs(back - x).max() <= step / 2 + 1e-6
    assert mu_law_encode(np.zeros(1))[0] == 128 and abs(mu_law_decode([128])[0]) < 1e-2
    quiet = np.abs(x) < 0.01  # mu-law: fine steps near silence
    assert np.abs(back - x)[quiet].max() < 3e-4


@pytest.mark.parametrize("coefficient", [0.0, 0.5, 0.85, 0.97])
def test_de_emphasis_inverts_pre_emphasis_whole_or_in_chunks(coefficient):
    x = np.random.default_rng(1).standard_normal(3000) * 0.2
    y = pre_emphasis(x, coefficient)
    assert y[0] == np.float32(x[0]) and y[7] == pytest.approx(x[7] - coefficient * x[6], 1e-6)
    whole = DeEmphasis(coefficient)(y)
    np.testing.assert_allclose(whole / de_emphasis_gain(coefficient), x, atol=1e-5)
    stream, cuts = DeEmphasis(coefficient), [0, 1, 2, 300, 301, 2000, 3000]
    chunks = np.concatenate([stream(y[a:b]) for a, b in zip(cuts, cuts[1:], strict=False)])
    np.testing.assert_allclose(chunks, whole, atol=1e-6)  # the state carries over
    assert de_emphasis_gain(0.0) == 1.0 and (DeEmphasis(0.0)(y) == y).all()


def test_no_output_depends_on_a_future_input():
    net, rng = tiny(), np.random.default_rng(0)
    codes = rng.integers(0, 256, 64).astype(np.uint8)
    with torch.no_grad():
        before = net(packed(codes))
        for t0 in (0, 17, 40, 63):
            changed = codes.copy()
            changed[t0:] = 255 - changed[t0:]
            after = net(packed(changed))
            torch.testing.assert_close(after[..., :t0 + 1], before[..., :t0 + 1],
                                       rtol=0, atol=0)
            if t0 < 63:  # and the next output does see sample t0
                assert not torch.equal(after[..., t0 + 1], before[..., t0 + 1])


def conv_reference(net: WaveNet, x: torch.Tensor) -> torch.Tensor:
    """The network as its weights' Conv2d modules compute it over (N, C, 1, time), each
    dilated conv padded by its dilation on both sides and cut to the past half."""
    codes, digit, speaker, has_mel, mel = net.unpack(x)
    cond = net.conditioning(digit, speaker, has_mel, mel, codes.shape[1])
    shifted = torch.nn.functional.pad(codes, (1, -1), value=SILENCE)
    h = net.embed(shifted).transpose(1, 2).unsqueeze(2)
    skips, c = 0, net.channels
    for gate, out, layer_cond in zip(net.gate, net.out, cond.split(2 * c, 1), strict=True):
        a, b = (gate(h)[..., :codes.shape[1]] + layer_cond).chunk(2, 1)
        residual, skip = out(torch.tanh(a) * torch.sigmoid(b)).split([c, out.out_channels - c], 1)
        h, skips = h + residual, skips + skip
    relu = torch.nn.functional.relu
    return net.head2(relu(net.head1(relu(skips))))


@pytest.mark.parametrize("samples", [64, 5])
def test_the_channels_last_stack_computes_what_its_conv_weights_do(samples):
    net, rng = tiny((1, 2, 4, 8), samples=samples), np.random.default_rng(3)
    batch = torch.cat([packed(rng.integers(0, 256, samples).astype(np.uint8), digit=d)
                       for d in range(3)])
    with torch.no_grad():
        torch.testing.assert_close(net(batch), conv_reference(net, batch), rtol=1e-5,
                                   atol=1e-5)
    net.train()  # and the gradients match (labels and spectrograms kept)
    net.mel_dropout = net.speaker_dropout = 0.0
    grads = []
    for model in (net, lambda x: conv_reference(net, x)):
        net.zero_grad()
        model(batch).square().mean().backward()
        grads.append([p.grad.clone() for p in net.parameters() if p.grad is not None])
    for mine, reference in zip(*grads, strict=True):
        torch.testing.assert_close(mine, reference, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dilations", [(1, 2, 4), (1, 2, 4, 8, 1, 2)])
def test_receptive_field_formula_matches_the_measured_dependency(dilations):
    net, rng, t = tiny(dilations), np.random.default_rng(1), 50
    codes = rng.integers(0, 256, 64).astype(np.uint8)
    variants = [codes]  # the codes, then each position changed in turn (one batch)
    for s in range(64):
        changed = codes.copy()
        changed[s] = 255 - changed[s] if changed[s] != 127 else 0
        variants.append(changed)
    with torch.no_grad():
        out = net(torch.cat([packed(v) for v in variants]))[:, :, 0, t]
    seen = [s for s in range(64) if not torch.equal(out[s + 1], out[0])]  # rows of one batch
    field = receptive_field(list(dilations))
    assert field == 1 + sum(dilations) == net.receptive_field
    assert seen == list(range(t - field, t))


@pytest.mark.parametrize(("frames", "samples"), [(33, 4096), (63, 8064), (5, 120), (2, 7)])
def test_frame_interpolation_is_linear_interpolation_between_frame_centres(frames, samples):
    values = torch.randn(3, 4, frames, dtype=torch.float64)
    reference = torch.nn.functional.interpolate(values, size=samples + 1, mode="linear",
                                                align_corners=True)[..., :samples]
    matrix = frame_interpolation(frames, samples)
    torch.testing.assert_close(values @ matrix, reference, rtol=0, atol=1e-12)
    torch.testing.assert_close(matrix.sum(0), torch.ones(samples, dtype=torch.float64))
    assert (frame_interpolation(1, 5) == 1).all()  # one frame: held


def test_the_layer_fields_build_the_conditioning_they_name():
    spec = [{"type": "input", "sx": 4 + 64 + 4 * 3, "sy": 1, "depth": 1},
            {"type": "wavenet", "samples": 64, "mels": 4, "frames": 3, "channels": 4, "skip": 5,
             "head": 6, "cond": 7, "cond_layers": 3, "mel_dropout": 0.25, "dilations": [1, 2]}]
    spec[1]["preemphasis"] = 0.9
    net = find_wavenet(build_model(spec))
    assert net.mel_dropout == 0.25 and net.mel_in.out_channels == 7 and net.preemphasis == 0.9
    assert [conv.in_channels for conv in net.mel_more] == [7, 7]  # 3 convs over the frames
    spec[1] = {k: v for k, v in spec[1].items()
               if k not in ("cond_layers", "mel_dropout", "preemphasis")}
    net = find_wavenet(build_model(spec))  # runs saved before the fields: their defaults
    assert net.mel_dropout == 0.3 and len(net.mel_more) == 0 and net.preemphasis == 0


def test_sample_nll_is_the_cross_entropy_of_every_sample():
    logits, codes = torch.randn(2, 256, 1, 9), torch.randint(0, 256, (2, 9))
    reference = torch.nn.functional.cross_entropy(logits.squeeze(2), codes, reduction="none")
    torch.testing.assert_close(sample_nll(logits, codes.to(torch.uint8)), reference)


@pytest.mark.parametrize("with_mel", [True, False])
def test_cached_generation_equals_naive_generation(with_mel):
    net = tiny((1, 2, 4, 8))
    mel = np.random.default_rng(2).integers(0, 256, (4, 5)).astype(np.uint8) if with_mel \
        else None
    cond = conditioning(net, 3, 0 if with_mel else 2, mel, 120)
    noise = gumbel_noise(7, 120)
    fast = FastWaveNet(net, np.float64).generate(cond, noise)
    assert (fast == naive_codes(net, cond, noise)).all()
    assert len(np.unique(fast)) > 10  # a real sampled signal, not a constant
    other = FastWaveNet(net, np.float64).generate(cond, gumbel_noise(8, 120))
    assert (other != fast).any()
    single = FastWaveNet(net).generate(cond, noise)  # float32, as generation runs
    assert (single[:50] == fast[:50]).mean() > 0.9


def test_temperature_scales_the_sampling_noise():
    """T draws from softmax(logits / T): the same Gumbel draws scaled by T; T = 0 always takes
    the likeliest code, which no noise changes."""
    net = tiny((1, 2, 4))
    cond = conditioning(net, 3, 1, None, 80)
    noise = gumbel_noise(0, 80)
    for temperature in (0.0, 0.5, 1.0, 1.7):
        clip = generate_with(net, 3, "bob", seconds=0.01, seed=0, temperature=temperature)
        expected = FastWaveNet(net).generate(cond, noise * temperature)
        assert (clip.codes == expected).all(), temperature
    greedy = [generate_with(net, 3, "bob", seconds=0.01, seed=s, temperature=0).codes
              for s in (0, 1)]
    assert (greedy[0] == greedy[1]).all()
    assert (generate_with(net, 3, "bob", seconds=0.01, seed=1).codes != greedy[0]).any()


def test_prototypes_are_the_mean_images_by_digit_and_speaker():
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (12, 4, 5)).astype(np.uint8))
    digits = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 1, 2])
    speakers = torch.tensor([0, 0, 1, 0, 1, 1, 0, 0, 0, 1, 0, 0])  # digit 2: speaker 1 never
    found = prototypes(images, digits, speakers, (4, 2))
    assert found.shape == (4, 3, 4, 5) and found.dtype == torch.uint8
    for d in range(3):
        said = (digits == d).numpy()
        anyone = np.round(images.numpy()[said].astype(float).mean(0))
        np.testing.assert_array_equal(found[d, 2].numpy(), anyone)
        for s in range(2):
            pick = said & (speakers == s).numpy()
            expected = np.round(images.numpy()[pick].astype(float).mean(0)) if pick.any() \
                else anyone
            np.testing.assert_array_equal(found[d, s].numpy(), expected)
    assert not found[3].any()  # a digit never said has none


def test_generation_from_labels_conditions_on_the_prototype():
    net = tiny((1, 2, 4))
    assert net.prototype(3, 1) is None  # none fitted: the labels' embeddings alone
    plain = generate_with(net, 3, "bob", seconds=0.01, seed=0)
    image = torch.from_numpy(np.random.default_rng(1).integers(1, 256, (4, 64)).astype(np.uint8))
    net.prototypes[3, 1] = image
    assert torch.equal(net.prototype(3, 1), image) and net.prototype(3, 255) is None
    with_image = generate_with(net, 3, "bob", seconds=0.01, seed=0)
    cond = conditioning(net, 3, 1, image.numpy(), CLIP_SAMPLES)[:, :80]
    assert (with_image.codes == FastWaveNet(net).generate(cond, gumbel_noise(0, 80))).all()
    without = generate_with(net, 3, "bob", seconds=0.01, seed=0, prototype=False)
    assert (without.codes == plain.codes).all() and (with_image.codes != plain.codes).any()
    # saved and loaded with the weights; weights saved before them load with none
    state = net.state_dict()
    fresh = tiny((1, 2, 4), seed=1)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.prototypes, net.prototypes)
    del state["prototypes"]
    older = tiny((1, 2, 4), seed=1)
    older.load_state_dict(state)
    assert not older.prototypes.any()


# ---- the task in the one trainer, on a small synthetic FSDD folder --------------------------


@pytest.fixture
def fsdd_dir(tmp_path: Path, data_cache: Path) -> Path:
    folder = tmp_path / "data" / "fsdd" / "recordings"
    folder.mkdir(parents=True)
    t = np.arange(2400) / 8000
    for digit in range(3):
        for s, speaker in enumerate(SPEAKERS):
            for take in (0, 1, 5, 6, 7):
                tone = 0.3 * np.sin(2 * np.pi * (300 + 500 * digit + 40 * s + take) * t)
                write_clip(folder / f"{digit}_{speaker}_{take}.wav", tone * np.hanning(2400))
    return tmp_path / "data"


def _tiny_spec(path: Path) -> Path:
    layer = {"type": "wavenet", "samples": WINDOW_SAMPLES, "mels": 32, "frames": WINDOW_FRAMES,
             "channels": 4, "skip": 4, "head": 8, "cond": 2, "dilations": [1, 2],
             "speakers": SPEAKERS}
    path.write_text(json.dumps([{"type": "input", "sx": 4 + WINDOW_SAMPLES + 32 * WINDOW_FRAMES,
                                 "sy": 1, "depth": 1}, layer]))
    return path


def test_a_clip_is_written_at_its_peak(tmp_path: Path):
    quiet = 0.2 * np.sin(np.arange(800) / 3.0).astype(np.float32)
    clip = GeneratedClip(quiet, np.zeros(800, np.uint8))
    for peak, expected in ((0.8, 0.8), (0.5, 0.5), (None, 0.2), (0, 0.2)):
        samples, _ = read_wav(clip.write(tmp_path / "a.wav", peak))
        assert abs(np.abs(samples).max() - expected) < 1e-3, peak
        assert abs(np.corrcoef(samples, quiet)[0, 1] - 1) < 1e-6  # the same waveform
    hush = GeneratedClip(np.full(800, 1e-4, np.float32), np.zeros(800, np.uint8))
    assert np.abs(read_wav(hush.write(tmp_path / "h.wav"))[0]).max() < 1e-3  # silence stays
    with pytest.raises(ConvscopeError, match=r"--peak must be from 0 to 1 \(0: as drawn\), got 2"):
        clip.write(tmp_path / "b.wav", 2.0)
    assert not (tmp_path / "b.wav").exists()


def test_train_resume_and_generate(fsdd_dir: Path, tmp_path: Path, capsys):
    run = tmp_path / "run"
    spec = _tiny_spec(tmp_path / "tiny.json")
    assert main(["train", "--task", "wavenet", "--model", str(spec), "--data", "fsdd",
                 "--data-dir", str(fsdd_dir), "--epochs", "1", "--batch-size", "4",
                 "--lr", "0.01", "--out", str(run), "--no-figures"]) == 0
    for name in ("config.yaml", "metrics.jsonl", "model.safetensors", "results.json"):
        assert (run / name).is_file(), name
    results = json.loads((run / "results.json").read_text())
    assert results["test"]["clips"] == 12 and 0 < results["test"]["nll"] < 6
    net = wavenet_of(open_run(run))  # the prototypes of the digits it learned, fitted
    assert all(net.prototype(d, 2) is not None for d in range(3)) and net.prototype(3, 2) is None
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert "val_nll" in json.loads(lines[-1])
    capsys.readouterr()
    assert main(["eval", str(run)]) == 0
    assert "negative log-likelihood on 12 clips" in capsys.readouterr().out

    out = tmp_path / "said.wav"
    assert main(["generate", str(run), "--digit", "1", "--speaker", "bob", "--seconds", "0.05",
                 "--out", str(out)]) == 0
    samples, rate = read_wav(out)
    assert rate == 8000 and len(samples) == 400 and abs(np.abs(samples).max() - 0.8) < 1e-3
    assert "(digit 1, peak 0.8)" in capsys.readouterr().out
    again = tmp_path / "again.wav"
    main(["generate", str(run), "--digit", "1", "--speaker", "bob", "--seconds", "0.05",
          "--out", str(again)])
    assert again.read_bytes() == out.read_bytes()  # same seed, same clip
    wav = fsdd_dir / "fsdd" / "recordings" / "2_alice_0.wav"
    assert main(["generate", str(run), "--digit", "2", "--from-wav", str(wav), "--seconds",
                 "0.02", "--out", str(tmp_path / "vocoded.wav")]) == 0
    assert len(read_wav(tmp_path / "vocoded.wav")[0]) == 160
    capsys.readouterr()

    short, long = tmp_path / "short.wav", tmp_path / "long.wav"
    write_clip(short, np.full(400, 0.2))
    write_clip(long, 0.2 * np.sin(np.arange(40000) / 5.0))
    for argv, expected in (
        (["--digit", "1", "--from-wav", str(short)], "0.05 s is not the length of a spoken"),
        (["--digit", "1", "--from-wav", str(long)], "5.00 s is not the length of a spoken"),
        (["--digit", "1", "--speaker", "carol"], "unknown speaker 'carol'; this model knows: "
                                                 "alice, bob"),
        (["--digit", "12"], "digit 12 is not one this model says; use 0-9"),
        (["--digit", "1", "--seconds", "60"], "--seconds must be above 0 and at most 10"),
        (["--digit", "1", "--temperature", "3"], "--temperature must be a number from 0 to 2"),
        (["--digit", "1", "--temperature", "nan"], "--temperature must be a number from 0 to 2"),
        (["--digit", "1", "--peak", "1.5"], "--peak must be from 0 to 1 (0: as drawn), got 1.5"),
    ):
        assert main(["generate", str(run), *argv, "--out", str(tmp_path / "x.wav")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and expected in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.wav").exists()


def test_the_task_codes_its_clips_as_the_model_says(fsdd_dir: Path):
    from convscope.config import TrainConfig
    from convscope.tasks import get_task
    from convscope.wavenet.data import WINDOW_START, clip_codes

    task, spec = get_task("wavenet"), json.loads(_tiny_spec(fsdd_dir / "tiny.json").read_text())
    spec[1]["preemphasis"] = 0.85
    options = task.data_options(build_model(spec))
    assert options == {"preemphasis": 0.85} and task.data_options(torch.nn.Linear(2, 2)) == {}
    config = TrainConfig(task="wavenet", data="fsdd", data_dir=str(fsdd_dir))
    test = task.load_split(config, "test", None, **options)
    plain = task.load_split(config, "test", None)
    wav = fsdd_dir / "fsdd" / "recordings" / f"{int(test.labels[0])}_alice_0.wav"
    start = WINDOW_START * HOP
    for clips, coefficient in ((test, 0.85), (plain, 0.0)):
        codes, _ = clip_codes(*read_wav(wav), coefficient)
        assert (clips.targets["codes"][0].numpy() == codes[start:start + WINDOW_SAMPLES]).all()
    assert (test.targets["codes"] != plain.targets["codes"]).any()


def test_a_run_that_is_not_a_wavenet(fake_data, tmp_path: Path, capsys):
    root, _ = fake_data
    run = tmp_path / "classifier"
    assert main(["train", "--model", "mnist-templates", "--data", "mnist", "--data-dir",
                 str(root), "--epochs", "1", "--out", str(run), "--no-figures"]) == 0
    capsys.readouterr()
    assert main(["generate", str(run), "--digit", "1", "--out", str(tmp_path / "x.wav")]) == 2
    err = capsys.readouterr().err
    assert "is not a WaveNet run (its model is mnist-templates, task classify); train one " \
           "with `convscope train --task wavenet`" in err and err.count("\n") == 1


def test_the_task_refuses_other_data_and_augmentation(fsdd_dir: Path, tmp_path: Path, capsys):
    spec = str(_tiny_spec(tmp_path / "tiny.json"))
    for extra, expected in ((["--data", "mnist"], "use --data fsdd, not 'mnist'"),
                            (["--data", "fsdd", "--augment", "shift"], "--augment none")):
        assert main(["train", "--task", "wavenet", "--model", spec, "--data-dir",
                     str(fsdd_dir), *extra, "--out", str(tmp_path / "r")]) == 2
        assert expected in capsys.readouterr().err


# ---- real data: a short training run learns (FSDD in $CONVSCOPE_DATA) ------------------------


@pytest.mark.realdata
def test_short_real_training_lowers_test_nll_below_uniform():
    from convscope.wavenet.data import clip_codes

    root = Path(os.environ.get("CONVSCOPE_DATA", "/nonexistent")) / "fsdd" / "recordings"
    if not root.is_dir():
        pytest.skip("CONVSCOPE_DATA has no fsdd/recordings")
    from convscope.audio import spectrogram_image

    def windows(takes, speakers=("george", "jackson", "theo")):
        rows, targets = [], []
        for digit in range(10):
            for speaker in speakers:
                for take in takes:
                    samples, rate = read_wav(root / f"{digit}_{speaker}_{take}.wav")
                    codes, _ = clip_codes(samples, rate)
                    mel = spectrogram_image(samples, rate).numpy()[0]
                    start = 16 * 128
                    rows.append(pack(codes[start:start + 512], mel[:, 16:21], digit, 0))
                    targets.append(codes[start:start + 512])
        x = torch.from_numpy(np.stack(rows)).float().div(255).sub(0.5)[:, None, None, :]
        return x, torch.from_numpy(np.stack(targets)).long()

    train_x, train_codes = windows(range(5, 8))  # official training takes
    test_x, test_codes = windows(range(0, 1))  # official test takes
    torch.manual_seed(0)
    net = WaveNet(samples=512, mels=32, frames=5, channels=12, skip=12, head=16, cond=8,
                  dilations=[1, 2, 4, 8, 16], speakers=["george"])
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for step in range(25):
        batch = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(step))[:16]
        loss = torch.nn.functional.cross_entropy(net(train_x[batch]).squeeze(2),
                                                 train_codes[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    net.eval()
    with torch.no_grad():
        nll = float(torch.nn.functional.cross_entropy(net(test_x).squeeze(2), test_codes))
    print(f"test NLL after 25 steps: {nll:.3f} nats (uniform {math.log(256):.3f})")
    assert nll < 0.75 * math.log(256), nll  # uniform: ln 256 = 5.55 nats


@pytest.mark.realdata
def test_de_emphasised_speech_stays_under_full_scale_and_audible():
    """The de-emphasis gain (sqrt(1 - a)) on FSDD's 3,000 recordings, coded as
    ``fsdd-wavenet`` codes them: 99% peak under full scale, and they are not left quiet."""
    from convscope.wavenet.data import clip_codes

    root = Path(os.environ.get("CONVSCOPE_DATA", "/nonexistent")) / "fsdd" / "recordings"
    if not root.is_dir():
        pytest.skip("CONVSCOPE_DATA has no fsdd/recordings")
    peaks = np.array([np.abs(DeEmphasis(0.85)(mu_law_decode(clip_codes(*read_wav(path), 0.85)[0])))
                      .max() for path in sorted(root.glob("*.wav"))])
    assert len(peaks) == 3000
    assert np.percentile(peaks, 99) < 1.0 and np.median(peaks) > 0.3, np.percentile(peaks, [50, 99])
