"""The public Engine API: shapes, dtypes, precisions, backends, the default model, Keras agreement."""
import copy
import gzip

import numpy as np
import pytest

import aefast
from aefast.engine import api as engine_mod
from aefast.engine import available_backends
from aefast.engine.reference import random_weights, reference_forward

# Every (backend, ISA) pair the engine knows (csrc/dispatch.cpp's ISAs, then numba); one this machine or build
# lacks is skipped with its name, so the report says what ran and what did not.
ALL_BACKEND_ISAS = [("cpp", isa) for isa in ("avx512", "avx2", "scalar")] + [("numba", "numba")]


def _require(backend_isa) -> tuple[str, str]:
    if tuple(backend_isa) not in available_backends():
        pytest.skip(f"{backend_isa[0]} ISA {backend_isa[1]} is not available here (have {available_backends()})")
    return tuple(backend_isa)


FP32_TOL = 1e-4
FP16_MSE_CHANGE = 0.01   # fp16 may change the test-set MSE of the trained model by at most 1%, bf16 too ...
BF16_MSE_CHANGE = 0.01
INT8_MSE_CHANGE = 0.03   # ... and int8 by at most 3% (how close each is to the reference: test_engine_precision.py)
BATCHES = [1, 2, 3, 5, 7, 16, 17, 255, 1000, 1025]
BACKENDS = ALL_BACKEND_ISAS
ids = [f"{b}-{i}" for b, i in BACKENDS]


def _engine(backend_isa, weights, **kw):
    backend, isa = _require(backend_isa)
    return aefast.load(weights, backend=backend, isa="auto" if backend == "numba" else isa, **kw)


@pytest.fixture(scope="module")
def weights():
    return random_weights((784, 96, 12, 96, 784), seed=11)


@pytest.fixture(scope="module")
def mnist_test(mnist_dir):
    """The 10000 MNIST test images as uint8 (10000, 28, 28), read straight from the IDX file."""
    path = mnist_dir / "t10k-images-idx3-ubyte.gz"
    raw = gzip.open(path).read() if path.exists() else (mnist_dir / "t10k-images-idx3-ubyte").read_bytes()
    return np.frombuffer(raw, np.uint8, offset=16).reshape(10000, 28, 28)


@pytest.mark.parametrize("backend_isa", BACKENDS, ids=ids)
def test_all_entry_points_match_reference_on_all_batch_sizes(backend_isa, weights, mnist_test):
    eng = _engine(backend_isa, weights)
    x = mnist_test[:1025]
    flat = x.reshape(-1, 784)
    ref_codes = reference_forward(weights, flat, 0, 2, input_scale=1 / 255)
    ref_recon = reference_forward(weights, flat, input_scale=1 / 255)
    ref_score = ((ref_recon - flat / 255.0) ** 2).mean(axis=1)
    for n in BATCHES:
        codes = eng.compress(x[:n])
        assert codes.shape == (n, 12) and codes.dtype == np.float32
        assert np.abs(codes - ref_codes[:n]).max() <= FP32_TOL
        recon = eng.reconstruct(x[:n])
        assert recon.shape == (n, 784) and np.abs(recon - ref_recon[:n]).max() <= FP32_TOL
        dec = eng.decompress(ref_codes[:n])
        assert np.abs(dec - ref_recon[:n]).max() <= FP32_TOL
        assert np.abs(eng.score(x[:n]) - ref_score[:n]).max() <= FP32_TOL
    float_in = (x[:100] / np.float32(255)).astype(np.float32)
    assert np.abs(eng.reconstruct(float_in) - ref_recon[:100]).max() <= FP32_TOL


def test_single_items_and_empty_batches(weights):
    eng = aefast.load(weights, backend="numba")
    img = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    code = eng.compress(img)
    assert code.shape == (12,)
    np.testing.assert_array_equal(code, eng.compress(img.reshape(784)))
    np.testing.assert_array_equal(code, eng.compress(img[None])[0])
    assert eng.decompress(code).shape == (784,)
    assert eng.reconstruct(img).shape == (784,)
    assert np.ndim(eng.score(img)) == 0
    assert eng.compress(np.zeros((0, 28, 28), np.uint8)).shape == (0, 12)
    assert eng.decompress(np.zeros((0, 12), np.float32)).shape == (0, 784)
    assert eng.reconstruct(np.zeros((0, 784))).shape == (0, 784)
    assert eng.score(np.zeros((0, 784), np.float32)).shape == (0,)


def test_clip_clamps_reconstructions(weights):
    w = random_weights((784, 32, 8, 32, 784), seed=2, last_activation="linear")
    eng = aefast.load(w, backend="numba")
    x = np.random.default_rng(1).random((50, 784))
    raw, clipped = eng.reconstruct(x), eng.reconstruct(x, clip=True)
    assert raw.min() < 0 or raw.max() > 1, "test model should produce values outside [0, 1]"
    np.testing.assert_allclose(clipped, np.clip(raw, 0, 1), atol=1e-6)


@pytest.mark.parametrize("backend_isa", BACKENDS, ids=ids)
def test_score_is_the_error_of_the_served_clipped_reconstruction(backend_isa):
    """A linear output that overshoots [0, 1] is scored as aefast serves it (reconstruct(clip=True)), as the
    trainer's test MSE is: the float64 reference clipped, then the mean squared error per image."""
    w = random_weights((784, 32, 8, 32, 784), seed=2, last_activation="linear")
    x = np.random.default_rng(1).random((50, 784)).astype(np.float32)
    ref = reference_forward(w, x)
    assert ref.min() < -0.1 or ref.max() > 1.1, "test model should produce values well outside [0, 1]"
    want = ((np.clip(ref, 0, 1) - x) ** 2).mean(axis=1)
    assert np.abs(_engine(backend_isa, w).score(x) - want).max() <= FP32_TOL


def test_attributes_repr_and_nbytes(weights):
    engines = {p: aefast.load(weights, precision=p, backend="numba", threads=1) for p in ("fp32", "fp16", "int8")}
    e = engines["fp32"]
    assert e.layer_sizes == [784, 96, 12, 96, 784] and e.latent_size == 12 and e.threads == 1
    assert e.backend == "numba" and e.isa == "numba" and e.precision == "fp32"
    assert set(e.metadata) == {"training", "metrics", "data_sha256"}
    assert engines["fp32"].nbytes > engines["fp16"].nbytes > engines["int8"].nbytes
    for word in ("784-96-12-96-784", "fp32", "numba", "threads=1"):
        assert word in repr(e)


def test_bad_options_are_refused(weights, tmp_path):
    with pytest.raises(ValueError, match="precision"):
        aefast.load(weights, precision="int4")
    with pytest.raises(ValueError, match="backend"):
        aefast.load(weights, backend="cuda")
    with pytest.raises(ValueError, match="threads"):
        aefast.load(weights, threads=0)
    with pytest.raises(TypeError, match="path or an AutoencoderWeights"):
        aefast.load(42)
    with pytest.raises(aefast.ModelFileError, match="no such model file"):
        aefast.load(tmp_path / "missing.safetensors")


def test_cpp_backend_request_is_explained_when_unavailable(weights, monkeypatch):
    monkeypatch.setattr(engine_mod._backend, "core", None)
    monkeypatch.setattr(engine_mod._backend, "core_error", "test says so")
    with pytest.raises(RuntimeError, match="test says so"):
        aefast.load(weights, backend="cpp")
    assert aefast.load(weights, backend="auto").backend == "numba"


def test_load_from_file_keeps_metadata(weights, tmp_path):
    weights = copy.deepcopy(weights)   # the module's fixture stays as other tests expect it
    weights.metrics = {"test_mse": 0.5}
    path = aefast.save_model(tmp_path / "m.safetensors", weights, dtype="float16")
    eng = aefast.load(path, precision="fp16")
    assert eng.metadata["metrics"] == {"test_mse": 0.5} and str(path) in repr(eng)


def test_keras_predict_agrees(weights, mnist_test):
    keras_io = pytest.importorskip("aefast.keras_io")
    model = keras_io.load_keras(weights)
    x = (mnist_test[:300].reshape(-1, 784) / 255.0).astype(np.float32)
    expected = model.predict(x, verbose=0)
    for backend, isa in available_backends():
        got = _engine((backend, isa), weights).reconstruct(x)
        assert np.abs(got - expected).max() <= FP32_TOL, (backend, isa)


# --- the shipped default model ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def default_model():
    if not engine_mod.DEFAULT_MODEL_PATH.exists():
        pytest.fail(f"default model missing: {engine_mod.DEFAULT_MODEL_PATH} (the training task ships it)")
    return aefast.read_model(engine_mod.DEFAULT_MODEL_PATH)


@pytest.mark.parametrize("backend_isa", BACKENDS, ids=ids)
def test_low_precisions_keep_test_mse_of_default_model(backend_isa, default_model, mnist_test):
    mse = {p: float(_engine(backend_isa, default_model, precision=p).score(mnist_test).mean())
           for p in ("fp32", "fp16", "bf16", "int8")}
    assert abs(mse["fp16"] / mse["fp32"] - 1) <= FP16_MSE_CHANGE, mse
    assert abs(mse["bf16"] / mse["fp32"] - 1) <= BF16_MSE_CHANGE, mse
    assert abs(mse["int8"] / mse["fp32"] - 1) <= INT8_MSE_CHANGE, mse


def test_module_level_functions_use_the_default_model(default_model, mnist_test):
    eng = aefast.default_engine()
    assert eng is aefast.default_engine()
    x = mnist_test[:5]
    np.testing.assert_array_equal(aefast.compress(x), eng.compress(x))
    np.testing.assert_array_equal(aefast.decompress(eng.compress(x)), eng.decompress(eng.compress(x)))
    np.testing.assert_array_equal(aefast.reconstruct(x), eng.reconstruct(x))
    np.testing.assert_array_equal(aefast.score(x), eng.score(x))


def test_missing_default_model_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(engine_mod, "DEFAULT_MODEL_PATH", tmp_path / "nope.safetensors")
    monkeypatch.setattr(engine_mod, "_default", None)
    with pytest.raises(aefast.ModelFileError, match="default model is missing"):
        aefast.compress(np.zeros((1, 784), np.uint8))
