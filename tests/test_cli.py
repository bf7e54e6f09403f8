"""The `aefast` command: help and exit codes, compress / reconstruct / score / info on the shipped model, chunked
streaming equal to one Engine call, atomic outputs."""
import csv
import json
import subprocess
import sys

import numpy as np
import pytest

import aefast
from aefast.cli import main
from aefast.engine import Engine

COMMANDS = ["compress", "reconstruct", "score", "info", "train", "data", "bench"]


def exit_code(argv) -> int:
    """main(argv)'s exit status, whether returned or raised by argparse as SystemExit."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """(path, images): 700 random-ish uint8 28x28 images saved as .npy (no MNIST needed for the plumbing)."""
    rng = np.random.default_rng(1)
    x = (rng.random((700, 28, 28)) ** 3 * 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("cli") / "images.npy"
    np.save(path, x)
    return path, x


@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS)])
def test_help_everywhere_exits_0(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([*command, "--help"])
    assert e.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_python_dash_m_aefast_and_bad_command():
    ok = subprocess.run([sys.executable, "-m", "aefast", "--help"], capture_output=True, text=True)
    assert ok.returncode == 0 and "compress" in ok.stdout and "score" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "aefast", "frobnicate"], capture_output=True, text=True)
    assert bad.returncode == 2 and "aefast: error: argument COMMAND: invalid choice" in bad.stderr


@pytest.mark.parametrize("argv, message", [
    (["compress", "IMAGES", "--bogus", "-o", "x.npy"], "unrecognized arguments: --bogus"),
    (["compress", "IMAGES"], "the following arguments are required: -o/--output"),
    (["compress", "a", "b", "IMAGES", "-o", "x.npy"], "expected [MODEL] INPUT, got 3 paths"),
    (["compress", "IMAGES", "-o", "x.npy", "--batch-size", "0"], "expected a positive integer, got 0"),
    (["score", "IMAGES", "--top", "-3"], "expected a positive integer"),
    (["score", "no-such-model.safetensors", "IMAGES"], "no-such-model.safetensors: no such model file"),
    (["score", "no-such-images.npy"], "no-such-images.npy: no such file or folder"),
    (["reconstruct", "IMAGES", "-o", "x.npy", "--resize", "3"], "size must be HxW"),
    (["info", "IMAGES"], "IMAGES"),                                  # not a model file
])
def test_bad_usage_exits_2_naming_the_problem(argv, message, digits, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = [str(digits[0]) if a == "IMAGES" else a for a in argv]
    assert exit_code(argv) == 2
    err = capsys.readouterr().err
    assert f"aefast {argv[0]}: error:" in err and message.replace("IMAGES", str(digits[0])) in err
    assert not (tmp_path / "x.npy").exists()


def test_images_of_the_wrong_shape_are_refused(tmp_path, capsys):
    np.save(tmp_path / "small.npy", np.zeros((3, 8, 6, 3), np.uint8))
    assert exit_code(["score", str(tmp_path / "small.npy")]) == 2
    err = capsys.readouterr().err
    model = aefast.engine.DEFAULT_MODEL_PATH
    assert err == (f"aefast score: error: {tmp_path / 'small.npy'} holds 6x8 (width x height) RGB images, but "
                   f"{model} takes 28x28 (width x height) grayscale images\n")


@pytest.mark.parametrize("chunk", ["333", "4096", "1"])
def test_streamed_codes_equal_one_engine_call(digits, tmp_path, chunk):
    path, x = digits
    out = tmp_path / "codes.npy"
    assert main(["compress", str(path), "-o", str(out), "--batch-size", chunk, "--quiet"]) == 0
    codes = np.load(out)
    assert codes.dtype == np.float32 and codes.shape == (700, 100)
    np.testing.assert_array_equal(codes, aefast.compress(x))


def test_float_and_channel_last_inputs(digits, tmp_path):
    _, x = digits
    np.save(tmp_path / "f.npy", x[:50] / 255.0)                   # float64 in [0, 1]
    np.save(tmp_path / "c.npy", x[:50, :, :, None])               # (N, 28, 28, 1)
    expected = aefast.compress(x[:50] / 255.0)
    for name in ("f.npy", "c.npy"):
        assert main(["compress", str(tmp_path / name), "-o", str(tmp_path / "o.npy"), "--quiet"]) == 0
        np.testing.assert_allclose(np.load(tmp_path / "o.npy"), expected, rtol=1e-5, atol=1e-5)


def test_reconstruct_writes_images_in_their_shape(digits, tmp_path):
    """(its --png grid: tests/test_pictures.py)"""
    path, x = digits
    model = str(aefast.engine.DEFAULT_MODEL_PATH)
    assert main(["reconstruct", model, str(path), "-o", str(tmp_path / "r.npy"), "--batch-size", "256",
                 "--quiet"]) == 0
    recon = np.load(tmp_path / "r.npy")
    assert recon.shape == (700, 28, 28) and recon.dtype == np.float32
    np.testing.assert_array_equal(recon.reshape(700, -1), aefast.reconstruct(x, clip=True))
    assert main(["reconstruct", str(path), "-o", str(tmp_path / "u.npy"), "--uint8", "--quiet"]) == 0
    u8 = np.load(tmp_path / "u.npy")
    assert u8.dtype == np.uint8 and np.abs(u8 / 255.0 - recon).max() <= 0.5 / 255 + 1e-6


def test_score_ranks_the_odd_images_first(mnist_dir, tmp_path, capsys):
    """(its --png grid: tests/test_pictures.py)"""
    from aefast.data import load_mnist

    x = load_mnist(mnist_dir, dtype="uint8", flat=False).test.x[:300].copy()
    odd = [17, 150, 299]
    x[odd] = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)   # noise among digits
    np.save(tmp_path / "mixed.npy", x)
    rc = main(["score", str(tmp_path / "mixed.npy"), "--top", "3", "--csv", str(tmp_path / "s.csv"), "-o",
               str(tmp_path / "s.npy"), "--batch-size", "64"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "300 images scored" in out
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert [int(r["index"]) for r in rows[:3]] == sorted(odd, key=lambda i: -aefast.score(x[i:i + 1])[0])
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True) and len(rows) == 300
    np.testing.assert_allclose(np.load(tmp_path / "s.npy"), aefast.score(x), rtol=1e-6)


def test_info_text_and_json(capsys):
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert "784-1000-100-1000-784" in text and "28x28 (width x height) grayscale" in text and "test_mse" in text
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["input_shape"] == [28, 28] and info["latent"] == 100 and info["storage"] == ["float16"]


def test_ctrl_c_leaves_no_output_and_keeps_the_old_one(digits, tmp_path, monkeypatch, capsys):
    path, _ = digits
    out = tmp_path / "codes.npy"
    out.write_bytes(b"previous result")
    calls = []
    real = Engine.compress

    def interrupted(self, images):
        calls.append(len(images))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, images)

    monkeypatch.setattr(Engine, "compress", interrupted)
    assert main(["compress", str(path), "-o", str(out), "--batch-size", "100", "--quiet"]) == 130
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codes.npy"]   # no temp file left
    assert "interrupted" in capsys.readouterr().err


@pytest.mark.parametrize("command, usage", [(["aefast", "data"], "usage: aefast data "),
                                            (["aefast", "bench"], "usage: aefast bench "),
                                            (["aefast.data"], "usage: python -m aefast.data "),
                                            (["aefast.bench"], "usage: python -m aefast.bench ")])
def test_forwarded_commands_name_themselves_as_run(command, usage):
    run = subprocess.run([sys.executable, "-m", *command, "--help"], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.startswith(usage)


def test_aefast_data_and_bench_errors_say_aefast(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("AEFAST_DATA_DIR", raising=False)
    assert main(["data", "--data-dir", str(tmp_path / "none"), "fetch"]) == 1
    assert capsys.readouterr().err.startswith(f"aefast data: error: {tmp_path / 'none'}: MNIST data folder does "
                                              "not exist")
    pytest.importorskip("aefast.bench.contenders")
    with pytest.raises(SystemExit) as e:
        main(["bench", "--contenders", "numpy"])
    assert e.value.code == 2 and "aefast bench: error: unknown contenders ['numpy']" in capsys.readouterr().err


@pytest.mark.parametrize("argv0, expected", [("aefast", ["-m", "aefast", "bench", "--quick"]),
                                             ("python -m aefast.bench", ["-m", "aefast.bench", "--quick"])])
def test_both_bench_commands_restart_without_openblas_overrides(argv0, expected, monkeypatch):
    """`aefast bench` and `python -m aefast.bench` take the same decision: with OPENBLAS_CORETYPE set, the process
    starts again without it (os.execve is recorded, not run, so no benchmark runs)."""
    bench_main = pytest.importorskip("aefast.bench.__main__")
    calls = []

    def execve(exe, args, env):
        calls.append((args[1:], env))
        raise SystemExit(0)                       # stands for the exec: nothing after it runs

    monkeypatch.setattr(bench_main.os, "execve", execve)
    monkeypatch.setattr("aefast.bench.runner.run_benchmark", lambda config: pytest.fail("ran without restarting"))
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.delenv(bench_main.CLEARED_ENV_VAR, raising=False)
    if argv0 == "aefast":
        monkeypatch.setattr(sys, "argv", ["aefast", "bench", "--quick"])
        run = main
    else:
        monkeypatch.setattr(sys, "argv", ["__main__.py", "--quick"])
        run = bench_main.main
    with pytest.raises(SystemExit):
        run()
    (args, env), = calls
    assert args == expected and "OPENBLAS_CORETYPE" not in env
    assert json.loads(env[bench_main.CLEARED_ENV_VAR]) == {"OPENBLAS_CORETYPE": "Haswell"}
    calls.clear()
    with pytest.raises(SystemExit):               # a caller's main([...]) never replaces the caller's process
        main(["bench", "--help"])
    assert not calls


@pytest.fixture
def made_engines(monkeypatch):
    """Every Engine the CLI loads, recorded (aefast.load wrapped)."""
    made = []
    real = aefast.load

    def load(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(aefast, "load", load)
    return made


@pytest.mark.parametrize("command", ["compress", "reconstruct", "score"])
@pytest.mark.parametrize("precision", ["fp16", "bf16", "int8"])
def test_precision_and_threads_reach_the_engine(command, precision, digits, tmp_path, made_engines):
    path, x = digits
    x = x[:64]
    np.save(tmp_path / "in.npy", x)
    out = tmp_path / "out.npy"
    assert main([command, str(tmp_path / "in.npy"), "-o", str(out), "--precision", precision, "--threads", "1",
                 "--quiet"]) == 0
    (engine,), = [made_engines]
    assert (engine.precision, engine.threads) == (precision, 1)
    reference = aefast.load(aefast.engine.DEFAULT_MODEL_PATH, precision=precision, threads=1)
    expected = {"compress": lambda: reference.compress(x),
                "reconstruct": lambda: reference.reconstruct(x, clip=True).reshape(64, 28, 28),
                "score": lambda: reference.score(x)}[command]()
    np.testing.assert_array_equal(np.load(out), expected)
    fp32 = {"compress": aefast.compress, "reconstruct": lambda a: aefast.reconstruct(a, clip=True).reshape(64, 28, 28),
            "score": aefast.score}[command](x)
    # bf16 and int8 change the numbers; fp16 (half weights, fp32 math) equals fp32 on this float16-stored model
    assert np.array_equal(np.load(out), fp32) == (precision == "fp16")


@pytest.mark.parametrize("command", ["compress", "reconstruct", "score"])
def test_resize_brings_a_folder_to_the_model_size(command, tmp_path, capsys):
    from PIL import Image

    from aefast.data import open_images

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (40, 36), dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "notes.txt").write_text("not an image")
    (folder / "scan.tif").write_bytes(b"II*\x00")            # an image, but not of a kind aefast reads
    out = tmp_path / "out.npy"
    assert main([command, str(folder), "-o", str(out), "--resize", "28x28", "--quiet"]) == 0
    x = open_images(folder, resize=(28, 28)).x
    expected = {"compress": lambda: aefast.compress(x),
                "reconstruct": lambda: aefast.reconstruct(x, clip=True).reshape(5, 28, 28),
                "score": lambda: aefast.score(x)}[command]()
    np.testing.assert_array_equal(np.load(out), expected)
    err = capsys.readouterr().err
    assert err == f"note: 2 file(s) in {folder} are not .png/.jpg/.jpeg images and were not read\n"


def test_version():
    run = subprocess.run([sys.executable, "-m", "aefast", "--version"], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout == f"aefast {aefast.__version__}\n"


def test_info_on_a_named_model_file(tmp_path, capsys):
    import shutil

    model = tmp_path / "mine.safetensors"
    shutil.copyfile(aefast.engine.DEFAULT_MODEL_PATH, model)
    assert main(["info", str(model)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"model        {model} ({model.stat().st_size:,} bytes, weights float16)"
    assert lines[1] == "layers       784-1000-100-1000-784 (elu, linear, elu, sigmoid)"
    assert lines[2] == ("input        28x28 (width x height) grayscale images, input_shape (28, 28) (height, width"
                        "[, channels]), pixel_scale 255")
    assert lines[3] == "latent       100 float32 values (2 encoder layers)"
    # 784 uint8 pixels = 784 bytes -> 100 float32 = 400 bytes: 1.96x in bytes, 7.84x in values
    assert lines[4] == ("compression  1.96x in bytes: 784 uint8 pixels (784 bytes) -> 100 float32 values (400 bytes); "
                        "7.84x in values")
    assert main(["info", str(model), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["path"] == str(model) and info["compression_ratio_bytes"] == 784 / 400


def test_data_cache_dir_is_used(mnist_dir, tmp_path, capsys, monkeypatch):
    import shutil

    monkeypatch.delenv("AEFAST_DATA_DIR", raising=False)
    monkeypatch.setenv("AEFAST_CACHE_DIR", str(tmp_path / "not-this-one"))
    cache = tmp_path / "cache"
    cache.mkdir()
    for f in mnist_dir.glob("*.gz"):
        shutil.copyfile(f, cache / f.name)
    assert main(["data", "--cache-dir", str(cache), "fetch"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{key:13s} {cache / name}" for key, name in
                   (("train_images", "train-images-idx3-ubyte.gz"), ("train_labels", "train-labels-idx1-ubyte.gz"),
                    ("test_images", "t10k-images-idx3-ubyte.gz"), ("test_labels", "t10k-labels-idx1-ubyte.gz"))]
    assert not (tmp_path / "not-this-one").exists()


def test_real_sigint_during_compress_leaves_nothing(tmp_path):
    """SIGINT to a real `aefast compress` once it has started writing: exit 130, no output, no temp file. The
    input (a sparse 800 MB .npy of zeros) takes far longer to compress than the test waits."""
    import signal
    import time

    source = tmp_path / "in" / "big.npy"
    source.parent.mkdir()
    np.lib.format.open_memmap(source, mode="w+", dtype=np.uint8, shape=(1_000_000, 28, 28)).flush()
    outdir = tmp_path / "out"
    outdir.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "aefast", "compress", str(source), "-o", str(outdir / "c.npy")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a shell's background job starts with SIGINT ignored, which Python keeps: give the
                            # child the default disposition, as a terminal would
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        # The temp output gets its full size (open_memmap) inside atomic_path's cleanup scope, just before the
        # first chunk is computed: from then on the command is working and must clean up after SIGINT.
        while not any(p.stat().st_size > 0 for p in outdir.iterdir()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the command never started writing"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert err.endswith("aefast compress: interrupted; nothing was written\n")
    assert list(outdir.iterdir()) == []


def _pngs(folder, count, size=(28, 28), seed=0):
    from PIL import Image

    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (count, *size), dtype=np.uint8)
    for i, p in enumerate(pixels):
        Image.fromarray(p).save(folder / f"{i}.png")
    return pixels


def test_flat_rows_of_the_model_pixel_count_are_accepted(digits, tmp_path, capsys):
    _, x = digits
    np.save(tmp_path / "flat.npy", x[:40].reshape(40, 784))
    assert main(["compress", str(tmp_path / "flat.npy"), "-o", str(tmp_path / "c.npy"), "--quiet"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), aefast.compress(x[:40]))
    assert main(["reconstruct", str(tmp_path / "flat.npy"), "-o", str(tmp_path / "r.npy"), "--quiet"]) == 0
    assert np.load(tmp_path / "r.npy").shape == (40, 28, 28)
    np.save(tmp_path / "short.npy", x[:40].reshape(40, 784)[:, :700])
    assert exit_code(["score", str(tmp_path / "short.npy")]) == 2
    assert capsys.readouterr().err == (f"aefast score: error: {tmp_path / 'short.npy'}: images have shape (40, 700); "
                                       "expected (N, H, W) or (N, H, W, C) with C in (1, 3), or (N, 784) rows of "
                                       "the model's 784 pixels\n")


def test_a_file_that_is_not_a_model_is_named_so(digits, tmp_path, capsys):
    path, _ = digits
    assert exit_code(["info", str(path)]) == 2
    assert capsys.readouterr().err == f"aefast info: error: {path} is not an aefast model file (a safetensors file)\n"
    model = aefast.engine.DEFAULT_MODEL_PATH
    assert exit_code(["score", str(path), str(model)]) == 2               # MODEL and INPUT swapped
    assert capsys.readouterr().err == (f"aefast score: error: {path} is not an aefast model file (a safetensors "
                                       f"file); {model} is one: the order is [MODEL] INPUT\n")
    assert exit_code(["compress", str(model), "-o", str(tmp_path / "c.npy")]) == 2   # INPUT left out
    assert capsys.readouterr().err == (f"aefast compress: error: {model} is a model file, not images; expected "
                                       "[MODEL] INPUT (INPUT is missing)\n")


def test_unreadable_images_stop_or_are_skipped_and_listed(tmp_path, capsys):
    folder = tmp_path / "photos"
    pixels = _pngs(folder, 4)
    (folder / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")            # bad header
    data = (folder / "3.png").read_bytes()
    (folder / "3.png").write_bytes(data[:60] + data[-12:])                       # header fine, pixels cut off
    out = tmp_path / "s.npy"
    assert exit_code(["score", str(folder), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"aefast score: error: {folder / '1.png'}: unreadable image (") and "usage:" not in err
    assert err.count("\n") == 1 and not out.exists()
    assert main(["score", str(folder), "-o", str(out), "--skip-unreadable", "--quiet"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "skipped 2 unreadable image(s):"
    assert err[1].startswith(f"  {folder / '1.png'}: unreadable image (") and err[1].endswith(
        "expected a PNG or JPEG file")
    assert err[2].startswith(f"  {folder / '3.png'}: unreadable image (") and len(err) == 3
    np.testing.assert_array_equal(np.load(out), aefast.score(pixels[[0, 2]]))


def test_score_table_has_its_header_even_when_quiet_and_the_csv_columns(digits, tmp_path, capsys):
    path, x = digits
    assert main(["score", str(path), "--top", "2", "--quiet", "--csv", str(tmp_path / "s.csv")]) == 0
    lines = capsys.readouterr().out.splitlines()
    scores = aefast.score(x)
    worst = np.argsort(-scores, kind="stable")[:2]
    assert lines[0].split() == (tmp_path / "s.csv").read_text().splitlines()[0].split(",")
    assert lines == ["rank    index  name         score",
                     *(f"{r:>4}  {int(i):>7}  {'#' + str(i):<4}  {scores[i]:>12.6g}" for r, i in enumerate(worst, 1))]


def test_data_doc_examples_run(tmp_path, monkeypatch):
    """The Python blocks of docs/data.md's "Your own images" section, run on a small folder and arrays."""
    import re
    from pathlib import Path

    doc = (Path(__file__).parents[1] / "docs" / "data.md").read_text()
    section = doc[doc.index("## Your own images"):]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks and "split_indices(" in blocks[0]
    monkeypatch.chdir(tmp_path)
    _pngs(tmp_path / "photos", 30, size=(40, 36))
    rng = np.random.default_rng(1)
    np.save("train.npy", rng.integers(0, 256, (30, 8, 8), dtype=np.uint8))
    np.save("test.npy", rng.integers(0, 256, (5, 8, 8), dtype=np.uint8))
    for block in blocks:
        exec(compile(block, "docs/data.md", "exec"), {})


def test_readme_lists_every_file_a_run_writes():
    """README's "Models" line names each file the trainer writes into runs/<name>/ (that it writes exactly these:
    test_train.py::RUN_FILES)."""
    import re
    from pathlib import Path

    from aefast.train import artifacts, checkpoint, loop

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    line = re.search(r"- \*\*Models\*\*: (.*?)\n- ", readme, re.S).group(1)
    written = {loop.MODEL_NAME, artifacts.CONFIG_NAME, artifacts.HISTORY_NAME, artifacts.METRICS_NAME,
               artifacts.LOSS_PLOT_NAME, artifacts.RECONSTRUCTIONS_NAME, checkpoint.CHECKPOINT_NAME}
    assert "checkpoint.npz" in written
    assert {name for name in written if f"`{name}`" not in line} == set()
