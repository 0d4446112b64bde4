import dataclasses

import pytest
import torch

import convscope.registry as registry
from convscope.config import TrainConfig
from convscope.data import DATASETS, Dataset
from convscope.errors import SpecError
from convscope.model import build_model
from convscope.registry import (
    get_model_entry,
    list_models,
    register_model,
)
from convscope.spec import resolve
from convscope.tasks import get_task
from convscope.user_module import load_user_module, resolve_model_ref

NAMES = [entry.name for entry in list_models()]
# VGG-16 (15.5 G multiply-adds an image) is checked from its spec in test_architectures.py
BUILT = [e.name for e in list_models() if sum(la.macs for la in resolve(e.spec)) < 10**10]


def test_all_models_registered():
    assert NAMES == ["mnist-templates", "mnist-ordinary", "cifar10-templates", "cifar10-ordinary",
                     "cifar10-mlp", "mnist-convnetjs", "cifar10-convnetjs", "lenet5",
                     "mnist-fast", "mnist-sprint", "mnist-995", "cifar10-fast", "cifar10-sprint",
                     "cifar10-94", "mnist-localizer", "mnist-yolo", "mnist-unet", "fsdd-convnet",
                     "fsdd-wavenet",
                     "lenet5-32", "alexnet", "vgg16"]


@pytest.mark.parametrize("name", BUILT)
def test_model_builds_and_runs(name):
    entry = get_model_entry(name)
    # an ImageNet architecture (untrained) names no dataset: convscope has none for it
    assert (entry.dataset in DATASETS or entry.untrained and entry.dataset is None) \
        and entry.description
    config = TrainConfig.from_dict(entry.recipe)  # every recipe is a valid set of settings
    layers = resolve(entry.spec)
    torch.manual_seed(0)
    net = build_model(entry.spec).eval()
    assert net.layers == layers
    x = torch.randn(2, *net.input_volume.shape)
    like_data = Dataset("fake", torch.zeros(2, *net.input_volume.shape, dtype=torch.uint8),
                        torch.zeros(2, dtype=torch.int64),
                        [str(d) for d in range(10 if entry.dataset else 1000)])  # ImageNet
    with torch.no_grad():
        get_task(config.task).check_output(net(x), like_data)  # the output suits its task
        outputs = net.forward_all(x)
    assert len(outputs) == len(layers)
    for layer, out in zip(layers, outputs, strict=True):
        assert out.shape == (2, *layer.out_volume.shape), layer
    assert sum(la.num_params for la in layers) == sum(p.numel() for p in net.parameters())
    # mnist-convnetjs trains on 24x24 crops, lenet5-32 on digits padded to 32x32 (as drawn)
    if config.task == "classify" and entry.dataset and name not in ("mnist-convnetjs",
                                                                    "lenet5-32"):
        sx, sy, depth = DATASETS[entry.dataset].input  # the catalogue's input volume
        assert net.input_volume.shape == (depth, sy, sx)


@pytest.mark.parametrize(("name", "params"), [
    ("mnist-convnetjs", 5994), ("cifar10-convnetjs", 22466), ("mnist-ordinary", 7960),
    ("cifar10-ordinary", 30840), ("mnist-templates", 7850), ("cifar10-templates", 30730),
])
def test_known_param_counts(name, params):
    assert sum(la.num_params for la in resolve(get_model_entry(name).spec)) == params


def test_convnetjs_mnist_volumes():
    layers = resolve(get_model_entry("mnist-convnetjs").spec)
    assert [str(la.out_volume) for la in layers if la.type in ("conv", "pool")] == [
        "24x24x8", "12x12x8", "12x12x16", "4x4x16"]


def test_fast_models():
    mnist = resolve(get_model_entry("mnist-fast").spec)
    assert str(mnist[-3].out_volume) == "3x3x128"
    cifar = resolve(get_model_entry("cifar10-fast").spec)
    assert any(la.type == "residual" for la in cifar)
    recipe = get_model_entry("cifar10-fast").recipe
    assert recipe["tuned_precision"] == "bf16" and recipe["schedule"] == "onecycle"
    assert "precision" not in recipe  # auto decides at run time


def test_unknown_model_suggests():
    with pytest.raises(SpecError, match="unknown model 'lenet'.*did you mean 'lenet5'.*known"):
        get_model_entry("lenet")


def test_entries_are_copies():
    get_model_entry("lenet5").spec.clear()
    list_models()[0].recipe.clear()
    assert get_model_entry("lenet5").spec and list_models()[0].recipe


def test_register_model(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    base = get_model_entry("mnist-templates")
    entry = dataclasses.replace(base, name="tiny")
    assert register_model(entry) is entry
    assert get_model_entry("tiny").spec == base.spec
    bad = [
        (entry, "model 'tiny' is already registered"),
        (dataclasses.replace(entry, name="x", dataset="svhn"), "dataset must be one of"),
        (dataclasses.replace(entry, name="x", recipe={"epoch": 3}),
         "unknown training setting 'epoch' (did you mean 'epochs'?)"),
        (dataclasses.replace(entry, name="x", recipe={"lr": "1e-3"}), "write 1.0e-3"),
        (dataclasses.replace(entry, name="x", recipe={"optimizer": "rmsprop"}),
         "optimizer 'rmsprop' is not one of"),
        (dataclasses.replace(entry, name="x", spec=base.spec[1:]),
         "model 'x': layer 0 (softmax): the first layer must be 'input'"),
        (dataclasses.replace(entry, name="a b"), "without spaces"),
    ]
    for candidate, message in bad:
        with pytest.raises(SpecError) as info:
            register_model(candidate)
        assert message in str(info.value)


FACTORY = """\
import torch

def make():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))

def broken():
    raise RuntimeError("no weights here")

def not_a_module():
    return 42

NUMBER = 3
"""


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "user_net.py"
    path.write_text(FACTORY)
    return path


def test_load_user_module(user_file):
    model = load_user_module(f"{user_file}:make")
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize(("suffix", "message"), [
    (":missing", "has no attribute 'missing'; its callables: broken, make, not_a_module"),
    (":NUMBER", "is a int, not a callable"),
    (":broken", "calling broken() from '{p}' raised RuntimeError: no weights here"),
    (":not_a_module", "not_a_module() from '{p}' returned a int, expected a torch.nn.Module"),
    ("", "must look like 'path/to/file.py:factory'"),
])
def test_load_user_module_errors(user_file, suffix, message):
    with pytest.raises(SpecError) as info:
        load_user_module(f"{user_file}{suffix}")
    assert message.format(p=user_file) in str(info.value)


def test_load_user_module_missing_or_broken_file(tmp_path):
    with pytest.raises(SpecError, match="model file '.*nope.py' does not exist"):
        load_user_module(f"{tmp_path / 'nope.py'}:make")
    (tmp_path / "bad.py").write_text("import not_a_real_module_xyz\n")
    with pytest.raises(SpecError, match="importing .* failed: ModuleNotFoundError"):
        load_user_module(f"{tmp_path / 'bad.py'}:make")


def test_resolve_model_ref(user_file, tmp_path):
    described = resolve_model_ref("lenet5")
    assert dataclasses.asdict(described) == {
        "kind": "registry", "ref": "lenet5", "spec": get_model_entry("lenet5").spec,
        "recipe": get_model_entry("lenet5").recipe, "dataset": "mnist", "code": None,
        "kwargs": {}, "about": {}}
    assert described.build().num_classes == 10

    spec_file = tmp_path / "net.yaml"
    spec_file.write_text("dataset: mnist\nrecipe: {epochs: 1}\nlayers:\n"
                         "  - {type: input, sx: 28, sy: 28, depth: 1}\n"
                         "  - {type: softmax, num_classes: 10}\n")
    described = resolve_model_ref(str(spec_file))
    assert (described.kind, described.dataset, described.recipe) == ("spec", "mnist",
                                                                     {"epochs": 1})
    assert described.spec == described.build().spec

    described = resolve_model_ref(f"{user_file}:make")
    assert dataclasses.asdict(described) == {"kind": "module", "ref": f"{user_file}:make",
                                             "spec": None, "recipe": {}, "dataset": None,
                                             "code": {"source": user_file.read_bytes(),
                                                      "name": user_file.name, "factory": "make"},
                                             "kwargs": {}, "about": {}}
    assert isinstance(described.build(), torch.nn.Module)


@pytest.mark.parametrize(("ref", "message"), [
    ("lenet", "not a registered model; did you mean 'lenet5'?"),
    ("nowhere.json", "spec file 'nowhere.json' does not exist"),
    ("net.py", "name the factory that builds the model"),
])
def test_resolve_model_ref_errors(ref, message):
    with pytest.raises(SpecError) as info:
        resolve_model_ref(ref)
    assert message in str(info.value)
