"""python -m aefast.analyze: the compression study (latent-size sweep, PCA baseline, the tutorial's figures).

    python -m aefast.analyze --quick                    # every configuration, small and fast (minutes)
    python -m aefast.analyze                            # the full study (about 45 minutes on 2 Zen 4 cores)
    python -m aefast.analyze --latents 100,32 --epochs 5 --out reports/small

Rerunning the same command resumes: finished configurations are skipped. See docs/analysis.md.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ..data.argtypes import positive_int as _positive_int
from ..train.config import QUICK
from .configs import INPUT_SIZE, select_configs


def _latents(text: str) -> list[int]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("expected a comma-separated list of latent sizes, e.g. 784,500,100")
    values = []
    for p in parts:
        try:
            values.append(int(p))
        except ValueError:
            raise argparse.ArgumentTypeError(f"latent size {p!r} is not an integer (expected e.g. 784,500,100)") \
                from None
        if not 1 <= values[-1] <= INPUT_SIZE:
            raise argparse.ArgumentTypeError(f"latent size {values[-1]} is outside 1..{INPUT_SIZE}")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m aefast.analyze", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None,
                   help="report folder (default reports/study, or reports/quick with --quick)")
    p.add_argument("--quick", action="store_true",
                   help=f"small version: {QUICK['train_limit']} training / {QUICK['test_limit']} test images, "
                        f"{QUICK['epochs']} epochs per configuration")
    p.add_argument("--latents", type=_latents, default=None, help="comma-separated latent sizes to train")
    p.add_argument("--hidden", type=_positive_int, default=None, help="one hidden width for every configuration")
    p.add_argument("--epochs", type=_positive_int, default=None, help="epochs for every configuration")
    p.add_argument("--train-images", type=_positive_int, default=None, help="use the first N training images")
    p.add_argument("--test-images", type=_positive_int, default=None, help="score on the first N test images")
    p.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files (default: aefast.data's)")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        parser.error(f"--data-dir {args.data_dir!r} is not a directory")
    from ..errors import DataFileError, ModelFileError
    from ..train.config import ConfigError
    from .study import StudyError, StudyOptions, run_study

    quick = QUICK if args.quick else {}
    opts = StudyOptions(
        out=args.out or Path("reports/quick" if args.quick else "reports/study"),
        configs=select_configs(args.latents, args.hidden, args.epochs, args.quick),
        train_limit=args.train_images or quick.get("train_limit"),
        test_limit=args.test_images or quick.get("test_limit"),
        val_size=quick.get("val_size", StudyOptions.val_size),
        seed=args.seed, data_dir=args.data_dir,
        throughput_seconds=0.3 if args.quick else 1.0,
        command=" ".join(["python -m aefast.analyze", shlex.join(sys.argv[1:] if argv is None else argv)]).strip())
    try:
        run_study(opts)
    except (StudyError, ConfigError, DataFileError, ModelFileError) as e:  # one clear line, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
