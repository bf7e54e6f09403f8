"""Small real image sets that ship inside installed packages, and `aefast.train` with default flags against PCA.

    python -m aefast.analyze.natural --out DIR                  # write the data sets, train each, print the table
    python -m aefast.analyze.natural --out DIR --only digits    # one data set
    python -m aefast.analyze.natural --out DIR --prepare-only   # only the .npy files
    python -m aefast.analyze.natural --out DIR --set init=random --set epochs=20   # TrainConfig overrides
    python -m aefast.analyze.natural --out DIR --train-stride 4 --augment           # more training patches

The data sets (uint8 arrays, written to DIR/data/):

    digits        scikit-learn's 1797 digits, 8x8, values 0..16 scaled to 0..255; the trainer's own split
                  (val_fraction, test_fraction); latent 16
    gray, colour  32x32 patches of three photographs: scikit-learn's china.jpg and flower.jpg, matplotlib's
                  grace_hopper.jpg, each at full and half size (box filter). The top three quarters of every photo
                  give the training patches (stride 8, --train-stride), the bottom quarter the test patches
                  (stride 16): no test patch shares a pixel with a training patch (the trainer's validation images,
                  cut at random from the training patches, overlap them). Grayscale by PIL's "L" conversion;
                  latent 64
    gray-skimage, colour-skimage
                  the same from the colour photographs that ship inside scikit-image (SKIMAGE_PHOTOS); skipped, with
                  a line saying so, when scikit-image is not installed (nothing is downloaded)

--augment adds the 7 other flips and 90-degree rotations of every training patch (8x the patches; natural images are
statistically invariant to them). Test patches are never augmented. The data files of a stride other than 8 or of
--augment carry it in their name (gray-s4-aug_train.npy), and so do the run names and results.

Each data set is trained by `aefast.train.train` with TrainConfig's defaults (plus --set overrides) and scored
against PCA with as many components as the code, fitted on the same training images (the trainer's split) and
scored on the same test images, raw and clipped to [0, 1], and against the mean training image. Results go to
DIR/results/<name>.json (atomically); docs/analysis.md quotes them.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

PATCH = 32
TRAIN_STRIDE = 8           # overlapping training patches: every 8-pixel shift of a window is another sample
TEST_STRIDE = 16
TEST_SHARE = 0.25          # the bottom quarter of every photo is the test region
LATENTS = {"digits": 16, "gray": 64, "colour": 64, "gray-skimage": 64, "colour-skimage": 64}
# scikit-image's bundled colour photographs (skimage/data/*): natural scenes, not test charts or micrographs
SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png")


def photo_paths(source: str = "sklearn") -> list[Path]:
    """source "sklearn": the three photographs of scikit-learn's sample images and matplotlib's grace_hopper.jpg;
    "skimage": SKIMAGE_PHOTOS inside the installed scikit-image (ImportError when it is not installed)."""
    if source == "skimage":
        import skimage.data

        return [Path(skimage.data.__file__).parent / name for name in SKIMAGE_PHOTOS]
    if source != "sklearn":
        raise ValueError(f"source must be sklearn or skimage, got {source!r}")
    import matplotlib
    import sklearn.datasets

    sk = Path(sklearn.datasets.__file__).parent / "images"
    return [sk / "china.jpg", sk / "flower.jpg", Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"]


def skimage_missing() -> str | None:
    """None when scikit-image's sample photos can be read, else the line that says why the -skimage sets are
    skipped."""
    try:
        paths = photo_paths("skimage")
    except ImportError:
        return "scikit-image is not installed (pip install scikit-image: its sample photos ship inside the package)"
    missing = [p.name for p in paths if not p.is_file()]
    return f"scikit-image has no {', '.join(missing)} in {paths[0].parent}" if missing else None


def symmetries(patches: np.ndarray) -> np.ndarray:
    """(8 N, H, W[, C]): the patches (N, H, W[, C]), H == W, under the 4 rotations by 90 degrees, each also mirrored
    left-right; the first N are the patches themselves."""
    out = []
    for mirror in (False, True):
        p = patches[:, :, ::-1] if mirror else patches
        out += [np.rot90(p, k, axes=(1, 2)) for k in range(4)]
    return np.ascontiguousarray(np.concatenate(out))


def _patches(a: np.ndarray, top: int, bottom: int, stride: int) -> list[np.ndarray]:
    """All PATCH x PATCH windows at `stride` whose rows lie inside [top, bottom)."""
    out = []
    for r in range(top, bottom - PATCH + 1, stride):
        for c in range(0, a.shape[1] - PATCH + 1, stride):
            out.append(a[r:r + PATCH, c:c + PATCH])
    return out


def photo_patches(mode: str, source: str = "sklearn", train_stride: int = TRAIN_STRIDE, augment: bool = False
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train, test, train_source, test_source): uint8 patches (N, 32, 32) for mode "L", (N, 32, 32, 3) for "RGB",
    and the index of the photo each came from. augment: the training patches under symmetries (8x)."""
    from PIL import Image

    train, test, train_src, test_src = [], [], [], []
    for i, path in enumerate(photo_paths(source)):
        with Image.open(path) as img:
            img = img.convert(mode)
            for scale in (1, 2):
                im = img if scale == 1 else img.resize((img.width // 2, img.height // 2), Image.BOX)
                a = np.asarray(im)
                cut = int(round(a.shape[0] * (1 - TEST_SHARE)))
                tr, te = _patches(a, 0, cut, train_stride), _patches(a, cut, a.shape[0], TEST_STRIDE)
                train += tr
                test += te
                train_src += [i] * len(tr)
                test_src += [i] * len(te)
    train, train_src = np.stack(train), np.array(train_src)
    if augment:
        train, train_src = symmetries(train), np.tile(train_src, 8)
    return train, np.stack(test), train_src, np.array(test_src)


def digits() -> np.ndarray:
    """scikit-learn's digits as (1797, 8, 8) uint8, 0..16 scaled to 0..255."""
    from sklearn.datasets import load_digits

    return np.round(load_digits().images * (255 / 16)).astype(np.uint8)


def _save(path: Path, a: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, a)
    os.replace(tmp, path)


def variant(train_stride: int = TRAIN_STRIDE, augment: bool = False) -> str:
    """The suffix that names the training patches of a stride and augmentation: "" for the defaults, else e.g.
    "-s4-aug"."""
    return (f"-s{train_stride}" if train_stride != TRAIN_STRIDE else "") + ("-aug" if augment else "")


def prepare(out: Path, names=None, train_stride: int = TRAIN_STRIDE, augment: bool = False) -> dict[str, dict]:
    """Write the data sets `names` to out/data; returns {name: {"data": path, "test_data": path or None}}.
    The -skimage sets need scikit-image (skimage_missing); names None: every set, the -skimage ones only when
    scikit-image is there."""
    if not (isinstance(train_stride, int) and train_stride >= 1):
        raise ValueError(f"train_stride must be a positive integer, got {train_stride!r}")
    if names is None:
        names = [n for n in LATENTS if not n.endswith("-skimage") or skimage_missing() is None]
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    sets = {}
    if "digits" in names:
        _save(data / "digits.npy", digits())
        sets["digits"] = {"data": data / "digits.npy", "test_data": None}
    suffix = variant(train_stride, augment)
    for name in names:
        if name == "digits":
            continue
        base, _, source = name.partition("-")
        train, test, _, test_src = photo_patches("L" if base == "gray" else "RGB", source or "sklearn",
                                                 train_stride, augment)
        _save(data / f"{name}{suffix}_train.npy", train)
        _save(data / f"{name}_test.npy", test)
        _save(data / f"{name}_test_source.npy", test_src)
        sets[name] = {"data": data / f"{name}{suffix}_train.npy", "test_data": data / f"{name}_test.npy"}
    return sets


def _value(text: str, key: str = ""):
    """A --set value: int, float, comma-separated ints (a tuple), else the text; hidden is always a tuple."""
    if key in ("hidden", "resize"):
        return tuple(int(p) for p in text.split(",") if p)
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if "," in text:
        return tuple(int(p) for p in text.split(","))
    return text


def run_one(name: str, paths: dict, out: Path, overrides: dict, tag: str, data_variant: str = "") -> dict:
    """Train `name` with the defaults plus `overrides`; score it and PCA on the same split; write the result."""
    from .._io import write_text_atomic
    from ..data.pca import fit_pca, pca_test_mse
    from ..modelfile import read_model
    from ..train import TrainConfig, train
    from ..train.data import load_training_data, with_input_shape

    config = TrainConfig(data=str(paths["data"]), test_data=None if paths["test_data"] is None
                         else str(paths["test_data"]), latent=LATENTS[name], out=str(out / "runs"),
                         name=f"{name}{data_variant}-{tag}", **overrides)
    config = with_input_shape(config).validate()
    split = load_training_data(config)
    pca = fit_pca(split.train)
    base = pca_test_mse(pca, split.test, [config.latent])[config.latent]
    mean_mse = float(np.mean((split.test - split.train.mean(axis=0)) ** 2))
    started = time.perf_counter()
    result = train(config, verbose=False)
    wall = time.perf_counter() - started
    record = {"name": name + data_variant, "tag": tag, "overrides": {k: list(v) if isinstance(v, tuple) else v
                                                      for k, v in overrides.items()},
              "latent": config.latent, "n_train": len(split.train), "n_val": len(split.validation),
              "n_test": len(split.test), "test_mse": result.metrics["test_mse"], "val_mse": result.metrics["val_mse"],
              "pca_mse": base["mse"], "pca_mse_clipped": base["mse_clipped"], "mean_image_mse": mean_mse,
              "gain_over_clipped_pca": 1 - result.metrics["test_mse"] / base["mse_clipped"],
              "best_epoch": result.best_epoch, "epochs_run": len(result.history),
              "steps": len(result.history) * (len(split.train) // config.batch_size)
              * config.passes_per_epoch(len(split.train)), "train_seconds": result.metrics["train_seconds"],
              "wall_seconds": round(wall, 1), "cpu_seconds": result.metrics.get("cpu_seconds"),
              "val_curve": [row["val_loss"] for row in result.history],
              "initial_val_mse": read_model(result.model_path).training.get("initial_val_mse")}
    (out / "results").mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "results" / f"{name}{data_variant}-{tag}.json", json.dumps(record, indent=1))
    return record


def table(out: Path) -> str:
    rows = ["| data | run | test MSE | clipped PCA | gain | PCA | mean image | best epoch / run | steps | wall s |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for p in sorted((out / "results").glob("*.json")):
        r = json.loads(p.read_text())
        rows.append(f"| {r['name']} (K {r['latent']}, {r['n_train']} train) | {r['tag']} | {r['test_mse']:.6f} | "
                    f"{r['pca_mse_clipped']:.6f} | {100 * r['gain_over_clipped_pca']:+.1f}% | {r['pca_mse']:.6f} | "
                    f"{r['mean_image_mse']:.4f} | {r['best_epoch']} / {r['epochs_run']} | {r['steps']} | "
                    f"{r['wall_seconds']:.0f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m aefast.analyze.natural", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="folder for data/, runs/ and results/")
    p.add_argument("--only", help=f"comma-separated data sets (default: all of {', '.join(LATENTS)})")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a TrainConfig override for every run, e.g. init=random or hidden=2000 (repeatable)")
    p.add_argument("--train-stride", type=int, default=TRAIN_STRIDE, dest="train_stride",
                   help=f"pixels between training patches (default {TRAIN_STRIDE}; test patches keep {TEST_STRIDE})")
    p.add_argument("--augment", action="store_true", help="add the 7 other flips and 90-degree rotations of every "
                   "training patch (8x the training patches; test patches stay as they are)")
    p.add_argument("--tag", default=None, help="name of this run in results/ (default: the overrides, or 'default')")
    p.add_argument("--prepare-only", action="store_true", help="write the data sets and stop")
    p.add_argument("--table", action="store_true", help="print the results table and stop")
    args = p.parse_args(argv)
    if args.table:
        print(table(args.out))
        return 0
    overrides = {}
    for item in args.set:
        if "=" not in item:
            p.error(f"--set {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        overrides[key] = _value(value, key)
    names = args.only.split(",") if args.only else list(LATENTS)
    unknown = [n for n in names if n not in LATENTS]
    if unknown:
        p.error(f"unknown data sets {unknown}; known: {', '.join(LATENTS)}")
    if args.train_stride < 1:
        p.error(f"--train-stride must be a positive number of pixels, got {args.train_stride}")
    why = skimage_missing() if any(n.endswith("-skimage") for n in names) else None
    if why:
        skipped = [n for n in names if n.endswith("-skimage")]
        print(f"skipping {', '.join(skipped)}: {why}", flush=True)
        names = [n for n in names if n not in skipped]
    sets = prepare(args.out, names, args.train_stride, args.augment)
    if args.prepare_only:
        for name, paths in sets.items():
            print(name, paths["data"], paths["test_data"] or "(trainer's split)")
        return 0
    tag = args.tag or ("-".join(f"{k}={v}" for k, v in overrides.items()) or "default").replace("/", "_")
    suffix = variant(args.train_stride, args.augment)
    for name in names:
        r = run_one(name, sets[name], args.out, overrides, tag, suffix if name != "digits" else "")
        print(f"{name} {tag}: test MSE {r['test_mse']:.6f}, clipped PCA {r['pca_mse_clipped']:.6f} "
              f"({100 * r['gain_over_clipped_pca']:+.1f}%), best epoch {r['best_epoch']}/{r['epochs_run']}, "
              f"{r['wall_seconds']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
