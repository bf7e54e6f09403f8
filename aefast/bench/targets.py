"""The speed targets, judged from one run's measurements (ratios within the run, so shared noise cancels).

Each target reads the reconstruct measurements of one model and returns met (True/False, or None when a figure it
needs was not measured) with the figure that decided it. Two sets: the first targets (fp32 against the fastest
fp32 peer and the sgemm ceiling, bf16 against fp32, int8 latency 12 us), and the "vs peers:" set for full-width
AVX-512 VNNI CPUs, where every precision meets the fastest peer of the same precision (LiteRT, TFLite, ONNX
Runtime, OpenVINO, PyTorch: every contender of family "peer") and its instruction-peak ceiling. Models without an
"aefast cpp" row (the "your PyTorch model" pair) get no targets: report.torch_ratios compares them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .contenders import arithmetic_of


@dataclass
class TargetResult:
    target: str
    model: str
    met: bool | None
    figure: str

    def as_dict(self) -> dict:
        return asdict(self)


def _ok(results: dict, model: str, batch: int, op: str = "reconstruct") -> list[dict]:
    return [r for r in results["measurements"] if r["model"] == model and r["op"] == op and r["batch"] == batch
            and r["status"] == "ok"]


def _not_measured(results: dict, model: str, batch: int, missing: str) -> str:
    ran = any(r["model"] == model and r["op"] == "reconstruct" and r["batch"] == batch
              for r in results["measurements"])
    return f"not measured: {missing}" if ran else f"not measured: batch {batch} was not run"


def _fastest(rows: list[dict], pick) -> dict | None:
    chosen = [r for r in rows if pick(r)]
    return min(chosen, key=lambda r: r["median_s"]) if chosen else None


def _is_peer_fp32(r: dict) -> bool:
    return r["family"] == "peer" and r["precision"] == "fp32"


def _is_peer_int8(r: dict) -> bool:
    return r["family"] == "peer" and r["precision"] == "int8"


def _is_peer(precision: str):
    return lambda r: r["family"] == "peer" and r["precision"] == precision


def _is_cpp(precision: str):
    return lambda r: r["contender"].startswith("aefast cpp") and r["precision"] == precision


def _us(r: dict) -> str:
    return f"{r['median_s'] * 1e6:,.1f} us ({r['contender']})"


def _ips(r: dict) -> str:
    return f"{r['images_per_s']:,.0f} images/s ({r['contender']})"


def _ours_and_peer(results, model, batch, precision, peer_precision) -> tuple[dict | None, dict | None, str]:
    """The fastest aefast cpp `precision` row and the fastest `peer_precision` peer row at `batch`; when either is
    missing, (None, None, the "not measured" figure saying which)."""
    rows = _ok(results, model, batch)
    is_peer = _is_peer(peer_precision)
    ours, peer = _fastest(rows, _is_cpp(precision)), _fastest(rows, is_peer)
    if ours is None or peer is None:
        return None, None, _not_measured(results, model, batch, f"no aefast cpp {precision} run" if ours is None
                                         else f"no {peer_precision} peer")
    return ours, peer, ""


def _latency_target(results, model, precision, limit) -> TargetResult:
    name = f"batch 1 reconstruct {precision} latency <= {limit}x fastest fp32 peer"
    ours, peer, missing = _ours_and_peer(results, model, 1, precision, "fp32")
    if missing:
        return TargetResult(name, model, None, missing)
    ratio = ours["median_s"] / peer["median_s"]
    return TargetResult(name, model, ratio <= limit, f"{_us(ours)} vs {_us(peer)}: {ratio:.2f}x")


def _throughput_target(results, model, batch, limit, ceiling_share=None) -> TargetResult:
    name = f"batch {batch} reconstruct fp32 throughput >= {limit}x fastest fp32 peer"
    if ceiling_share is not None:
        name += f" and >= {ceiling_share:.0%} of the sgemm ceiling"
    ours, peer, missing = _ours_and_peer(results, model, batch, "fp32", "fp32")
    if missing:
        return TargetResult(name, model, None, missing)
    ratio = ours["images_per_s"] / peer["images_per_s"]
    met, figure = ratio >= limit, f"{_ips(ours)} vs {_ips(peer)}: {ratio:.2f}x"
    if ceiling_share is not None:
        best = best_sgemm_ceiling_images_per_s(results, ours)
        same = same_work_ceiling_images_per_s(results, ours)
        # Judged like for like: the median against the median of an sgemm of the same work timed in the same
        # rounds; only when that was not measured against the best-case ceiling (stricter).
        share = ours["images_per_s"] / (same or best)
        met = met and share >= ceiling_share
        if same is not None:
            figure += (f"; {share:.0%} of the same-work sgemm ceiling ({same:,.0f} images/s), "
                       f"{ours['images_per_s'] / best:.0%} of the best-case one ({best:,.0f})")
        else:
            figure += f"; {share:.0%} of the best-case {best:,.0f} images/s ceiling (no same-work sgemm)"
    return TargetResult(name, model, met, figure + _peak_share(results, ours))


def _op_info(results: dict, row: dict) -> dict:
    return next(m for m in results["models"] if m["name"] == row["model"])["ops"][row["op"]]


def best_sgemm_ceiling_images_per_s(results: dict, row: dict) -> float:
    """The best-case sgemm ceiling for a measurement: the run's best sgemm, or the best sgemm timed inside the
    measurement's own cell if that was higher (never the lower one: a share of the ceiling must not be overstated)."""
    op = _op_info(results, row)
    if "cell_sgemm_best_gflops" not in row:
        return op["ceiling_images_per_s"]
    return max(op["ceiling_images_per_s"], row["cell_sgemm_best_gflops"] * 1e9 / op["flops_per_image"])


ceiling_images_per_s = best_sgemm_ceiling_images_per_s   # the older name, kept for callers


def same_work_ceiling_images_per_s(results: dict, row: dict) -> float | None:
    """The like-for-like ceiling: the median GFLOP/s of the sgemm doing one call's flops, timed interleaved in the
    measurement's own cell (same rounds, same duration, same statistic as the row's median); None where the cell
    timed no sgemm (small batches)."""
    if "cell_sgemm_median_gflops" not in row:
        return None
    return row["cell_sgemm_median_gflops"] * 1e9 / _op_info(results, row)["flops_per_image"]


def peak_ceiling(results: dict, row: dict) -> tuple[str, float] | None:
    """(arithmetic, images/s) of the instruction-peak ceiling a measurement is judged against: its arithmetic's
    peak multiply-add rate x usable cores / multiply-adds per image (runner.py); None if not measured."""
    arithmetic = row.get("arithmetic") or arithmetic_of(row["precision"])
    ceiling = _op_info(results, row).get("peak_ceilings_images_per_s", {}).get(arithmetic)
    return (arithmetic, ceiling) if ceiling else None


def _peak_share(results: dict, row: dict) -> str:
    ceiling = peak_ceiling(results, row)
    if ceiling is None:
        return f"; no {row.get('arithmetic') or arithmetic_of(row['precision'])} peak measured"
    return f"; {row['images_per_s'] / ceiling[1]:.0%} of the {ceiling[0]} peak ceiling ({ceiling[1]:,.0f} images/s)"


def _rel_errors(results: dict, model: str, ours: dict, theirs: dict) -> tuple[float, float, str]:
    """The relative RMS errors against fp32 of two contenders: from the quantization comparison (the run's first
    model, every test image) when both were in it, else from the cell's check (the timed batch)."""
    quant = {q["contender"]: q for q in results.get("quantization", {}).get(model, {}).get("rows", [])
             if q["status"] == "ok" and "rel_rms_vs_reference" in q}
    a = quant.get(ours["contender"].removesuffix(" t=1"))
    b = quant.get(theirs["contender"])
    if a is not None and b is not None:
        images = results["quantization"][model]["images"]
        return a["rel_rms_vs_reference"], b["rel_rms_vs_reference"], f"on {images:,} images"
    return ours["rel_rms_error"], theirs["rel_rms_error"], f"on the timed batch of {ours['batch']}"


def _int8_target(results, model, batch, limit=1.2) -> TargetResult:
    name = f"batch {batch} reconstruct int8 >= {limit}x fastest int8 peer, with smaller relative RMS error"
    ours, peer, missing = _ours_and_peer(results, model, batch, "int8", "int8")
    if missing:
        return TargetResult(name, model, None, missing)
    ratio = ours["images_per_s"] / peer["images_per_s"]
    ours_error, peer_error, where = _rel_errors(results, model, ours, peer)
    figure = (f"{_ips(ours)} vs {_ips(peer)}: {ratio:.2f}x{_peak_share(results, ours)}; relative RMS error "
              f"{ours_error:.1e} vs {peer_error:.1e} ({where})")
    return TargetResult(name, model, ratio >= limit and ours_error < peer_error, figure)


def _int8_latency_target(results, model, limit_s=12e-6) -> TargetResult:
    name = f"batch 1 reconstruct int8 latency <= {limit_s * 1e6:.0f} us"
    ours = _fastest(_ok(results, model, 1), _is_cpp("int8"))
    if ours is None:
        return TargetResult(name, model, None, _not_measured(results, model, 1, "no aefast cpp int8 run"))
    return TargetResult(name, model, ours["median_s"] <= limit_s, _us(ours))


def _bf16_target(results, model, batch, over_fp32=1.7, over_peer=1.5) -> TargetResult:
    name = f"batch {batch} reconstruct bf16 >= {over_fp32}x aefast fp32 and >= {over_peer}x fastest fp32 peer"
    rows = _ok(results, model, batch)
    ours, fp32, peer = (_fastest(rows, _is_cpp("bf16")), _fastest(rows, _is_cpp("fp32")),
                        _fastest(rows, _is_peer_fp32))
    if ours is None or fp32 is None or peer is None:
        missing = "no aefast cpp bf16 run" if ours is None else "no aefast cpp fp32 run" if fp32 is None else \
            "no fp32 peer"
        return TargetResult(name, model, None, _not_measured(results, model, batch, missing))
    vs_fp32, vs_peer = ours["images_per_s"] / fp32["images_per_s"], ours["images_per_s"] / peer["images_per_s"]
    figure = (f"{_ips(ours)}: {vs_fp32:.2f}x {_ips(fp32)}, {vs_peer:.2f}x {_ips(peer)}"
              f"{_peak_share(results, ours)}")
    return TargetResult(name, model, vs_fp32 >= over_fp32 and vs_peer >= over_peer, figure)


def _numba_target(results, model, batch=4096, limit=0.5) -> TargetResult:
    name = f"numba >= {limit}x the C++ fp32 engine at batch {batch} (reconstruct)"
    rows = _ok(results, model, batch)
    numba = _fastest(rows, lambda r: r["contender"] == "aefast numba fp32")
    cpp = _fastest(rows, lambda r: r["contender"] == "aefast cpp fp32")
    if numba is None or cpp is None:
        return TargetResult(name, model, None, _not_measured(results, model, batch, "no numba run" if numba is None
                                                             else "no cpp run"))
    ratio = numba["images_per_s"] / cpp["images_per_s"]
    return TargetResult(name, model, ratio >= limit, f"{_ips(numba)} vs {_ips(cpp)}: {ratio:.2f}x")


# Batches the "vs peers:" speed targets are judged at, per model (other models: the batches measured).
PEER_TARGET_BATCHES = {"default": (1, 16, 256, 4096), "wide": (1, 16, 256, 1024)}


def _ratio_target(results, model, batch, precision, peer_precision, limit, name, errors=False) -> TargetResult:
    """aefast cpp `precision` images/s >= limit x the fastest `peer_precision` peer's at `batch` (and, with
    `errors`, a relative RMS error no larger than that peer's)."""
    ours, peer, missing = _ours_and_peer(results, model, batch, precision, peer_precision)
    if missing:
        return TargetResult(name, model, None, missing)
    ratio = ours["images_per_s"] / peer["images_per_s"]
    figure, met = f"{_ips(ours)} vs {_ips(peer)}: {ratio:.2f}x{_peak_share(results, ours)}", ratio >= limit
    if errors:
        ours_error, peer_error, where = _rel_errors(results, model, ours, peer)
        figure += f"; relative RMS error {ours_error:.1e} vs {peer_error:.1e} ({where})"
        met = met and ours_error <= peer_error
    return TargetResult(name, model, met, figure)


def _ceiling_target(results, model, batch, precision, share) -> TargetResult:
    name = f"vs peers: {precision} >= {share:.0%} of its instruction-peak ceiling at batch {batch}"
    ours = _fastest(_ok(results, model, batch), _is_cpp(precision))
    if ours is None:
        return TargetResult(name, model, None, _not_measured(results, model, batch, f"no aefast cpp {precision} run"))
    ceiling = peak_ceiling(results, ours)
    if ceiling is None:
        return TargetResult(name, model, None, f"not measured: no {arithmetic_of(precision)} peak")
    got = ours["images_per_s"] / ceiling[1]
    return TargetResult(name, model, got >= share, f"{_ips(ours)}: {got:.0%} of the {ceiling[0]} peak ceiling "
                                                   f"({ceiling[1]:,.0f} images/s)")


def _fp16_target(results, model, batch) -> TargetResult:
    name = f"vs peers: fp16 >= fp32 at batch {batch}"
    rows = _ok(results, model, batch)
    fp16, fp32 = _fastest(rows, _is_cpp("fp16")), _fastest(rows, _is_cpp("fp32"))
    if fp16 is None or fp32 is None:
        return TargetResult(name, model, None, _not_measured(
            results, model, batch, f"no aefast cpp {'fp16' if fp16 is None else 'fp32'} run"))
    ratio = fp16["images_per_s"] / fp32["images_per_s"]
    return TargetResult(name, model, ratio >= 1.0, f"{_ips(fp16)} vs {_ips(fp32)}: {ratio:.2f}x")


def _fp32_latency_vs_peer(results, model, limit=0.6) -> TargetResult:
    name = f"vs peers: fp32 batch-1 time <= {limit}x the fastest fp32 peer's"
    ours, peer, missing = _ours_and_peer(results, model, 1, "fp32", "fp32")
    if missing:
        return TargetResult(name, model, None, missing)
    ratio = ours["median_s"] / peer["median_s"]
    return TargetResult(name, model, ratio <= limit, f"{_us(ours)} vs {_us(peer)}: {ratio:.2f}x")


def peer_targets(results: dict, model: str) -> list[TargetResult]:
    """The "vs peers:" targets of `model`: int8 >= 1.2x the fastest int8 peer with no larger error, bf16 >= 1.2x
    the fastest bf16 peer, fp32 >= 1.1x the fastest fp32 peer (batch >= 16) and <= 0.6x its batch-1 time, fp16 >=
    fp32; on the default model int8 >= 75% and bf16 >= 85% of their peak ceilings at batch >= 256; int8 batch 1 <=
    8 us."""
    measured = sorted({r["batch"] for r in results["measurements"] if r["model"] == model
                       and r["op"] == "reconstruct"})
    batches = PEER_TARGET_BATCHES.get(model, tuple(measured))
    every = sorted(set(batches) | set(measured))
    out = [_ratio_target(results, model, b, "int8", "int8", 1.2,
                         f"vs peers: int8 >= 1.2x fastest int8 peer at batch {b}, no larger error", errors=True)
           for b in batches]
    out += [_ratio_target(results, model, b, "bf16", "bf16", 1.2, f"vs peers: bf16 >= 1.2x fastest bf16 peer at "
                                                                   f"batch {b}") for b in every]
    out += [_ratio_target(results, model, b, "fp32", "fp32", 1.1, f"vs peers: fp32 >= 1.1x fastest fp32 peer at "
                                                                   f"batch {b}") for b in every if b >= 16]
    out += [_fp32_latency_vs_peer(results, model), *(_fp16_target(results, model, b) for b in every)]
    if model == "default":
        out += [_ceiling_target(results, model, b, p, share) for p, share in (("int8", 0.75), ("bf16", 0.85))
                for b in every if b >= 256]
        ours = _fastest(_ok(results, model, 1), _is_cpp("int8"))
        name = "vs peers: int8 batch-1 latency <= 8 us"
        out.append(TargetResult(name, model, None, _not_measured(results, model, 1, "no aefast cpp int8 run"))
                   if ours is None else TargetResult(name, model, ours["median_s"] <= 8e-6, _us(ours)))
    return out


def evaluate_targets(results: dict) -> list[TargetResult]:
    """Every target for every model in `results` that aefast's C++ engine ran (reconstruct measurements and the
    quantization comparison)."""
    out = []
    for info in results["models"]:
        m = info["name"]
        if not any(r["model"] == m and r["contender"].startswith("aefast cpp") for r in results["measurements"]):
            continue
        out += [_latency_target(results, m, "fp32", 0.6), _latency_target(results, m, "fp16", 0.6),
                _throughput_target(results, m, 16, 1.05, 0.95), _throughput_target(results, m, 4096, 1.05, 0.95),
                *(_bf16_target(results, m, batch) for batch in (256, 4096)),
                *(_int8_target(results, m, batch) for batch in (1, 16, 256, 4096)),
                _int8_latency_target(results, m), _numba_target(results, m), *peer_targets(results, m)]
    return out
