"""Engines pickle as weights + settings on every backend: pickle, copy.deepcopy, spawn/forkserver pools. The receiving side rebuilds its own backend Network; outputs must equal the original's bit for bit."""
import copy
import multiprocessing as mp
import pickle

import numpy as np
import pytest

import aefast
from aefast.engine.api import available_backends

BACKENDS = sorted({backend for backend, _ in available_backends()})


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, size=(37, 28, 28), dtype=np.uint8)


def _outputs(engine, images):
    return engine.compress(images), engine.reconstruct(images), engine.score(images)


def _same(a, b):
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def _reconstruct_in_child(args):
    engine, images = args
    return engine.backend, engine.precision, engine.reconstruct(images)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_pickle_and_deepcopy_round_trip(backend, precision, images):
    engine = aefast.load(aefast.engine.api.DEFAULT_MODEL_PATH, precision=precision, backend=backend, threads=1)
    for clone in (pickle.loads(pickle.dumps(engine)), copy.deepcopy(engine), copy.copy(engine)):
        assert clone is not engine and clone._net is not engine._net
        assert (clone.backend, clone.isa, clone.precision, clone.threads) == \
            (engine.backend, engine.isa, engine.precision, engine.threads)
        assert clone.layer_sizes == engine.layer_sizes and clone.metadata == engine.metadata
        _same(_outputs(clone, images), _outputs(engine, images))


def test_pickle_holds_weights_not_a_path(tmp_path, images):
    path = tmp_path / "model.safetensors"
    path.write_bytes(aefast.engine.api.DEFAULT_MODEL_PATH.read_bytes())
    engine = aefast.load(path, threads=1)
    blob = pickle.dumps(engine)
    path.unlink()  # the receiver may not have the file: the pickle must not need it
    _same(_outputs(pickle.loads(blob), images), _outputs(engine, images))
    assert len(blob) > 1_000_000  # the weights travel (1.77 M parameters, float16 storage)


def test_pickle_is_a_snapshot_of_the_weights(images):
    weights = aefast.read_model(aefast.engine.api.DEFAULT_MODEL_PATH)
    engine = aefast.Engine(weights, threads=1)
    before = _outputs(engine, images)
    weights.kernels[0][...] = 0  # the caller mutates its weights after building the Engine
    _same(_outputs(pickle.loads(pickle.dumps(engine)), images), before)


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_engines_travel_through_process_pools(method, images):
    engine = aefast.load(aefast.engine.api.DEFAULT_MODEL_PATH, precision="fp16", threads=1)
    with mp.get_context(method).Pool(1) as pool:
        backend, precision, recon = pool.map(_reconstruct_in_child, [(engine, images)])[0]
    assert (backend, precision) == (engine.backend, "fp16")
    np.testing.assert_array_equal(recon, engine.reconstruct(images))
