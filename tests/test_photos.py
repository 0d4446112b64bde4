"""Real photos in, right answers out (issue 19, point 6): one fit for uploads, ``convscope
predict`` and ``Run.predict`` that inverts a photo's dark ink on light paper for light-on-dark
data (the catalogue's ``polarity``) and centres a digit as MNIST's were (``centre``)."""

from __future__ import annotations

import base64
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter
from starlette.testclient import TestClient

from convscope.augment import to_input
from convscope.bundle import bundled_sample
from convscope.cli import main
from convscope.data.catalog import DATASETS, preparation_for
from convscope.errors import ImageError
from convscope.images import PLAIN, Preparation, fit_image_bytes
from convscope.photos import centre_digit, light_background, stroke_width
from convscope.predict import input_volume
from convscope.runs import open_run
from convscope.spec import Volume

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from photo_digits import photo  # noqa: E402

MODEL = "mnist-convnetjs"
MNIST = Volume(28, 28, 1)


@pytest.fixture(scope="module")
def digits():
    """Real MNIST test digits (the bundled sample)."""
    sample = bundled_sample("mnist")
    if sample is None:
        pytest.skip("no bundled MNIST sample")
    return sample


def jpeg(picture: Image.Image) -> bytes:
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=85)
    return out.getvalue()


def photos(digits, count: int, seed: int = 7) -> list[bytes]:
    """Photo-like JPEGs (dark ink on uneven paper, 640x480) of the first ``count`` digits."""
    rng = np.random.default_rng(seed)
    return [jpeg(photo(digits.images[i, 0].numpy(), rng)) for i in range(count)]


def grey(content: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(content)).convert("L"))


def test_the_catalogue_owns_polarity_and_centring():
    assert (DATASETS["mnist"].polarity, DATASETS["mnist"].centre) == ("light-on-dark", "mnist")
    scenes = DATASETS["mnist-detect-scenes"]  # a canvas of digits: inverted, never centred
    assert (scenes.polarity, scenes.centre) == ("light-on-dark", None)
    assert (DATASETS["cifar10"].polarity, DATASETS["cifar10"].centre) == ("any", None)
    assert preparation_for("my/folder", "on") == Preparation(invert="on")
    with pytest.raises(ImageError, match="invert must be one of auto, on, off"):
        preparation_for("mnist", "sideways")


def test_polarity_of_generated_photos(digits):
    prep = preparation_for("mnist")
    for content, i in zip(photos(digits, 5), range(5), strict=True):
        assert light_background(grey(content))  # dark ink on paper
        assert prep.inverts(grey(content))
        assert not Preparation(invert="auto").inverts(grey(content))  # data of any polarity
        dark = np.zeros((480, 640), np.uint8)  # light on dark, as MNIST: left alone
        dark[100:380, 200:480] = np.asarray(Image.fromarray(digits.images[i, 0].numpy())
                                            .resize((280, 280)))
        assert not light_background(dark) and not prep.inverts(dark)
    content = photos(digits, 1)[0]
    plain = fit_image_bytes(content, Volume(32, 32, 1), prep=PLAIN)
    scenes = preparation_for("mnist-detect-scenes")  # inverted, not centred
    assert (fit_image_bytes(content, Volume(32, 32, 1), prep=scenes) == 255 - plain).all()
    off = Preparation("light-on-dark", None, "off")
    assert (fit_image_bytes(content, Volume(32, 32, 1), prep=off) == plain).all()
    on = Preparation("any", None, "on")
    assert (fit_image_bytes(content, Volume(32, 32, 1), prep=on) == 255 - plain).all()


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(image.shape)
    mass = image.astype(np.float64).sum()
    return float((ys * image).sum() / mass), float((xs * image).sum() / mass)


def test_centring_is_mnists(digits):
    for content in photos(digits, 6, seed=3):
        fitted = fit_image_bytes(content, MNIST, prep=preparation_for("mnist"))[0].numpy()
        cy, cx = centre_of_mass(fitted)
        assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1
        rows, cols = np.nonzero(fitted)
        assert max(np.ptp(rows), np.ptp(cols)) + 1 == 20
        assert fitted[0].max() == fitted[-1].max() == fitted[:, 0].max() == 0  # a dark frame
    # a light box placed off-centre in a wide frame: scaled to 20 (aspect kept), centred
    frame = np.zeros((300, 500), np.uint8)
    frame[20:120, 400:450] = 255
    centred = centre_digit(frame)
    rows, cols = np.nonzero(centred > 127)
    assert (np.ptp(rows) + 1, np.ptp(cols) + 1) == (20, 10)
    assert np.allclose(centre_of_mass(centred), (13.5, 13.5), atol=0.51)
    assert centre_digit(np.full((60, 80), 200, np.uint8)) is None  # no ink: nothing to centre


def test_photos_of_real_test_digits_are_read_right(digits):
    """The bundled MNIST net on photos of real MNIST test digits: right through predict's fit,
    mostly wrong through the plain fit (no inversion, no centring)."""
    run, count = open_run(MODEL), 30
    labels = [str(int(digits.labels[i])) for i in range(count)]
    contents = photos(digits, count, seed=11)
    got = run.predict(contents, top=10)
    right = [g["predictions"][0]["class"] == label for g, label in zip(got, labels, strict=True)]
    volume, classes = input_volume(run), [str(c) for c in run.data_info["classes"]]
    with torch.inference_mode():
        plain = run.model(fit_plain(contents, volume)).softmax(1)
    plain_right = [classes[int(p.argmax())] == label for p, label in zip(plain, labels,
                                                                          strict=True)]
    assert sum(right) >= 0.9 * count and sum(plain_right) <= 0.5 * count
    ours = [next(p["probability"] for p in g["predictions"] if p["class"] == label)
            for g, label in zip(got, labels, strict=True)]
    theirs = [float(p[classes.index(label)]) for p, label in zip(plain, labels, strict=True)]
    assert np.mean(ours) > np.mean(theirs) + 0.4


def fit_plain(contents: list[bytes], volume: Volume) -> torch.Tensor:
    return to_input(torch.stack([fit_image_bytes(c, volume, prep=PLAIN) for c in contents]))


def wire_image(body: dict) -> np.ndarray:
    """The fitted input of an activations response (float32 on the wire) as bytes."""
    image = body["image"]
    dtype = "<f4" if image["dtype"] == "float32" else np.uint8
    return np.frombuffer(base64.b64decode(image["data"]), dtype=dtype).astype(np.uint8)


def test_explorer_upload_invert_auto_off_and_bad(digits, tmp_path, monkeypatch):
    from convscope.server import create_app

    content, volume = photos(digits, 1, seed=5)[0], input_volume(open_run(MODEL))  # 24x24
    monkeypatch.chdir(tmp_path)
    with TestClient(create_app()) as client:
        def upload(model: str, invert: str | None):
            query = "" if invert is None else f"&invert={invert}"
            return client.post(f"/api/models/{model}/activations/upload?layers=0{query}",
                               files={"image": ("p.jpg", content, "image/jpeg")})

        images = {}
        for invert in (None, "auto", "off", "on"):
            body = upload(MODEL, invert).json()
            images[invert] = wire_image(body)
            expected = fit_image_bytes(content, volume, prep=preparation_for("mnist",
                                                                             invert or "auto"))
            assert (images[invert] == expected.numpy().ravel()).all()
        assert (images[None] == images["auto"]).all() and (images["on"] == images["auto"]).all()
        assert (images["off"] != images["auto"]).any()
        bad = upload(MODEL, "sideways")
        assert bad.status_code == 400 and "invert must be one of auto, on, off" in bad.text
        scene = wire_image(upload("mnist-yolo", None).json())  # inverted, not centred
        plain = wire_image(upload("mnist-yolo", "off").json())
        assert (scene == 255 - plain).all()


def test_predict_cli_invert_option(digits, tmp_path, capsys):
    count = 8
    for i, content in enumerate(photos(digits, count, seed=13)):
        (tmp_path / f"{i}_{int(digits.labels[i])}.jpg").write_bytes(content)

    def classes(*options) -> list[str]:
        assert main(["predict", MODEL, str(tmp_path), "--json", "--top", "1", *options]) == 0
        return [g["predictions"][0]["class"] for g in json.loads(capsys.readouterr().out)]

    labels = [p.stem.split("_")[1] for p in sorted(tmp_path.glob("*.jpg"))]
    auto, off = classes(), classes("--invert", "off")
    assert auto == classes("--invert", "on") and auto != off
    assert sum(a == b for a, b in zip(auto, labels, strict=True)) >= count - 1
    run = open_run(MODEL)
    files = sorted(tmp_path.glob("*.jpg"))
    assert off == [g["predictions"][0]["class"] for g in run.predict(files, top=1, invert="off")]
    with pytest.raises(SystemExit):
        main(["predict", MODEL, str(tmp_path), "--invert", "sideways"])
    assert "invalid choice: 'sideways'" in capsys.readouterr().err
    with pytest.raises(ImageError, match="invert must be one of"):
        run.predict(files[:1], invert="yes")


def test_drawings_are_centred_by_the_same_function(tmp_path, monkeypatch):
    """The explorer's pad sends the drawing as drawn (84x84); the server centres it for an MNIST
    model with the one centring, takes pixels of the input's size (a fitted upload) as they
    are, and fits a drawing for other data without centring it."""
    from convscope.server import create_app

    drawing = np.zeros((84, 84), np.uint8)
    drawing[6:30, 50:78] = 255  # a blob in the top right corner
    pixels = {"width": 84, "height": 84, "depth": 1, "data": drawing.ravel().tolist()}
    volume = input_volume(open_run(MODEL))
    centred = fit_image_bytes(png(drawing), volume, prep=preparation_for("mnist", "off"))
    cy, cx = centre_of_mass(centred[0].numpy())
    assert abs(cy - 11.5) <= 0.5 and abs(cx - 11.5) <= 0.5  # the 24x24 centre of 28x28
    fitted = np.arange(24 * 24, dtype=np.uint8).reshape(24, 24)
    monkeypatch.chdir(tmp_path)
    with TestClient(create_app()) as client:
        def image(model: str, pixels: dict) -> np.ndarray:
            body = client.post(f"/api/models/{model}/activations",
                               json={"pixels": pixels, "layers": [0]})
            return wire_image(body.json())

        assert (image(MODEL, pixels) == centred.numpy().ravel()).all()
        same = {"width": 24, "height": 24, "depth": 1, "data": fitted.ravel().tolist()}
        assert (image(MODEL, same) == fitted.ravel()).all()
        cifar = image("cifar10-convnetjs", pixels).reshape(3, 32, 32)
        plain = fit_image_bytes(png(drawing), Volume(32, 32, 3), prep=PLAIN).numpy()
        assert (cifar == plain).all() and cifar[0, :, :16].max() == 0  # not centred


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def explorer_page(tmp_path, monkeypatch):
    """A Chromium page on the real app (bundled models and samples) on a free port; skips
    without Chromium or playwright."""
    from served import CHROMIUM, chromium, served, watched_page

    if not CHROMIUM.exists():
        pytest.skip("Debian's Chromium is not installed at /usr/bin/chromium")
    pytest.importorskip("playwright.sync_api")
    pytest.importorskip("uvicorn")
    from convscope.server import create_app

    monkeypatch.chdir(tmp_path)
    with served(create_app()) as url, chromium() as browser, \
            watched_page(browser, url) as page:
        yield page


def test_the_explorer_has_an_invert_toggle(digits, tmp_path, explorer_page):
    """In Chromium: the Predict view's "invert" choice travels with the upload, and changing
    it sends the same picture again."""
    page = explorer_page
    path = tmp_path / "photo.jpg"
    path.write_bytes(photos(digits, 1, seed=5)[0])
    page.goto("/#/predict?model=mnist-convnetjs")
    toggle = page.get_by_label("invert uploads")
    assert toggle.input_value() == "auto"
    with page.expect_response(lambda r: "activations/upload" in r.url) as first:
        page.locator("input[type=file]").set_input_files(str(path))
    assert "invert" not in first.value.url and first.value.status == 200  # auto: the default
    with page.expect_response(lambda r: "activations/upload" in r.url) as again:
        toggle.select_option("off")
    assert "invert=off" in again.value.url and again.value.status == 200


def test_a_large_phone_photo_is_scaled_down_and_read(digits, tmp_path):
    """A 4000x3000 JPEG (the same photo, enlarged) is decoded reduced and centred alike."""
    content = photos(digits, 1, seed=17)[0]
    large = Image.open(io.BytesIO(content)).resize((4000, 3000), Image.Resampling.BILINEAR)
    path = tmp_path / "large.jpg"
    large.save(path, "JPEG", quality=80)
    run = open_run(MODEL)
    small_fit = fit_image_bytes(content, MNIST, prep=preparation_for("mnist")).float()
    large_fit = fit_image_bytes(path.read_bytes(), MNIST, max_bytes=None,
                                prep=preparation_for("mnist")).float()
    assert (small_fit - large_fit).abs().mean() < 12
    label = str(int(digits.labels[0]))
    assert run.predict(path, top=1)[0]["predictions"][0]["class"] == label


def pen_photo(lines: list[list[tuple[int, int]]], width: int) -> bytes:
    """A digit written with a pen (a ``width`` px line) on unevenly lit paper, 640x480."""
    picture = Image.new("L", (640, 480), 225)
    draw = ImageDraw.Draw(picture)
    for line in lines:
        draw.line(line, fill=40, width=width, joint="curve")
    grey = np.asarray(picture, np.float32) * np.linspace(1.0, 0.75, 640)[None, :]
    grey += np.random.default_rng(0).normal(0, 4, grey.shape)
    noisy = Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8))
    return jpeg(noisy.filter(ImageFilter.GaussianBlur(1)).convert("RGB"))


def test_a_pens_thin_strokes_are_widened_like_mnists():
    """A ballpoint's line is far thinner than MNIST's strokes (about 0.14 of the digit): it is
    widened before centring, and the digits are read."""
    seven = [[(250, 120), (400, 120), (300, 380)]]
    three = [[(250, 130), (380, 140), (300, 240), (390, 300), (260, 380)]]
    run = open_run(MODEL)
    for label, lines in (("7", seven), ("3", three)):
        for width in (3, 24):  # a pen's line; a marker's, as thick as MNIST's already
            content = pen_photo(lines, width)
            fitted = fit_image_bytes(content, MNIST, prep=preparation_for("mnist"))[0].numpy()
            rows, cols = np.nonzero(fitted > 127)
            long_side = max(np.ptp(rows), np.ptp(cols)) + 1
            assert 0.08 * long_side <= stroke_width(fitted.astype(np.float32)) <= 0.3 * long_side
            top = run.predict(content, top=1)[0]["predictions"][0]
            assert top["class"] == label and top["probability"] > 0.8
