import pytest

from convscope.config import TrainConfig, resolve_config
from convscope.errors import ConvscopeError
from convscope.optimizers import learning_rate


def test_recipe_then_overrides():
    config = resolve_config({"epochs": 4, "lr": 0.1, "optimizer": "sgd"},
                            {"model": "m", "data": "cifar10", "lr": 0.05, "epochs": None})
    assert (config.epochs, config.lr, config.optimizer) == (4, 0.05, "sgd")
    assert config.augment == "crop+flip"  # the dataset's default


@pytest.mark.parametrize("bad, message", [
    ({"optimizer": "rmsprop"}, "optimizer 'rmsprop' is not one of"),
    ({"epochs": 0}, "epochs must be at least 1"),
    ({"lr": -1.0}, "lr must be positive"),
    ({"augment": "rotate"}, "unknown augmentation 'rotate'"),
    ({"val_fraction": 1.0}, "val_fraction must be in"),
    ({"epoch": 3}, "unknown training setting 'epoch' \\(did you mean 'epochs'"),
    ({"lr": "1e-3"}, "lr must be float, got '1e-3' \\(YAML"),
])
def test_bad_settings_are_refused(bad, message):
    with pytest.raises(ConvscopeError, match=message):
        TrainConfig.from_dict(bad)


def test_onecycle_warms_up_then_decays_to_zero():
    config = TrainConfig(lr=1.0, schedule="onecycle")
    values = [learning_rate(config, s, 100) for s in range(101)]
    assert values[0] == pytest.approx(0.1)
    assert max(values) == pytest.approx(1.0) and values.index(max(values)) == 25
    assert values[-1] == pytest.approx(0.0)
