"""The `aefast` command (also `python -m aefast`): train, compress, reconstruct, score, info, data, bench.

    aefast train --data photos/ --resize 32x32        # = python -m aefast.train
    aefast score runs/<name>/model.safetensors photos/ --top 20 --png worst.png --csv scores.csv
    aefast compress images.npy -o codes.npy           # MODEL left out: the model shipped with aefast

Bad usage (unknown flags, unreadable or mis-shaped input, a bad model file) exits with status 2 and
`aefast <command>: error: ...`; Ctrl-C exits 130 and leaves no half-written output.

Layout: this module (the top-level parser; train, data and bench forwarded to their own mains), inference
(compress, reconstruct, score), info, streaming (chunks through the engine, atomic .npy outputs), pictures (PNG
grids), argtypes (argparse converters).
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from .. import __version__

PROG = "aefast"


def _forward_train(argv: list[str], own_process: bool) -> int:
    from ..train.cli import main

    return main(argv, prog=f"{PROG} train", own_process=own_process)


def _forward_data(argv: list[str], own_process: bool) -> int:
    from ..data.__main__ import main

    return main(argv, prog=f"{PROG} data")


def _forward_bench(argv: list[str], own_process: bool) -> int:
    """`own_process`: this is the `aefast` command's own process (not a caller's main([...])), so the benchmark
    may start it again without the OpenBLAS overrides, exactly as `python -m aefast.bench` does."""
    from ..bench.__main__ import main

    return main(argv, prog=f"{PROG} bench", reexec_command=["-m", "aefast", "bench", *argv] if own_process else None)


# Subcommands that own their whole argument list (their own parser, --help included).
FORWARDED: dict[str, tuple[Callable[[list[str], bool], int], str]] = {
    "train": (_forward_train, "train an autoencoder on MNIST or your own images (aefast train --help)"),
    "data": (_forward_data, "fetch MNIST or look at it (= python -m aefast.data)"),
    "bench": (_forward_bench, "run the inference benchmark (= python -m aefast.bench; needs the bench extra)"),
}


def build_parser() -> argparse.ArgumentParser:
    from . import info, inference, interop, tune

    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                epilog="Each command has its own --help, e.g. `aefast score --help`.")
    p.add_argument("--version", action="version", version=f"aefast {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, text) in FORWARDED.items():
        sub.add_parser(name, help=text, add_help=False)
    inference.add_subcommands(sub)
    info.add_subcommand(sub)
    interop.add_subcommands(sub)
    tune.add_subcommand(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failure, 2 bad usage, 130 Ctrl-C)."""
    own_process = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in FORWARDED:
        return FORWARDED[argv[0]][0](argv[1:], own_process)
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:   # reported by the subcommand's parser, with its usage line
        args.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    from ..errors import DataFileError, ModelFileError
    from ..errors import UsageError

    command_parser = args.parser
    try:
        return args.run(args)
    except (UsageError, DataFileError, ModelFileError) as e:
        # A file or a value was wrong, not the command line's form: the message alone, without the usage block;
        # SystemExit(2) as argparse's own errors raise it.
        print(f"{command_parser.prog}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except OSError as e:
        print(f"{command_parser.prog}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{command_parser.prog}: interrupted; nothing was written", file=sys.stderr)
        return 130
