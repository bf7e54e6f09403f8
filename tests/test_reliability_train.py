"""Training's guarantees (docs/reliability.md): settings and the model's memory checked before a run directory exists
or TensorFlow loads, unique default run names, damaged run directories and replaced data refused by --resume with
the file and the defect named, and Ctrl-C at any moment leaving a run directory whose files agree with each other.

The first tests need no TensorFlow. The training ones use runs of a few hundred images and hidden width 16.
"""
import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from aefast.modelfile import read_model
from aefast.train import TrainConfig
from aefast.train import loop
from aefast.train.checkpoint import CHECKPOINT_NAME, Checkpoint, load_checkpoint, save_checkpoint
from aefast.train.cli import main

RUN_FILES = {"config.json", "model.safetensors", "history.csv", "metrics.json", "loss.png", "reconstructions.png",
             "checkpoint.npz"}
TINY = ["--hidden", "16", "--latent", "4", "--batch-size", "64", "--train-limit", "256", "--val-size", "128",
        "--test-limit", "128", "--no-xla"]

# main(argv) in a child; prints whether TensorFlow was imported by the time it exited.
_MAIN_IN_CHILD = textwrap.dedent("""
    import sys
    from aefast.train.cli import main
    try:
        code = main(sys.argv[1:])
    except SystemExit as e:
        code = e.code
    print("TF-LOADED" if "tensorflow" in sys.modules else "TF-NOT-LOADED", code)
""")


@pytest.mark.parametrize("argv, words", [
    (["--seed", "-1"], "seed must be an integer 0..4294967295, got -1"),
    (["--seed", str(2**32)], "seed must be an integer 0..4294967295"),
    (["--val-size", "60000"], "val_size 60000 of 60000 held out"),
    (["--data-dir", "EMPTY"], "missing MNIST file"),
    (["--out", "FILE"], "exists and is not a directory"),
    # 80 billion parameters: refused with the estimate and the machine's figure, not a ResourceExhaustedError
    (["--hidden", "200000,200000"], "GiB of memory (12 float32 copies of every parameter"),
])
def test_bad_settings_exit_2_before_a_run_directory_or_tensorflow(tmp_path, mnist_dir, argv, words):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_bytes(b"")
    argv = [{"EMPTY": str(tmp_path / "empty"), "FILE": str(tmp_path / "file")}.get(a, a) for a in argv]
    out = [] if "--out" in argv else ["--out", str(tmp_path / "runs")]
    data = [] if "--data-dir" in argv else ["--data-dir", str(mnist_dir)]
    proc = subprocess.run([sys.executable, "-c", _MAIN_IN_CHILD, *TINY, "--epochs", "1", *data, *out, *argv],
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.split()[-2:] == ["TF-NOT-LOADED", "2"], (proc.stdout, proc.stderr[-1000:])
    assert "python -m aefast.train: error:" in proc.stderr and words in proc.stderr, proc.stderr[-1000:]
    assert not (tmp_path / "runs").exists()


def test_memory_estimate_refuses_what_the_machine_cannot_hold():
    from aefast.train.config import ConfigError
    from aefast.train.memory import GIB, check_memory, parameter_count, training_bytes

    config = TrainConfig(hidden=(16,), latent=4)
    assert parameter_count(config.layer_sizes) == 784 * 16 + 16 + 16 * 4 + 4 + 4 * 16 + 16 + 16 * 784 + 784
    need = training_bytes(config)
    check_memory(config, available=need)
    with pytest.raises(ConfigError, match=r"784-16-4-16-784 has 26,\d{3} parameters; training it needs about "
                                          r"1\.\d GiB of memory .* but this machine has 1\.0 GiB available"):
        check_memory(config, available=need - 1)
    # hidden 1048576 peaked at 22 GB before failing on a 23 GB machine: the estimate must exceed that
    assert training_bytes(TrainConfig(hidden=(1048576,))) > 22e9
    assert training_bytes(TrainConfig(hidden=(1048576,))) > 80 * GIB


def test_two_runs_started_in_the_same_second_get_different_folders(tmp_path, monkeypatch):
    class FrozenClock:
        @staticmethod
        def now():
            from datetime import datetime
            return datetime(2026, 1, 2, 3, 4, 5)

    monkeypatch.setattr(loop, "datetime", FrozenClock)
    config = TrainConfig(out=str(tmp_path))
    dirs = []
    for _ in range(3):
        run_dir = loop._new_run_dir(config)
        (run_dir / "config.json").write_text("{}")
        dirs.append(run_dir.name)
    assert dirs == ["20260102-030405", "20260102-030405-2", "20260102-030405-3"]


# --- --resume on damaged run directories (all refused before TensorFlow loads) -------------------------------

def _fake_run(tmp_path, mnist_dir) -> Path:
    """A run directory as the trainer leaves it after 2 of 3 epochs, made without training."""
    config = TrainConfig(hidden=(16,), latent=4, epochs=3, batch_size=64, train_limit=256, val_size=128,
                         test_limit=128, xla=False, data_dir=str(mnist_dir), out=str(tmp_path), name="run")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"config": config.to_dict()}))
    sizes = config.layer_sizes
    weights = [np.zeros(s, np.float32) for a, b in zip(sizes, sizes[1:]) for s in ((a, b), (b,))]
    history = [{"epoch": e, "train_loss": 0.1 / e, "val_loss": 0.1 / e, "lr": 1e-3, "seconds": 1.0} for e in (1, 2)]
    save_checkpoint(run_dir / CHECKPOINT_NAME, Checkpoint(weights, [np.zeros((), np.int64)], weights,
                                                          {"epoch": 2, "history": history, "best_epoch": 2,
                                                           "best_val": 0.05}))
    return run_dir


def _edit_config(change):
    def edit(run_dir):
        path = run_dir / "config.json"
        path.write_text(json.dumps(change(json.loads(path.read_text()))))
    return edit


def _edit_checkpoint(change):
    def edit(run_dir):
        path = run_dir / CHECKPOINT_NAME
        with np.load(path) as npz:
            arrays = {k: npz[k] for k in npz.files}
        state = json.loads(arrays["state"].tobytes())
        change(arrays, state)
        arrays["state"] = np.frombuffer(json.dumps(state).encode(), np.uint8)
        np.savez(path, **arrays)
    return edit


def _replace_file(name, data):
    return lambda run_dir: (run_dir / name).write_bytes(data(run_dir / name))


@pytest.mark.parametrize("damage, file, words", [
    (_replace_file(CHECKPOINT_NAME, lambda p: p.read_bytes()[:300]), CHECKPOINT_NAME, "BadZipFile"),
    (_replace_file(CHECKPOINT_NAME, lambda p: os.urandom(2000)), CHECKPOINT_NAME, "not an .npz zip archive"),
    (_replace_file("config.json", lambda p: b'{"x": 1}'), "config.json", 'expected a JSON object {"config"'),
    (_replace_file("config.json", lambda p: b"[1, 2]"), "config.json", "expected a JSON object"),
    (_replace_file("config.json", lambda p: b"{\xff"), "config.json", "not readable JSON"),
    (_edit_config(lambda c: {"config": {**c["config"], "hidden": 5}}), "config.json", "hidden must be a list"),
    (_edit_config(lambda c: {"config": {**c["config"], "seed": "x"}}), "config.json", "seed must be an integer"),
    (_edit_config(lambda c: {"config": {**c["config"], "data_dir": 7}}), "config.json", "data_dir 7 is not"),
    (_edit_config(lambda c: {"config": {**c["config"], "bogus": 1}}), "config.json", "unknown training config"),
    (_edit_checkpoint(lambda a, s: s.update(epoch="x")), CHECKPOINT_NAME, "state epoch must be an integer 1..3"),
    (_edit_checkpoint(lambda a, s: s.pop("history")), CHECKPOINT_NAME, "its state lacks ['history']"),
    (_edit_checkpoint(lambda a, s: s.update(epoch=1)), CHECKPOINT_NAME, "state history must list 1 epochs"),
    (_edit_checkpoint(lambda a, s: s.update(best_epoch=3)), CHECKPOINT_NAME, "best_epoch must be an integer 1..2"),
    (_edit_checkpoint(lambda a, s: s["history"][0].update(val_loss="x")), CHECKPOINT_NAME, "history row 1"),
    (_edit_checkpoint(lambda a, s: [a.pop(k) for k in list(a) if k.startswith("best/")]), CHECKPOINT_NAME,
     "its best/* arrays have shapes []"),
    (_edit_checkpoint(lambda a, s: a.pop("model/1")), CHECKPOINT_NAME, "model/* arrays are not numbered"),
    (_edit_checkpoint(lambda a, s: a.update({"model/0": np.zeros((3, 3), np.float32)})), CHECKPOINT_NAME,
     "its model/* arrays have shapes [(3, 3)"),
    (_edit_checkpoint(lambda a, s: a.update({"best/0": np.array(["x"])})), CHECKPOINT_NAME, "must be numeric"),
], ids=["truncated-npz", "random-bytes", "config-object", "config-list", "config-bad-utf8", "hidden-5", "seed-x",
        "data-dir-7", "unknown-key", "epoch-x", "no-history", "short-history", "best-epoch", "history-row",
        "no-best", "gap", "model-shape", "best-strings"])
def test_resume_names_the_damaged_file_and_the_defect(tmp_path, mnist_dir, capsys, damage, file, words):
    run_dir = _fake_run(tmp_path, mnist_dir)
    damage(run_dir)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    with pytest.raises(SystemExit) as info:
        main(["--resume", str(run_dir), "--quiet"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "python -m aefast.train: error:" in err
    assert f"{run_dir / file}:" in err and words in err, err
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before   # nothing written


# --- Ctrl-C -------------------------------------------------------------------------------------------------

def _assert_consistent(run_dir: Path) -> int:
    """Every file of the run directory tells the same story; returns the number of finished epochs."""
    names = {p.name for p in run_dir.iterdir()}
    if names == {"config.json"}:
        return 0
    assert names == RUN_FILES, names
    metrics = json.loads((run_dir / "metrics.json").read_text())
    with open(run_dir / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    state = load_checkpoint(run_dir / CHECKPOINT_NAME).state
    model = read_model(run_dir / "model.safetensors")
    n, best = metrics["epochs_run"], metrics["best_epoch"]
    assert n == len(rows) == state["epoch"] == len(state["history"]) == model.training["epochs_run"]
    assert [int(r["epoch"]) for r in rows] == list(range(1, n + 1))
    assert best == state["best_epoch"] == model.training["best_epoch"]
    best_val = state["initial_val"] if best == 0 else float(rows[best - 1]["val_loss"])   # 0: the PCA start
    assert metrics["val_mse"] == model.metrics["val_mse"] == state["best_val"] == best_val
    for plot in ("loss.png", "reconstructions.png"):
        assert (run_dir / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return n


@pytest.fixture
def tiny(tiny_config):
    """conftest's tiny_config, smaller still: hidden 16, latent 4, 3 epochs on 256 images."""
    def make(**overrides):
        return tiny_config(**{**dict(hidden=(16,), latent=4, epochs=3, train_limit=256, val_size=128,
                                     test_limit=128), **overrides})
    return make


@pytest.mark.train
def test_ctrl_c_between_an_epochs_files_and_again_while_finishing_leaves_a_consistent_run(tiny, monkeypatch):
    """The first Ctrl-C lands after epoch 2's model and history are written but before its checkpoint (the old
    loop then reported best epoch 2 with the checkpoint at 1); a second one lands while the plots are drawn (the
    old loop then left no plots)."""
    pytest.importorskip("keras")
    from aefast.train import artifacts, checkpoint

    real_save, real_plot = checkpoint.save_checkpoint, artifacts.plot_loss
    saves = []

    def save_then_ctrl_c(path, ckpt):
        saves.append(ckpt.state["epoch"])
        if len(saves) == 2:
            raise KeyboardInterrupt
        return real_save(path, ckpt)

    def plot_with_second_ctrl_c(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)   # delivered to this (main) thread before the plot is drawn
        time.sleep(0.05)
        return real_plot(*args, **kwargs)

    monkeypatch.setattr(loop, "save_checkpoint", save_then_ctrl_c)
    monkeypatch.setattr(artifacts, "plot_loss", plot_with_second_ctrl_c)
    with pytest.raises(KeyboardInterrupt) as info:   # not only TrainingInterrupted: a regression must not stop pytest
        loop.train(tiny(), verbose=False)
    run_dir = Path(tiny().out) / "run"
    assert _assert_consistent(run_dir) == 1
    assert isinstance(info.value, loop.TrainingInterrupted), repr(info.value)
    assert json.loads((run_dir / "metrics.json").read_text())["stopped"] == "interrupted"
    metrics = json.loads((run_dir / "metrics.json").read_text())   # best epoch 0 or 1: the PCA start may win
    assert info.value.message == (f"interrupted: {run_dir} holds epochs 1..1 (best epoch {metrics['best_epoch']}, "
                                  f"val MSE {metrics['val_mse']:.6f}); continue with --resume {run_dir}")


@pytest.mark.train
def test_resume_refuses_data_replaced_since_the_run_started(tmp_path):
    """The saved config names the --data file; a different file under that name is refused with both hashes."""
    pytest.importorskip("keras")
    from aefast.train.config import RunDirError

    data = tmp_path / "images.npy"
    rng = np.random.default_rng(0)
    np.save(data, rng.integers(0, 256, (200, 8, 8), dtype=np.uint8))
    config = TrainConfig(hidden=(8,), latent=4, epochs=1, batch_size=64, xla=False, data=str(data),
                         input_shape=(8, 8), out=str(tmp_path), name="run")
    loop.train(config, verbose=False)
    first = json.loads((tmp_path / "run" / "config.json").read_text())["data_sha256"]["images.npy"]
    np.save(data, rng.integers(0, 256, (200, 8, 8), dtype=np.uint8))
    with pytest.raises(RunDirError, match=f"images.npy: sha256 {first} when the run started, now [0-9a-f]{{64}}"):
        loop.resume(tmp_path / "run", verbose=False)


@pytest.mark.train
def test_ctrl_c_in_the_first_epoch_says_only_config_json_is_there(tiny):
    keras = pytest.importorskip("keras")

    class CtrlC(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt, match="before the first epoch finished: .* holds only config.json"):
        loop.train(tiny(), verbose=False, callbacks=[CtrlC()])
    assert _assert_consistent(Path(tiny().out) / "run") == 0


def test_only_the_first_ctrl_c_raises_and_nested_blocks_share_it():
    from aefast.train.ctrl_c import ctrl_c_handled

    before = signal.getsignal(signal.SIGINT)
    with ctrl_c_handled() as outer:
        with ctrl_c_handled() as inner:
            assert inner is outer
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)   # interrupted by the handler at once
            os.kill(os.getpid(), signal.SIGINT)   # while the first one is handled: counted, not raised
        assert signal.getsignal(signal.SIGINT) == outer.handler   # the inner block left the outer's handler
    assert outer.pressed == [signal.SIGINT] * 2 and signal.getsignal(signal.SIGINT) is before


def _read_until(stream, prefix: str) -> list[str]:
    """Lines of `stream` up to and including the first that starts with `prefix` (all of them if none does)."""
    lines = []
    for line in stream:
        lines.append(line)
        if line.startswith(prefix):
            break
    return lines


@pytest.mark.train
@pytest.mark.parametrize("second", ["at-once", "while-finishing", "after-the-message"])
def test_real_ctrl_c_twice_during_a_cli_run(tmp_path, mnist_dir, second):
    """SIGINT to a real `python -m aefast.train` once it printed epoch 1, then SIGINT every 20 ms until it exits,
    starting: at once (the second lands while the first unwinds model.fit), once it says it is writing the run
    directory, or once it printed its last line (the rest land in interpreter shutdown, in TensorFlow's atexit
    callbacks and finalizers). The moments are read from the child's output, not timed. Each outcome must be 130
    or death by SIGINT, no traceback, a consistent run directory, and one that --resume finishes."""
    run_dir = tmp_path / "cli"
    proc = subprocess.Popen([sys.executable, "-u", "-m", "aefast.train", *TINY, "--epochs", "3", "--patience", "0",
                             "--data-dir", str(mnist_dir), "--out", str(tmp_path), "--name", "cli"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a shell's background job (`cmd &`) starts with SIGINT ignored, and Python then keeps
                            # ignoring it: give the child the default disposition, as a terminal would
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    err = []
    try:
        _read_until(proc.stdout, "epoch 1/3")
        proc.send_signal(signal.SIGINT)
        if second == "while-finishing":
            _read_until(proc.stdout, "interrupted: writing the run directory")
        elif second == "after-the-message":
            err = _read_until(proc.stderr, "aefast.train: interrupted")
        while proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            time.sleep(0.02)
        err = "".join(err) + proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode in (130, -signal.SIGINT), err[-2000:]
    assert "Traceback" not in err and "Exception ignored" not in err, err[-2000:]
    n = _assert_consistent(run_dir)
    assert f"holds epochs 1..{n} (best epoch" in err or "is complete" in err, err[-2000:]
    result = loop.resume(run_dir, verbose=False)
    assert result.stopped == "completed" and _assert_consistent(run_dir) == 3


def test_ctrl_c_handled_leaves_sigint_ignored_when_asked_and_restores_it_otherwise():
    """A program's entry point sets ignore_after so that no moment between the run's end and the process's exit
    (threading._shutdown, atexit callbacks) has the default handler, which would raise KeyboardInterrupt there."""
    import signal

    from aefast.train.ctrl_c import ctrl_c_handled

    before = signal.getsignal(signal.SIGINT)
    try:
        with ctrl_c_handled():
            pass
        assert signal.getsignal(signal.SIGINT) is before
        with ctrl_c_handled() as ctrl_c:
            ctrl_c.ignore_after = True
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
