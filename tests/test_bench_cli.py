"""A real `aefast bench --quick` run through the `aefast` command line: --model, --wide-model, --no-wide, --batches,
--contenders, --out; results.json's structure, and every contender measured or skipped with its reason.

Only the machine-limit measurements are made small (peak loops of 10 ms, a 128 x 128 sgemm, a 4 MiB copy, the
quantization comparison on 200 images): BenchConfig's defaults, patched, so the run takes seconds; everything else
(parsing, loading the model files, checking and timing every contender, the report files) is the command's own.
"""
from __future__ import annotations

import functools
import json

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
