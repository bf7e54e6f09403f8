import json
import subprocess
import sys

import pytest


def _run(code: str, **env) -> str:
    import os
    e = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=e).stdout


def test_import_loads_numpy_only_no_engine_core_numba_or_tensorflow():
    """`import aefast` in a fresh interpreter loads the model floor and numpy, never the engine (which would import
    the compiled core or numba, and warn when falling back), TensorFlow, or other heavy libraries."""
    out = _run("import sys, json, aefast; print(json.dumps(sorted(sys.modules)))")
    mods = json.loads(out.strip().splitlines()[-1])
    heavy = [m for m in mods if m.split(".")[0] in ("tensorflow", "keras", "numba", "jax", "torch", "dask")]
    ours = [m for m in mods if m == "aefast._core" or m.startswith(("aefast.engine", "aefast.data", "aefast.train"))]
    assert heavy == [] and ours == [], (heavy, ours)
    assert "numpy" in mods and "aefast.model" in mods


def test_import_prints_no_warning_even_without_the_core():
    """The numba-fallback warning belongs to the first engine use, not to `import aefast`."""
    p = subprocess.run([sys.executable, "-W", "always", "-c", "import aefast"], capture_output=True, text=True,
                       check=True, env={**__import__("os").environ, "AEFAST_DISABLE_CORE": "1"})
    assert p.stderr == ""


def test_lazy_names_and_submodules_resolve():
    out = _run("import aefast; print(aefast.engine.DEFAULT_MODEL_PATH.name, aefast.Engine.__name__, "
               "aefast.ModelFileError.__module__)")
    assert out.split() == ["default.safetensors", "Engine", "aefast.errors"]


# cpu_features() key -> the /proc/cpuinfo flag that names the same feature (Linux spells some with an underscore).
_CPUINFO_FLAGS = {"avx2": "avx2", "fma": "fma", "f16c": "f16c", "avx512f": "avx512f", "avx512bw": "avx512bw",
                  "avx512dq": "avx512dq", "avx512vl": "avx512vl", "avx512vnni": "avx512_vnni",
                  "avx512bf16": "avx512_bf16", "avx_vnni": "avx_vnni",
                  # the AMX flags also need the OS's tile data permission, which cpu_features() asks for: Linux lists
                  # them when XCR0 enables the tile state, and a kernel that lists them grants the permission
                  "amx_tile": "amx_tile", "amx_int8": "amx_int8", "amx_bf16": "amx_bf16"}


def _cpuinfo_flags() -> set[str] | None:
    from pathlib import Path
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.split(":")[0].strip() in ("flags", "Features"):
            return set(line.split(":", 1)[1].split())
    return None


def test_core_cpu_features_match_proc_cpuinfo():
    """Each feature the dispatcher reads agrees with the kernel's view of this CPU (Linux lists a flag only when the
    CPU has it and the OS enabled its register state, the same CPUID + XGETBV test the core makes)."""
    from aefast import _core
    flags = _cpuinfo_flags()
    if flags is None:
        pytest.skip("no /proc/cpuinfo flags line on this system: nothing to compare cpu_features() with")
    features = _core.cpu_features()
    assert set(features) == set(_CPUINFO_FLAGS), sorted(features)
    assert all(isinstance(v, bool) for v in features.values())
    expected = {key: flag in flags for key, flag in _CPUINFO_FLAGS.items()}
    assert features == expected


def test_missing_core_falls_back_with_one_warning():
    p = subprocess.run([sys.executable, "-W", "always", "-c", "import aefast, aefast.engine.backend as b; "
                        "import importlib; print(b.core is None)"],
                       capture_output=True, text=True, check=True,
                       env={**__import__("os").environ, "AEFAST_DISABLE_CORE": "1"})
    assert p.stdout.strip() == "True"
    assert p.stderr.count("falling back to the numba backend") == 1


def test_moved_names_keep_their_old_import_paths():
    """The model format moved to aefast.model, the calibration means to aefast.export, the exception classes to
    aefast.errors: every old path still gives the same object."""
    import aefast.engine.calibration as old_calibration
    import aefast.engine.precisions as precisions
    import aefast.errors as errors
    import aefast.export.calibration as calibration
    import aefast.model as model
    import aefast.modelfile as modelfile
    from aefast.analyze.study import StudyError
    from aefast.bench.contenders import Skipped
    from aefast.cli.inference import UsageError
    from aefast.train.config import ConfigError, RunDirError
    from aefast.train.loop import TrainingError, TrainingInterrupted

    for name in ("AutoencoderWeights", "read_model", "save_model", "parse_model", "tensors_digest", "ACTIVATIONS",
                 "MAX_HEADER_BYTES", "FORMAT_VERSION"):
        assert getattr(modelfile, name) is getattr(model, name), name
    for name in ("calibrated", "layer_input_means", "main"):
        assert getattr(old_calibration, name) is getattr(calibration, name), name
    assert old_calibration.corrected_bias is precisions.corrected_bias
    for name in ("float_to_bf16_bits", "bf16_bits_to_float", "round_to_bf16"):
        assert getattr(precisions, name) is getattr(model, name), name
    for cls in (StudyError, Skipped, UsageError, ConfigError, RunDirError, TrainingError, TrainingInterrupted):
        assert getattr(errors, cls.__name__) is cls and cls.__module__ == "aefast.errors"
