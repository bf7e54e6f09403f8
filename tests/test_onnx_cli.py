"""`aefast import | export` and the inference commands on an .onnx MODEL (graphs built in the tests)."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

import aefast  # noqa: E402
from aefast.cli import main  # noqa: E402
from aefast.engine.reference import random_weights  # noqa: E402
from aefast.model import read_model  # noqa: E402


@pytest.fixture()
def onnx_file(tmp_path):
    """An .onnx autoencoder 16-6-3-6-16 (ELU / sigmoid, which this engine build runs) with a flat input."""
    w = random_weights((16, 6, 3, 6, 16), seed=4)
    path = tmp_path / "m.onnx"
    model = aefast.interop.onnx_model(w)
    del model.metadata_props[:]   # as another tool writes it: no aefast metadata
    path.write_bytes(model.SerializeToString())
    return path, w


def test_import_writes_a_model_file_with_shape_latent_and_calibration(tmp_path, onnx_file, capsys):
    path, w = onnx_file
    images = (np.random.default_rng(0).random((50, 4, 4)) * 255).astype(np.uint8)
    np.save(tmp_path / "train.npy", images)
    out = tmp_path / "m.safetensors"
    assert main(["import", str(path), "-o", str(out), "--input-shape", "4x4", "--latent-layer", "0",
                 "--calibrate", str(tmp_path / "train.npy")]) == 0
    assert "wrote" in capsys.readouterr().out
    got = read_model(out)
    assert got.input_shape == (4, 4) and got.encoder_layers == 1 and got.input_means is not None
    for a, b in zip(got.kernels, w.kernels):
        assert np.array_equal(a, b)
    x = images[:7]
    assert np.array_equal(aefast.load(got).reconstruct(x), aefast.load(w).reconstruct(x))


def test_import_default_code_layer_and_refusals(tmp_path, onnx_file, capsys):
    path, _ = onnx_file
    out = tmp_path / "m.safetensors"
    assert main(["import", str(path), "-o", str(out)]) == 0
    assert read_model(out).encoder_layers == 2 and read_model(out).input_shape == (16,)
    for argv, message in (
            (["import", str(path), "-o", str(tmp_path / "x.onnx")], "names an .onnx file"),
            (["import", str(path), "-o", str(out), "--input-shape", "3x3"], "input_shape (3, 3) does not hold"),
            (["import", str(path), "-o", str(out), "--latent-layer", "3"], "latent_layer must be a layer index"),
            (["import", str(path), "-o", str(out), "--input-shape", "4xq"], "expected HxW, HxWxC or a width"),
            (["import", str(tmp_path / "none.onnx"), "-o", str(out)], "no such model file")):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        assert message in capsys.readouterr().err


@pytest.mark.parametrize("part", ["full", "encoder", "decoder"])
def test_export_parts_run_in_onnx_runtime(tmp_path, onnx_file, part):
    ort = pytest.importorskip("onnxruntime")
    path, w = onnx_file
    out = tmp_path / f"{part}.onnx"
    assert main(["export", str(path), "-o", str(out), "--part", part]) == 0
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    engine = aefast.load(w)
    x = np.random.default_rng(1).random((5, 16), dtype=np.float32)
    feed = engine.compress(x) if part == "decoder" else x
    got = sess.run(None, {sess.get_inputs()[0].name: feed})[0]
    expect = {"full": engine.reconstruct, "encoder": engine.compress, "decoder": engine.decompress}[part](feed)
    assert np.sqrt(np.mean((got - expect) ** 2)) <= 1e-5 * np.sqrt(np.mean(expect ** 2))


def test_compress_takes_an_onnx_model(tmp_path, onnx_file):
    path, w = onnx_file
    x = np.random.default_rng(2).random((9, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x.reshape(9, 4, 4))
    assert main(["compress", str(path), str(tmp_path / "x.npy"), "-o", str(tmp_path / "c.npy"), "--quiet"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), aefast.load(w).compress(x))


@pytest.mark.parametrize("command", ["import", "export"])
def test_help_exits_0(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0 and "usage: aefast " + command in capsys.readouterr().out


def test_import_calibrate_with_no_images_exits_2_and_writes_nothing(tmp_path, onnx_file, capsys):
    path, _ = onnx_file
    np.save(tmp_path / "none.npy", np.zeros((0, 4, 4), np.uint8))
    with pytest.raises(SystemExit) as e:
        main(["import", str(path), "-o", str(tmp_path / "m.safetensors"), "--input-shape", "4x4",
              "--calibrate", str(tmp_path / "none.npy")])
    assert e.value.code == 2 and "none.npy" in capsys.readouterr().err
    assert not (tmp_path / "m.safetensors").exists()


def test_export_float16_halves_the_kernels(tmp_path, onnx_file):
    path, w = onnx_file
    full, half = tmp_path / "full.onnx", tmp_path / "half.onnx"
    assert main(["export", str(path), "-o", str(full)]) == 0
    assert main(["export", str(path), "-o", str(half), "--dtype", "float16"]) == 0

    def kernel_bytes(p):
        return sum(len(t.raw_data) for t in onnx.load(p).graph.initializer if t.name.endswith(".kernel"))

    assert kernel_bytes(full) == 4 * sum(k.size for k in w.kernels) == 2 * kernel_bytes(half)


def test_export_float16_of_weights_beyond_its_range_exits_2(tmp_path, capsys):
    w = random_weights((16, 6, 3, 6, 16), seed=4)
    w.kernels[0] = w.kernels[0] * np.float32(1e6)
    aefast.save_model(tmp_path / "big.safetensors", w)
    with pytest.raises(SystemExit) as e:
        main(["export", str(tmp_path / "big.safetensors"), "-o", str(tmp_path / "h.onnx"), "--dtype", "float16"])
    assert e.value.code == 2 and "beyond the float16 range" in capsys.readouterr().err
    assert not (tmp_path / "h.onnx").exists()
