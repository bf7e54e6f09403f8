"""`python -m aefast.train`: argparse over TrainConfig. Bad arguments exit 2 with a message naming the flag."""
from __future__ import annotations

import argparse
import atexit
import shlex
import signal
import sys
import threading

from ..data.argtypes import image_size
from .config import (DISTRIBUTES, LATENT_ACTIVATIONS, LOSSES, OUTPUT_BIAS_INITS, OUTPUTS, PRECISIONS, QUICK, SCHEDULES,
                     ConfigError, TrainConfig)
from .ctrl_c import ctrl_c_handled
from .quiet import tensorflow_quiet

_DEFAULTS = TrainConfig()


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1000,500,250, got {text!r}")
    if not widths or any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"every width must be a positive integer, got {text!r}")
    return widths


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction like 0.1, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return value


# Flags that are not TrainConfig fields.
_CLI_ONLY = ("quick", "resume", "quiet", "verbose")


def build_parser(prog: str = "python -m aefast.train") -> argparse.ArgumentParser:
    # argument_default=SUPPRESS: only flags the user typed appear in the namespace (so --resume can refuse them);
    # the defaults shown in --help are TrainConfig's.
    p = argparse.ArgumentParser(
        prog=prog, argument_default=argparse.SUPPRESS,
        description="Train a stacked dense autoencoder on MNIST (default) or on your own images (--data) and write "
                    "a run directory (model.safetensors, history.csv, metrics.json, loss.png, reconstructions.png).")
    d = _DEFAULTS
    p.add_argument("--hidden", type=_widths, help=f"hidden widths, comma-separated, mirrored in the decoder "
                   f"(default {','.join(map(str, d.hidden))})")
    p.add_argument("--latent", type=int, help=f"latent width (default {d.latent})")
    p.add_argument("--latent-activation", choices=LATENT_ACTIVATIONS, dest="latent_activation",
                   help=f"activation of the code layer (default {d.latent_activation})")
    p.add_argument("--output", choices=OUTPUTS, help=f"output activation; auto: sigmoid or linear, whichever PCA "
                   f"start fits the validation images better (default {d.output})")
    p.add_argument("--init", choices=("pca", "random"), help="pca: start from PCA with --latent components (the "
                   f"best epoch is never worse than that start); random: Glorot (default {d.init})")
    p.add_argument("--output-bias-init", choices=OUTPUT_BIAS_INITS, dest="output_bias_init",
                   help="the output layer's starting bias: the mean training image (its logit for a sigmoid) or "
                   f"zeros (default {d.output_bias_init})")
    p.add_argument("--l2", type=float, help=f"L2 penalty on kernels (default {d.l2})")
    p.add_argument("--epochs", type=int, help=f"maximum epochs (default {d.epochs})")
    p.add_argument("--min-steps", type=int, dest="min_steps", help="at least this many optimizer steps: an epoch "
                   f"makes several passes over a small training set (default {d.min_steps}: one pass)")
    p.add_argument("--batch-size", type=int, dest="batch_size", help=f"batch size (default {d.batch_size})")
    p.add_argument("--lr", type=float, help=f"Adam learning rate, peak of the schedule (default {d.lr})")
    p.add_argument("--schedule", choices=SCHEDULES, help=f"learning-rate schedule (default {d.schedule})")
    p.add_argument("--warmup", type=int, help=f"epochs of linear learning-rate warm-up from 0 (default {d.warmup})")
    p.add_argument("--weight-decay", type=float, dest="weight_decay", help="decoupled weight decay: AdamW when "
                   f"> 0 (default {d.weight_decay})")
    p.add_argument("--loss", choices=LOSSES, help=f"training loss; bce needs --output sigmoid; the best epoch is "
                   f"always picked by validation MSE (default {d.loss})")
    p.add_argument("--precision", choices=PRECISIONS, help="auto: mixed_float16 on a GPU with compute "
                   "capability >= 7.0, else float32 (default auto)")
    p.add_argument("--no-xla", dest="xla", action="store_false", help="compile without XLA (jit_compile=False)")
    p.add_argument("--patience", type=int, help=f"early stopping patience in epochs, 0 = off "
                   f"(default {d.patience})")
    p.add_argument("--seed", type=int, help=f"random seed (default {d.seed})")
    p.add_argument("--data-dir", dest="data_dir", help="folder with the MNIST IDX files (default: aefast.data's "
                   "lookup: $AEFAST_DATA_DIR, the user cache, then a download)")
    p.add_argument("--data", help="train on your own images instead of MNIST: a folder of PNG/JPEG files, an .npy "
                   "or .npz array (N, H, W[, C]) uint8 or float in [0, 1], or an IDX image file (see docs/data.md)")
    p.add_argument("--test-data", dest="test_data", help="with --data: an explicit test set of the same shape "
                   "(default: a seeded share of --data, --test-fraction)")
    p.add_argument("--resize", type=image_size, metavar="HxW", help="with a --data folder: resize every image to HxW "
                   "(default: all images must have one size)")
    p.add_argument("--val-fraction", type=_fraction, dest="val_fraction", help="with --data: share of the images "
                   f"held out for validation, split seeded by --seed (default {d.val_fraction})")
    p.add_argument("--test-fraction", type=_fraction, dest="test_fraction", help="with --data and no --test-data: "
                   f"share held out for the test (default {d.test_fraction})")
    p.add_argument("--out", help=f"parent folder of run directories (default {d.out})")
    p.add_argument("--name", help="run directory name (default: a timestamp)")
    p.add_argument("--train-limit", type=int, dest="train_limit", help="use only the first N training images")
    p.add_argument("--val-size", type=int, dest="val_size", help=f"validation images (default {d.val_size})")
    p.add_argument("--test-limit", type=int, dest="test_limit", help="evaluate on the first N test images")
    p.add_argument("--distribute", choices=DISTRIBUTES, help="none: one process; mirrored: every local GPU; "
                   "multiworker: the workers in TF_CONFIG, the chief writes the run (docs/scale.md); the global "
                   "batch stays --batch-size (default none)")
    p.add_argument("--quick", action="store_true", help="a smoke run: " +
                   ", ".join(f"{k}={v}" for k, v in QUICK.items()) + " (explicit flags still win)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue RUN_DIR from its last checkpoint with its saved "
                   "settings (combine with no other flag but --distribute)")
    p.add_argument("--quiet", action="store_true", help="drop the per-epoch lines; still print the best epoch, the "
                   "test MSE beside PCA's and the mean image's, a warning when PCA does better, the engine's check "
                   "and the model's path")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's own start-up log lines")
    return p


def config_from_args(args: argparse.Namespace, command: str | None = None) -> TrainConfig:
    """The validated TrainConfig for parsed `args`; `command` (default: this process's command line) is stored
    with the run."""
    given = {k: v for k, v in vars(args).items() if k not in _CLI_ONLY}
    if "data" in given and "val_size" in given:
        raise ConfigError("--val-size applies to MNIST; with --data use --val-fraction")
    base = _DEFAULTS.quick() if getattr(args, "quick", False) else _DEFAULTS
    config = TrainConfig.from_dict({**base.to_dict(), **given})
    config.extra = {"command": command or "python -m aefast.train " + " ".join(sys.argv[1:])}
    from .data import with_input_shape

    return with_input_shape(config).validate()


def _ignore_ctrl_c_at_exit() -> None:
    """Ignore SIGINT once the interpreter starts shutting down (an atexit callback registered after TensorFlow's,
    so it runs before them). Shutdown then runs the atexit callbacks and frees TensorFlow's objects, about a second
    on 2 cores after a tiny run; a Ctrl-C in that time would raise KeyboardInterrupt inside those callbacks and
    finalizers, stopping a cleanup half-way (seen: "Exception ignored in atexit callback ... KeyboardInterrupt").
    The run directory is complete by then; SIGTERM and SIGKILL still end the process."""
    if threading.current_thread() is threading.main_thread():
        atexit.register(signal.signal, signal.SIGINT, signal.SIG_IGN)


def main(argv: list[str] | None = None, prog: str = "python -m aefast.train", own_process: bool | None = None) -> int:
    """own_process (default: argv is None): the process ends when main returns, so once TensorFlow is loaded
    SIGINT stays ignored from the end of the run on. Interpreter shutdown then waits for TensorFlow's threads
    (threading._shutdown) and runs its atexit callbacks, about a second on 2 cores; a Ctrl-C there raised
    KeyboardInterrupt inside them ("Exception ignored in ... threading._shutdown"). The run directory is complete
    by then; SIGTERM and SIGKILL still end the process."""
    own_process = argv is None if own_process is None else own_process
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    verbose = not getattr(args, "quiet", False)
    command = shlex.join([*parser.prog.split(), *(sys.argv[1:] if argv is None else argv)])
    with ctrl_c_handled() as ctrl_c:   # the loop shares it: Ctrl-C stays deferred until main returns
        try:
            with tensorflow_quiet(getattr(args, "verbose", False)):
                code = _run(parser, args, verbose, command)
        finally:
            if "tensorflow" in sys.modules:
                if own_process:
                    ctrl_c.ignore_after = True
                else:
                    _ignore_ctrl_c_at_exit()
    return 130 if ctrl_c.pressed and code == 0 else code


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, verbose: bool, command: str) -> int:
    from ..errors import DataFileError, TrainingError
    from . import resume, train  # noqa: F401 (light: the loop and Keras load on call)

    try:
        if hasattr(args, "resume"):
            others = sorted(set(vars(args)) - {"resume", "quiet", "verbose", "distribute"})
            if others:
                parser.error(f"--resume continues a run with its saved settings; drop {', '.join(others)}")
            result = resume(args.resume, verbose=verbose, distribute=getattr(args, "distribute", None))
        else:
            result = train(config_from_args(args, command), verbose=verbose)
    except (ConfigError, DataFileError) as e:
        parser.error(str(e))
    except (TrainingError, ValueError, OSError) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:   # TrainingInterrupted's message says what the run directory holds
        print(f"aefast.train: {getattr(e, 'message', 'interrupted')}", file=sys.stderr)
        return 130
    if result.stopped == "nan":
        print(f"aefast.train: the loss became NaN after epoch {len(result.history) - 1}; kept epoch "
              f"{result.best_epoch} (val MSE {result.metrics['val_mse']:.6f}) in {result.model_path}",
              file=sys.stderr)
        return 1
    if not result.chief:
        print(f"aefast.train: worker finished; the chief wrote {result.run_dir}", file=sys.stderr)
        return 0
    if not verbose:   # --quiet drops the per-epoch lines only: the loop printed none of these
        from .loop import summary_lines

        for line in summary_lines(result.metrics, result.model_path):
            print(line)
    print(_engine_check(result))
    print(result.model_path)
    return 0


def _engine_check(result) -> str:
    """Serve the exported file from aefast's own engine on the same test images and compare with Keras's figure:
    both clipped to [0, 1] (what `aefast reconstruct` writes; baseline.served_mse)."""
    import json
    import time

    import aefast

    from .baseline import served_mse
    from .config import TrainConfig
    from .data import load_training_data

    config = TrainConfig.from_dict(json.loads((result.run_dir / "config.json").read_text())["config"])
    test_x = load_training_data(config).test        # (n, pixels) float32 in [0, 1], as Keras was scored on
    engine = aefast.load(result.model_path)
    start = time.perf_counter()
    recon = engine.reconstruct(test_x)                # served_mse clips it, as `aefast reconstruct` does
    seconds = time.perf_counter() - start
    mse = served_mse(recon, test_x)
    return (f"aefast engine ({engine.backend} {engine.isa}, {engine.precision}): test MSE {mse:.6f} "
            f"(Keras {result.metrics['test_mse']:.6f}); reconstructed {len(test_x)} images in "
            f"{seconds * 1e3:.0f} ms ({len(test_x) / seconds:,.0f} images/s)")
