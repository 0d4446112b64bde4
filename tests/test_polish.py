"""Defects fixed after issue 23 (API and CLI side): one owner of the picture suffixes
(``convscope.images``), and ``POST /api/train``'s fine-tuning settings and the settings a
running job reports."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from convscope.bundle import bundled_sample
from convscope.cli import main
from convscope.data.folder import load_folder
from convscope.errors import DataError
from convscope.images import DECODED_SUFFIXES, IMAGE_SUFFIXES, REFUSED_SUFFIXES, is_picture
from convscope.predict import image_files

MODEL = "mnist-convnetjs"


@pytest.fixture(scope="module")
def digit() -> np.ndarray:
    sample = bundled_sample("mnist")
    if sample is None:
        pytest.skip("no bundled MNIST sample")
    return sample.images[0, 0].numpy()


def save(path, pixels: np.ndarray, fmt: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)
    return str(path)


# --- one owner of the picture suffixes ------------------------------------------------------


def test_the_suffix_table_says_what_decodes_and_what_is_refused() -> None:
    assert {".png", ".jpg", ".jpeg", ".jpe"} == DECODED_SUFFIXES
    assert {".gif", ".bmp", ".tif", ".tiff", ".webp"} == REFUSED_SUFFIXES.keys()
    assert IMAGE_SUFFIXES == DECODED_SUFFIXES | REFUSED_SUFFIXES.keys()
    assert is_picture("a/B.JPE") and is_picture("x.GIF") and not is_picture("notes.txt")


def test_predict_reads_every_suffix_training_reads(tmp_path, capsys, digit) -> None:
    folder = tmp_path / "mine"
    save(folder / "a.jpe", digit, "JPEG")  # a JPEG suffix the folder reader always took
    save(folder / "b.png", digit, "PNG")
    files, skipped = image_files([folder])
    assert [f.name for f in files] == ["a.jpe", "b.png"] and skipped == 0
    code = main(["predict", MODEL, str(folder)])
    out, err = capsys.readouterr()
    assert code == 0 and out.count("%)") == 6, err  # both pictures, top 3 each
    trained = tmp_path / "set"
    for cls in ("zero", "one"):
        save(trained / "train" / cls / "a.jpe", digit, "JPEG")
    assert len(load_folder(trained)) == 2  # the same files, read by training


def test_a_gif_is_refused_by_name_by_predict_explain_and_training(tmp_path, capsys, digit):
    folder = tmp_path / "mine"
    save(folder / "good.png", digit, "PNG")
    gif = save(folder / "old.gif", digit, "GIF")
    (folder / "notes.txt").write_text("my digits")
    code = main(["predict", MODEL, str(folder)])
    out, err = capsys.readouterr()
    assert code == 1 and out.startswith(f"{folder / 'good.png'}: ")
    lines = err.splitlines()
    assert len(lines) == 2 and "skipped 1 file(s) that are not pictures" in lines[0]
    assert lines[1] == (f"error: {gif}: {gif} is a GIF picture; convscope reads PNG and JPEG "
                        "only: convert it to PNG")
    code = main(["explain", MODEL, gif, "--out", str(tmp_path / "maps")])
    _, err = capsys.readouterr()
    assert code == 1 and "is a GIF picture" in err and "Traceback" not in err
    trained = tmp_path / "set"
    save(trained / "train" / "zero" / "a.png", digit, "PNG")
    save(trained / "train" / "one" / "b.bmp", digit, "BMP")
    with pytest.raises(DataError, match=r"b\.bmp is a BMP image; only PNG and JPEG"):
        load_folder(trained)


def test_the_stream_refuses_a_gif_frame_by_name(tmp_path, digit) -> None:
    from convscope.live.stream import SourceError, read_picture

    png, gif = save(tmp_path / "a.png", digit, "PNG"), save(tmp_path / "b.gif", digit, "GIF")
    assert read_picture(png).shape == (*digit.shape, 3)
    with pytest.raises(SourceError, match=r"b\.gif is a GIF picture; .*remove it"):
        read_picture(gif)


def test_uploads_decode_the_same_formats() -> None:
    from convscope.errors import ImageError
    from convscope.images import fit_image_bytes
    from convscope.spec import Volume

    def encoded(fmt: str) -> bytes:
        out = io.BytesIO()
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(out, format=fmt)
        return out.getvalue()

    assert fit_image_bytes(encoded("PNG"), Volume(4, 4, 1)).shape == (1, 4, 4)
    for fmt in ("GIF", "BMP", "TIFF", "WEBP"):
        with pytest.raises(ImageError, match="not a PNG or JPEG image"):
            fit_image_bytes(encoded(fmt), Volume(4, 4, 1))
