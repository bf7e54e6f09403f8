"""A real `aefast bench --quick` run through the `aefast` command line: --model, --wide-model, --no-wide, --batches,
--contenders, --out; results.json's structure, and every contender measured or skipped with its reason.

Only the machine-limit measurements are made small (peak loops of 10 ms, a 128 x 128 sgemm, a 4 MiB copy, the
quantization comparison on 200 images): BenchConfig's defaults, patched, so the run takes seconds; everything else
(parsing, loading the model files, checking and timing every contender, the report files) is the command's own.
"""
from __future__ import annotations

import functools
import json
import os
import sys

import numpy as np
import pytest

import aefast
from aefast.bench import runner
from aefast.bench.models import OPERATIONS
from aefast.cli import main as aefast_main
from aefast.engine.reference import random_weights

CONTENDERS = ("aefast cpp fp32", "aefast cpp int8", "aefast numba fp32", "numpy fp32", "litert fp32")


@pytest.fixture
def small_limits(monkeypatch):
    monkeypatch.setattr(runner, "BenchConfig", functools.partial(runner.BenchConfig, peak_s=0.01, sgemm_n=128,
                                                                 copy_mib=4, quantization_images=200))


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench_models")
    return {name: aefast.save_model(folder / f"{name}.safetensors", random_weights(sizes, seed=seed))
            for name, sizes, seed in (("default", (784, 48, 12, 48, 784), 1), ("wide", (784, 64, 16, 64, 784), 2))}


def _run(tmp_path, capsys, *args) -> dict:
    out = tmp_path / "out"
    code = aefast_main(["bench", "--quick", "--batches", "2", "--out", str(out),
                        "--contenders", *CONTENDERS, *args])
    assert code == 0
    assert f"wrote {out / 'results.json'}" in capsys.readouterr().out
    assert (out / "results.md").stat().st_size > 0 and (out / "throughput.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return json.loads((out / "results.json").read_text())


def _check_results(results: dict, models: dict) -> None:
    assert results["quick"] is True and results["command"].startswith("aefast bench --quick")
    assert {"created", "machine", "timing", "models", "measurements", "quantization", "limits",
            "targets"} <= set(results)
    assert [(m["name"], m["source"]) for m in results["models"]] == [(n, str(p)) for n, p in models.items()]
    for m in results["models"]:
        assert m["layer_sizes"] == aefast.read_model(models[m["name"]]).layer_sizes
        assert set(m["ops"]) == set(OPERATIONS) and all(o["ceiling_images_per_s"] > 0 for o in m["ops"].values())
    cells = [(r["model"], r["op"], r["batch"], r["contender"]) for r in results["measurements"]]
    want = [(m, op, b, c) for m in models for op in OPERATIONS for b in (2,) for c in CONTENDERS]
    assert sorted(cells) == sorted(want), "every contender once in every cell"
    for r in results["measurements"]:
        if r["status"] == "ok":
            assert r["images_per_s"] > 0 and len(r["samples"]) == 3 and r["rel_rms_error"] >= 0, r
            assert r["precision"] in ("fp32", "int8") and r["reference"]
        else:
            assert r["status"] == "skipped" and r["reason"].strip(), r
    status = {c: {r["status"] for r in results["measurements"] if r["contender"] == c} for c in CONTENDERS}
    assert status["aefast cpp fp32"] == status["numpy fp32"] == {"ok"}
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        reasons = {r["reason"] for r in results["measurements"] if r["contender"] == "litert fp32"}
        assert status["litert fp32"] == {"skipped"} and all("not installed" in why for why in reasons), reasons
    assert list(results["quantization"]) == ["default"]   # the error comparison runs on the first model only
    rows = results["quantization"]["default"]["rows"]
    assert results["quantization"]["default"]["images"] == 200
    assert [r["contender"] for r in rows] == ["aefast cpp fp32", "aefast cpp int8"]
    assert all(r["status"] == "ok" and np.isfinite(r["mse_vs_input"]) or r["reason"] for r in rows)
    assert results["limits"]["sgemm_best_gflops"] > 0 and results["limits"]["peaks"]
    assert all({"target", "model", "met", "figure"} <= set(t) for t in results["targets"])


def test_bench_quick_with_model_and_wide_model(tmp_path, capsys, small_limits, model_files):
    results = _run(tmp_path, capsys, "--model", str(model_files["default"]), "--wide-model", str(model_files["wide"]))
    _check_results(results, model_files)


def test_bench_quick_no_wide(tmp_path, capsys, small_limits, model_files):
    results = _run(tmp_path, capsys, "--model", str(model_files["default"]), "--no-wide")
    _check_results(results, {"default": model_files["default"]})


@pytest.mark.slow
def test_bench_peers_and_your_torch_model_in_one_run(tmp_path, capsys, small_limits, model_files):
    """--peers times the peer set on the default model, --your-torch-model adds the ELU and ReLU PyTorch models
    (PyTorch against aefast.from_torch), reconstruct only; the ratios land in results.json and results.md, and the
    targets are printed."""
    pytest.importorskip("torch")
    out = tmp_path / "out"
    assert aefast_main(["bench", "--quick", "--peers", "--your-torch-model", "--batches", "2", "--out", str(out),
                        "--model", str(model_files["default"])]) == 0
    printed = capsys.readouterr().out
    assert "targets:" in printed and "vs peers: int8 >= 1.2x fastest int8 peer at batch 1" in printed
    assert "your PyTorch model, aefast / PyTorch images/s:\n  pytorch-elu reconstruct batch 2 fp32: " in printed
    results = json.loads((out / "results.json").read_text())
    from aefast.bench.__main__ import PEER_SET, TORCH_SET
    assert [m["name"] for m in results["models"]] == ["default", "pytorch-elu", "pytorch-relu"]
    ran = {m: {r["contender"] for r in results["measurements"] if r["model"] == m} for m in
           ("default", "pytorch-elu", "pytorch-relu")}
    assert ran == {"default": set(PEER_SET), "pytorch-elu": set(TORCH_SET), "pytorch-relu": set(TORCH_SET)}
    assert {r["op"] for r in results["measurements"]} == {"reconstruct"}
    ok = {(r["model"], r["contender"]) for r in results["measurements"] if r["status"] == "ok"}
    assert {("pytorch-relu", c) for c in TORCH_SET} <= ok
    ratios = {(r["model"], r["precision"]): r["ratio"] for r in results["torch_ratios"]}
    assert set(ratios) == {(m, p) for m in ("pytorch-elu", "pytorch-relu") for p in ("fp32", "fp16", "bf16", "int8")}
    assert all(v > 0 for v in ratios.values())
    assert "## Your PyTorch model: aefast / PyTorch" in (out / "results.md").read_text()
    assert not any(t["model"].startswith("pytorch") for t in results["targets"])


# What the peers print on start-up when nothing hides it (quiet.CHATTER): one marker per kind.
CHATTER_MARKERS = ("absl::InitializeLog", "oneDNN custom operations", "XNNPACK delegate",
                   "consider to run pre-processing", "failed call to cuInit", "No CUDA runtime")
_DRIVER = """
import functools, sys
from aefast.bench import runner
runner.BenchConfig = functools.partial(runner.BenchConfig, peak_s=0.01, sgemm_n=128, copy_mib=4,
                                       quantization_images=50)
from aefast.bench.__main__ import main
sys.exit(main(sys.argv[1:], prog="aefast bench"))
"""


@pytest.mark.slow
def test_bench_output_is_free_of_the_peers_start_up_lines(tmp_path, model_files):
    """A real run in a fresh process (TensorFlow, LiteRT, ONNX Runtime quantization, PyTorch and NNCF loaded for the
    first time): its stderr holds none of their start-up lines; with --verbose they are there (so this test sees
    them when the filter is off)."""
    import subprocess
    for package in ("tensorflow", "ai_edge_litert.interpreter", "onnxruntime", "torch"):
        pytest.importorskip(package)
    contenders = ["aefast cpp fp32", "keras predict_on_batch", "litert dynamic int8", "onnxruntime dynamic int8",
                  "pytorch dynamic int8"]
    err = {}
    for mode in ("quiet", "verbose"):
        args = [sys.executable, "-c", _DRIVER, "--quick", "--no-wide", "--batches", "2", "--ops", "compress",
                "--model", str(model_files["default"]), "--out", str(tmp_path / mode), "--contenders", *contenders]
        run = subprocess.run(args + (["--verbose"] if mode == "verbose" else []), capture_output=True, text=True,
                             timeout=600, env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
        assert run.returncode == 0, run.stderr
        err[mode] = run.stderr
    assert [m for m in CHATTER_MARKERS if m in err["quiet"]] == [], err["quiet"]
    assert "XNNPACK delegate" in err["verbose"] and "consider to run pre-processing" in err["verbose"], err["verbose"]
    assert "compress batch=2: 5 timed" in err["quiet"]   # the runner's own progress lines still show


@pytest.mark.slow
def test_all_peers_in_one_fresh_process_end_cleanly_and_a_crash_shows_its_trace(tmp_path, model_files):
    """Every peer runtime (TensorFlow, LiteRT, ONNX Runtime, OpenVINO with NNCF, PyTorch) loaded into one fresh
    process with faulthandler on: the run ends with 0. Were one of them to crash the process (two runtimes' native
    code in one process), the streaming stderr filter passes faulthandler's dump on, so the failure shows where."""
    import subprocess
    missing = [p for p in ("tensorflow", "ai_edge_litert", "onnxruntime", "openvino", "nncf", "torch")
               if __import__("importlib.util").util.find_spec(p) is None]
    if missing:
        pytest.skip(f"peer packages not installed: {', '.join(missing)}")
    args = [sys.executable, "-X", "faulthandler", "-c", _DRIVER, "--quick", "--peers", "--no-wide", "--batches", "2",
            "--ops", "reconstruct", "--model", str(model_files["default"]), "--out", str(tmp_path / "out")]
    run = subprocess.run(args, capture_output=True, text=True, timeout=900,
                         env={k: v for k, v in os.environ.items() if k != "AEFAST_BENCH_VERBOSE"})
    assert run.returncode == 0, f"exit {run.returncode}; stderr:\n{run.stderr[-6000:]}"
    assert "Fatal Python error" not in run.stderr, run.stderr[-6000:]
    measured = json.loads((tmp_path / "out" / "results.json").read_text())["measurements"]
    from aefast.bench.__main__ import PEER_SET
    assert {r["contender"] for r in measured} == set(PEER_SET)
