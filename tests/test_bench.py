"""Smoke tests of the benchmark machinery (aefast.bench) on tiny models: it runs, checks, and reports correctly.
These time nothing that matters; the real benchmarks live in bench/ and `python -m aefast.bench`."""
from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from aefast.bench import machine
from aefast.bench.contenders import (CONTENDERS_BY_NAME, REL_RMS_TOLERANCE, BuildContext, Contender, Skipped,
                                     check_errors, numpy_forward, select_contenders)
from aefast.engine.reference import reference_forward
from aefast.bench.models import (DEFAULT_SIZES, BenchModel, flops_per_image, op_end, op_layers, random_weights,
                                 weight_count)
from aefast.bench.report import render_markdown, write_results
from aefast.bench.runner import BenchConfig, run_benchmark
from aefast.bench.targets import ceiling_images_per_s, evaluate_targets, same_work_ceiling_images_per_s
from aefast.bench.timing import runnable_threads, settle, time_interleaved

TINY_SIZES = (16, 8, 4, 8, 16)


@pytest.fixture(scope="module")
def tiny():
    return random_weights(TINY_SIZES, seed=3)


def test_flops_and_weights_count_every_multiply_add():
    w = random_weights(DEFAULT_SIZES)
    assert flops_per_image(w, "reconstruct") == 2 * (784 * 1000 + 1000 * 100 + 100 * 1000 + 1000 * 784)
    assert flops_per_image(w, "compress") == 2 * (784 * 1000 + 1000 * 100)
    assert weight_count(w, "compress") == 784 * 1000 + 1000 * 100
    with pytest.raises(ValueError, match="unknown operation 'decode'"):
        op_layers(w, "decode")


def test_random_weights_are_glorot_uniform_with_a_linear_output():
    w = random_weights((784, 1000, 100, 1000, 784))
    limit = np.sqrt(6 / (784 + 1000))
    assert np.abs(w.kernels[0]).max() <= limit and np.abs(w.kernels[0]).max() > 0.99 * limit
    assert w.activations == ["elu", "elu", "elu", "linear"] and w.encoder_layers == 2
    assert w.input_shape == (28, 28)


def test_ceiling_is_flops_rate_over_flops_per_image():
    assert machine.ceiling_images_per_s(100.0, 3_536_000) == pytest.approx(100e9 / 3_536_000)
    with pytest.raises(ValueError, match="flops_per_image must be positive"):
        machine.ceiling_images_per_s(100.0, 0)


def test_sgemm_and_copy_measure_plausible_rates():
    s = machine.sgemm_gflops(n=128, repeats=2)
    assert 0 < s["median_gflops"] <= s["best_gflops"] < 1e5
    c = machine.copy_bandwidth(mib=4, repeats=2)
    assert 0 < c["best_gb_per_s"] < 1e4


def test_numpy_forward_matches_float64(tiny):
    x = np.random.default_rng(0).random((5, 16), np.float32)
    for op in ("reconstruct", "compress"):
        ref = reference_forward(tiny, x, 0, op_end(tiny, op))
        np.testing.assert_allclose(numpy_forward(op_layers(tiny, op))(x.copy()), ref, rtol=1e-5, atol=1e-6)


def test_check_errors_flags_wrong_shapes_and_nan():
    ref = np.linspace(-1, 1, 12).reshape(3, 4)
    assert check_errors(ref.astype(np.float32), ref)[0] < 1e-7
    assert check_errors(ref[:, :3], ref) == (float("inf"), float("inf"))
    bad = ref.copy()
    bad[1, 1] = np.nan
    assert check_errors(bad, ref)[0] == float("inf")
    rel, max_abs = check_errors(ref + 0.1, ref)
    assert max_abs == pytest.approx(0.1) and rel > 0.1


def _ctx(weights, n=8):
    return BuildContext(weights, np.random.default_rng(1).random((n, weights.input_size), np.float32))


def test_prepare_checks_every_contender_before_timing(tiny):
    ctx = _ctx(tiny)
    good = ctx.prepare(CONTENDERS_BY_NAME["numpy fp32"], "reconstruct", 4)
    assert good.rel_rms_error <= REL_RMS_TOLERANCE["fp32"] and good.run().shape == (4, 16)
    wrong = Contender("wrong", "peer", "fp32", lambda c, op, b: lambda x: np.zeros((len(x), 16), np.float32))
    with pytest.raises(Skipped, match="check failed: relative RMS error"):
        ctx.prepare(wrong, "reconstruct", 4)
    crashing = Contender("crash", "peer", "fp32", lambda c, op, b: lambda x: 1 / 0)
    with pytest.raises(Skipped, match="ZeroDivisionError"):
        ctx.prepare(crashing, "compress", 2)
    missing = Contender("missing", "peer", "fp32", lambda c, op, b: __import__("aefast.bench.contenders",
                        fromlist=["_require"])._require("no_such_package_xyz"))
    with pytest.raises(Skipped, match="no_such_package_xyz is not installed"):
        ctx.prepare(missing, "compress", 2)
    with pytest.raises(ValueError, match="batch 9 outside 1..8"):
        ctx.prepare(CONTENDERS_BY_NAME["numpy fp32"], "reconstruct", 9)


def test_select_contenders_names_unknown_ones():
    assert [c.name for c in select_contenders(["numpy fp32"])] == ["numpy fp32"]
    with pytest.raises(ValueError, match=r"unknown contenders \['numpy'\]"):
        select_contenders(["numpy"])


def test_onnx_contender_is_exact_when_onnxruntime_is_installed(tiny):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    p = _ctx(tiny).prepare(CONTENDERS_BY_NAME["onnxruntime cpu"], "reconstruct", 8)
    assert p.rel_rms_error < 1e-5


@pytest.mark.slow
def test_tensorflow_contenders_agree_with_the_reference(tiny):
    pytest.importorskip("tensorflow")
    ctx = _ctx(tiny)
    for name in ("keras predict_on_batch", "tf.function xla", "tflite fp32", "tflite dynamic int8"):
        for op, batch in (("reconstruct", 3), ("compress", 1)):
            p = ctx.prepare(CONTENDERS_BY_NAME[name], op, batch)
            assert p.rel_rms_error <= REL_RMS_TOLERANCE[p.contender.precision], (name, op)
            assert p.run().shape[0] == batch


def test_interleaved_timer_ranks_and_rotates():
    order = []

    def sleeper(name, seconds):
        def run():
            order.append(name)
            time.sleep(seconds)
        return run
    timings = time_interleaved({"fast": sleeper("fast", 0.0005), "slow": sleeper("slow", 0.004)},
                               rounds=4, block_s=0.001, warmup_calls=1, settle_max_s=0)
    assert len(timings["fast"].samples) == len(timings["slow"].samples) == 4
    assert timings["slow"].median > timings["fast"].median >= 0.0005
    assert timings["fast"].best <= timings["fast"].median
    assert timings["fast"].spin_s == [0.0] * 4  # settle_max_s=0: no wait
    timed = order[2:]  # after one warm-up call each
    firsts, i = [], 0
    for _ in range(4):  # each round: a block of `fast` calls and a block of `slow` calls, first one alternating
        firsts.append(timed[i])
        n_first = timings[timed[i]].calls_per_block
        i += n_first + timings[timed[i + n_first]].calls_per_block
    assert firsts == ["fast", "slow", "fast", "slow"]
    with pytest.raises(ValueError, match="rounds >= 1"):
        time_interleaved({"x": lambda: None}, rounds=0)


def _measurement(contender, family, precision, batch, median_s, model="m", op="reconstruct"):
    return {"model": model, "op": op, "batch": batch, "contender": contender, "family": family,
            "precision": precision, "status": "ok", "median_s": median_s, "best_s": median_s,
            "images_per_s": batch / median_s}


def test_targets_are_judged_from_the_figures():
    rows = [_measurement("aefast cpp fp32", "aefast", "fp32", 1, 70e-6),
            _measurement("aefast cpp fp16 t=1", "aefast", "fp16", 1, 65e-6),
            _measurement("onnxruntime cpu", "peer", "fp32", 1, 100e-6),
            _measurement("tflite dynamic int8", "peer", "int8", 1, 10e-6),  # not an fp32 peer: ignored
            _measurement("aefast cpp fp32", "aefast", "fp32", 4096, 0.10),
            _measurement("aefast numba fp32", "aefast", "fp32", 4096, 0.30),
            _measurement("numpy fp32", "peer", "fp32", 4096, 0.11)]
    results = {"measurements": rows, "quantization": {},
               "models": [{"name": "m", "ops": {"reconstruct": {"ceiling_images_per_s": 4096 / 0.095}}}]}
    by_target = {r.target.split(" <=")[0].split(" >=")[0]: r for r in evaluate_targets(results)}
    assert by_target["batch 1 reconstruct fp32 latency"].met is True  # 0.70x <= 0.8x
    assert "0.70x" in by_target["batch 1 reconstruct fp32 latency"].figure
    assert by_target["batch 1 reconstruct fp16 latency"].met is False  # 0.65x > 0.6x
    big = by_target["batch 4096 reconstruct fp32 throughput"]
    assert big.met is True and "1.10x" in big.figure and "95%" in big.figure
    assert by_target["batch 16 reconstruct fp32 throughput"].met is None
    assert by_target["batch 16 reconstruct fp32 throughput"].figure == "not measured: batch 16 was not run"
    assert by_target["numba"].met is False and "0.33x" in by_target["numba"].figure
    int8 = next(r for r in evaluate_targets(results) if "int8" in r.target)
    assert int8.met is None and "no aefast int8 run" in int8.figure
    # With a same-work sgemm timed in the cell, the 90% share is judged median against median: 0.095 s per call
    # of sgemm work against the engine's 0.10 s is 95%, and the best-case share is still printed beside it.
    for r in rows:
        if r["batch"] == 4096:
            r.update(cell_sgemm_median_gflops=4096 / 0.095 * 1e-9, cell_sgemm_best_gflops=4096 / 0.08 * 1e-9)
    results["models"][0]["ops"]["reconstruct"]["flops_per_image"] = 1
    big = next(r for r in evaluate_targets(results) if "4096 reconstruct fp32" in r.target)
    assert big.met is True and "95% of the same-work sgemm ceiling" in big.figure
    assert "80% of the best-case" in big.figure
    for r in rows:
        if r["batch"] == 4096:
            r["cell_sgemm_median_gflops"] = 4096 / 0.085 * 1e-9  # the same work ran faster than the engine: missed
    big = next(r for r in evaluate_targets(results) if "4096 reconstruct fp32" in r.target)
    assert big.met is False and "85% of the same-work" in big.figure


def test_run_and_write_results_end_to_end(tmp_path, tiny):
    config = BenchConfig(models=[BenchModel("tiny", tiny, "random test weights")], batches={"tiny": (1, 3)},
                         contenders=select_contenders(["numpy fp32"]), rounds=2, block_s=0.001,
                         sgemm_n=64, sgemm_repeats=1, copy_mib=1, quantization_images=6, cell_sgemm_min_batch=3)
    config.contenders.append(Contender("never works", "peer", "fp32", lambda c, op, b: (_ for _ in ()).throw(
        Skipped("not installed here"))))
    results = run_benchmark(config, log=lambda msg: None)
    ok = [r for r in results["measurements"] if r["status"] == "ok" and r["contender"] == "numpy fp32"]
    assert {(r["op"], r["batch"]) for r in ok} == {(op, b) for op in ("reconstruct", "compress") for b in (1, 3)}
    assert all(r["images_per_s"] == pytest.approx(r["batch"] / r["median_s"]) for r in ok)
    info = results["models"][0]["ops"]["reconstruct"]
    assert info["reference"]["rel_rms_error_vs_float64"] < 1e-5
    assert all(("cell_sgemm_best_gflops" in r) == (r["batch"] == 3) for r in ok)  # the ceiling timed in the cell
    for r in ok:  # the in-cell sgemm does one call's flops; its median is the same-work ceiling
        if r["batch"] == 3:
            assert r["cell_sgemm_n"] == machine.matched_sgemm_n(3 * flops_per_image(tiny, r["op"]))
            assert r["cell_sgemm_median_gflops"] <= r["cell_sgemm_best_gflops"]
            assert same_work_ceiling_images_per_s(results, r) == pytest.approx(
                r["cell_sgemm_median_gflops"] * 1e9 / flops_per_image(tiny, r["op"]))
        else:
            assert same_work_ceiling_images_per_s(results, r) is None
        assert len(r["spin_s"]) == 2 and all(s >= 0 for s in r["spin_s"])
    row = dict(ok[0], cell_sgemm_best_gflops=1e6)
    assert ceiling_images_per_s(results, row) == pytest.approx(1e15 / flops_per_image(tiny, row["op"]))
    row["cell_sgemm_best_gflops"] = 1e-6  # a busier cell never lowers the ceiling
    assert ceiling_images_per_s(results, row) == results["models"][0]["ops"][row["op"]]["ceiling_images_per_s"]
    assert all(r["contender"] != "(numpy sgemm)" for r in results["measurements"])
    assert info["ceiling_images_per_s"] == pytest.approx(
        results["limits"]["sgemm_best_gflops"] * 1e9 / flops_per_image(tiny, "reconstruct"))
    assert results["quantization"]["tiny"]["images"] == 6
    assert [q["status"] for q in results["quantization"]["tiny"]["rows"]] == []  # no quantization contender ran
    paths = write_results(results, tmp_path / "out")
    saved = json.loads(paths["json"].read_text())
    assert saved["machine"]["blas"] and saved["targets"] and saved["limits"]["start"]["sgemm"]["n"] == 64
    md = paths["md"].read_text()
    assert "| 3 | numpy fp32 | fp32 |" in md and "skipped never works (batch 1, 3): not installed here" in md
    assert "% same-work sgemm" in md and "runnable" in md
    assert "## Targets" in md and "not measured" in md
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert render_markdown(results) == md
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["results.json", "results.md", "throughput.png"]


def test_cli_reexecs_without_openblas_overrides(monkeypatch):
    from aefast.bench import __main__ as cli
    calls = []
    monkeypatch.setattr(cli.os, "execve", lambda exe, argv, env: calls.append((argv, env)))
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Zen")
    monkeypatch.delenv("OPENBLAS_L2_SIZE", raising=False)
    monkeypatch.delenv(cli.CLEARED_ENV_VAR, raising=False)
    cli._reexec_without_openblas_overrides()
    (argv, env), = calls
    assert argv[1:3] == ["-m", "aefast.bench"] and "OPENBLAS_CORETYPE" not in env
    assert json.loads(env[cli.CLEARED_ENV_VAR]) == {"OPENBLAS_CORETYPE": "Zen"}
    monkeypatch.setenv(cli.CLEARED_ENV_VAR, "{}")  # already re-executed: never loops
    cli._reexec_without_openblas_overrides()
    assert len(calls) == 1


def test_cli_rejects_bad_arguments(capsys, monkeypatch):
    from aefast.bench import __main__ as cli
    monkeypatch.setattr(cli.os, "execve", lambda *a: pytest.fail("main(argv) must never re-execute the process"))
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    main = cli.main
    with pytest.raises(SystemExit) as e:
        main(["--contenders", "numpy"])
    assert e.value.code == 2 and "unknown contenders ['numpy']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--batches", "0"])
    assert "batch sizes must be >= 1" in capsys.readouterr().err


def test_aefast_cpp_contenders_record_their_engine(tiny):
    ctx = _ctx(tiny)
    for name in ("aefast cpp fp32", "aefast cpp fp16 t=1", "aefast cpp int8"):
        try:
            p = ctx.prepare(CONTENDERS_BY_NAME[name], "reconstruct", 5)
        except Skipped as e:
            pytest.skip(f"the C++ engine is not available here: {e}")
        assert p.details["backend"] == "cpp" and p.details["nbytes"] > 0 and p.details["isa"]
        assert p.rel_rms_error <= REL_RMS_TOLERANCE[p.contender.precision]
    assert ctx.reference("reconstruct", 5)[1] == "aefast cpp fp32"


def test_reference_falls_back_to_float64_without_an_engine(tiny, monkeypatch):
    def no_engine(self, precision, backend, threads):
        raise Skipped("the compiled core is not built")
    monkeypatch.setattr(BuildContext, "engine", no_engine)
    ctx = _ctx(tiny)
    ref, name = ctx.reference("compress", 4)
    assert name == "numpy float64 (aefast cpp fp32 unavailable: the compiled core is not built)"
    np.testing.assert_allclose(ref, reference_forward(tiny, ctx.inputs(4), 0, op_end(tiny, "compress")))
    assert ctx.reference_error("compress")[1] == 0
    with pytest.raises(Skipped, match="not built"):
        ctx.prepare(CONTENDERS_BY_NAME["aefast cpp int8"], "compress", 4)
    assert ctx.prepare(CONTENDERS_BY_NAME["numpy fp32"], "compress", 4).reference.startswith("numpy float64")


def test_matched_sgemm_does_the_given_flops():
    assert machine.matched_sgemm_n(2 * 1000 ** 3) == 1000
    assert machine.matched_sgemm_n(4096 * flops_per_image(random_weights(DEFAULT_SIZES), "reconstruct")) == 1935
    assert machine.matched_sgemm_n(10) == 16
    with pytest.raises(ValueError, match="flops must be positive"):
        machine.matched_sgemm_n(0)


def _cpu_during_sleep(seconds: float) -> float:
    """CPU seconds this process used while its calling thread slept: what other threads (spinning pools) took."""
    start = time.process_time()
    time.sleep(seconds)
    return time.process_time() - start


def test_settle_waits_until_a_spinning_thread_stops():
    src, dst = np.ones(4 << 20, np.float32), np.empty(4 << 20, np.float32)

    def spin(seconds):  # busy without the GIL (NumPy copies release it), like a native pool's spinning worker
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            np.copyto(dst, src)
    spinner = threading.Thread(target=spin, args=(0.08,))
    spinner.start()
    assert runnable_threads() >= 1  # the check can see the spinner
    started = time.perf_counter()
    spun = settle(max_s=2.0)
    assert not spinner.is_alive() and 0.04 < spun <= time.perf_counter() - started
    assert _cpu_during_sleep(0.05) < 0.01
    spinner.join()


def test_settle_without_proc_sleeps_a_fixed_time(monkeypatch):
    from aefast.bench import timing
    monkeypatch.setattr(timing.os, "listdir", lambda path: (_ for _ in ()).throw(FileNotFoundError(path)))
    assert timing.runnable_threads() is None
    assert timing.settle(max_s=0.01) == 0.01


def test_no_blas_spin_is_left_after_the_numpy_contender(tiny):
    """OpenBLAS's workers spin ~0.1 s after a product; the timer must wait that out before the next contender."""
    openblas_threads = max((b.get("num_threads", 1) for b in machine.blas_info() if b.get("internal_api") ==
                            "openblas"), default=1)
    a = np.random.default_rng(0).random((512, 512), np.float32)
    np.matmul(a, a)
    if openblas_threads > 1:  # the setup really makes a spinning pool, else this test could not fail
        assert runnable_threads() >= 1
    ctx = _ctx(random_weights((64, 512, 32, 512, 64)), n=256)
    numpy_run = ctx.prepare(CONTENDERS_BY_NAME["numpy fp32"], "reconstruct", 256).run
    timings = time_interleaved({"numpy": numpy_run, "sgemm": lambda: np.matmul(a, a)}, rounds=2, block_s=0.01)
    assert runnable_threads() == 0
    assert _cpu_during_sleep(0.05) < 0.005  # measured: ~0.05 s of CPU in 50 ms without the settle
    if openblas_threads > 1:
        assert max(timings["sgemm"].spin_s) > 0.02  # the spin was there and was waited out
