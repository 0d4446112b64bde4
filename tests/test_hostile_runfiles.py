"""Hostile conditions for run directories (issue 17, points 7, 8, 10, 12): two trainings into one
directory, full disks and read-only storage, temp files left by kill -9, Ctrl-C and SIGTERM."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import write_mnist
from safetensors import SafetensorError
from safetensors.torch import load_file

import convscope
from convscope import session as session_module
from convscope.cli import main
from convscope.errors import RunError

TINY = [{"type": "input", "sx": 28, "sy": 28, "depth": 1},
        {"type": "conv", "sx": 5, "filters": 4, "stride": 2, "activation": "relu"},
        {"type": "pool", "sx": 2},
        {"type": "softmax", "num_classes": 10}]
REPO = Path(__file__).resolve().parents[1]
LOCK = ".lock"  # convscope.run_lock.LOCK


def locked_run(path: Path):
    """Hold ``path``'s run lock from this process (imported late: the other tests run
    against code without run locks too)."""
    from convscope.run_lock import locked_run

    return locked_run(path)


@pytest.fixture
def squares(tmp_path: Path, data_cache: Path) -> Path:
    return write_mnist(tmp_path / "data", train=300, test=60)


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "net.json"
    path.write_text(json.dumps(TINY))
    return path


def _train_args(spec: Path, squares: Path, *more: str) -> list[str]:
    return ["train", "--model", str(spec), "--data", "mnist", "--data-dir", str(squares),
            "--epochs", "2", "--batch-size", "32", "--optimizer", "sgd", "--lr", "0.05",
            "--seed", "3", *more]


def _error_line(capsys: pytest.CaptureFixture) -> str:
    """The one line of the error (after any closed progress bar), with no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and err.count("error: ") == 1, err
    return lines[-1]


def _stopped_run(out: Path, squares: Path, steps: int = 3) -> Path:
    """A resumable run: stopped by a callback after ``steps`` steps (checkpoint, no results)."""
    convscope.train(TINY, "mnist", out=out, data_dir=str(squares), epochs=2, batch_size=32,
                    optimizer="sgd", lr=0.05, seed=3, progress=False,
                    on_event=lambda e: e["kind"] != "step" or e["step"] < steps)
    assert (out / "checkpoint.safetensors").exists() and not (out / "results.json").exists()
    return out


# ---- point 7: one training per run directory ----------------------------------------------

def test_second_training_into_a_held_run_dir_is_refused_naming_the_holder(
        spec: Path, squares: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    out = tmp_path / "run"
    with locked_run(out):  # another open file description: flock tells the two apart
        assert main(_train_args(spec, squares, "--out", str(out))) == 2
        line = _error_line(capsys)
        assert f"{out} is in use by another training (pid {os.getpid()} on " in line
        assert "choose another --out" in line
        assert not (out / "config.yaml").exists()
    assert main(_train_args(spec, squares, "--out", str(out))) == 0
    assert not (out / LOCK).exists()
    with locked_run(out):  # a finished run still in use: its holder is named first
        assert main(_train_args(spec, squares, "--out", str(out))) == 2
        assert "is in use by another training" in _error_line(capsys)


def test_resume_of_a_held_run_is_refused_and_keeps_its_temp_files(squares: Path,
                                                                  tmp_path: Path):
    run = _stopped_run(tmp_path / "run", squares)
    live_temp = run / ".checkpoint.safetensors.abcd1234.tmp"  # the holder's, being written
    with locked_run(run):
        live_temp.write_bytes(b"partial")
        with pytest.raises(RunError, match="is in use by another training"):
            convscope.resume(run, progress=False)
        assert live_temp.exists()


def test_lock_is_released_when_its_holder_is_killed(spec: Path, squares: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom convscope.run_lock import locked_run\n"
         "with locked_run(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)\n",
         str(out)], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunError, match=f"in use by another training \\(pid {holder.pid} "):
            with locked_run(out):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (out / LOCK).exists()  # left by kill -9, but no longer locked
    assert main(_train_args(spec, squares, "--out", str(out))) == 0
    assert (out / "results.json").exists() and not (out / LOCK).exists()


# ---- point 8: write errors --------------------------------------------------------------

def test_full_disk_at_config_time_is_one_line(spec: Path, squares: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch):
    write_text = Path.write_text

    def full(self: Path, *args, **kwargs):
        if self.name.startswith(".config.yaml."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    out = tmp_path / "run"
    assert main(_train_args(spec, squares, "--out", str(out))) == 2
    line = _error_line(capsys)
    assert f"cannot write {out / 'config.yaml'} (No space left on device); free some " in line
    assert not out.exists()  # no temp file, no lock: the directory it made went again


def test_full_disk_at_checkpoint_time_names_the_checkpoint_to_resume_from(
        spec: Path, squares: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch):
    from convscope import checkpoint

    real, calls = checkpoint.save_file, []

    def full_after_one(tensors, filename, metadata=None):
        calls.append(filename)
        if len(calls) > 1:  # safetensors' own wording for an OS error
            raise SafetensorError("Error while serializing: I/O error: No space left on "
                                  "device (os error 28)")
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(checkpoint, "save_file", full_after_one)
    out = tmp_path / "run"
    assert main(_train_args(spec, squares, "--out", str(out), "--checkpoint-every", "2")) == 2
    line = _error_line(capsys)
    assert f"cannot write {out / 'checkpoint.safetensors'} (No space left on device)" in line
    assert f"continue it with `convscope train --resume {out}`" in line
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.safetensors", "config.yaml"]


def test_full_disk_at_an_epochs_metrics_line_is_one_line(
        spec: Path, squares: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch):
    from convscope import _io

    def full(path, mode="r", *args, **kwargs):
        if mode == "a":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return open(path, mode, *args, **kwargs)

    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(_io, "open", full, raising=False)
        assert main(_train_args(spec, squares, "--out", str(out), "--checkpoint-every", "3")) \
            == 2
    line = _error_line(capsys)
    assert f"cannot write {out / 'metrics.jsonl'} (No space left on device)" in line
    assert f"continue it with `convscope train --resume {out}`" in line
    assert main(["train", "--resume", str(out)]) == 0  # once there is space again
    assert [m["epoch"] for m in convscope.load_run(out).metrics] == [1, 2]


def test_rust_writer_errors_are_translated_for_real(tmp_path: Path):
    """safetensors' real error for a failing write (a file-size limit here) becomes the one
    line: the translation does not depend on a mocked message."""
    code = ("import resource, signal, sys, torch\n"
            "from convscope.checkpoint import save_model\n"
            "from convscope.errors import WriteError\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))\n"
            "try:\n    save_model(sys.argv[1], torch.nn.Linear(100, 100))\n"
            "except WriteError as exc:\n    print(exc)\n")
    target = tmp_path / "model.safetensors"
    done = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.stdout.strip() == (f"cannot write {target} (File too large); free some space "
                                   "there (or choose another --out) and try again"), done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch):
    """Make the directories passed to the returned function read-only storage: creating
    anything under them fails with EROFS (works as root too, whom modes do not stop)."""
    places: list[Path] = []
    real_open, real_mkdir = os.open, os.mkdir

    def inside(path) -> bool:
        path = Path(os.fsdecode(path)).absolute()
        return any(path == p or p in path.parents for p in places)

    def ro_open(path, flags, *args, **kwargs):
        writes = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        if writes and inside(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    def ro_mkdir(path, *args, **kwargs):
        if inside(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", ro_open)
    monkeypatch.setattr(os, "mkdir", ro_mkdir)
    return lambda path: places.append(Path(path).absolute())


def test_train_out_on_read_only_storage(spec: Path, squares: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture, read_only):
    read_only(tmp_path / "ro")
    out = tmp_path / "ro" / "run"
    assert main(_train_args(spec, squares, "--out", str(out))) == 2
    line = _error_line(capsys)
    assert line == (f"error: cannot write {out} (Read-only file system); choose a writable "
                    f"--out (or make the directory writable)")


def test_resume_and_export_on_read_only_storage(squares: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture, read_only):
    run = _stopped_run(tmp_path / "run", squares)
    read_only(run)
    assert main(["train", "--resume", str(run)]) == 2
    assert f"cannot write {run / LOCK} (Read-only file system); choose a writable" \
        in _error_line(capsys)
    assert main(["export", str(run), "--format", "convnetjs"]) == 2
    assert f"cannot write {run / 'model.convnetjs.json'} (Read-only file system)" \
        in _error_line(capsys)
    assert main(["export", str(run), "--format", "convnetjs", "--out",
                 str(tmp_path / "net.json")]) == 0  # the fix the message names


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes into read-only directories")
def test_train_out_in_a_read_only_directory(spec: Path, squares: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert main(_train_args(spec, squares, "--out", str(locked / "run"))) == 2
        assert "(Permission denied); choose a writable --out" in _error_line(capsys)
    finally:
        locked.chmod(0o755)


# ---- point 10: temp files of killed writers ----------------------------------------------

def test_stale_temp_files_are_removed_when_the_run_resumes(squares: Path, tmp_path: Path):
    run = _stopped_run(tmp_path / "run", squares)
    stale = [run / ".checkpoint.safetensors.k3x_9abc.tmp", run / ".model.safetensors.q1w2e3r4.tmp",
             run / ".config.yaml.zzzzzzzz.tmp"]
    others = [run / ".notes.txt.abcdefgh.tmp", run / "checkpoint.safetensors.tmp",
              run / ".checkpoint.safetensors.too-long-name.tmp"]
    for path in stale + others:
        path.write_bytes(b"left by kill -9")
    convscope.resume(run, progress=False)
    assert [p for p in stale if p.exists()] == []
    assert all(p.exists() for p in others)  # not convscope's temp files: left alone
    assert (run / "results.json").exists()


# ---- point 12: Ctrl-C, SIGTERM and messages ----------------------------------------------

@pytest.fixture(autouse=True)
def ctrl_c_raises():
    """Ctrl-C raises KeyboardInterrupt in this process, as in a terminal (a test runner started
    in the background may have inherited it ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _signal_at_step(monkeypatch: pytest.MonkeyPatch, at: int, signum: int) -> None:
    """Send this process ``signum`` in the middle of training step ``at``."""
    real, seen = session_module.TrainingSession.step, []

    def step(self):
        seen.append(1)
        if len(seen) == at:
            os.kill(os.getpid(), signum)
        return real(self)

    monkeypatch.setattr(session_module.TrainingSession, "step", step)


def _position(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["meta"])["position"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_saves_a_checkpoint_and_resume_matches_an_uninterrupted_run(
        signum: int, spec: Path, squares: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(_train_args(spec, squares, "--out", str(whole))) == 0
    with monkeypatch.context() as patch:
        _signal_at_step(patch, 4, signum)
        assert main(_train_args(spec, squares, "--out", str(cut))) == 130
    err = capsys.readouterr().err
    assert f"interrupted: the run is saved in {cut}; continue it with: convscope train " \
           f"--resume {cut}" in err
    assert _position(cut / "checkpoint.safetensors")["step"] == 4  # after the step it was in
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the CLI's handler is gone
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert main(["train", "--resume", str(cut)]) == 0
    assert "resuming" in capsys.readouterr().out
    a, b = (load_file(str(d / "model.safetensors")) for d in (whole, cut))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sigterm_to_a_training_process_leaves_a_checkpoint(spec: Path, tmp_path: Path,
                                                           data_cache: Path):
    data = write_mnist(tmp_path / "data", train=2000, test=60)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "CONVSCOPE_CACHE": str(data_cache),
           "OMP_NUM_THREADS": "1"}
    args = _train_args(spec, data, "--out", str(out))
    args[args.index("--epochs") + 1], args[args.index("--batch-size") + 1] = "50", "4"
    process = subprocess.Popen([sys.executable, "-m", "convscope", *args], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / "config.yaml").exists():  # written just before the first step
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.02)
    time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert f"continue it with: convscope train --resume {out}" in err
    position = _position(out / "checkpoint.safetensors")
    assert position["epoch"] < 50 and (out / "model.safetensors").exists()
    assert not (out / LOCK).exists()


def test_ctrl_c_twice_stops_at_once(spec: Path, squares: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture,
                                   monkeypatch: pytest.MonkeyPatch):
    real, seen = session_module.TrainingSession.step, []

    def step(self):
        seen.append(1)
        if len(seen) == 2:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # impatient: no checkpoint, stop now
        return real(self)

    monkeypatch.setattr(session_module.TrainingSession, "step", step)
    out = tmp_path / "run"
    assert main(_train_args(spec, squares, "--out", str(out))) == 130
    assert len(seen) == 2 and not (out / "checkpoint.safetensors").exists()
    assert f"interrupted: {out} has no checkpoint yet; start it again from the first step " \
           f"with: convscope train --resume {out}" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_interrupt_before_training_began_suggests_no_resume(spec: Path, squares: Path,
                                                            tmp_path: Path,
                                                            capsys: pytest.CaptureFixture,
                                                            monkeypatch: pytest.MonkeyPatch):
    def interrupted(self, module):
        raise KeyboardInterrupt

    monkeypatch.setattr(session_module.TrainingSession, "_load_data", interrupted)
    out = tmp_path / "run"
    assert main(_train_args(spec, squares, "--out", str(out))) == 130
    err = capsys.readouterr().err
    assert "--resume" not in err and "nothing was saved" in err
    assert not out.exists()  # the directory it made for the run went again


def test_interrupt_without_out_names_the_run_directory_it_chose(
        spec: Path, squares: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    _signal_at_step(monkeypatch, 2, signal.SIGINT)
    assert main(_train_args(spec, squares)) == 130
    err = capsys.readouterr().err
    [run] = list((tmp_path / "runs").iterdir())
    assert f"continue it with: convscope train --resume {Path('runs') / run.name}" in err


def test_interrupted_scenes_suggest_the_scenes_command(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch):
    import convscope.data

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(convscope.data, "load_dataset", interrupted)
    out = tmp_path / "scenes"
    assert main(["scenes", "detect", "--count", "5", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "train" not in err
    assert f"write them again with: convscope scenes detect --count 5 --out {out}" in err


def test_resuming_a_run_whose_epochs_are_all_trained_says_so(squares: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture):
    run = tmp_path / "run"
    convscope.train(TINY, "mnist", out=run, data_dir=str(squares), epochs=2, batch_size=32,
                    progress=False)
    (run / "results.json").unlink()  # killed after the last epoch's checkpoint
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 0
    out = capsys.readouterr().out
    assert "at epoch 3" not in out
    assert f"resuming {run}: its training is complete (2 epochs); finishing it" in out
    assert (run / "results.json").exists()


def test_scenes_into_a_path_under_a_file_is_one_line(squares: Path, tmp_path: Path, capsys):
    """A file error no command translates (here: the --out folder's parent is a file) is still
    one line naming the path, never a traceback."""
    (tmp_path / "a-file").write_text("")
    out = tmp_path / "a-file" / "scenes"
    code = main(["scenes", "localize", "--count", "2", "--out", str(out),
                 "--data-dir", str(squares)])
    line = _error_line(capsys)
    assert code == 2 and "a-file" in line and "check the path" in line, line


def test_an_unwritable_path_no_command_translated_names_the_fix(spec: Path, squares: Path,
                                                                tmp_path: Path, capsys,
                                                                monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "scenes"))

    monkeypatch.setattr("convscope.scenes.write_scenes", read_only)
    code = main(["scenes", "localize", "--count", "2", "--out", str(tmp_path / "scenes"),
                 "--data-dir", str(squares)])
    line = _error_line(capsys)
    assert code == 2 and "choose a writable --out" in line, line
