"""The speed targets of issue 5, judged from one run's measurements (ratios within the run, so shared noise cancels).

Each target reads the reconstruct measurements of one model and returns met (True/False, or None when a figure it
needs was not measured) with the figure that decided it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


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


def _is_cpp(precision: str):
    return lambda r: r["contender"].startswith("aefast cpp") and r["precision"] == precision


def _us(r: dict) -> str:
    return f"{r['median_s'] * 1e6:,.1f} us ({r['contender']})"


def _ips(r: dict) -> str:
    return f"{r['images_per_s']:,.0f} images/s ({r['contender']})"


def _latency_target(results, model, precision, limit) -> TargetResult:
    name = f"batch 1 reconstruct {precision} latency <= {limit}x fastest fp32 peer"
    rows = _ok(results, model, 1)
    ours, peer = _fastest(rows, _is_cpp(precision)), _fastest(rows, _is_peer_fp32)
    if ours is None or peer is None:
        return TargetResult(name, model, None, _not_measured(results, model, 1, f"no aefast cpp {precision} run"
                                                             if ours is None else "no fp32 peer"))
    ratio = ours["median_s"] / peer["median_s"]
    return TargetResult(name, model, ratio <= limit, f"{_us(ours)} vs {_us(peer)}: {ratio:.2f}x")


def _throughput_target(results, model, batch, limit, ceiling_share=None) -> TargetResult:
    name = f"batch {batch} reconstruct fp32 throughput >= {limit}x fastest fp32 peer"
    if ceiling_share is not None:
        name += f" and >= {ceiling_share:.0%} of the sgemm ceiling"
    rows = _ok(results, model, batch)
    ours, peer = _fastest(rows, _is_cpp("fp32")), _fastest(rows, _is_peer_fp32)
    if ours is None or peer is None:
        return TargetResult(name, model, None, _not_measured(results, model, batch, "no aefast cpp run"
                                                             if ours is None else "no fp32 peer"))
    ratio = ours["images_per_s"] / peer["images_per_s"]
    met, figure = ratio >= limit, f"{_ips(ours)} vs {_ips(peer)}: {ratio:.2f}x"
    if ceiling_share is not None:
        best = ceiling_images_per_s(results, ours)
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
    return TargetResult(name, model, met, figure)


def _op_info(results: dict, row: dict) -> dict:
    return next(m for m in results["models"] if m["name"] == row["model"])["ops"][row["op"]]


def ceiling_images_per_s(results: dict, row: dict) -> float:
    """The best-case sgemm ceiling for a measurement: the run's best sgemm, or the best sgemm timed inside the
    measurement's own cell if that was higher (never the lower one: a share of the ceiling must not be overstated)."""
    op = _op_info(results, row)
    if "cell_sgemm_best_gflops" not in row:
        return op["ceiling_images_per_s"]
    return max(op["ceiling_images_per_s"], row["cell_sgemm_best_gflops"] * 1e9 / op["flops_per_image"])


def same_work_ceiling_images_per_s(results: dict, row: dict) -> float | None:
    """The like-for-like ceiling: the median GFLOP/s of the sgemm doing one call's flops, timed interleaved in the
    measurement's own cell (same rounds, same duration, same statistic as the row's median); None where the cell
    timed no sgemm (small batches)."""
    if "cell_sgemm_median_gflops" not in row:
        return None
    return row["cell_sgemm_median_gflops"] * 1e9 / _op_info(results, row)["flops_per_image"]


def _int8_target(results, model) -> TargetResult:
    name = "batch 1 reconstruct int8 faster than TFLite dynamic int8, with smaller reconstruction MSE"
    rows = _ok(results, model, 1)
    ours = _fastest(rows, _is_cpp("int8"))
    theirs = _fastest(rows, lambda r: r["contender"] == "tflite dynamic int8")
    quant = {q["contender"]: q for q in results.get("quantization", {}).get(model, {}).get("rows", [])
             if q["status"] == "ok"}
    if ours is None or theirs is None:
        return TargetResult(name, model, None, _not_measured(results, model, 1, "no aefast int8 run" if ours is None
                                                             else "no TFLite int8 run"))
    ratio = ours["median_s"] / theirs["median_s"]
    figure = f"{_us(ours)} vs {_us(theirs)}: {ratio:.2f}x"
    q_ours, q_theirs = quant.get("aefast cpp int8"), quant.get("tflite dynamic int8")
    if q_ours is None or q_theirs is None:
        return TargetResult(name, model, None, figure + "; reconstruction MSE not measured (a run measures it "
                                                        "on its first model only)")
    figure += f"; MSE {q_ours['mse_vs_input']:.5f} vs {q_theirs['mse_vs_input']:.5f}"
    return TargetResult(name, model, ratio < 1 and q_ours["mse_vs_input"] < q_theirs["mse_vs_input"], figure)


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


def evaluate_targets(results: dict) -> list[TargetResult]:
    """Every target for every model in `results` (reconstruct measurements and the quantization comparison)."""
    out = []
    for info in results["models"]:
        m = info["name"]
        out += [_latency_target(results, m, "fp32", 0.8), _latency_target(results, m, "fp16", 0.6),
                _throughput_target(results, m, 4096, 1.05, 0.9), _throughput_target(results, m, 16, 1.3),
                _int8_target(results, m), _numba_target(results, m)]
    return out
