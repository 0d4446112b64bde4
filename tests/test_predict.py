"""``convscope predict``, ``Run.predict`` and bundled model names on the CLI (issue 19, points 2
and 3): pictures are fitted as the explorer fits uploads and scored as the explorer scores
them."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch
from conftest import real_dir
from PIL import Image
from starlette.testclient import TestClient

from convscope.bundle import bundled_sample
from convscope.cli import main
from convscope.errors import ConvscopeError, ImageError, RunError
from convscope.images import ORIENTATION
from convscope.predict import fit_any, input_volume
from convscope.runs import open_run
from convscope.tasks import get_task

MODEL = "mnist-convnetjs"


@pytest.fixture(scope="module")
def digits():
    sample = bundled_sample("mnist")
    if sample is None:
        pytest.skip("no bundled MNIST sample")
    return sample


def write_png(path, pixels) -> str:
    Image.fromarray(pixels).save(path, format="PNG")
    return str(path)


def write_turned_jpeg(path, pixels) -> str:
    """The digit stored turned a quarter to the left, with EXIF saying "turn right to view"."""
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    Image.fromarray(pixels).transpose(Image.Transpose.ROTATE_90).save(
        path, format="JPEG", quality=95, exif=exif)
    return str(path)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_png_and_exif_jpeg_predict_as_the_explorer(tmp_path, capsys, monkeypatch, digits):
    from convscope.server import create_app

    pixels = [digits.images[i, 0].numpy() for i in range(4)]
    files = [write_png(tmp_path / "a.png", pixels[0]), write_png(tmp_path / "b.png", pixels[1]),
             write_turned_jpeg(tmp_path / "c.jpg", pixels[2]),
             write_turned_jpeg(tmp_path / "d.jpeg", pixels[3])]
    code, out, err = run_cli(capsys, "predict", MODEL, *files, "--json", "--top", "10")
    assert code == 0 and err == ""
    got = json.loads(out)
    assert [g["path"] for g in got] == files
    monkeypatch.chdir(tmp_path)
    with TestClient(create_app()) as client:
        for item, path in zip(got, files, strict=True):
            with open(path, "rb") as f:
                body = client.post(f"/api/models/{MODEL}/activations/upload",
                                   files={"image": ("x", f.read(), "image/jpeg")}).json()
            ours = {p["class"]: p["probability"] for p in item["predictions"]}
            explorer = dict(zip(body["classes"], body["probabilities"], strict=True))
            assert ours.keys() == explorer.keys()
            assert all(abs(ours[c] - explorer[c]) < 1e-5 for c in ours)
            assert item["predictions"][0]["class"] == body["classes"][body["prediction"]]
    # the turned JPEGs are read upright: the same digits as the PNGs of them would give
    labels = [str(int(digits.labels[i])) for i in range(4)]
    top = [g["predictions"][0]["class"] for g in got]
    upright = [open_run(MODEL).predict([p], top=1)[0]["predictions"][0]["class"]
               for p in pixels]
    assert top == upright
    volume = input_volume(open_run(MODEL))
    turned = fit_any(files[2], volume).float()
    assert (turned - fit_any(pixels[2], volume).float()).abs().mean() < 4  # upright: JPEG noise
    assert (turned - fit_any(pixels[2].T.copy(), volume).float()).abs().mean() > 10
    assert sum(t == label for t, label in zip(top, labels, strict=True)) >= 3


def test_run_predict_equals_evaluation_on_the_same_images(digits):
    run = open_run(MODEL)
    images = digits.images[:40]
    expected = get_task("classify").predict(run.model, images).argmax(1).tolist()
    got = run.predict([img[0].numpy() for img in images], top=2)
    assert [int(g["predictions"][0]["class"]) for g in got] == expected
    assert all(len(g["predictions"]) == 2 and g["path"] == "" for g in got)
    tensor = run.predict([images[0]], top=10)[0]["predictions"]  # a (C, H, W) uint8 tensor
    assert abs(sum(p["probability"] for p in tensor) - 1) < 1e-4
    pil = run.predict([Image.fromarray(images[0, 0].numpy())], top=10)[0]["predictions"]
    assert pil == tensor
    assert run.predict(images[0], top=10)[0]["predictions"] == tensor  # one picture, no list


def test_text_and_csv_formats(tmp_path, capsys, digits):
    files = [write_png(tmp_path / f"{i}.png", digits.images[i, 0].numpy()) for i in range(2)]
    code, out, _ = run_cli(capsys, "predict", MODEL, *files)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2
    for line, path in zip(lines, files, strict=True):
        assert line.startswith(f"{path}: ") and line.count("%)") == 3  # default top 3
    code, out, _ = run_cli(capsys, "predict", MODEL, *files, "--csv", "--top", "2")
    rows = list(csv.reader(io.StringIO(out)))
    assert code == 0 and rows[0] == ["path", "class", "probability"] and len(rows) == 5
    assert [r[0] for r in rows[1:]] == [files[0], files[0], files[1], files[1]]
    assert all(0 <= float(r[2]) <= 1 for r in rows[1:])


def test_a_folder_with_junk_and_a_corrupt_picture(tmp_path, capsys, digits):
    folder = tmp_path / "mine"
    (folder / "more").mkdir(parents=True)
    write_png(folder / "one.png", digits.images[0, 0].numpy())
    write_png(folder / "more" / "two.PNG", digits.images[1, 0].numpy())
    (folder / "notes.txt").write_text("my digits")
    good = (folder / "one.png").read_bytes()
    (folder / "more" / "broken.png").write_bytes(good[:len(good) // 2])  # cut off
    code, out, err = run_cli(capsys, "predict", MODEL, str(folder))
    assert code == 1
    assert [line.split(":")[0] for line in out.splitlines()] == [
        str(folder / "more" / "two.PNG"), str(folder / "one.png")]
    err_lines = err.splitlines()
    assert len(err_lines) == 2 and "skipped 1 file" in err_lines[0]
    assert err_lines[1].startswith(f"error: {folder / 'more' / 'broken.png'}: ")
    assert "Traceback" not in err


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    code, _, err = run_cli(capsys, "predict", "no-such-model", str(tmp_path))
    assert code == 2 and "not a bundled model" in err and MODEL in err
    code, _, err = run_cli(capsys, "predict", MODEL, str(tmp_path))  # an empty folder
    assert code == 2 and "no PNG or JPEG files" in err
    with pytest.raises(ImageError, match="not a PNG or JPEG"):
        open_run(MODEL).predict([b"junk"])
    with pytest.raises(ConvscopeError, match="cannot predict on"):
        open_run(MODEL).predict([torch.zeros(2, 2, dtype=torch.float32)])


def test_export_and_eval_take_a_bundled_name(tmp_path, capsys, monkeypatch):
    with pytest.raises(RunError, match="not a bundled model"):
        open_run(tmp_path / "missing")
    out = tmp_path / "net.json"
    code, printed, err = run_cli(capsys, "export", MODEL, "--format", "convnetjs", "--out",
                                 str(out))
    assert code == 0 and out.is_file() and json.loads(out.read_text())["layers"], err
    monkeypatch.chdir(tmp_path)  # a bundled model is written here, never into the package
    code, printed, err = run_cli(capsys, "export", MODEL, "--format", "convnetjs")
    assert code == 0 and (tmp_path / f"{MODEL}.convnetjs.json").is_file(), err
    with pytest.raises(RunError, match="without trained weights"):
        open_run("cifar10-fast")  # a named recipe, not a trained model
    data = real_dir("mnist")
    code, printed, err = run_cli(capsys, "eval", MODEL, "--data-dir", str(data), "--json")
    assert code == 0, err
    assert json.loads(printed)["accuracy"] > 0.95


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / (aw * ah + bw * bh - w * h)


@pytest.mark.parametrize("model, kind", [("mnist-localizer", "localize"),
                                          ("mnist-yolo", "detect")])
def test_boxes_are_found_in_the_pictures_own_pixels(tmp_path, capsys, digits, model, kind):
    """A localizer's and a detector's boxes for a scene of real digits, saved at its own size
    and at three times its size (resized to the input, not cropped): the boxes match the
    scene's true boxes, scaled with the picture."""
    from convscope.scenes import make_scenes

    scenes = make_scenes(kind, digits, 6, seed=5)
    hits, again, confident = 0, 0, 0
    for i in range(len(scenes)):
        pixels = scenes.images[i, 0]
        small, large = tmp_path / f"{i}.png", tmp_path / f"{i}-x3.png"
        Image.fromarray(pixels).save(small)
        Image.fromarray(pixels).resize((3 * pixels.shape[1], 3 * pixels.shape[0])).save(large)
        [one, two] = open_run(model).predict([str(small), str(large)], top=6)
        truth = [(scenes.boxes[i, j].tolist(), str(c)) for j, c in enumerate(scenes.classes[i])
                 if c >= 0]
        assert one["boxes"] and two["boxes"]
        for a in (a for a in one["boxes"] if a["score"] > 0.5):  # found again, 3 times larger
            confident += 1
            again += max(_iou([3 * v for v in a["box"]], b["box"]) for b in two["boxes"]) > 0.6
        best = one["boxes"][0]
        hits += any(_iou(best["box"], box) > 0.5 and best["class"] == c for box, c in truth)
    assert hits >= 4, hits  # the bundled nets find most digits (they score ~0.9 on the tests)
    assert again >= 0.8 * confident, (again, confident)  # resampling may lose a faint one
    code, out, err = run_cli(capsys, "predict", model, str(tmp_path / "0.png"), "--csv")
    rows = list(csv.reader(io.StringIO(out)))
    assert code == 0 and rows[0][:2] == ["path", "kind"] and any(r[1] == "box" for r in rows)
    code, out, err = run_cli(capsys, "predict", model, str(tmp_path / "0.png"))
    assert code == 0 and "boxes: " in out and " at " in out


def test_a_segmenter_gives_a_mask_and_pixel_counts(tmp_path, capsys, digits):
    from convscope.scenes import make_scenes

    scenes = make_scenes("segment", digits, 1, seed=2)
    path = tmp_path / "scene.png"
    Image.fromarray(scenes.images[0, 0]).save(path)
    [found] = open_run("mnist-unet").predict(str(path))
    mask = torch.tensor(found["mask"])
    assert mask.shape == scenes.masks[0].shape
    agree = (mask.numpy() == scenes.masks[0]).mean()
    assert agree > 0.9, agree  # the bundled U-Net labels most pixels right
    counts = dict((p["class"], p["pixels"]) for p in found["pixels"])
    assert sum(counts.values()) == mask.numel() and found["mask_classes"][-1] == "background"
    code, out, _ = run_cli(capsys, "predict", "mnist-unet", str(path), "--json")
    assert code == 0 and json.loads(out)[0]["pixels"] == found["pixels"]
