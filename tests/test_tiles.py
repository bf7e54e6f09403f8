"""Register tile choice for int8 (q8): results never depend on the tile; the choice (pinned, built-in, measured and
cached) is made and stored as aefast/engine/tiles.py says, and cache trouble never breaks a load.

The kernels themselves (every tile through its M/N/K edges against the scalar twin) are in test_microkernels.py.
The suite runs with AEFAST_TILES=builtin (conftest.py); tests here that need "auto" point AEFAST_CACHE_DIR at a
temporary folder and pass a counting stand-in for _core, so they can tell a measurement from a cache read.
"""
from __future__ import annotations

import json
import pickle
import warnings

import numpy as np
import pytest

core = pytest.importorskip("aefast._core")

import aefast  # noqa: E402
from aefast.engine import tiles as T  # noqa: E402
from aefast.model.weights import AutoencoderWeights  # noqa: E402


def usable_q8_tile_kernels():
    """(isa level, q8 kernel) pairs whose kernel has a tile choice and runs here."""
    pairs = []
    for isa in core.isas():
        kernel = core.kernel_for(isa, "q8")
        if len(core.tile_names("q8", kernel)) > 1:
            pairs.append((isa, kernel))
    return pairs


def small_model(seed=0, sizes=(40, 37, 9, 37, 40)) -> AutoencoderWeights:
    rng = np.random.default_rng(seed)
    kernels = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32) for a, b in zip(sizes[:-1], sizes[1:])]
    biases = [(0.1 * rng.standard_normal(b)).astype(np.float32) for b in sizes[1:]]
    acts = ["elu"] * (len(kernels) - 1) + ["sigmoid"]
    return AutoencoderWeights(kernels, biases, acts, len(kernels) // 2, (sizes[0],), pixel_scale=1.0).validate("t")


class CountingCore:
    """_core with _time_tiles counted as (kernel, k, n) (and the CPU's feature flags optionally replaced)."""

    def __init__(self, features=None):
        self.timed = []
        self._features = features

    def __getattr__(self, name):
        return getattr(core, name)

    def cpu_features(self):
        return dict(core.cpu_features()) if self._features is None else self._features

    def _time_tiles(self, precision, kernel, k, n, rows, rounds):
        self.timed.append((kernel, k, n) if precision == "q8" else (precision, kernel, k, n))
        return core._time_tiles(precision, kernel, k, n, rows, 1)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private cache folder and a clean in-process memo."""
    monkeypatch.setenv("AEFAST_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(T, "_memo", {})
    return tmp_path / "tiles"


needs_tiles = pytest.mark.skipif(not usable_q8_tile_kernels(), reason="no q8 kernel with a tile choice runs here")


# ---- results are identical across tiles --------------------------------------------------------------------------
@needs_tiles
@pytest.mark.parametrize("isa, kernel", usable_q8_tile_kernels())
def test_network_outputs_are_bit_identical_across_every_tile(isa, kernel):
    rng = np.random.default_rng(3)
    w = small_model(1, (784, 1000, 100, 1000, 784))
    from aefast.engine.precisions import backend_layers

    assert_networks_agree_across_tiles(rng, backend_layers(w, "int8"), isa, kernel, core.tile_names("q8", kernel),
                                       (1, 7, 37, 200))


def assert_networks_agree_across_tiles(rng, layers, isa, kernel, names, batches):
    """Networks of `layers` with every tile of `names` give the bits of names[0]'s, threads 1 and 2."""
    width = layers[0]["weight"].shape[0]
    for threads in (1, 2):
        ref_net = core.Network([dict(layer, tile=names[0]) for layer in layers], isa=isa, threads=threads)
        for batch in batches:
            x = rng.random((batch, width), dtype=np.float32)
            ref = np.full((batch, layers[-1]["weight"].shape[1]), np.nan, np.float32)
            ref_net.forward(x, ref)
            for tile in names[1:]:
                net = core.Network([dict(layer, tile=tile) for layer in layers], isa=isa, threads=threads)
                assert net.tiles == [tile] * len(layers) and net.kernel == kernel
                out = np.full_like(ref, np.nan)
                net.forward(x, out)
                np.testing.assert_array_equal(out.view(np.uint32), ref.view(np.uint32),
                                              err_msg=f"{kernel} {tile} vs {names[0]} batch {batch} threads {threads}")


@needs_tiles
def test_engines_with_pinned_builtin_and_measured_tiles_agree_bit_for_bit(cache):
    w = small_model(2)
    x = np.random.default_rng(4).random((50, 40), dtype=np.float32)
    isa, kernel = usable_q8_tile_kernels()[0]
    outs = {}
    for tiles in ["builtin", "auto", *core.tile_names("q8", kernel)]:
        e = aefast.load(w, precision="int8", isa=isa, tiles=tiles)
        assert e.kernel == kernel and len(e.tiles) == 4
        outs[tiles] = e.reconstruct(x)
        if tiles not in T.MODES:
            assert e.tiles == [tiles] * 4
    for tiles, out in outs.items():
        np.testing.assert_array_equal(out.view(np.uint32), outs["builtin"].view(np.uint32), err_msg=tiles)


def test_fp32_engines_have_no_tile_choice():
    e = aefast.load(small_model(), precision="fp32", tiles="8x32")   # ignored: no layer with a tile choice
    assert e.tiles == [""] * 4


# ---- validation ----------------------------------------------------------------------------------------------------
def test_network_refuses_an_unknown_tile_naming_the_valid_ones():
    layers = [{"weight": np.ones((8, 4), np.int8), "scale": np.ones(4, np.float32), "bias": np.zeros(4, np.float32),
               "activation": "linear", "compute": "q8", "tile": "99x99"}]
    kernel = core.kernel_for("auto", "q8")
    with pytest.raises(ValueError) as info:
        core.Network(layers)
    assert "unknown tile '99x99'" in str(info.value)
    assert ", ".join(core.tile_names("q8", kernel)) in str(info.value)
    with pytest.raises(TypeError, match="must be a str"):
        core.Network([dict(layers[0], tile=8)])
    f32 = {"weight": np.ones((8, 4), np.float32), "bias": np.zeros(4, np.float32), "activation": "linear",
           "tile": "8x32"}
    with pytest.raises(ValueError, match=r'\["tile"\] is for q8, bf16 and f16-weight layers only'):
        core.Network([f32])


@needs_tiles
def test_engine_refuses_a_tile_the_running_kernel_lacks():
    isa, kernel = usable_q8_tile_kernels()[0]
    with pytest.raises(ValueError) as info:
        aefast.load(small_model(), precision="int8", isa=isa, tiles="1x1")
    assert f"not a tile of the {kernel} int8 kernel" in str(info.value)
    assert ", ".join(core.tile_names("q8", kernel)) in str(info.value)


@pytest.mark.parametrize("bad", ["fa-st", "8x 32", "avx512vnni:", "avx512vnni:8x32,oops", "", "q8:8x32:1"])
def test_bad_tile_settings_are_refused_from_the_argument_and_the_environment(bad, monkeypatch):
    with pytest.raises(ValueError, match=r"tiles is .*expected 'auto'"):
        T.setting_from(bad)
    monkeypatch.setenv("AEFAST_TILES", bad or "x-y")
    with pytest.raises(ValueError, match=r"AEFAST_TILES is .*expected 'auto'"):
        aefast.load(small_model(), precision="int8")
    with pytest.raises(TypeError, match="tiles must be a str"):
        T.setting_from(8)


def test_setting_precedence(monkeypatch):
    monkeypatch.delenv("AEFAST_TILES", raising=False)
    assert T.setting_from(None) == "auto"
    monkeypatch.setenv("AEFAST_TILES", "6x32")
    assert T.setting_from(None) == "6x32"
    assert T.setting_from("builtin") == "builtin"
    assert T.setting_from("avx512vnni:6x32, avxvnni:4x16") == "avx512vnni:6x32, avxvnni:4x16"


@needs_tiles
def test_per_kernel_pins_apply_to_their_kernel_only():
    isa, kernel = usable_q8_tile_kernels()[0]
    other = core.tile_names("q8", kernel)[-1]
    assert T.choose(core, kernel, [(40, 37)], f"{kernel}:{other}") == [other]
    assert T.choose(core, kernel, [(40, 37)], f"nokernel:{other}") == [T.builtin_tile(core, kernel)]


def test_builtin_table_names_real_tiles_and_falls_back_to_the_family_default():
    for (vendor, family, model), choice in T.BUILTIN.items():
        for key, tile in choice.items():
            precision, _, kernel = key.rpartition(":")
            assert tile in core.tile_names(precision or "q8", kernel), (vendor, family, model, key, tile)

    class Zen5(CountingCore):
        def cpu_identity(self):
            return {"vendor": "AuthenticAMD", "family": 26, "model": 2}

    class Unknown(CountingCore):
        def cpu_identity(self):
            return {"vendor": "Other", "family": 1, "model": 1}

    assert T.builtin_tile(Zen5(), "avx512vnni") == "6x32"
    assert T.builtin_tile(Zen5(), "avxvnni") == "6x16"
    assert T.builtin_tile(Unknown(), "avx512vnni") == "8x32"


# ---- measurement and the cache -------------------------------------------------------------------------------------
@needs_tiles
def test_auto_measures_once_then_reads_the_cache(cache):
    isa, kernel = usable_q8_tile_kernels()[0]
    c = CountingCore()
    shapes = [(40, 37), (37, 9)]
    first = T.choose(c, kernel, shapes, "auto")
    assert c.timed == [(kernel, 40, 37), (kernel, 37, 9)]
    files = list(cache.iterdir())
    assert len(files) == 1 and not [f for f in cache.iterdir() if f.name.startswith(".")]   # no temp file left
    ident = core.cpu_identity()
    assert files[0].name.startswith(f"{ident['vendor']}-{ident['family']}-{ident['model']}-")
    data = json.loads(files[0].read_text())
    assert data["cpu"] == T.cpu_key(core)
    entry = data["entries"][T.entry_key(kernel, 40, 37)]
    assert entry["tiles"] == core.tile_names("q8", kernel) and entry["choice"] == first[0]
    assert entry["choice"] == min(entry["seconds"], key=entry["seconds"].get)

    T._memo.clear()
    c2 = CountingCore()
    assert T.choose(c2, kernel, shapes, "auto") == first and c2.timed == []       # read from the file
    assert T.choose(c2, kernel, shapes + [(9, 37)], "auto")[:2] == first
    assert c2.timed == [(kernel, 9, 37)]                                          # only the new shape measured
    assert len(json.loads(files[0].read_text())["entries"]) == 3


@needs_tiles
def test_the_cache_key_holds_the_feature_flags(cache):
    isa, kernel = usable_q8_tile_kernels()[0]
    T.choose(CountingCore(), kernel, [(40, 37)], "auto")
    fewer = {name: False for name in core.cpu_features()}
    fewer.update({name: True for name in ("avx2", "fma", "f16c")})
    other = CountingCore(features=fewer)
    T._memo.clear()
    T.choose(other, kernel, [(40, 37)], "auto")
    assert other.timed == [(kernel, 40, 37)]   # another CPU key: its own file, measured again
    assert len(list(cache.iterdir())) == 2


@needs_tiles
@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b"[]", b'{"format": 1, "cpu": {}, "entries": {}}',
                                     None])
def test_a_corrupt_cache_file_warns_is_measured_again_and_rewritten(cache, content):
    isa, kernel = usable_q8_tile_kernels()[0]
    T.choose(CountingCore(), kernel, [(40, 37)], "auto")
    (path,) = cache.iterdir()
    if content is None:   # a well-formed file whose entry names a tile outside its list
        data = json.loads(path.read_text())
        data["entries"][T.entry_key(kernel, 40, 37)]["choice"] = "0x0"
        content = json.dumps(data).encode()
    path.write_bytes(content)
    T._memo.clear()
    c = CountingCore()
    with pytest.warns(RuntimeWarning, match="tile cache .* (corrupt|unreadable)"):
        (tile,) = T.choose(c, kernel, [(40, 37)], "auto")
    assert tile in core.tile_names("q8", kernel) and c.timed == [(kernel, 40, 37)]
    assert json.loads(path.read_text())["entries"][T.entry_key(kernel, 40, 37)]["choice"] == tile


@needs_tiles
def test_an_unwritable_cache_warns_and_the_load_still_works(cache, tmp_path):
    isa, kernel = usable_q8_tile_kernels()[0]
    cache.parent.mkdir(exist_ok=True)
    cache.write_text("a file where the cache folder should be")
    with pytest.warns(RuntimeWarning) as record:
        e = aefast.load(small_model(), precision="int8", isa=isa, tiles="auto")
    messages = " ".join(str(r.message) for r in record)
    assert "unreadable" in messages and "could not write the tile cache" in messages
    assert all(t in core.tile_names("q8", kernel) for t in e.tiles)
    # Measured this process: the memo answers the next load without a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert aefast.load(small_model(), precision="int8", isa=isa, tiles="auto").tiles == e.tiles


@needs_tiles
def test_a_cache_path_that_is_a_folder_is_unreadable_not_fatal(cache):
    isa, kernel = usable_q8_tile_kernels()[0]
    path = T.cache_path(T.cpu_key(core))
    path.mkdir(parents=True)
    with pytest.warns(RuntimeWarning) as record:
        (tile,) = T.choose(CountingCore(), kernel, [(40, 37)], "auto")
    messages = " ".join(str(r.message) for r in record)
    assert "unreadable" in messages and "could not write" in messages
    assert tile in core.tile_names("q8", kernel)


@needs_tiles
def test_pickled_and_forked_engines_keep_their_tiles():
    isa, kernel = usable_q8_tile_kernels()[0]
    tile = core.tile_names("q8", kernel)[-1]
    e = aefast.load(small_model(), precision="int8", isa=isa, tiles=tile)
    e2 = pickle.loads(pickle.dumps(e))
    assert e2.tiles == e.tiles == [tile] * 4
    x = np.random.default_rng(5).random((9, 40), dtype=np.float32)
    np.testing.assert_array_equal(e2.reconstruct(x), e.reconstruct(x))


# ---- aefast tune ---------------------------------------------------------------------------------------------------
@needs_tiles
def test_aefast_tune_measures_every_tile_prints_the_table_and_writes_the_cache(cache, capsys):
    from aefast.cli import main
    from aefast.engine import DEFAULT_MODEL_PATH

    kernel = core.kernel_for("auto", "q8")
    assert main(["tune", "--rounds", "1", "--precision", "int8"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert f"int8 kernel {kernel}" in out and "784x1000" in out and "100x1000" in out
    assert "bf16 kernel" not in out and "fp16 kernel" not in out
    for tile in core.tile_names("q8", kernel):
        assert any(line.startswith(f"{tile} ") for line in lines), tile
    (path,) = cache.iterdir()
    entries = json.loads(path.read_text())["entries"]
    sizes = aefast.load(DEFAULT_MODEL_PATH).layer_sizes
    assert set(entries) == {T.entry_key(kernel, k, n) for k, n in zip(sizes[:-1], sizes[1:])}
    choices = [entries[T.entry_key(kernel, k, n)]["choice"] for k, n in zip(sizes[:-1], sizes[1:])]
    assert lines[-2].split()[1:] == choices
    # An int8 load with tiles="auto" takes exactly what tune stored, without measuring again.
    T._memo.clear()
    assert aefast.load(DEFAULT_MODEL_PATH, precision="int8", tiles="auto").tiles == choices

    assert main(["tune", "--rounds", "1", "--json", "--precision", "int8"]) == 0
    result = json.loads(capsys.readouterr().out)
    (family,) = result["families"]
    assert family["kernel"] == kernel and family["precision"] == "int8" and len(family["layers"]) == 4
    for layer in family["layers"]:
        assert set(layer["gmacs"]) == set(core.tile_names("q8", kernel)) and all(g > 0 for g in layer["gmacs"].values())


def test_aefast_tune_refuses_an_unknown_isa(cache, capsys):
    from aefast.cli import main

    with pytest.raises(SystemExit) as info:
        main(["tune", "--isa", "avx9"])
    assert info.value.code == 2
    assert "aefast tune: error: isa 'avx9' is not usable on this CPU" in capsys.readouterr().err


@needs_tiles
def test_a_child_forked_while_the_tile_lock_is_held_can_still_choose_tiles(cache):
    """A fork copies the tile module's lock as it is; the child must not wait for a holder it does not have."""
    import os
    import signal

    isa, kernel = usable_q8_tile_kernels()[0]
    with T._lock:
        pid = os.fork()
        if pid == 0:   # the child: 20 s to measure one small shape, then exit 0; a deadlock ends in SIGALRM
            signal.alarm(20)
            try:
                T.choose(core, kernel, [(40, 37)], "auto")
                os._exit(0)
            except BaseException:
                os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child status {status:#x}"
