import pytest
import torch

from convscope.augment import fit_batch, prepare_images, random_crop, to_input
from convscope.errors import ConvscopeError


def test_to_input_uses_convnetjs_scaling():
    x = torch.tensor([0, 255], dtype=torch.uint8)
    assert to_input(x).tolist() == [-0.5, 0.5]


def test_random_crop_takes_windows_of_the_padded_image():
    images = torch.arange(3 * 2 * 6 * 6).reshape(3, 2, 6, 6).to(torch.uint8)
    g = torch.Generator().manual_seed(1)
    out = random_crop(images, 4, 4, 1, g)
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1))
    assert out.shape == (3, 2, 4, 4)
    for n in range(3):
        windows = padded[n].unfold(1, 4, 1).unfold(2, 4, 1)  # C, 5, 5, 4, 4
        assert any(torch.equal(out[n], windows[:, i, j]) for i in range(5) for j in range(5))
    g = torch.Generator().manual_seed(1)  # the same draws: rows first, then columns
    top, left = torch.randint(0, 5, (3,), generator=g), torch.randint(0, 5, (3,), generator=g)
    for n in range(3):
        t, u = int(top[n]), int(left[n])
        assert torch.equal(out[n], padded[n, :, t:t + 4, u:u + 4])


def test_fit_batch_is_deterministic_and_centred_without_generator():
    images = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)
    assert torch.equal(fit_batch(images, 24, 24), images[:, :, 2:26, 2:26])
    a = fit_batch(images, 24, 24, "shift", torch.Generator().manual_seed(5))
    b = fit_batch(images, 24, 24, "shift", torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_flip_mirrors_some_images():
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    out = fit_batch(images, 8, 8, "flip", torch.Generator().manual_seed(0))
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, images, strict=True)]
    kept = [torch.equal(o, i) for o, i in zip(out, images, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 10 < sum(flipped) < 54


def test_prepare_images_resizes_small_inputs_and_checks_channels():
    images = torch.full((2, 1, 16, 16), 200, dtype=torch.uint8)
    assert prepare_images(images, 32, 32, 1).shape == (2, 1, 32, 32)
    assert prepare_images(images, 16, 16, 1) is images
    with pytest.raises(ConvscopeError, match="3-channel input but the data has 1"):
        prepare_images(images, 16, 16, 3)
