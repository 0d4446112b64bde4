"""The training augmentations by name, torch-free (the CLI's choices and the settings'
validation read them without importing PyTorch; :mod:`convscope.augment` applies them)."""

from __future__ import annotations

from .errors import ConvscopeError

# name -> (most pixels of shift or pad-crop, flip: False, True or "alternate")
AUGMENTATIONS = {
    "none": (0, False),
    "shift": (2, False),  # up to 2 px translation (MNIST)
    "flip": (0, True),
    "crop+flip": (4, True),  # pad-4 random crops and horizontal flips (CIFAR-10)
    "shift+flip": (2, True),
    # up to 2 px translation; each image is flipped in every other epoch, starting from a random
    # half (airbench's alternating flip: every image is seen both ways within two epochs)
    "shift+altflip": (2, "alternate"),
}


def check_augmentation(name: str) -> str:
    """``name`` if it is one of :data:`AUGMENTATIONS`, else a one-line error listing them."""
    if name not in AUGMENTATIONS:
        raise ConvscopeError(
            f"unknown augmentation '{name}'; choose one of: {', '.join(AUGMENTATIONS)}"
        )
    return name
