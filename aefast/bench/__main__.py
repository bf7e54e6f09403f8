"""`python -m aefast.bench [--quick] [--out DIR] [--model PATH] [--wide/--no-wide] [--peers] [--your-torch-model]
...`: run the comparison and write results.md, results.json and throughput.png (see docs/performance.md)."""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys

from .models import OPERATIONS as OPS
from .quiet import VERBOSE_ENV
from .runner import CLEARED_ENV_VAR

OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def _reexec_without_openblas_overrides(command: list[str] | None = None) -> None:
    """OpenBLAS reads these when NumPy loads (already done by `import aefast`), and they can force a slower kernel:
    start this process again without them, remembering what they were for results.json. `command`: the
    arguments after the interpreter that start this benchmark again (default `-m aefast.bench` + sys.argv[1:])."""
    if CLEARED_ENV_VAR in os.environ or not any(k in os.environ for k in OPENBLAS_OVERRIDES):
        return
    env = dict(os.environ)
    env[CLEARED_ENV_VAR] = json.dumps({k: env.pop(k) for k in OPENBLAS_OVERRIDES if k in env})
    sys.stdout.flush()
    sys.stderr.flush()
    command = ["-m", "aefast.bench", *sys.argv[1:]] if command is None else command
    os.execve(sys.executable, [sys.executable, *command], env)


PROG = "python -m aefast.bench"
# --peers: aefast's C++ engine on all cores at every precision against the fastest peers of each precision (the
# contenders the issue-21 targets compare), without the slow or single-thread rows.
PEER_SET = ("aefast cpp fp32", "aefast cpp fp16", "aefast cpp bf16", "aefast cpp int8", "litert fp32",
            "litert dynamic int8", "tflite dynamic int8", "onnxruntime cpu", "onnxruntime dynamic int8",
            "openvino f32", "openvino bf16", "openvino int8 weights", "openvino static int8 (nncf)", "pytorch fp32",
            "pytorch bf16", "pytorch dynamic int8")
# --your-torch-model: PyTorch and aefast (through aefast.from_torch) on the same nn.Sequential
TORCH_SET = ("pytorch fp32", "pytorch bf16", "pytorch dynamic int8", "aefast from_torch fp32",
             "aefast from_torch fp16", "aefast from_torch bf16", "aefast from_torch int8")


def _parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.replace(PROG, prog))
    p.add_argument("--quick", action="store_true",
                   help="fewer rounds, shorter blocks, wide model only up to batch 256 (about 1-2 minutes)")
    p.add_argument("--out", help="output folder (default results/<UTC time stamp>)")
    p.add_argument("--model", help="the default-shape model file (default: aefast/models/default.safetensors if "
                                   "present, else random weights)")
    p.add_argument("--wide-model", help="a 784-10000-100-10000-784 model file (default: random weights)")
    p.add_argument("--wide", action=argparse.BooleanOptionalAction, default=None,
                   help="also run the wide model (default: yes, but not with --peers or --your-torch-model)")
    p.add_argument("--contenders", nargs="+", metavar="NAME", help="run only these contenders (quote names)")
    p.add_argument("--batches", nargs="+", type=int, metavar="N", help="batch sizes (default 1 16 256 4096)")
    p.add_argument("--data", help="folder holding the MNIST IDX files (default: AEFAST_DATA_DIR, shared/)")
    p.add_argument("--peers", action="store_true",
                   help="focused comparison: aefast's engine at every precision against LiteRT, TFLite, ONNX "
                        "Runtime, OpenVINO and PyTorch (reconstruct only unless --ops; about 2-4 minutes)")
    p.add_argument("--your-torch-model", action="store_true",
                   help="PyTorch (fp32, bf16 autocast, dynamic int8) and aefast via aefast.from_torch (fp32, fp16, "
                        "bf16, int8) on the same nn.Sequential, an ELU and a ReLU model, side by side; with "
                        "--peers, in the same run")
    p.add_argument("--ops", nargs="+", choices=OPS, metavar="OP",
                   help=f"operations to time, of {', '.join(OPS)} (default: both; reconstruct with --peers or "
                        "--your-torch-model)")
    p.add_argument("--verbose", action="store_true",
                   help="show the peers' start-up lines (TensorFlow, LiteRT, ONNX Runtime) instead of hiding them")
    return p


def main(argv: list[str] | None = None, *, prog: str = PROG, reexec_command: list[str] | None = None) -> int:
    """Run the CLI; `argv` None means sys.argv. The process re-executes itself without the OpenBLAS overrides
    only when it is this command's own process: `argv` None (python -m aefast.bench), or `reexec_command` given
    (the arguments after the interpreter that start it again; `aefast bench` passes `-m aefast bench ...`)."""
    if argv is None or reexec_command is not None:
        _reexec_without_openblas_overrides(reexec_command)
    parser = _parser(prog)
    args = parser.parse_args(argv)
    from .contenders import select_contenders
    from .models import DEFAULT_MODEL_PATH, DEFAULT_SIZES, WIDE_SIZES, load_bench_model, your_torch_models
    from .report import targets_text, torch_ratios_text, write_results
    from .runner import BATCHES, BenchConfig, run_benchmark

    focused = args.peers or args.your_torch_model
    if args.verbose:
        os.environ[VERBOSE_ENV] = "1"
    try:
        contenders = select_contenders(args.contenders or (list(PEER_SET) if args.peers else None))
        torch_contenders = select_contenders(list(TORCH_SET))
    except ValueError as e:
        parser.error(str(e))
    if args.model is not None and not os.path.exists(args.model):
        parser.error(f"--model {args.model}: no such file")
    if args.wide_model is not None and not os.path.exists(args.wide_model):
        parser.error(f"--wide-model {args.wide_model}: no such file")
    batches = tuple(args.batches or BATCHES)
    if any(b < 1 for b in batches):
        parser.error(f"batch sizes must be >= 1, got {batches}")
    default = load_bench_model("default", args.model or DEFAULT_MODEL_PATH, DEFAULT_SIZES, args.data)
    models = [] if args.your_torch_model and not args.peers else [default]
    if models and (args.wide if args.wide is not None else not focused):
        models.append(load_bench_model("wide", args.wide_model, WIDE_SIZES, args.data))
    torch_models = your_torch_models(default, args.data) if args.your_torch_model else []
    wide_batches = tuple(b for b in batches if b <= 256) if args.quick and args.batches is None else batches
    config = BenchConfig(models=models + torch_models,
                         batches={"default": batches, "wide": wide_batches, **{m.name: batches for m in torch_models}},
                         contenders=contenders, model_contenders={m.name: torch_contenders for m in torch_models},
                         ops=tuple(args.ops or (("reconstruct",) if focused else OPS)),
                         data_dir=args.data, quick=args.quick,
                         command=shlex.join([*prog.split(), *(sys.argv[1:] if argv is None else argv)]),
                         **({"rounds": 3, "block_s": 0.02, "sgemm_repeats": 3} if args.quick else {}))
    out = args.out or os.path.join("results", datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ"))
    results = run_benchmark(config)
    paths = write_results(results, out)
    text = targets_text(results)
    if text:
        print("targets:\n" + text)
    ratios = torch_ratios_text(results)
    if ratios:
        print("your PyTorch model, aefast / PyTorch images/s:\n" + ratios)
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
