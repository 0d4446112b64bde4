import pytest
import torch
from torch import nn

from convscope.errors import SpecError
from convscope.registry import get_model_entry
from convscope.spec import resolve
from convscope.summary import summarize, summarize_module


def test_summarize_convnetjs_mnist():
    text = summarize(resolve(get_model_entry("mnist-convnetjs").spec))
    lines = text.splitlines()
    assert lines[0].split() == ["#", "layer", "output", "params", "mult-adds"]
    assert "conv 5x5 x8 s1 p2" in lines[2] and "24x24x8" in lines[2]
    assert lines[2].split()[-2:] == ["208", "115,200"]
    assert "pool max 3x3 s3 p0" in text and "softmax 10" in text
    total = next(line for line in lines if line.split()[0] == "total")
    assert total.split()[1:] == ["5,994", f"{115_200 + 460_800 + 2_560:,}"]
    assert "conv and fc only" in lines[-1]


def test_summarize_indents_residual_children():
    lines = summarize(resolve(get_model_entry("cifar10-fast").spec)).splitlines()
    block = next(i for i, line in enumerate(lines) if "residual" in line)
    assert lines[block + 1].startswith(lines[block].split()[0] + ".0")
    column = lines[block].index("residual")
    assert lines[block + 1].index("conv 3x3 x128") == column + 2


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Linear(4 * 3 * 3, 10)
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        x = self.features(x)
        x = self.features[1](x)  # a leaf used twice
        return self.head(x.flatten(1)) * self.scale


def test_summarize_module():
    model = Small().train()
    text = summarize_module(model, (1, 8, 8))
    rows = [line.split() for line in text.splitlines()]
    assert rows[1] == ["features.0", "Conv2d", "6x6x4", "40", f"{6 * 6 * 4 * 9:,}"]
    assert rows[2][:3] == ["features.1", "ReLU", "6x6x4"]
    assert rows[3][:3] == ["features.2", "MaxPool2d", "3x3x4"]
    assert rows[4][:3] == ["features.1", "ReLU", "3x3x4"]
    assert rows[5] == ["head", "Linear", "1x1x10", "370", "360"]
    assert rows[6] == ["total", "411", f"{6 * 6 * 4 * 9 + 360:,}"]
    assert model.training
    assert not model.features[0]._forward_hooks


def test_summarize_module_failure():
    with pytest.raises(SpecError, match=r"running Small on a zero input of shape \(1, 3, 8, 8\)"):
        summarize_module(Small(), (3, 8, 8))
