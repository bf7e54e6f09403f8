"""python -m aefast.data fetch | show [--out digits.png]: get the MNIST files, or look at some of them."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..errors import DataFileError
from .files import MNIST_FILES
from .idx import read_images, read_labels
from .mnist import load_mnist
from .sources import mnist_files, named_folder

PROG = "python -m aefast.data"
MAX_SHOW_COUNT = 400   # a 40 x 10 grid; more is not a useful picture (and matplotlib's time and memory grow with it)


def _fetch(args: argparse.Namespace) -> int:
    files = mnist_files(args.data_dir, cache_dir=args.cache_dir)
    if named_folder(args.data_dir) is not None:
        _verify_named_folder(files)   # cached and downloaded files were verified by mnist_files already
    for key, path in files.items():
        print(f"{key:13s} {path}")
    return 0


def _verify_named_folder(files: dict[str, Path]) -> None:
    """Read each file of a folder the user named in full, as load_mnist will: gzip integrity, IDX magic, sizes
    (at most MNIST's), label values. Any defect raises DataFileError listing them all. Content other than MNIST's
    is allowed (Fashion-MNIST has the same format) and only noted."""
    problems = []
    for key, path in files.items():
        reader = read_images if key.endswith("images") else read_labels
        try:
            content = reader(path, MNIST_FILES[key].idx_bytes)
        except DataFileError as e:
            problems.append(str(e))
            continue
        if content.sha256 != MNIST_FILES[key].sha256:
            print(f"note: {path} is a valid IDX file but not MNIST's {key} (uncompressed SHA-256 {content.sha256}); "
                  "it is used as given", file=sys.stderr)
    if problems:
        raise DataFileError(f"{len(problems)} of the data files failed verification:\n  " + "\n  ".join(problems))


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
    if not len(split):
        raise DataFileError(f"the {args.split} split is empty: nothing to show")
    try:
        out = save_digit_grid(args.out, split.x[: args.count], split.y[: args.count])
    except OSError as e:
        raise DataFileError(f"--out {args.out}: cannot write the PNG there ({e.strerror or e})") from None
    print(f"saved {min(args.count, len(split))} {args.split} digits to {out}")
    return 0


def _show_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer 1..{MAX_SHOW_COUNT}, got {text!r}") from None
    if not 1 <= count <= MAX_SHOW_COUNT:
        raise argparse.ArgumentTypeError(f"expected 1..{MAX_SHOW_COUNT} digits, got {count}")
    return count


def main(argv: list[str] | None = None, *, prog: str = PROG) -> int:
    """Run the CLI (`prog`: the name in usage and error lines, `aefast data` from the aefast command)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.replace(PROG, prog))
    parser.add_argument("--data-dir", type=Path, help="folder holding the four MNIST files (no download)")
    parser.add_argument("--cache-dir", type=Path, help="cache folder to use instead of the user cache")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="make sure the files are present and verified; print where they are")
    show = sub.add_parser("show", help="save a PNG grid of sample digits")
    show.add_argument("--out", type=Path, default=Path("mnist-digits.png"))
    show.add_argument("--split", choices=("train", "validation", "test"), default="train")
    show.add_argument("--count", type=_show_count, default=40, help=f"how many digits, 1..{MAX_SHOW_COUNT}")
    args = parser.parse_args(argv)
    if args.command == "show" and args.out.is_dir():
        parser.error(f"--out {args.out} is a directory; expected the path of the PNG file to write")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return _fetch(args) if args.command == "fetch" else _show(args)
    except DataFileError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
