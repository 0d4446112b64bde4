import torch

from convscope.data import Dataset
from convscope.evaluate import evaluate, format_report


class Fixed(torch.nn.Module):
    """Predicts the class stored in the image's first pixel (for exact expected matrices)."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        cls = ((x[:, 0, 0, 0] + 0.5) * 255).round().long()
        return torch.nn.functional.one_hot(cls, 3).float() * 5 + self.dummy


def test_confusion_recall_precision_match_hand_counts():
    predicted = [0, 0, 1, 1, 1, 2, 2, 0]
    actual = [0, 0, 1, 0, 1, 2, 1, 2]
    images = torch.zeros((8, 1, 4, 4), dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.tensor(predicted, dtype=torch.uint8)
    ds = Dataset("toy", images, torch.tensor(actual), ["a", "b", "c"])
    ev = evaluate(Fixed(), ds, batch_size=3)
    assert ev.confusion == [[2, 1, 0], [0, 2, 1], [1, 0, 1]]
    assert ev.correct == 5 and ev.total == 8
    assert ev.recall == [2 / 3, 2 / 3, 1 / 2]
    assert ev.precision == [2 / 3, 2 / 3, 1 / 2]
    assert ev.predictions == predicted
    report = format_report(ev)
    assert "accuracy 62.50% (5 / 8)" in report
    assert "recall%" in report and "prec%" in report
