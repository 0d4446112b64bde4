"""Hostile run directories (issue 17, points 5 and 9): one bad run never breaks the explorer's
model list, and opening a run never imports code unless the user allows it (--trust-code) and
the run's kept copy of its code is the one recorded."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from fastapi.testclient import TestClient
from safetensors.torch import save_file

import convscope
from convscope.checkpoint import save_model
from convscope.cli import main
from convscope.config import TrainConfig
from convscope.errors import RunError
from convscope.runs import CONFIG, MODEL, RESULTS, Run
from convscope.server.app import create_app

SPEC = [{"type": "input", "sx": 8, "sy": 8, "depth": 1},
        {"type": "conv", "sx": 3, "filters": 2, "activation": "relu"},
        {"type": "softmax", "num_classes": 10}]
OTHER = [*SPEC[:1], {"type": "conv", "sx": 3, "filters": 3, "activation": "relu"}, SPEC[2]]


def spec_run(path: Path, spec: list = SPEC) -> Path:
    """A finished spec run, written directly (no training)."""
    torch.manual_seed(0)
    info = {"name": "mnist", "classes": [str(i) for i in range(10)], "input": [8, 8, 1]}
    run = Run(path, TrainConfig(model="<python>", data="mnist"),
              {"kind": "spec", "ref": "<python>", "spec": spec}, info)
    path.mkdir(parents=True)
    save_model(path / MODEL, convscope.build_model(spec))
    run.write_config()
    return path


def edit_config(path: Path, change) -> None:
    config = yaml.safe_load((path / CONFIG).read_text())
    change(config)
    (path / CONFIG).write_text(yaml.safe_dump(config))


def marker_source(marker: Path) -> str:
    """A model file that leaves ``marker`` (holding its own path) whenever it is imported."""
    return ("from pathlib import Path\nimport torch\n"
            f"Path({str(marker)!r}).write_text(__file__)\n\n"
            "def make():\n"
            "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))\n")


@pytest.fixture
def hostile_runs(tmp_path: Path) -> dict:
    """A runs folder with one good run and one of each kind of bad run."""
    runs = tmp_path / "runs"
    good = spec_run(runs / "good")
    bad = {name: spec_run(runs / name) for name in
           ("unknown-layer", "truncated", "misshapen", "not-weights", "bad-meta", "python",
            "spec-path")}
    edit_config(bad["unknown-layer"], lambda c: c["model"]["spec"][1].update(type="warp"))
    weights = (good / MODEL).read_bytes()
    (bad["truncated"] / MODEL).write_bytes(weights[: len(weights) // 2])
    save_model(bad["misshapen"] / MODEL, convscope.build_model(OTHER))
    (bad["not-weights"] / MODEL).write_bytes(b"\x00" * 64)
    tensors = {k: v.contiguous() for k, v in convscope.build_model(SPEC).state_dict().items()}
    save_file(tensors, str(bad["bad-meta"] / MODEL), {"convscope": "model", "meta": "{nope"})
    (tmp_path / "net.yaml").write_text(yaml.safe_dump({"layers": SPEC}))
    edit_config(bad["spec-path"], lambda c: c["model"].update(spec=str(tmp_path / "net.yaml")))
    marker = tmp_path / "imported.txt"
    (tmp_path / "evil.py").write_text(marker_source(marker))
    edit_config(bad["python"], lambda c: c["model"].update(
        kind="module", spec=None, ref=f"{tmp_path / 'evil.py'}:make"))
    return {"runs": runs, "good": good, "bad": bad, "marker": marker}


def test_bad_runs_are_listed_with_their_reason_and_the_rest_served(hostile_runs, tmp_path,
                                                                      caplog):
    caplog.set_level(logging.WARNING, logger="convscope.server")
    app = create_app(runs_dir=hostile_runs["runs"], bundled_dir=tmp_path / "no-bundled")
    with TestClient(app) as client:
        response = client.get("/api/models")
        assert response.status_code == 200
        listed = response.json()
        assert [m["id"] for m in listed["models"]] == ["run-good"]
        reasons = {Path(s["path"]).name: s["reason"] for s in listed["skipped"]}
        assert set(reasons) == set(hostile_runs["bad"])
        assert "warp" in reasons["unknown-layer"]
        assert "unreadable weights" in reasons["truncated"]
        assert "unreadable weights" in reasons["not-weights"]
        assert "weights do not fit" in reasons["misshapen"] and "blocks.1" in reasons["misshapen"]
        assert "metadata" in reasons["bad-meta"]
        assert "Python code" in reasons["python"] and "never imports" in reasons["python"]
        assert "not a list of layers" in reasons["spec-path"]
        assert all("\n" not in reason for reason in reasons.values())
        weights = client.get("/api/models/run-good/layers/1/weights")
        assert weights.status_code == 200
    assert not hostile_runs["marker"].exists()  # the python run's file was never imported
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipping")]
    assert len(logged) == len(hostile_runs["bad"])


def test_weights_broken_after_the_run_was_added_give_409_not_500(tmp_path):
    runs = tmp_path / "runs"
    good, meta = spec_run(runs / "good"), spec_run(runs / "meta")
    with TestClient(create_app(runs_dir=runs, bundled_dir=tmp_path)) as client:
        weights = (good / MODEL).read_bytes()
        (good / MODEL).write_bytes(weights[: len(weights) // 2])
        tensors = {k: v.contiguous() for k, v in convscope.build_model(SPEC).state_dict().items()}
        save_file(tensors, str(meta / MODEL), {"convscope": "model", "meta": "{nope"})
        for model_id in ("run-good", "run-meta"):
            response = client.get(f"/api/models/{model_id}/layers/1/weights")
            assert response.status_code == 409
            assert "cannot be loaded" in response.json()["error"]


def test_a_bad_run_named_explicitly_is_a_clear_startup_error(hostile_runs, tmp_path):
    with pytest.raises(RunError, match="cannot offer .*unknown-layer.*warp"):
        create_app([hostile_runs["bad"]["unknown-layer"]], bundled_dir=tmp_path)


def test_a_results_file_that_is_not_json_is_a_run_error(tmp_path):
    run = spec_run(tmp_path / "run")
    (run / RESULTS).write_text("{not json")
    with pytest.raises(RunError, match="results.json: not a JSON object"):
        convscope.load_run(run)


@pytest.fixture
def python_run(fake_data, tmp_path: Path) -> dict:
    """A finished run of a user's Python model whose file leaves a marker when imported."""
    marker = tmp_path / "imported.txt"
    source = tmp_path / "evil.py"
    source.write_text(marker_source(marker))
    run = convscope.train(f"{source}:make", "mnist", out=tmp_path / "run",
                          data_dir=str(fake_data[0]), epochs=1, batch_size=10, progress=False)
    assert marker.read_text() == str(source)  # train imported the file the user named
    marker.unlink()
    kept = run.path / "model_code" / "evil.py"
    assert kept.read_text() == source.read_text()
    return {"run": run.path, "marker": marker, "kept": kept, "data": str(fake_data[0])}


def _cli(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize("command", [["eval", "{run}", "--data-dir", "{data}"],
                                     ["export", "{run}", "--format", "onnx"],
                                     ["summary", "{run}", "--input", "28x28x1"]])
def test_a_python_run_needs_trust_code(python_run, capsys, command):
    args = [a.format(**python_run) for a in command]
    code, text = _cli(capsys, *args)
    assert code == 2 and "--trust-code" in text and "runs that code" in text
    assert len(text.strip().splitlines()) == 1
    assert not python_run["marker"].exists()
    with pytest.raises(RunError, match="trust_code=True"):
        _ = convscope.load_run(python_run["run"]).model
    assert not python_run["marker"].exists()


def test_resume_of_a_python_run_needs_trust_code(python_run, capsys):
    (python_run["run"] / MODEL).unlink()
    (python_run["run"] / RESULTS).unlink()
    code, text = _cli(capsys, "train", "--resume", str(python_run["run"]))
    assert code == 2 and "--trust-code" in text
    assert not python_run["marker"].exists()
    code, text = _cli(capsys, "train", "--resume", str(python_run["run"]), "--trust-code")
    assert code == 0, text
    assert python_run["marker"].read_text() == str(python_run["kept"])
    assert (python_run["run"] / MODEL).is_file()


def test_trust_code_imports_the_kept_copy_when_its_hash_matches(python_run, capsys):
    code, text = _cli(capsys, "eval", str(python_run["run"]), "--data-dir", python_run["data"],
                      "--trust-code", "--json")
    assert code == 0, text
    assert json.loads(text)["total"] == 10
    assert python_run["marker"].read_text() == str(python_run["kept"])  # the copy, not evil.py


def test_a_modified_copy_is_refused_even_with_trust_code(python_run, capsys):
    python_run["kept"].write_text(python_run["kept"].read_text() + "# edited\n")
    for args in (["eval", str(python_run["run"]), "--data-dir", python_run["data"]],
                 ["export", str(python_run["run"]), "--format", "onnx"]):
        code, text = _cli(capsys, *args, "--trust-code")
        assert code == 2 and "sha256 differs" in text
    assert not python_run["marker"].exists()


def test_a_config_naming_a_python_file_never_imports_it(python_run, tmp_path, capsys):
    """A run whose config names code outside it (no kept copy, or a copy path leaving the
    run) is refused, --trust-code or not: only the run's own copy is ever imported."""
    outside = tmp_path / "evil.py"
    hostile = tmp_path / "hostile"
    shutil.copytree(python_run["run"], hostile)
    edit_config(hostile, lambda c: c["model"].update(spec="net.yaml"))
    code, text = _cli(capsys, "eval", str(hostile), "--data-dir", python_run["data"])
    assert code == 2 and "not a list of layers" in text
    edit_config(hostile, lambda c: c["model"].update(spec=None))
    edit_config(hostile, lambda c: c["model"].pop("code"))
    for trust in ([], ["--trust-code"]):
        code, text = _cli(capsys, "eval", str(hostile), "--data-dir", python_run["data"], *trust)
        assert code == 2 and "keeps no copy" in text and str(outside) in text
    edit_config(hostile, lambda c: c["model"].update(code={
        "file": "model_code/../../evil.py", "factory": "make", "sha256": "0" * 64}))
    code, text = _cli(capsys, "export", str(hostile), "--format", "onnx", "--trust-code")
    assert code == 2 and "malformed" in text
    assert not python_run["marker"].exists()
