import json
import subprocess
import sys


def _run(code: str, **env) -> str:
    import os
    e = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=e).stdout


def test_import_is_light_and_pulls_no_tensorflow():
    out = _run("import time, sys; t = time.perf_counter(); import aefast; dt = time.perf_counter() - t; "
               "import json; print(json.dumps({'dt': dt, 'mods': [m for m in sys.modules "
               "if m.split('.')[0] in ('tensorflow', 'keras', 'numba', 'jax', 'torch')]}))")
    info = json.loads(out.strip().splitlines()[-1])
    assert info["mods"] == []
    assert info["dt"] < 1.0, f"import aefast took {info['dt']:.2f}s"


def test_core_reports_cpu_features():
    from aefast import _core
    f = _core.cpu_features()
    assert set(f) >= {"avx2", "fma", "f16c"}
    assert all(isinstance(v, bool) for v in f.values())


def test_missing_core_falls_back_with_one_warning():
    p = subprocess.run([sys.executable, "-W", "always", "-c", "import aefast, aefast.engine.backend as b; "
                        "import importlib; print(b.core is None)"],
                       capture_output=True, text=True, check=True,
                       env={**__import__("os").environ, "AEFAST_DISABLE_CORE": "1"})
    assert p.stdout.strip() == "True"
    assert p.stderr.count("falling back to the numba backend") == 1
