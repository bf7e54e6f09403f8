"""Register tile choice for bf16 and fp16 (f16 weights): the same path as int8 (aefast/engine/tiles.py: the `tiles`
argument > $AEFAST_TILES > the deprecated AEFAST_F16_TILES / AEFAST_BF16_TILES > "auto"; pinned, built-in, or
measured per CPU and layer shape and cached), the choice reaching C++ as a validated tile name per layer; results
never depend on it (the kernels through their edges: test_fp16_tiles.py, test_bf16_tiles.py).

The suite runs with AEFAST_TILES=builtin (conftest.py); tests here that need "auto" point AEFAST_CACHE_DIR at a
temporary folder and pass a counting stand-in for _core, so they can tell a measurement from a cache read.
"""
from __future__ import annotations

import importlib.util
import json
import pathlib
import warnings

import numpy as np
import pytest

core = pytest.importorskip("aefast._core")

import aefast  # noqa: E402
from aefast.engine import tiles as T  # noqa: E402

_spec = importlib.util.spec_from_file_location("_tiles_q8", pathlib.Path(__file__).with_name("test_tiles.py"))
_q8 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_q8)
CountingCore, small_model, cache = _q8.CountingCore, _q8.small_model, _q8.cache   # cache: the fixture

ENGINE = {"f16": "fp16", "bf16": "bf16"}


def families_with_a_choice():
    """(precision, isa, kernel) for fp16 and bf16 whose running kernel has more than one tile here."""
    out = []
    for precision in ("f16", "bf16"):
        for isa in core.isas():
            kernel = core.kernel_for(isa, precision)
            if len(core.tile_names(precision, kernel)) > 1 and (precision, kernel) not in [(p, k) for p, _, k in out]:
                out.append((precision, isa, kernel))
    return out


FAMILIES = families_with_a_choice()
needs = pytest.mark.skipif(not FAMILIES, reason="no fp16 or bf16 kernel with a tile choice runs here")


def family(precision):
    for p, isa, kernel in FAMILIES:
        if p == precision:
            return isa, kernel
    pytest.skip(f"no {precision} kernel with a tile choice runs here")


# ---- results are identical across tiles --------------------------------------------------------------------------
@needs
@pytest.mark.parametrize("precision, isa, kernel", FAMILIES)
def test_network_outputs_are_bit_identical_across_every_tile(precision, isa, kernel):
    from aefast.engine.precisions import backend_layers

    layers = backend_layers(small_model(1, (784, 1000, 100, 1000, 784)), ENGINE[precision])
    _q8.assert_networks_agree_across_tiles(np.random.default_rng(3), layers, isa, kernel,
                                           core.tile_names(precision, kernel), (1, 3, 4, 5, 9, 37, 200))


@needs
@pytest.mark.parametrize("precision", ["f16", "bf16"])
def test_engines_with_pinned_builtin_and_measured_tiles_agree_bit_for_bit(cache, precision):
    isa, kernel = family(precision)
    w = small_model(2)
    x = np.random.default_rng(4).random((50, 40), dtype=np.float32)
    outs = {}
    for tiles in ["builtin", "auto", *core.tile_names(precision, kernel)]:
        e = aefast.load(w, precision=ENGINE[precision], isa=isa, tiles=tiles)
        assert e.kernel == kernel and all(t in core.tile_names(precision, kernel) for t in e.tiles)
        if tiles not in T.MODES:
            assert e.tiles == [tiles] * 4
        outs[tiles] = e.reconstruct(x)
    for tiles, out in outs.items():
        np.testing.assert_array_equal(out.view(np.uint32), outs["builtin"].view(np.uint32), err_msg=tiles)


# ---- the setting: precedence and errors ----------------------------------------------------------------------------
@needs
def test_argument_beats_environment_beats_deprecated_variables(monkeypatch):
    isa, kernel = family("f16")
    w = small_model()
    monkeypatch.setenv("AEFAST_TILES", "f16:ymm")
    assert aefast.load(w, precision="fp16", isa=isa).tiles == ["ymm"] * 4
    assert aefast.load(w, precision="fp16", isa=isa, tiles="f16:zmm").tiles == ["zmm"] * 4
    assert aefast.load(w, precision="fp16", isa=isa, tiles="zmm").tiles == ["zmm"] * 4
    # AEFAST_TILES set: the deprecated variable is not read.
    monkeypatch.setenv("AEFAST_F16_TILES", "ymm")
    monkeypatch.setenv("AEFAST_TILES", "builtin")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert aefast.load(w, precision="fp16", isa=isa).tiles == [T.builtin_tile(core, kernel, "f16")] * 4
    # Neither the argument nor AEFAST_TILES: the deprecated variable reads as "avx512:ymm", with a warning.
    monkeypatch.delenv("AEFAST_TILES")
    with pytest.warns(DeprecationWarning, match=r"AEFAST_F16_TILES is deprecated.*AEFAST_TILES='avx512:ymm'"):
        assert T.setting_from(None) == "avx512:ymm"
    with pytest.warns(DeprecationWarning):
        assert aefast.load(w, precision="fp16", isa=isa).tiles == ["ymm"] * 4


@needs
def test_a_deprecated_variable_with_a_typo_is_an_error_not_ignored(monkeypatch):
    isa, kernel = family("bf16")
    monkeypatch.delenv("AEFAST_TILES", raising=False)
    monkeypatch.setenv("AEFAST_BF16_TILES", "fmaa")
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError) as info:
        aefast.load(small_model(), precision="bf16", isa=isa)
    assert str(info.value) == (f"tile 'fmaa' is not a tile of the {kernel} bf16 kernel that runs here; expected one "
                               f"of: {', '.join(core.tile_names('bf16', kernel))}")


@needs
def test_the_kernel_entry_wins_over_the_precision_entry_and_others_are_left_alone():
    isa, kernel = family("bf16")
    names = core.tile_names("bf16", kernel)
    assert T.choose(core, kernel, [(40, 37)], f"bf16:{names[1]},{kernel}:{names[2]}", "bf16") == [names[2]]
    assert T.choose(core, kernel, [(40, 37)], f"bf16:{names[1]}", "bf16") == [names[1]]
    assert T.choose(core, kernel, [(40, 37)], "q8:8x32,f16:ymm", "bf16") == [T.builtin_tile(core, kernel, "bf16")]


@needs
@pytest.mark.parametrize("precision, bad", [("f16", "8x32"), ("f16", "fast"), ("bf16", "zmm"), ("bf16", "bf16:ymm")])
def test_an_unknown_tile_names_the_valid_ones_for_that_precision_and_kernel(precision, bad):
    isa, kernel = family(precision)
    label = {"f16": "fp16", "bf16": "bf16"}[precision]
    with pytest.raises(ValueError) as info:
        aefast.load(small_model(), precision=ENGINE[precision], isa=isa, tiles=bad)
    assert str(info.value) == (f"tile {bad.split(':')[-1]!r} is not a tile of the {kernel} {label} kernel that runs "
                               f"here; expected one of: {', '.join(core.tile_names(precision, kernel))}")


def test_the_binding_refuses_unknown_tiles_precisions_and_kernels():
    layer = {"weight": np.ones((8, 4), np.float16), "bias": np.zeros(4, np.float32), "activation": "linear",
             "tile": "qmm"}
    kernel = core.kernel_for("auto", "f16")
    with pytest.raises(ValueError) as info:
        core.Network([layer])
    assert str(info.value) == (f'layers[0]["tile"]: unknown tile \'qmm\' for the {kernel} f16 kernel (expected one '
                               f"of: {', '.join(core.tile_names('f16', kernel))})")
    bf16 = {"weight": np.zeros((8, 4), np.uint16), "bias": np.zeros(4, np.float32), "activation": "linear",
            "compute": "bf16", "tile": "zmm"}
    with pytest.raises(ValueError, match=r"unknown tile 'zmm' for the \w+ bf16 kernel \(expected one of: "):
        core.Network([bf16])
    with pytest.raises(ValueError, match=r"unknown tile precision 'f8' \(expected q8, bf16 or f16\)"):
        core.tile_names("f8", "avx2")
    with pytest.raises(ValueError, match="unknown f16 \\(f32\\) kernel 'avx9'"):
        core.tile_names("f16", "avx9")
    with pytest.raises(ValueError, match="unknown tile precision"):
        core._time_tiles("f8", "avx2", 8, 8, 4)
    assert core.tile_names("f16", "scalar") == ["1x1"] and core.tile_names("f32", "scalar") == []


def test_builtin_table_picks_per_vendor_and_falls_back_to_the_family_default():
    class Intel(CountingCore):
        def cpu_identity(self):
            return {"vendor": "GenuineIntel", "family": 6, "model": 85}

    class Zen4(CountingCore):
        def cpu_identity(self):
            return {"vendor": "AuthenticAMD", "family": 25, "model": 17}

    class Unknown(CountingCore):
        def cpu_identity(self):
            return {"vendor": "Other", "family": 1, "model": 1}

    assert T.builtin_tile(Intel(), "avx512bf16", "bf16") == "mixed"
    assert T.builtin_tile(Intel(), "avx512", "f16") == "zmm"
    assert T.builtin_tile(Zen4(), "avx512", "f16") == "ymm"
    assert T.builtin_tile(Zen4(), "avx512bf16", "bf16") == "dpbf16"
    assert T.builtin_tile(Unknown(), "avx512bf16", "bf16") == "dpbf16"
    assert T.builtin_tile(Zen4(), "avx2", "f16") == "ymm"   # a one-tile family: its tile


# ---- measurement and the cache -------------------------------------------------------------------------------------
@needs
def test_auto_measures_each_precision_and_shape_once_then_reads_the_cache(cache):
    c = CountingCore()
    shapes = [(40, 37), (37, 9)]
    chosen = {}
    for precision, isa, kernel in FAMILIES:
        chosen[precision] = T.choose(c, kernel, shapes, "auto", precision)
    assert c.timed == [(p, k, *s) for p, _, k in FAMILIES for s in shapes]
    (path,) = cache.iterdir()
    ident = core.cpu_identity()
    assert path.name.startswith(f"{ident['vendor']}-{ident['family']}-{ident['model']}-")
    entries = json.loads(path.read_text())["entries"]
    for precision, isa, kernel in FAMILIES:
        for (k, n), tile in zip(shapes, chosen[precision]):
            entry = entries[T.entry_key(kernel, k, n, precision=precision)]
            assert entry["precision"] == precision and entry["tiles"] == core.tile_names(precision, kernel)
            assert entry["choice"] == tile == min(entry["seconds"], key=entry["seconds"].get)
    T._memo.clear()
    c2 = CountingCore()
    for precision, isa, kernel in FAMILIES:
        assert T.choose(c2, kernel, shapes, "auto", precision) == chosen[precision]
    assert c2.timed == []   # all read from the file
    precision, isa, kernel = FAMILIES[0]
    T.choose(c2, kernel, shapes + [(9, 37)], "auto", precision)
    assert c2.timed == [(precision, kernel, 9, 37)]   # only the new shape


@needs
def test_an_fp16_load_with_auto_measures_at_load_and_the_next_load_reads_the_cache(cache, monkeypatch):
    isa, kernel = family("f16")
    monkeypatch.setenv("AEFAST_TILES", "auto")
    e = aefast.load(small_model(), precision="fp16", isa=isa)
    (path,) = cache.iterdir()
    entries = json.loads(path.read_text())["entries"]
    sizes = e.layer_sizes
    assert e.tiles == [entries[T.entry_key(kernel, k, n, precision="f16")]["choice"]
                       for k, n in zip(sizes[:-1], sizes[1:])]


# ---- aefast tune ---------------------------------------------------------------------------------------------------
@needs
def test_aefast_tune_covers_every_precision_with_a_choice_or_the_one_given(cache, capsys, tmp_path):
    from aefast.cli import main
    from aefast.model.file import save_model

    model = tmp_path / "m.safetensors"
    save_model(model, small_model())
    assert main(["tune", str(model), "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    for precision, isa, kernel in FAMILIES:
        if isa == core.isas()[0]:
            assert f"{ENGINE[precision]} kernel {kernel}:" in out
    q8 = core.kernel_for("auto", "q8")
    assert (f"int8 kernel {q8}:" in out) == (len(core.tile_names("q8", q8)) > 1)
    (path,) = cache.iterdir()
    entries = json.loads(path.read_text())["entries"]
    assert {(e["precision"], e["kernel"]) for e in entries.values()} >= {
        (p, k) for p, isa, k in FAMILIES if isa == core.isas()[0]}

    isa, kernel = family("bf16")
    assert main(["tune", str(model), "--rounds", "1", "--json", "--precision", "bf16", "--isa", isa]) == 0
    result = json.loads(capsys.readouterr().out)
    (fam,) = result["families"]
    assert fam["precision"] == "bf16" and fam["kernel"] == kernel and len(fam["layers"]) == 4
    for layer in fam["layers"]:
        assert set(layer["gmacs"]) == set(core.tile_names("bf16", kernel)) and all(g > 0 for g in layer["gmacs"].values())
    # A bf16 load with tiles="auto" takes what tune stored, without measuring again.
    T._memo.clear()
    assert aefast.load(str(model), precision="bf16", isa=isa, tiles="auto").tiles == [
        layer["choice"] for layer in fam["layers"]]


def test_aefast_tune_refuses_an_unknown_precision(capsys):
    from aefast.cli import main

    with pytest.raises(SystemExit) as info:
        main(["tune", "--precision", "fp64"])
    assert info.value.code == 2 and "invalid choice: 'fp64'" in capsys.readouterr().err


def test_q8_cache_entries_keep_the_name_existing_caches_hold():
    """A cache written before bf16/f16 had tiles names q8 entries "<kernel> k= n= rows="; they stay valid."""
    assert T.entry_key("avx512vnni", 784, 1000) == "avx512vnni k=784 n=1000 rows=96"
    assert T.entry_key("avx512bf16", 784, 1000, precision="bf16") == "bf16 avx512bf16 k=784 n=1000 rows=96"
    assert T.entry_key("avx2", 8, 8, precision="f16") != T.entry_key("avx2", 8, 8)   # shared kernel names apart
