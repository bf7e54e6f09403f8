"""Dispatch is checked: which ISA levels run and which kernel each level really uses, against the CPU's own flags.

The low-precision kernels of one ISA level are bit-identical to the kernels it may borrow (an AVX-512 CPU without
VNNI runs q8 with the AVX2 kernel), so a dispatch regression passes every output test. Here the kernel names that
Network.kernel and Engine.kernel report are compared with what /proc/cpuinfo says the CPU has, on this CPU and
with features removed through AEFAST_CPU_DISABLE (the lower paths of a CPU that has more), each in a fresh process.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

core = pytest.importorskip("aefast._core")

# cpu_features() names -> /proc/cpuinfo flag names (Linux reports a flag only when the OS also saves its registers).
CPUINFO_NAME = {"avx2": "avx2", "fma": "fma", "f16c": "f16c", "avx512f": "avx512f", "avx512bw": "avx512bw",
                "avx512dq": "avx512dq", "avx512vl": "avx512vl", "avx512vnni": "avx512_vnni",
                "avx512bf16": "avx512_bf16", "avx_vnni": "avx_vnni", "amx_tile": "amx_tile",
                "amx_int8": "amx_int8", "amx_bf16": "amx_bf16"}
AVX2_NEEDS = ("avx2", "fma", "f16c")
AVX512_NEEDS = AVX2_NEEDS + ("avx512f", "avx512bw", "avx512dq", "avx512vl")
# The amx level: the avx512 fp32 kernels, q8 on AMX tiles (its few-row blocks on the VNNI tile).
AMX_NEEDS = AVX512_NEEDS + ("amx_tile", "amx_int8", "avx512vnni")


def cpuinfo_features() -> set[str]:
    """The cpu_features() names whose flag /proc/cpuinfo lists (first CPU)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(line for line in f if line.startswith("flags")).split(":", 1)[1].split()
    except (OSError, StopIteration):
        pytest.skip("no /proc/cpuinfo flags line on this system")
    return {name for name, flag in CPUINFO_NAME.items() if flag in flags}


def expected_dispatch(features: set[str]) -> dict:
    """What the dispatch contract (csrc/dispatch.cpp) gives for these CPU features."""
    if "amx_tile" not in features:   # tdpbusd / tdpbf16ps need the tile state: cpu_features() clears them too
        features = features - {"amx_int8", "amx_bf16"}
    problems, kernels = {}, {}
    for level, needs in (("amx", AMX_NEEDS), ("avx512", AVX512_NEEDS), ("avx2", AVX2_NEEDS), ("scalar", ())):
        missing = [n for n in needs if n not in features]
        problems[level] = f"{level}: CPU lacks {', '.join(missing)}" if missing else ""
        if missing:
            continue
        # q8: the best VNNI form the CPU has (EVEX zmm on the avx512 level, VEX ymm AVX-VNNI), else vpmaddwd (avx2).
        avxvnni = "avxvnni" if "avx_vnni" in features else "avx2"
        f32 = level
        if level == "amx":
            f32, q8 = "avx512", "amx"
            bf16 = "avx512bf16" if "avx512bf16" in features else "avx2"
            if {"amx_bf16", "avx512bf16"} <= features:
                bf16 = "amx"
        elif level == "avx512":
            q8 = "avx512vnni" if "avx512vnni" in features else avxvnni
            bf16 = "avx512bf16" if "avx512bf16" in features else "avx2"
        elif level == "avx2":
            q8, bf16 = avxvnni, "avx2"
        else:
            q8 = bf16 = "scalar"
        kernels[level] = {"f32": f32, "q8": q8, "bf16": bf16}
    return {"isas": list(kernels), "problems": problems, "kernels": kernels}


# Run in a fresh interpreter (cpu_features() is read once per process): the ISA list, each level's problem, and
# the kernel every (level, compute) Network and every (level, precision) Engine reports.
PROBE = r"""
import json, numpy as np
import aefast
from aefast import _core as core
from aefast.engine.reference import random_weights
w = np.ones((3, 2), np.float32)
layers = {"f32": {"weight": w, "bias": np.zeros(2, np.float32), "activation": "linear"},
          "q8": {"weight": w.astype(np.int8), "scale": np.ones(2, np.float32), "bias": np.zeros(2, np.float32),
                 "activation": "linear", "compute": "q8"},
          "bf16": {"weight": np.zeros((3, 2), np.uint16), "bias": np.zeros(2, np.float32), "activation": "linear"}}
weights = random_weights((20, 8, 4, 8, 20), seed=1)
out = {"isas": core.isas(), "problems": {i: core.isa_problem(i) for i in core.known_isas()}, "kernels": {},
       "engine": {}, "features": core.cpu_features()}
for isa in core.isas():
    out["kernels"][isa] = {c: core.Network([layers[c]], isa=isa, threads=1).kernel for c in layers}
    out["engine"][isa] = {p: aefast.load(weights, precision=p, backend="cpp", isa=isa, threads=1).kernel
                          for p in ("fp32", "fp16", "int8", "bf16")}
print(json.dumps(out))
"""


def probe(disable: str) -> dict:
    env = dict(os.environ, AEFAST_CPU_DISABLE=disable)
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_cpu_features_match_proc_cpuinfo():
    features = cpuinfo_features()
    disabled = set(os.environ.get("AEFAST_CPU_DISABLE", "").replace(",", " ").split())
    got = core.cpu_features()
    assert set(got) == set(CPUINFO_NAME)
    for name in CPUINFO_NAME:
        assert got[name] == (name in features and name not in disabled), f"{name}: _core {got[name]}, /proc/cpuinfo"


# "" is this CPU as it is; the others remove what selects each borrowed or lower path.
@pytest.mark.parametrize("disable", ["", "avx512vnni", "avx512bf16", "avx512vnni,avx512bf16", "avx512vnni,avx_vnni",
                                     "avx512bw", "avx512bw,avx_vnni", "fma", "amx_tile", "amx_int8",
                                     "amx_bf16"])
def test_each_isa_level_runs_the_kernels_the_cpu_flags_select(disable):
    features = cpuinfo_features() - set(disable.split(","))
    want = expected_dispatch(features)
    got = probe(disable)
    assert got["isas"] == want["isas"]
    assert got["problems"] == want["problems"]
    assert got["kernels"] == want["kernels"]
    for isa, kernels in want["kernels"].items():
        assert got["engine"][isa] == {"fp32": kernels["f32"], "fp16": kernels["f32"], "int8": kernels["q8"],
                                      "bf16": kernels["bf16"]}


def test_an_unknown_feature_in_aefast_cpu_disable_is_refused_by_name():
    env = dict(os.environ, AEFAST_CPU_DISABLE="avx512vnni,avx1024")
    done = subprocess.run([sys.executable, "-c", "import aefast._core"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0
    assert "AEFAST_CPU_DISABLE names an unknown CPU feature 'avx1024'" in done.stderr


def test_a_missing_isa_is_skipped_by_name_in_the_test_report():
    """With avx512bw removed, the avx512 test IDs stay in the report as skips that name the missing feature."""
    env = dict(os.environ, AEFAST_CPU_DISABLE="avx512bw")
    test = os.path.join(os.path.dirname(__file__), "test_kernels_math.py")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", test,
                           "-k", "test_elu_edge_values"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "avx512: CPU lacks avx512bw" in done.stdout
    assert "1 skipped" in done.stdout and "2 passed" in done.stdout, done.stdout


def test_q8_and_bf16_networks_name_the_kernel_that_runs():
    """On this process's CPU: the default-level Network reports the kernel the flags select (not the level)."""
    want = expected_dispatch(cpuinfo_features() - set(os.environ.get("AEFAST_CPU_DISABLE", "").split(",")))
    # the C++ "auto" is the first level less amx (csrc/dispatch.cpp find_isa; AMX is opt-in through the Python engine).
    best = next(i for i in core.isas() if i != "amx")
    layer = {"weight": np.ones((4, 3), np.int8), "scale": np.ones(3, np.float32), "bias": np.zeros(3, np.float32),
             "activation": "linear", "compute": "q8"}
    assert core.Network([layer]).kernel == want["kernels"][best]["q8"]
    layer = {"weight": np.zeros((4, 3), np.uint16), "bias": np.zeros(3, np.float32), "activation": "linear"}
    assert core.Network([layer]).kernel == want["kernels"][best]["bf16"]


def test_int8_engine_on_the_avx2_level_runs_avxvnni_bit_identical_to_the_other_simd_levels():
    """Engine(isa="avx2", precision="int8") runs the AVX-VNNI kernel where the CPU has it, and its outputs equal the
    avx512 level's (VNNI zmm or its own fallback) bit for bit: exact int32 sums, one epilogue algorithm."""
    import aefast
    from aefast.engine.reference import random_weights

    if core.kernel_problem("q8", "avxvnni"):
        pytest.skip(core.kernel_problem("q8", "avxvnni"))
    weights = random_weights((784, 100, 20, 100, 784), seed=3)
    engine = aefast.load(weights, precision="int8", backend="cpp", isa="avx2", threads=1)
    assert (engine.isa, engine.kernel) == ("avx2", "avxvnni")
    x = np.random.default_rng(4).random((37, 784), np.float32)
    out = engine.reconstruct(x)
    codes = engine.compress(x)
    for isa in core.isas():
        if isa in ("avx2", "scalar"):
            continue
        other = aefast.load(weights, precision="int8", backend="cpp", isa=isa, threads=1)
        np.testing.assert_array_equal(other.reconstruct(x), out, err_msg=f"{isa} ({other.kernel}) vs avx2 (avxvnni)")
        np.testing.assert_array_equal(other.compress(x), codes)
