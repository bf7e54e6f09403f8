"""Writing a run's results: results.json (every raw figure), results.md (tables and targets), throughput.png."""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

from .._io import write_bytes_atomic, write_text_atomic
from .targets import best_sgemm_ceiling_images_per_s, evaluate_targets, peak_ceiling, same_work_ceiling_images_per_s

_MARK = {True: "met", False: "**missed**", None: "not measured"}


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(row) + " |" for row in rows])


def _machine_lines(results: dict) -> list[str]:
    m = results["machine"]
    flags = ", ".join(k for k, v in m["cpu_flags"].items() if v is True) or "none detected"
    blas = "; ".join(f"{b.get('internal_api')} {b.get('version')} kernel {b.get('architecture')} "
                     f"{b.get('num_threads')} threads" for b in m["blas"] if "internal_api" in b) or "unknown"
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    cleared = m.get("openblas_env_cleared") or {}
    ident = m.get("cpu_identity") or {}
    family = (f" ({ident.get('vendor_id', '?')} cpu family {ident['cpu family']} model {ident.get('model', '?')} "
              f"stepping {ident.get('stepping', '?')})" if "cpu family" in ident else "")
    return [f"- CPU: {m['cpu_model']}{family}, {m['usable_cores']} usable cores ({m['logical_cores']} logical); "
            f"flags: {flags}; caches: {', '.join(f'{k} {v}' for k, v in m['caches'].items()) or 'unknown'}",
            f"- BLAS (NumPy): {blas}" + (f"; cleared for this run: {cleared}" if cleared else ""),
            f"- Versions: Python {m['python']}, {versions}", *_engine_lines(results)]


def _engine_lines(results: dict) -> list[str]:
    """"- aefast engines (isa amx; AEFAST_AMX=1): fp32 avx512, int8 amx, ..." from the measured rows' details: which
    ISA level and kernel each aefast precision ran, so two runs (AMX on and off) say which is which."""
    by_isa: dict[str, dict[str, None]] = {}   # isa -> "precision kernel" in the order measured, once each
    for r in results.get("measurements") or []:
        if r.get("family") == "aefast" and r.get("backend") == "cpp" and r.get("isa"):
            by_isa.setdefault(r["isa"], {})[f"{r['precision']} {r.get('kernel', '?')}"] = None
    amx = (results.get("machine") or {}).get("aefast_amx")
    switch = f"; AEFAST_AMX={amx}" if amx else ""
    return [f"- aefast engines (isa {isa}{switch}): {', '.join(kernels)}" for isa, kernels in by_isa.items()]


def _load(limits: dict) -> str:
    return f"{limits['load_average'][0]:.1f}" if limits.get("load_average") else "unknown"


def _spin_lines(results: dict) -> list[str]:
    """Which contenders' thread pools were still spinning after their blocks (waited out, charged to nobody)."""
    spins: dict[str, list[float]] = {}
    for r in results["measurements"]:
        if r["status"] == "ok":
            spins.setdefault(r["contender"], []).extend(r.get("spin_s", []))
    spun = {name: sorted(s) for name, s in spins.items() if s and max(s) > 0}
    if not spun:
        return ["After every block the runner waited until no other thread of the process was runnable; no "
                "contender's threads were seen spinning."]
    return ["After every block the runner waited, untimed, until no other thread of the process was runnable, so no "
            "spinning pool ran into the next contender's block. Spin seen after a block (median / max ms): "
            + "; ".join(f"{name} {s[len(s) // 2] * 1e3:.0f} / {s[-1] * 1e3:.0f}" for name, s in spun.items()) + "."]


def _limits_lines(results: dict) -> list[str]:
    lim = results["limits"]
    s0, s1 = lim["start"]["sgemm"], lim["end"]["sgemm"]
    lines = [f"sgemm (NumPy BLAS, float32 {s0['n']}^3, best of {s0['repeats']}): "
             f"**{lim['sgemm_best_gflops']:.1f} GFLOP/s** "
             f"(start {s0['best_gflops']:.1f}, end {s1['best_gflops']:.1f}). "
             f"Copy bandwidth (one NumPy copy of {lim['start']['copy']['mib']} MiB, read + write, one thread): "
             f"**{lim['copy_best_gb_per_s']:.1f} GB/s**. Load average (1 min) at start / end: "
             f"{_load(lim['start'])} / {_load(lim['end'])} on {results['machine']['usable_cores']} cores "
             "(above the core count, other jobs shared the machine and every figure is noisy).", ""]
    rows = []
    for info in results["models"]:
        for op, o in info["ops"].items():
            wb, bw = o["weight_bytes_at_batch_1"], o["bandwidth_bound_images_per_s_at_batch_1"]
            rows.append([info["name"], op, f"{o['flops_per_image'] / 1e6:.2f}", f"{o['ceiling_images_per_s']:,.0f}",
                         " / ".join(f"{wb[p] / 1e6:.2f}" for p in ("fp32", "fp16", "int8")),
                         " / ".join(f"{bw[p]:,.0f}" for p in ("fp32", "fp16", "int8"))])
    lines += _table(["model", "op", "MFLOP per image", "sgemm ceiling (images/s)",
                     "weight MB per batch-1 image (fp32 / fp16 / int8)",
                     "copy-bandwidth bound at batch 1, images/s (fp32 / fp16 / int8)"], rows)
    return lines + [""] + _peak_lines(results)


def _peak_lines(results: dict) -> list[str]:
    """The instruction peaks (per core and all cores at once) and each model's images/s ceiling per arithmetic."""
    lim = results["limits"]
    peaks, ceilings = lim.get("peaks", {}), lim.get("arithmetic_ceilings", {})
    if not peaks:
        return []
    lines = ["Instruction peaks (`aefast._core.peak`: register-only loops of independent multiply-adds; a thread's "
             "rate is its fastest ~2 ms window; per core: the fastest thread, run alone or beside the others; all "
             "cores: the threads' sum, run at once; best of the start and end of the run), in G multiply-adds per "
             "second. The ceiling of each arithmetic is its fastest kind's per-core rate x the usable cores:", ""]
    rows = [[kind, f"{r['per_core_gmacs']:.1f}", f"{r['all_core_gmacs']:.1f} ({r['threads']} threads)"]
            if "per_core_gmacs" in r else [kind, "-", r.get("unavailable", "?")] for kind, r in peaks.items()]
    lines += _table(["kind", "per core", "all cores at once"], rows)
    if ceilings:
        lines += ["", "Images/s ceilings from the peaks (peak x cores / multiply-adds per image): "
                      + ", ".join(f"{a}: {c['kind']} {c['per_core_gmacs']:.1f} x {c['cores']} = {c['gmacs']:.1f} G/s"
                                  for a, c in ceilings.items()), ""]
        arithmetics = list(ceilings)
        lines += _table(["model", "op", *(f"{a} ceiling (images/s)" for a in arithmetics)],
                        [[info["name"], op, *(f"{o.get('peak_ceilings_images_per_s', {}).get(a, 0):,.0f}"
                                              for a in arithmetics)]
                         for info in results["models"] for op, o in info["ops"].items()])
    return lines


def _peak_cell(results: dict, r: dict) -> str:
    ceiling = peak_ceiling(results, r)
    return f"{r['images_per_s'] / ceiling[1]:.1%} {ceiling[0]}" if ceiling else "-"


def _cell_rows(results: dict, model: str, op: str) -> tuple[list[list[str]], list[str]]:
    rows, skipped = [], {}
    cell = [r for r in results["measurements"] if r["model"] == model and r["op"] == op]
    for batch in sorted({r["batch"] for r in cell}):
        ok = sorted((r for r in cell if r["batch"] == batch and r["status"] == "ok"), key=lambda r: r["median_s"])
        peers = [r["images_per_s"] for r in ok if r["family"] == "peer" and r["precision"] == "fp32"]
        for r in ok:
            ratio = f"{r['images_per_s'] / max(peers):.2f}x" if peers else "-"
            # the sgemm ceilings bound fp32 arithmetic only (int8 and bf16 rows: their own peak ceiling)
            fp32 = r.get("arithmetic", "fp32") == "fp32"
            same = same_work_ceiling_images_per_s(results, r) if fp32 else None
            rows.append([str(batch), r["contender"], r["precision"], f"{r['median_s'] * 1e6:,.1f}",
                         f"{r['best_s'] * 1e6:,.1f}", f"{r['images_per_s']:,.0f}", ratio,
                         f"{r['images_per_s'] / best_sgemm_ceiling_images_per_s(results, r):.1%}" if fp32 else "-",
                         f"{r['images_per_s'] / same:.1%}" if same else "-", _peak_cell(results, r),
                         f"{r['rel_rms_error']:.1e}"])
        for r in cell:
            if r["batch"] == batch and r["status"] == "skipped":
                skipped.setdefault((r["contender"], r["reason"]), []).append(str(batch))
    notes = [f"- skipped {name} (batch {', '.join(b)}): {reason}" for (name, reason), b in skipped.items()]
    return rows, notes


def _quantization_lines(results: dict) -> list[str]:
    lines = []
    for model, q in results.get("quantization", {}).items():
        lines += ["", f"Reconstruction error of model `{model}` on {q['images']} images ({q['source']}): MSE "
                      "against the input pixels, MSE and relative RMS error against the reference answer.", ""]
        rows = [[r["contender"], r["precision"], f"{r['mse_vs_input']:.6f}", f"{r['mse_vs_reference']:.2e}",
                 f"{r['rel_rms_vs_reference']:.2e}" if "rel_rms_vs_reference" in r else "-"]
                if r["status"] == "ok" else [r["contender"], r["precision"], "skipped", r["reason"], ""]
                for r in q["rows"]]
        lines += _table(["contender", "precision", "MSE vs input", "MSE vs reference", "rel. RMS vs reference"],
                        rows)
    return lines


# "your PyTorch model": each aefast precision against the PyTorch run it replaces (PyTorch has no fp16 on CPU:
# aefast fp16 is set against PyTorch fp32, the model as the user has it).
TORCH_PAIRS = (("fp32", "pytorch fp32"), ("fp16", "pytorch fp32"), ("bf16", "pytorch bf16"),
               ("int8", "pytorch dynamic int8"))


def torch_ratios(results: dict) -> list[dict]:
    """Per (model, op, batch) of the models the "aefast from_torch" contenders ran, and per aefast precision:
    aefast's images/s over PyTorch's (TORCH_PAIRS), both measured in the same interleaved rounds."""
    ok = {(r["model"], r["op"], r["batch"], r["contender"]): r for r in results["measurements"] if r["status"] == "ok"}
    cells = sorted({k[:3] for k in ok if k[3].startswith("aefast from_torch")},
                   key=lambda k: ([m["name"] for m in results["models"]].index(k[0]), k[1], k[2]))
    out = []
    for model, op, batch in cells:
        for precision, theirs in TORCH_PAIRS:
            a, b = ok.get((model, op, batch, f"aefast from_torch {precision}")), ok.get((model, op, batch, theirs))
            if a is not None and b is not None:
                out.append({"model": model, "op": op, "batch": batch, "precision": precision,
                            "aefast": a["contender"], "pytorch": theirs, "aefast_images_per_s": a["images_per_s"],
                            "pytorch_images_per_s": b["images_per_s"], "ratio": a["images_per_s"] / b["images_per_s"],
                            "aefast_rel_rms_error": a["rel_rms_error"], "pytorch_rel_rms_error": b["rel_rms_error"]})
    return out


def _torch_lines(results: dict) -> list[str]:
    ratios = torch_ratios(results)
    if not ratios:
        return []
    lines = ["", "## Your PyTorch model: aefast / PyTorch", "",
             "The same nn.Sequential run by PyTorch (`torch.inference_mode`, threads matched to aefast's) and by "
             "aefast's engine after `aefast.from_torch`, timed in the same interleaved rounds. Each cell: aefast's "
             "images/s over PyTorch's (aefast / PyTorch images/s); fp16 is set against PyTorch fp32, bf16 against "
             "`torch.autocast` bf16, int8 against `quantize_dynamic` on the x86 engine.", ""]
    by_cell: dict = {}
    for r in ratios:
        by_cell.setdefault((r["model"], r["op"], r["batch"]), {})[r["precision"]] = r
    rows = [[model, op, str(batch), *(f"**{c[p]['ratio']:.2f}x** ({c[p]['aefast_images_per_s']:,.0f} / "
                                      f"{c[p]['pytorch_images_per_s']:,.0f})" if p in c else "-"
                                      for p, _ in TORCH_PAIRS)]
            for (model, op, batch), c in by_cell.items()]
    return lines + _table(["model", "op", "batch", *(f"{p} (vs {t})" for p, t in TORCH_PAIRS)], rows)


def torch_ratios_text(results: dict) -> str:
    """The "your PyTorch model" ratios as plain lines for the terminal ("" when none was measured)."""
    return "\n".join(f"  {r['model']} {r['op']} batch {r['batch']} {r['precision']}: {r['ratio']:.2f}x "
                     f"({r['aefast_images_per_s']:,.0f} vs {r['pytorch']} {r['pytorch_images_per_s']:,.0f} images/s)"
                     for r in torch_ratios(results))


def targets_text(results: dict) -> str:
    """The targets as plain lines for the terminal: met / MISSED / not measured, model, target, figure."""
    mark = {True: "met", False: "MISSED", None: "not measured"}
    return "\n".join(f"{mark[t.met]:>12}  {t.model}: {t.target}: {t.figure}" for t in evaluate_targets(results))


def render_markdown(results: dict) -> str:
    """results.md: machine, limits, targets, one table per (model, op), quantization error."""
    t = results["timing"]
    lines = ["# aefast benchmark results", "",
             f"Run {results['created']}{' (--quick)' if results['quick'] else ''}: `{results['command']}`",
             "", *_machine_lines(results), "",
             f"Timing: {t['method']}; {t['rounds']} rounds, blocks of about {t['block_s'] * 1e3:.0f} ms. "
             "Every contender was first checked against the reference answer (relative RMS error shown). "
             "`x peer` is images/s over the fastest fp32 peer's at the same batch; `% best sgemm` (rows of fp32 "
             "arithmetic only, as the next column) is images/s over "
             "the best-case sgemm ceiling: the run's best sgemm below or, at batch >= "
             f"{t['cell_sgemm_min_batch']}, the best sample of the sgemm timed in the same cell if that was higher; "
             "`% same-work sgemm` is images/s over the like-for-like ceiling: the median of that in-cell sgemm, a "
             "square product doing the flops of one call, timed interleaved in the same rounds (the 95% targets use "
             "it). `% peak` is images/s over the instruction-peak ceiling of the row's arithmetic (fp32 FMA, int8 "
             "vpdpbusd or bf16 vdpbf16ps; below).", "", *_spin_lines(results), "",
             "## Machine limits", "", *_limits_lines(results), "", "## Targets", ""]
    lines += _table(["target", "model", "result", "figure"],
                    [[r.target, r.model, _MARK[r.met], r.figure] for r in evaluate_targets(results)])
    for info in results["models"]:
        lines += ["", f"## Model `{info['name']}`: {'-'.join(map(str, info['layer_sizes']))}", "",
                  f"Weights: {info['source']}. Inputs: {info['inputs']}."]
        for op, o in info["ops"].items():
            rows, notes = _cell_rows(results, info["name"], op)
            if not rows and not notes:
                continue
            ref = o.get("reference", {})
            peaks = "".join(f", {a} peak {c:,.0f}" for a, c in o.get("peak_ceilings_images_per_s", {}).items())
            lines += ["", f"### {op} (ceilings, images/s: sgemm {o['ceiling_images_per_s']:,.0f}{peaks})", "",
                      f"Reference: {ref.get('name', '?')} (relative RMS error against float64 NumPy: "
                      f"{ref.get('rel_rms_error_vs_float64', float('nan')):.1e}).", ""]
            lines += _table(["batch", "contender", "precision", "us/batch median", "us/batch best", "images/s",
                             "x peer", "% best sgemm", "% same-work sgemm", "% peak", "rel. error"], rows)
            lines += [""] + notes if notes else []
    lines += _torch_lines(results)
    if results.get("quantization"):
        lines += ["", "## Quantization error"] + _quantization_lines(results)
    return "\n".join(lines) + "\n"


# throughput.png's series style: one colour per engine (tab10), one line style per precision, a marker per variant
# of the same engine and precision; a single-thread row gets hollow markers.
PRECISION_STYLES = {"fp32": "-", "fp16": (0, (6, 2)), "bf16": "-.", "int8": (0, (1, 1.5)),
                    "int8w": (0, (3, 1, 1, 1, 1, 1))}
ENGINE_ORDER = ("aefast cpp", "aefast from_torch", "aefast numba", "litert", "tflite", "onnxruntime", "openvino",
                "pytorch", "numpy", "keras", "tf.function")


def engine_of(contender: str) -> str:
    """The engine a contender's name starts with ("aefast cpp int8 t=1" -> "aefast cpp", "openvino bf16" ->
    "openvino"): what throughput.png colours by."""
    words = contender.split()
    return " ".join(words[:2]) if words[0] == "aefast" and len(words) > 1 else words[0]


VARIANT_MARKERS = ("o", "s", "D", "v", "P", "X")


def series_style(contender: str, precision: str, colours: dict[str, object], variant: int = 0) -> dict:
    """matplotlib keyword arguments of a contender's line: its engine's colour, its precision's line style, a marker
    per variant of the same engine and precision (`variant`: 0, 1, ...; e.g. OpenVINO's two int8 kinds), hollow
    markers on one thread."""
    single = contender.endswith(" t=1")
    colour = colours[engine_of(contender)]
    return {"color": colour, "linestyle": PRECISION_STYLES.get(precision, ":"),
            "marker": VARIANT_MARKERS[variant % len(VARIANT_MARKERS)], "markerfacecolor": "white" if single else colour,
            "markersize": 4.5, "linewidth": 1.6}


def build_figure(results: dict):
    """The matplotlib Figure of throughput.png: images/s against batch size (log-log), a row per model, a column per
    operation; ceilings in grey; every series styled by `series_style`, listed in one legend outside the panels
    (right), grouped by engine then precision."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    ok = [r for r in results["measurements"] if r["status"] == "ok"]
    ops = list(dict.fromkeys(r["op"] for r in results["measurements"])) or ["reconstruct"]
    models = [info for info in results["models"] if any(r["model"] == info["name"] for r in results["measurements"])]
    precisions = {r["contender"]: r["precision"] for r in ok}
    engines = sorted({engine_of(n) for n in precisions},
                     key=lambda e: (ENGINE_ORDER.index(e) if e in ENGINE_ORDER else len(ENGINE_ORDER), e))
    colours = {e: plt.get_cmap("tab10")(i % 10) for i, e in enumerate(engines)}
    order = {p: i for i, p in enumerate(PRECISION_STYLES)}
    names = sorted(precisions, key=lambda n: (engines.index(engine_of(n)), order.get(precisions[n], 99),
                                              n.endswith(" t=1"), n))
    groups: dict = {}   # (engine, precision, one thread) -> its names so far: the variant index of the next
    styles = {}
    for n in names:
        group = groups.setdefault((engine_of(n), precisions[n], n.endswith(" t=1")), [])
        styles[n] = series_style(n, precisions[n], colours, len(group))
        group.append(n)
    fig, axes = plt.subplots(max(1, len(models)), len(ops), figsize=(6.4 * len(ops), 4.6 * max(1, len(models))),
                             squeeze=False)
    ceiling_styles = {}
    for row, info in zip(axes, models):
        for ax, op in zip(row, ops):
            rows = [r for r in ok if r["model"] == info["name"] and r["op"] == op]
            for name in names:
                pts = sorted((r["batch"], r["images_per_s"]) for r in rows if r["contender"] == name)
                if pts:
                    ax.plot(*zip(*pts), label=name, **styles[name])
            ceilings = {"sgemm": info["ops"][op]["ceiling_images_per_s"],
                        **{f"{a} peak": c for a, c in info["ops"][op].get("peak_ceilings_images_per_s", {}).items()}}
            for (label, ceiling), style in zip(ceilings.items(), ((0, (8, 4)), "-.", (0, (1, 3)), (0, (4, 1, 1, 1)))):
                ceiling_styles[label] = style
                ax.axhline(ceiling, color="0.55", linestyle=style, linewidth=1)
            ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="images/s",
                   title=f"{info['name']} {op} ({'-'.join(map(str, info['layer_sizes']))})")
            ax.grid(True, which="both", alpha=0.3)
    handles = [Line2D([], [], label=n, **styles[n]) for n in names]
    handles += [Line2D([], [], color="0.55", linestyle=st, linewidth=1, label=f"{label} ceiling")
                for label, st in ceiling_styles.items()]
    fig.tight_layout()
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False,
               title="colour: engine; line: precision\n(fp32 solid, fp16 dashed, bf16 dash-dot, int8 dotted);\n"
                     "hollow marker: one thread", title_fontsize=8, ncol=1 if len(handles) <= 30 else 2)
    return fig


def render_plot(results: dict) -> bytes:
    """throughput.png (build_figure), the legend included beside the panels."""
    import matplotlib.pyplot as plt

    fig = build_figure(results)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def write_results(results: dict, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write results.json, results.md and throughput.png into out_dir (each atomically); returns their paths."""
    out = Path(out_dir)
    full = {**results, "targets": [r.as_dict() for r in evaluate_targets(results)],
            "torch_ratios": torch_ratios(results)}
    return {"json": write_text_atomic(out / "results.json", json.dumps(full, indent=1, default=str) + "\n"),
            "md": write_text_atomic(out / "results.md", render_markdown(results)),
            "png": write_bytes_atomic(out / "throughput.png", render_plot(results))}
