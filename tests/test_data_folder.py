"""Image-folder datasets: PNG and JPEG, grey and colour, resizing, splits and bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convscope.data import folder, load_dataset
from convscope.errors import DataError


def save(path: Path, mode: str, size: tuple[int, int], value: int, fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = value if mode == "L" else (value, 255 - value, 0)
    Image.new(mode, size, colour).save(path, fmt)


@pytest.fixture
def grey_folder(tmp_path: Path, data_cache: Path) -> Path:
    root = tmp_path / "digits"
    save(root / "train" / "one" / "a.png", "L", (6, 4), 10)
    save(root / "train" / "one" / "b.png", "L", (6, 4), 20)
    save(root / "train" / "zero" / "c.png", "L", (12, 8), 30)
    save(root / "test" / "zero" / "d.png", "L", (6, 4), 40)
    return root


def test_grey_folder_train_and_test(grey_folder: Path) -> None:
    ds = load_dataset(str(grey_folder), "train")
    assert ds.name == "digits" and ds.classes == ["one", "zero"]
    assert ds.images.shape == (3, 1, 4, 6) and ds.volume == (6, 4, 1)
    assert ds.labels.tolist() == [0, 0, 1]
    assert ds.images[:, 0, 0, 0].tolist() == [10, 20, 30]  # the 12x8 image was resized
    test = load_dataset(str(grey_folder), "test")
    assert test.classes == ds.classes and test.labels.tolist() == [1]
    assert test.images.shape == (1, 1, 4, 6) and int(test.images[0, 0, 0, 0]) == 40


def test_explicit_size_and_mixed_modes(tmp_path: Path, data_cache: Path) -> None:
    root = tmp_path / "pets"
    save(root / "cat" / "1.png", "L", (5, 5), 100)
    save(root / "dog" / "2.jpg", "RGB", (7, 3), 200, "JPEG")
    save(root / "dog" / "3.png", "RGBA", (4, 4), 50)
    ds = load_dataset(root, size=(8, 6))
    assert ds.images.shape == (3, 3, 6, 8) and ds.labels.tolist() == [0, 1, 1]
    assert ds.images[0, :, 2, 2].tolist() == [100, 100, 100]  # grey promoted to RGB
    red, green, _ = ds.images[1, :, 3, 4].tolist()
    assert abs(red - 200) <= 3 and abs(green - 55) <= 3  # JPEG is lossy
    with pytest.raises(DataError, match="no test split"):
        load_dataset(root, "test")


def test_resized_values_are_bilinear(tmp_path: Path, data_cache: Path) -> None:
    root = tmp_path / "ramp"
    pixels = np.tile(np.arange(0, 160, 10, dtype=np.uint8), (4, 1))
    (root / "a").mkdir(parents=True)
    Image.fromarray(pixels, "L").save(root / "a" / "x.png")
    ds = load_dataset(root, size=(8, 2))
    expected = np.asarray(Image.fromarray(pixels, "L").resize((8, 2), Image.Resampling.BILINEAR))
    assert np.array_equal(ds.images[0, 0].numpy(), expected)


def test_not_an_image_names_the_file(grey_folder: Path) -> None:
    (grey_folder / "train" / "one" / "notes.png").write_text("hello")
    with pytest.raises(DataError, match=r"notes\.png is not an image"):
        load_dataset(grey_folder)


def test_other_formats_are_refused(grey_folder: Path) -> None:
    save(grey_folder / "train" / "one" / "e.gif", "L", (6, 4), 0, "GIF")
    with pytest.raises(DataError, match=r"e\.gif is a GIF image"):
        load_dataset(grey_folder)


def test_truncated_image(grey_folder: Path) -> None:
    path = grey_folder / "train" / "zero" / "big.jpg"
    save(path, "RGB", (64, 64), 90, "JPEG")
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match=r"big\.jpg"):
        load_dataset(grey_folder)


def test_pixel_cap_and_decompression_bomb(
    grey_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(folder, "MAX_PIXELS", 30)
    with pytest.raises(DataError, match=r"c\.png has 12x8 pixels, more than the limit"):
        load_dataset(grey_folder)
    monkeypatch.setattr(folder, "MAX_PIXELS", 10**6)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20)
    with pytest.raises(DataError, match="too large to decode safely"):
        load_dataset(grey_folder)


def test_folder_layout_errors(tmp_path: Path, data_cache: Path) -> None:
    root = tmp_path / "odd"
    (root / "empty").mkdir(parents=True)
    with pytest.raises(DataError, match="has no images"):
        load_dataset(root)
    with pytest.raises(DataError, match="no class subfolders"):
        load_dataset(root / "empty")
    save(root / "train" / "a" / "x.png", "L", (2, 2), 1)
    save(root / "test" / "b" / "y.png", "L", (2, 2), 1)
    with pytest.raises(DataError, match="that the training split lacks"):
        load_dataset(root, "test")
    only_test = tmp_path / "only_test"
    save(only_test / "test" / "a" / "x.png", "L", (2, 2), 1)
    with pytest.raises(DataError, match="no train/ folder"):
        load_dataset(only_test)


def test_folder_cache_follows_new_files(grey_folder: Path) -> None:
    assert len(load_dataset(grey_folder)) == 3
    save(grey_folder / "train" / "zero" / "z.png", "L", (6, 4), 70)
    ds = load_dataset(grey_folder)
    assert len(ds) == 4 and ds.images[-1, 0, 0, 0] == 70


def test_non_image_files_are_skipped_with_one_warning(grey_folder: Path) -> None:
    (grey_folder / "train" / "one" / "notes.txt").write_text("hello")
    (grey_folder / "train" / "zero" / "Thumbs.db").write_bytes(b"\0" * 10)
    (grey_folder / "test" / "zero" / "readme").write_text("x")
    (grey_folder / "train" / "one" / ".DS_Store").write_bytes(b"\0")
    with pytest.warns(UserWarning, match=r"skipped 3 non-image files .*notes\.txt") as caught:
        ds = load_dataset(grey_folder)
    assert len([w for w in caught if "non-image" in str(w.message)]) == 1
    assert len(ds) == 3 and ds.labels.tolist() == [0, 0, 1]
    bad = grey_folder / "train" / "zero" / "photo.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match=r"photo\.jpg is not an image"):  # warned once already
        load_dataset(grey_folder)


def test_default_size_is_the_capped_median_and_fit_keeps_aspect(
    tmp_path: Path, data_cache: Path
) -> None:
    root = tmp_path / "photos"
    for i in range(3):
        save(root / "a" / f"s{i}.png", "RGB", (40, 30), 50)
    (root / "b").mkdir(parents=True)
    wide = Image.new("RGB", (80, 30), (0, 0, 0))
    wide.paste((255, 255, 255), (20, 0, 60, 30))  # black bands outside the middle 40 columns
    wide.save(root / "b" / "wide.png")
    big = Image.new("RGB", (1600, 1200), (0, 0, 0))
    big.paste((255, 255, 255), (200, 0, 1400, 1200))  # a centred white square
    big.save(root / "b" / "huge.jpg", "JPEG")
    ds = load_dataset(root)
    assert ds.images.shape == (5, 3, 30, 40)  # the median size, not the first or largest
    middle = ds.images[4, 0]  # 80x30 -> 40x30 keeps the white middle (a squash: black bands)
    assert middle.min() > 240
    square = ds.images[3, 0].float()  # 1600x1200 -> 40x30: scaled to cover, centre-cropped
    assert square[:, 6:34].mean() > 240 and square[:, :3].mean() < 15
    assert folder.default_size([(1600, 1200), (4000, 3000)]) == (256, 192)
    assert load_dataset(root, size=(16, 8)).images.shape == (5, 3, 8, 16)


def test_image_size_setting(tmp_path: Path) -> None:
    from convscope.config import TrainConfig
    from convscope.errors import ConvscopeError

    assert folder.parse_image_size("64x48") == (64, 48)
    assert TrainConfig(data=str(tmp_path), image_size="32X24").image_size == "32X24"
    with pytest.raises(ConvscopeError, match="not WxH"):
        TrainConfig(data=str(tmp_path), image_size="32")
    with pytest.raises(ConvscopeError, match="image folders only"):
        TrainConfig(data="mnist", image_size="32x32")


def test_exif_orientation_is_applied(tmp_path: Path, data_cache: Path) -> None:
    root = tmp_path / "phone"
    (root / "a").mkdir(parents=True)
    stored = Image.new("RGB", (40, 20), (0, 0, 0))
    stored.paste((255, 255, 255), (0, 0, 20, 20))  # white left half as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise: 20x40, white on top
    stored.save(root / "a" / "photo.jpg", "JPEG", exif=exif, quality=95)
    ds = load_dataset(root)
    assert ds.images.shape == (1, 3, 40, 20)  # the default size is the upright one
    top, bottom = ds.images[0, 0, :18].float().mean(), ds.images[0, 0, 22:].float().mean()
    assert top > 240 and bottom < 15


def test_val_folder_is_the_validation_split(grey_folder: Path) -> None:
    from convscope.data.load import train_and_val

    save(grey_folder / "val" / "one" / "v.png", "L", (6, 4), 60)
    save(grey_folder / "val" / "zero" / "w.png", "L", (6, 4), 80)
    val = load_dataset(grey_folder, "val")
    assert val.labels.tolist() == [0, 1] and val.images[:, 0, 0, 0].tolist() == [60, 80]
    train, held = train_and_val(str(grey_folder), 0.5)
    assert len(train) == 3 and held.images[:, 0, 0, 0].tolist() == [60, 80]
    with pytest.raises(DataError, match="unknown split 'val'"):
        load_dataset("mnist", "val")
    plain = grey_folder / "train"  # no val/: val_fraction of the training split
    train, held = train_and_val(str(plain), 1 / 3)
    assert len(train) == 2 and len(held) == 1
    only_val = grey_folder.parent / "only_val"
    save(only_val / "val" / "a" / "x.png", "L", (2, 2), 1)
    with pytest.raises(DataError, match="val/ folder but no train/ folder"):
        load_dataset(only_val)


def test_rgb_folders_flip_by_default(grey_folder: Path, tmp_path: Path) -> None:
    from convscope.config import TrainConfig

    assert TrainConfig(data=str(grey_folder)).augment == "none"  # digits must not mirror
    photos = tmp_path / "photos"
    save(photos / "cat" / "1.jpg", "RGB", (8, 8), 100, "JPEG")
    save(photos / "dog" / "2.png", "L", (8, 8), 100)
    assert TrainConfig(data=str(photos)).augment == "flip"
    assert TrainConfig(data=str(photos), augment="none").augment == "none"
    assert TrainConfig(data=str(tmp_path / "missing")).augment == "none"


def test_progress_bar_while_decoding(
    grey_folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    load_dataset(grey_folder)
    assert "decoding images" not in capsys.readouterr().err  # 3 images: too few for a bar
    monkeypatch.setattr(folder, "PROGRESS_IMAGES", 2)
    load_dataset(grey_folder, size=(3, 2))  # a new size: decoded again, not cached
    assert "decoding images" in capsys.readouterr().err


def test_large_jpegs_decode_at_a_reduced_scale(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    Image.new("RGB", (1600, 1200), (200, 100, 0)).save(path, "JPEG")
    with Image.open(path) as image:
        folder._draft(image, (40, 30))
        assert image.size == (200, 150)  # 1/8 scale still covers 40x30
    with Image.open(path) as image:
        folder._draft(image, (900, 100))  # a crop that needs the full width: 1/1
        assert image.size == (1600, 1200)
    pixel = folder._decode_one(path, "RGB", (40, 30))[15, 20].tolist()
    assert all(abs(a - b) <= 3 for a, b in zip(pixel, (200, 100, 0), strict=True))


def test_a_spec_network_fits_the_folder_to_its_input(tmp_path: Path, data_cache: Path) -> None:
    """Without --image-size, a folder is fitted to the spec network's input (issue 19: "the
    model's input, or else the median image size"), not to its median size."""
    import convscope

    for split in ("train", "test"):
        for k, name in enumerate(("dark", "light")):
            for i in range(4):
                save(tmp_path / "pics" / split / name / f"{i}.png", "RGB", (48, 40),
                     40 + 150 * k + i)
    spec = [{"type": "input", "sx": 20, "sy": 16, "depth": 3},
            {"type": "conv", "sx": 3, "filters": 2, "activation": "relu"},
            {"type": "softmax", "num_classes": 2}]
    run = convscope.train(spec, str(tmp_path / "pics"), out=tmp_path / "run", epochs=1,
                          batch_size=4, progress=False)
    assert run.data_info["input"] == [20, 16, 3] and run.config.image_size == "20x16"
