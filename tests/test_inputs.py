"""Property tests: any images/codes either give the float64-reference answer or a clear ValueError/TypeError,
and the caller's array is never modified (aefast/engine/inputs.py documents what is accepted)."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aefast
from aefast.engine.reference import random_weights, reference_forward

PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TOL = 1e-4
LATENT = 6
FLOATS = ["float16", "float32", "float64"]
REJECTED = ["bool", "int8", "int16", "int32", "int64", "uint16", "uint32", "complex64", "complex128", "object"]
IMAGE_SHAPES = {"batch-flat": (None, 784), "batch-2d": (None, 28, 28), "one-flat": (784,), "one-2d": (28, 28)}
BAD_SHAPES = [(3, 783), (2, 28, 27), (), (2, 1, 784), (784, 1), (3, 28)]
LAYOUTS = ["c", "fortran", "strided", "reversed", "readonly"]


@pytest.fixture(scope="module")
def engine_and_weights():
    w = random_weights((784, 20, LATENT, 20, 784), seed=7)
    return aefast.load(w, backend="numba"), w


def _layout(a: np.ndarray, layout: str) -> np.ndarray:
    if layout == "fortran":
        return np.asfortranarray(a)
    if layout == "strided" and a.ndim:
        return np.repeat(a, 2, axis=-1)[..., ::2]
    if layout == "reversed" and a.ndim:
        return a[::-1]
    if layout == "readonly":
        a = a.copy()
        a.flags.writeable = False
    return a


def _typed(unit: np.ndarray, dtype: str) -> np.ndarray:
    """unit: float64 in [0, 1] -> the same picture in `dtype` (integers as 0..255, bool as a threshold)."""
    if dtype.startswith(("int", "uint")):
        return np.asarray(np.rint(unit * (127 if dtype == "int8" else 255)), dtype=dtype)
    if dtype == "bool":
        return np.asarray(unit > 0.5)
    return np.asarray(unit, dtype=dtype)


def _poison(a: np.ndarray, value: str, rng) -> np.ndarray:
    if value == "ok" or a.size == 0:
        return a
    a = a.copy()
    a.flat[rng.integers(a.size)] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "big": 255.0,
                                    "negative": -0.5, "slightly-over": 1.0005}[value]
    return a


@PROPERTY
@given(shape=st.sampled_from(sorted(IMAGE_SHAPES) + [str(s) for s in BAD_SHAPES]),
       n=st.sampled_from([0, 1, 2, 5, 17]),
       dtype=st.sampled_from(["uint8"] + FLOATS + REJECTED),
       layout=st.sampled_from(LAYOUTS),
       value=st.sampled_from(["ok", "ok", "nan", "inf", "-inf", "big", "negative", "slightly-over"]),
       seed=st.integers(0, 2**32 - 1))
def test_images_give_reference_answer_or_clear_error(engine_and_weights, shape, n, dtype, layout, value, seed):
    eng, w = engine_and_weights
    rng = np.random.default_rng(seed)
    dims = IMAGE_SHAPES[shape] if shape in IMAGE_SHAPES else eval(shape)
    dims = tuple(n if d is None else d for d in dims)
    a = _typed(rng.random(dims), dtype)
    if dtype in FLOATS:
        a = _poison(a, value, rng)
    a = _layout(a, layout)
    before = a.copy()

    floats_ok = dtype in FLOATS and (value in ("ok", "slightly-over") or a.size == 0)
    accepted = (dtype == "uint8" or floats_ok) and shape in IMAGE_SHAPES
    if not accepted:
        expected = TypeError if dtype not in ["uint8"] + FLOATS else ValueError
        with pytest.raises(expected) as info:
            eng.reconstruct(a)
        assert len(str(info.value)) > 20   # a sentence, not a bare type name
    else:
        got = eng.reconstruct(a)
        flat = np.asarray(a, np.float64).reshape(-1, 784)
        ref = reference_forward(w, flat, input_scale=1 / 255 if dtype == "uint8" else 1.0)
        single = shape.startswith("one")
        assert got.shape == ((784,) if single else (n, 784)) and got.dtype == np.float32
        assert np.abs(got.reshape(-1, 784) - ref).max(initial=0) <= TOL
    np.testing.assert_array_equal(a, before)
    assert a.flags.writeable == (layout != "readonly")


@PROPERTY
@given(width=st.sampled_from([LATENT, LATENT - 1, LATENT + 1]),
       single=st.booleans(), n=st.sampled_from([0, 1, 3, 65]),
       dtype=st.sampled_from(FLOATS + ["int32", "bool", "complex64", "object"]),
       layout=st.sampled_from(LAYOUTS),
       value=st.sampled_from(["ok", "ok", "nan", "inf", "big"]),
       seed=st.integers(0, 2**32 - 1))
def test_codes_give_reference_answer_or_clear_error(engine_and_weights, width, single, n, dtype, layout, value,
                                                    seed):
    eng, w = engine_and_weights
    rng = np.random.default_rng(seed)
    c = (rng.standard_normal((width,) if single else (n, width)) * 3).astype(dtype)
    if dtype in FLOATS:
        c = _poison(c, value, rng)
    c = _layout(c, layout)
    before = c.copy()
    if dtype not in FLOATS:
        with pytest.raises(TypeError, match="float"):
            eng.decompress(c)
    elif width != LATENT or (value in ("nan", "inf") and c.size):
        with pytest.raises(ValueError):
            eng.decompress(c)
    else:
        got = eng.decompress(c)
        ref = reference_forward(w, np.asarray(c, np.float64).reshape(-1, LATENT), 2, 4)
        assert np.abs(got.reshape(-1, 784) - ref).max(initial=0) <= TOL
    np.testing.assert_array_equal(c, before)


def test_error_messages_say_what_is_expected(engine_and_weights):
    eng, _ = engine_and_weights
    with pytest.raises(ValueError, match=r"\(N, 28, 28\).*\(N, 784\)|\(N, 784\).*\(N, 28, 28\)"):
        eng.compress(np.zeros((2, 783), np.uint8))
    with pytest.raises(ValueError, match="divide by 255"):
        eng.compress(np.full((1, 784), 200.0))
    with pytest.raises(ValueError, match="NaN"):
        eng.score(np.full((1, 784), np.nan, np.float32))
    with pytest.raises(TypeError, match="uint8"):
        eng.compress(np.zeros((1, 784), np.int64))
    with pytest.raises(ValueError, match=f"\\(N, {LATENT}\\)"):
        eng.decompress(np.zeros((1, LATENT + 1), np.float32))
    with pytest.raises(TypeError, match="array"):
        eng.compress([[0.0] * 784, [0.0] * 3])


def test_nested_lists_of_floats_are_accepted(engine_and_weights):
    eng, _ = engine_and_weights
    img = np.random.default_rng(0).random(784)
    np.testing.assert_array_equal(eng.compress(img.tolist()), eng.compress(img))


def _outcome(fn, images):
    """(array, single) or (error type, message) from one checker call."""
    try:
        x, single = fn(images)
        return "ok", x.copy(), single
    except (TypeError, ValueError) as e:
        return type(e).__name__, str(e), None


FAST_PATH_CASES = {  # every value edge the min/max range check must catch, in the arrays the fast path takes
    "ok": lambda a: a, "zero-rows": lambda a: a[:0], "nan-first": lambda a: _set(a, 0, np.nan),
    "nan-last": lambda a: _set(a, -1, np.nan), "nan-middle": lambda a: _set(a, a.size // 2 + 3, np.nan),
    "all-nan": lambda a: np.full_like(a, np.nan), "inf": lambda a: _set(a, 7, np.inf),
    "-inf": lambda a: _set(a, 9, -np.inf), "nan-and-inf": lambda a: _set(_set(a, 1, np.inf), 2, np.nan),
    "at-tolerance": lambda a: _set(_set(a, 3, 1 + 1e-3), 4, -1e-3), "over": lambda a: _set(a, 5, 1.0011),
    "under": lambda a: _set(a, 6, -0.0011), "big": lambda a: a * 255,
}


def _set(a: np.ndarray, index: int, value: float) -> np.ndarray:
    a = a.copy()
    a.flat[index] = value
    return a


@pytest.mark.parametrize("case", sorted(FAST_PATH_CASES))
@pytest.mark.parametrize("shape", [(1, 784), (16, 784), (784,), (3, 28, 28), (28, 28)])
@pytest.mark.parametrize("dtype", ["float32", "uint8", ">f4", "float64"])
def test_image_batcher_matches_image_batch_exactly(case, shape, dtype):
    """The engine's fast checker accepts exactly what image_batch accepts, with the same array, and otherwise
    raises image_batch's own error (NaN/inf: 'NaN or infinite', out of range: 'in [0, 1]')."""
    from aefast.engine.inputs import ImageBatcher, image_batch
    unit = np.random.default_rng(3).random(shape).astype(np.float32)
    images = FAST_PATH_CASES[case](unit)
    if dtype == "uint8":
        images = np.nan_to_num(images, nan=0, posinf=255, neginf=0).clip(0, 255).astype(np.uint8)
    else:
        images = images.astype(dtype)
    before = images.copy()
    fast = _outcome(ImageBatcher((28, 28)), images)
    slow = _outcome(lambda a: image_batch(a, (28, 28)), images)
    assert fast[0] == slow[0] and fast[2] == slow[2]
    if fast[0] == "ok":
        np.testing.assert_array_equal(fast[1], slow[1])
        assert fast[1].dtype == slow[1].dtype and fast[1].flags.c_contiguous
    else:
        assert fast[1] == slow[1]
        if "nan" in case or "inf" in case:
            assert "NaN or infinite" in fast[1]
    np.testing.assert_array_equal(images, before)


def test_image_batcher_returns_the_callers_array_without_copying():
    from aefast.engine.inputs import ImageBatcher
    x = np.random.default_rng(0).random((4, 784)).astype(np.float32)
    x.flags.writeable = False
    got, single = ImageBatcher((28, 28))(x)
    assert got is x and not single
    got, single = ImageBatcher((28, 28))(x[0])
    assert np.shares_memory(got, x) and got.shape == (1, 784) and single


def test_image_batcher_reads_a_1_by_784_array_as_a_batch_even_for_input_shape_1_by_784():
    """input_shape (1, 784): (N, 784) is a batch of N for every N, N = 1 included (reading N = 1 as ONE
    image would drop the batch axis for that N only); image_batch and the fast path agree; (784,) is one image."""
    from aefast.engine.inputs import ImageBatcher, image_batch
    for dtype in (np.float32, np.uint8, np.float64):
        for n in (1, 2):
            x = np.zeros((n, 784), dtype)
            assert ImageBatcher((1, 784))(x)[1] is False is image_batch(x, (1, 784))[1]
        assert ImageBatcher((1, 784))(np.zeros(784, dtype))[1] is True is image_batch(np.zeros(784, dtype), (1, 784))[1]


def test_float64_codes_beyond_float32_and_float32_extremes_are_refused(engine_and_weights):
    eng, _ = engine_and_weights
    with pytest.raises(ValueError, match="overflow float32"):
        eng.decompress(np.full((2, LATENT), 1e39))
    biggest = np.full((1, LATENT), np.finfo(np.float32).max, np.float32)
    # Codes beyond Engine.max_code, where the decoder could overflow (inf * 0 -> NaN in a sigmoid), are a ValueError on
    # every backend (tests/test_reliability_engine.py).
    for c in (biggest, biggest.astype(np.float64)):
        with pytest.raises(ValueError, match="provably stays within float32"):
            eng.decompress(c)


def test_core_float_range_agrees_with_numpy_and_propagates_nan():
    core = pytest.importorskip("aefast._core")
    rng = np.random.default_rng(0)
    for shape in ((1, 784), (3, 17), (64, 1), (1, 1)):
        x = rng.standard_normal(shape).astype(np.float32)
        assert core.float_range(x) == (float(x.min()), float(x.max()))
        for bad, want in ((np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")):
            y = x.copy()
            y.flat[rng.integers(y.size)] = bad
            lo, hi = core.float_range(y)
            if want == "nan":
                assert np.isnan(lo) and np.isnan(hi)
            else:
                assert (lo, hi) == (float(y.min()), float(y.max()))
    assert core.float_range(np.empty((0, 5), np.float32)) == (np.inf, -np.inf)
    with pytest.raises(TypeError, match="float32"):
        core.float_range(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="C-contiguous"):
        core.float_range(np.zeros((4, 4), np.float32)[:, ::2])
