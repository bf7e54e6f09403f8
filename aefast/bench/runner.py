"""The whole comparison: machine limits, then every (model, operation, batch) cell timed with interleaved
contenders, then the quantization error comparison; returns one JSON-able dict (see report.py for its output)."""
from __future__ import annotations

import datetime
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import machine
from ..engine.precisions import PRECISIONS
from .contenders import BuildContext, Contender, Skipped, check_errors
from .contenders.registry import EXTRA_CONTENDERS, PEER_CONTENDERS, select_contenders
from .models import OPERATIONS, BenchModel, flops_per_image, input_images, weight_count
from .timing import time_interleaved

BATCHES = (1, 16, 256, 4096)
# Contenders whose reconstructions of the MNIST test set are compared with the input images and the fp32 answer:
# the C++ engine at every precision, and every peer that quantizes, beside TFLite's fp32.
QUANTIZATION_CONTENDERS = (*(f"aefast cpp {p}" for p in PRECISIONS),
                           *(c.name for c in PEER_CONTENDERS if c.precision != "fp32"), "tflite fp32",
                           *(c.name for c in EXTRA_CONTENDERS if c.precision != "fp32"))
BYTES_PER_WEIGHT = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1, "int8w": 1}
SGEMM_NAME = "(numpy sgemm)"
# The runner re-executes itself with the OpenBLAS overrides removed and records them here (see __main__.py).
CLEARED_ENV_VAR = "AEFAST_BENCH_CLEARED_ENV"


@dataclass
class BenchConfig:
    """models: what to run; batches[model.name]: its batch sizes; rounds/block_s: see timing.time_interleaved."""

    models: list[BenchModel]
    batches: dict[str, tuple[int, ...]]
    contenders: list[Contender] = field(default_factory=lambda: select_contenders(None))
    # model name -> the contenders run on that model instead of `contenders` (the "your PyTorch model" models)
    model_contenders: dict[str, list[Contender]] = field(default_factory=dict)
    ops: tuple[str, ...] = OPERATIONS
    rounds: int = 7
    block_s: float = 0.1
    data_dir: str | None = None
    sgemm_n: int = 2048
    # At batch >= cell_sgemm_min_batch an sgemm doing one call's flops is timed in the cell, interleaved (from 16:
    # the batch-16 fp32 target is judged against it)
    cell_sgemm_min_batch: int = 16
    peak_s: float = 0.2  # each instruction peak loop runs about this long (machine.peak_rates)
    sgemm_repeats: int = 5
    copy_mib: int = 256
    quantization_images: int = 10_000
    quick: bool = False
    command: str = field(default_factory=lambda: " ".join(sys.argv))  # how this run was started, for the record


def _limits(config: BenchConfig) -> dict:
    return {"sgemm": machine.sgemm_gflops(config.sgemm_n, config.sgemm_repeats),
            "copy": machine.copy_bandwidth(config.copy_mib), "peaks": machine.peak_rates(config.peak_s),
            "load_average": machine.load_average()}


def _model_info(model: BenchModel, image_source: str) -> dict:
    w = model.weights
    return {"name": model.name, "source": model.source, "trained": model.trained, "layer_sizes": w.layer_sizes,
            "activations": list(w.activations), "encoder_layers": w.encoder_layers, "inputs": image_source,
            "ops": {op: {"flops_per_image": flops_per_image(w, op), "weights": weight_count(w, op),
                         "weight_bytes_at_batch_1": {p: weight_count(w, op) * n for p, n in BYTES_PER_WEIGHT.items()}}
                    for op in OPERATIONS}}


def _record(model: str, op: str, batch: int, contender: Contender, **fields) -> dict:
    return {"model": model, "op": op, "batch": batch, "contender": contender.name, "family": contender.family,
            "precision": contender.precision, "arithmetic": contender.arithmetic, **fields}


def _time_cell(ctx: BuildContext, model: str, op: str, batch: int, config: BenchConfig) -> list[dict]:
    prepared, records = {}, []
    for contender in config.model_contenders.get(model, config.contenders):
        try:
            prepared[contender.name] = ctx.prepare(contender, op, batch)
        except Skipped as e:
            records.append(_record(model, op, batch, contender, status="skipped", reason=str(e)))
    fns = {name: p.run for name, p in prepared.items()}
    # At large batches NumPy's sgemm runs as one more contender, a square product doing the flops of one call of
    # the op at this batch: it lasts about as long as the engines' calls and meets the same load in the same
    # rounds, so its median is a like-for-like ceiling for their medians (targets.same_work_ceiling). (Not at small
    # batches: there the ceiling says little and its matrices would evict the weights from cache.)
    with_sgemm = batch >= config.cell_sgemm_min_batch and fns
    if with_sgemm:
        sgemm_n = machine.matched_sgemm_n(flops_per_image(ctx.weights, op) * batch)
        fns[SGEMM_NAME], sgemm_flops = machine.sgemm_call(sgemm_n)
    timings = time_interleaved(fns, config.rounds, config.block_s)
    cell = {"cell_sgemm_n": sgemm_n, "cell_sgemm_calls_per_block": timings[SGEMM_NAME].calls_per_block,
            "cell_sgemm_spin_s": max(timings[SGEMM_NAME].spin_s),
            "cell_sgemm_best_gflops": sgemm_flops / timings[SGEMM_NAME].best / 1e9,
            "cell_sgemm_median_gflops": sgemm_flops / timings[SGEMM_NAME].median / 1e9} if with_sgemm else {}
    for name, p in prepared.items():
        t = timings[name]
        records.append(_record(model, op, batch, p.contender, status="ok", **t.as_dict(),
                               images_per_s=batch / t.median, best_images_per_s=batch / t.best,
                               rel_rms_error=p.rel_rms_error, max_abs_error=p.max_abs_error, reference=p.reference,
                               **cell, **p.details))
    return records


def _quantization(ctx: BuildContext, config: BenchConfig, image_source: str, model: str) -> dict:
    """Reconstruction MSE against the input images and against the fp32 reference, on the first N images."""
    n = min(config.quantization_images, len(ctx.images))
    x = ctx.inputs(n)
    rows = []
    names = {k.name for k in config.model_contenders.get(model, config.contenders)}
    for contender in select_contenders([c for c in QUANTIZATION_CONTENDERS if c in names]):
        try:
            p = ctx.prepare(contender, "reconstruct", n)
        except Skipped as e:
            rows.append({"contender": contender.name, "precision": contender.precision, "status": "skipped",
                         "reason": str(e)})
            continue
        y = p.run().reshape(n, -1)
        ref, ref_name = ctx.reference("reconstruct", n)
        rows.append({"contender": contender.name, "precision": contender.precision, "status": "ok",
                     "mse_vs_input": float(np.mean(np.square(y - x, dtype=np.float64))),
                     "mse_vs_reference": float(np.mean(np.square(y - ref, dtype=np.float64))),
                     "rel_rms_vs_reference": check_errors(y, ref)[0], "reference": ref_name})
    return {"images": n, "source": image_source, "rows": rows}


def run_benchmark(config: BenchConfig, log: Callable[[str], None] | None = None) -> dict:
    """Measure everything in `config`; returns the results dict written to results.json."""
    started = time.perf_counter()
    log = log or (lambda msg: print(f"[{time.perf_counter() - started:6.1f} s] {msg}", file=sys.stderr, flush=True))
    results = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": config.command,
        "quick": config.quick,
        "machine": {**machine.describe_machine(),
                    "openblas_env_cleared": json.loads(os.environ.get(CLEARED_ENV_VAR, "{}"))},
        "timing": {"method": "interleaved rounds (rotating order), one block of calls per contender per round, "
                             "median and best of the per-round means; after every block the runner waits until "
                             "no other thread of the process is runnable (spinning pools idle)",
                   "rounds": config.rounds, "block_s": config.block_s,
                   "cell_sgemm": "square sgemm doing the flops of one call of the cell's op and batch",
                   "cell_sgemm_min_batch": config.cell_sgemm_min_batch},
        "models": [], "measurements": [], "quantization": {},
    }
    log("measuring the machine's limits (sgemm, copy, instruction peaks) ...")
    start_limits = _limits(config)
    for model in config.models:
        batches = config.batches[model.name]
        count = max(max(batches), config.quantization_images if model is config.models[0] else 0)
        images, image_source = input_images(model.weights.input_size, count, config.data_dir)
        ctx = BuildContext(model.weights, images, f"{model.source}; inputs: {image_source}")
        info = _model_info(model, image_source)
        for op in config.ops:
            name, error = ctx.reference_error(op)
            info["ops"][op]["reference"] = {"name": name, "rel_rms_error_vs_float64": error}
        results["models"].append(info)
        for op in config.ops:
            for batch in batches:
                cell = _time_cell(ctx, model.name, op, batch, config)
                results["measurements"] += cell
                ok = [r for r in cell if r["status"] == "ok"]
                best = max(ok, key=lambda r: r["images_per_s"]) if ok else None
                log(f"{model.name} {op} batch={batch}: {len(ok)} timed" +
                    (f", fastest {best['contender']} {best['images_per_s']:,.0f} images/s" if best else ""))
        if model is config.models[0]:
            log(f"{model.name}: reconstruction error on {image_source} ...")
            results["quantization"][model.name] = _quantization(ctx, config, image_source, model.name)
        del ctx
    end_limits = _limits(config)
    results["limits"] = {"start": start_limits, "end": end_limits,
                         "sgemm_best_gflops": max(start_limits["sgemm"]["best_gflops"],
                                                  end_limits["sgemm"]["best_gflops"]),
                         "copy_best_gb_per_s": max(start_limits["copy"]["best_gb_per_s"],
                                                   end_limits["copy"]["best_gb_per_s"]),
                         "peaks": machine.best_peak_rates(start_limits["peaks"], end_limits["peaks"])}
    ceilings = machine.arithmetic_ceilings(results["limits"]["peaks"], results["machine"]["usable_cores"])
    results["limits"]["arithmetic_ceilings"] = ceilings
    for info in results["models"]:
        for op, op_info in info["ops"].items():
            op_info["ceiling_images_per_s"] = machine.images_per_s_at_gflops(
                results["limits"]["sgemm_best_gflops"], op_info["flops_per_image"])
            # multiply-adds per image = flops / 2; the peak loops count multiply-adds
            op_info["peak_ceilings_images_per_s"] = {a: c["gmacs"] * 1e9 / (op_info["flops_per_image"] / 2)
                                                     for a, c in ceilings.items()}
            op_info["bandwidth_bound_images_per_s_at_batch_1"] = {
                p: results["limits"]["copy_best_gb_per_s"] * 1e9 / nbytes
                for p, nbytes in op_info["weight_bytes_at_batch_1"].items()}
    return results
