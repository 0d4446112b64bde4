import pytest
import torch

from convscope.augment import (
    AUGMENTATIONS,
    augmented,
    concatenated,
    draw,
    fit_batch,
    prepare_images,
    to_input,
)
from convscope.errors import ConvscopeError


def test_to_input_uses_convnetjs_scaling():
    x = torch.tensor([0, 255], dtype=torch.uint8)
    assert to_input(x).tolist() == [-0.5, 0.5]


def test_random_crops_take_windows_of_the_padded_image():
    images = torch.arange(3 * 2 * 6 * 6).reshape(3, 2, 6, 6).to(torch.uint8)
    out = fit_batch(images, 6, 6, "shift", torch.Generator().manual_seed(1))  # pad 2
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    assert out.shape == (3, 2, 6, 6)
    g = torch.Generator().manual_seed(1)  # the same draws: rows first, then columns
    top, left = torch.randint(0, 5, (3,), generator=g), torch.randint(0, 5, (3,), generator=g)
    for n in range(3):
        t, u = int(top[n]), int(left[n])
        assert torch.equal(out[n], padded[n, :, t:t + 6, u:u + 6])


def test_choices_of_several_batches_apply_as_one():
    images = torch.randint(0, 256, (12, 3, 10, 10), dtype=torch.uint8)
    for augmentation in AUGMENTATIONS:
        seeds = (3, 4, 5)
        one_by_one = [fit_batch(images[4 * i:4 * (i + 1)], 8, 8, augmentation,
                                torch.Generator().manual_seed(seed))
                      for i, seed in enumerate(seeds)]
        choices = concatenated([draw(4, (10, 10), 8, 8, augmentation,
                                     torch.Generator().manual_seed(seed)) for seed in seeds])
        at_once = augmented(images, 8, 8, augmentation, choices)
        assert torch.equal(at_once, torch.cat(one_by_one)), augmentation


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
