"""python -m aefast.data fetch | show [--out digits.png]: get the MNIST files, or look at some of them."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..errors import DataFileError
from .mnist import load_mnist
from .sources import mnist_files


def _fetch(args: argparse.Namespace) -> int:
    files = mnist_files(args.data_dir, cache_dir=args.cache_dir)
    for key, path in files.items():
        print(f"{key:13s} {path}")
    return 0


def save_digit_grid(out: Path, images, labels, *, columns: int = 10) -> Path:
    """Save a PNG grid of (N, 28, 28) images titled by their labels (matplotlib, Agg backend, written atomically)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise SystemExit(f"`show` needs matplotlib ({e}); install it with: pip install matplotlib") from None
    from .._io import atomic_write

    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns, rows * 1.1), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, label in zip(axes.flat, images, labels):
        ax.imshow(image, cmap="gray_r", vmin=0, vmax=255)
        ax.set_title(str(label), fontsize=9)
    fig.tight_layout()
    with atomic_write(out, "wb") as f:
        fig.savefig(f, format="png", dpi=80)
    plt.close(fig)
    return out


def _show(args: argparse.Namespace) -> int:
    mnist = load_mnist(args.data_dir, cache_dir=args.cache_dir, dtype="uint8", flat=False)
    split = getattr(mnist, args.split)
    out = save_digit_grid(args.out, split.x[: args.count], split.y[: args.count])
    print(f"saved {min(args.count, len(split))} {args.split} digits to {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aefast.data", description=__doc__)
    parser.add_argument("--data-dir", type=Path, help="folder holding the four MNIST files (no download)")
    parser.add_argument("--cache-dir", type=Path, help="cache folder to use instead of the user cache")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="make sure the files are present and verified; print where they are")
    show = sub.add_parser("show", help="save a PNG grid of sample digits")
    show.add_argument("--out", type=Path, default=Path("mnist-digits.png"))
    show.add_argument("--split", choices=("train", "validation", "test"), default="train")
    show.add_argument("--count", type=int, default=40)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return _fetch(args) if args.command == "fetch" else _show(args)
    except DataFileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
