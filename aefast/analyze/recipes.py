"""Compare training recipes: `python -m aefast.analyze.recipes --out DIR [--jobs N] [--only a,b] [--table]`.

A recipe is an architecture plus TrainConfig overrides, trained by `aefast.train.train` itself (every knob is the
product's own), each in its own process (`--jobs` at a time; on a CPU one run already uses every core). Each
finished recipe writes DIR/results/<name>.json: the test MSE of the exported model, the best epoch, the validation
curve and the seconds per epoch; rerunning skips finished recipes. `--table` prints the results as a markdown
table (docs/analysis.md, "Recipe search", quotes the runs behind the trainer's defaults, made one at a time on the
2-core CPU).
"""
from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ARCHITECTURES = {
    "deep": {"hidden": (1000, 500, 250), "latent": 30},
    "l200": {"hidden": (1000,), "latent": 200},
    "l100": {"hidden": (1000,), "latent": 100},
    "wide": {"hidden": (10000,), "latent": 100},
}
# The recipe every change is measured against: ELU code layer, linear output, zero output bias, MSE, Adam 1e-3 with
# cosine decay, batch 128 (the first study's settings, docs/study-before-issue-14/report.md).
BASELINE = {"latent_activation": "elu", "output": "linear", "output_bias_init": "zero", "loss": "mse",
            "batch_size": 128, "lr": 1e-3, "schedule": "cosine", "warmup": 0, "weight_decay": 0.0}
SIGMOID_BCE = {"output": "sigmoid", "loss": "bce"}


def _recipe(arch: str, epochs: int, **changes) -> dict:
    return {"arch": arch, "epochs": epochs, "changes": changes}


# Run on the 2-core CPU one at a time (docs/analysis.md, "Recipe search"). The baselines at 30 epochs (and wide
# at 5) are the first study's runs (docs/study-before-issue-14/report.md), not repeated here.
RECIPES: dict[str, dict] = {
    "l200-bce-30": _recipe("l200", 30, **SIGMOID_BCE),
    "l200-sigmoid-30": _recipe("l200", 30, output="sigmoid"),
    "deep-bce-30": _recipe("deep", 30, **SIGMOID_BCE),
    "deep-sigmoid-30": _recipe("deep", 30, output="sigmoid"),
    "deep-sigmoid-lr3e-3-warm2-30": _recipe("deep", 30, lr=3e-3, warmup=2, output="sigmoid"),
    "deep-sigmoid-bs32-30": _recipe("deep", 30, batch_size=32, output="sigmoid"),
    "deep-bce-linear-code-30": _recipe("deep", 30, latent_activation="linear", **SIGMOID_BCE),
    "l200-sigmoid-linear-code-30": _recipe("l200", 30, latent_activation="linear", output="sigmoid"),
    "wide-sigmoid-lr3e-4-5": _recipe("wide", 5, lr=3e-4, output="sigmoid"),
}


def train_one(name: str, recipe: dict, out: Path, data_dir: str | None, precision: str) -> dict:
    """Train `recipe` through aefast.train and write out/results/<name>.json (atomically); returns the record."""
    from .._io import write_text_atomic
    from ..train import TrainConfig, train

    settings = {**BASELINE, **ARCHITECTURES[recipe["arch"]], **recipe["changes"], "epochs": recipe["epochs"]}
    config = TrainConfig(**settings, precision=precision, data_dir=data_dir, out=str(out / "runs"), name=name)
    result = train(config.validate(), verbose=False)
    record = {"name": name, **recipe, "test_mse": result.metrics["test_mse"], "best_epoch": result.best_epoch,
              "epochs_run": len(result.history), "stopped": result.stopped,
              "train_seconds": result.metrics["train_seconds"], "device": result.metrics["device"],
              "precision": result.metrics["precision"], "backend": result.metrics["backend"],
              "val_curve": [row["val_loss"] for row in result.history],
              "epoch_seconds": [row["seconds"] for row in result.history]}
    write_text_atomic(out / "results" / f"{name}.json", json.dumps(record, indent=1))
    return record


def run(names: list[str], out: Path, jobs: int, data_dir: str | None, precision: str) -> None:
    todo = [n for n in names if not (out / "results" / f"{n}.json").exists()]
    (out / "results").mkdir(parents=True, exist_ok=True)
    import multiprocessing

    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(train_one, n, RECIPES[n], out, data_dir, precision): n for n in todo}
        for future in as_completed(futures):
            name = futures[future]
            try:
                rec = future.result()
                print(f"{name}: test MSE {rec['test_mse']:.6f} (best epoch {rec['best_epoch']}/{rec['epochs_run']}, "
                      f"{rec['train_seconds']:.0f} s)", flush=True)
            except Exception as e:  # one failed recipe must not lose the others
                print(f"{name}: failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)


def describe(changes: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in changes.items()) or "baseline"


def table(out: Path) -> str:
    rows = ["| recipe | architecture | change from the baseline | epochs (best) | test MSE | train s | device |",
            "|---|---|---|---|---|---|---|"]
    records = [json.loads(p.read_text()) for p in sorted((out / "results").glob("*.json"))]
    for r in sorted(records, key=lambda r: (r["arch"], r["test_mse"])):
        arch = ARCHITECTURES[r["arch"]]
        shape = "-".join(map(str, (784, *arch["hidden"], arch["latent"])))
        rows.append(f"| {r['name']} | {shape} | {describe(r['changes'])} | {r['epochs_run']} ({r['best_epoch']}) | "
                    f"{r['test_mse']:.6f} | {r['train_seconds']:.0f} | {r['device']}, {r['precision']} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m aefast.analyze.recipes", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="folder for runs/ and results/")
    p.add_argument("--jobs", type=int, default=1,
                   help="recipes at a time (default 1: on a CPU one run uses every core)")
    p.add_argument("--only", help="comma-separated recipe names (default: all)")
    p.add_argument("--data-dir", help="MNIST folder")
    p.add_argument("--precision", default="float32", help="TrainConfig.precision for every recipe (default float32)")
    p.add_argument("--table", action="store_true", help="print the results table and exit")
    args = p.parse_args(argv)
    if args.table:
        print(table(args.out))
        return 0
    names = args.only.split(",") if args.only else list(RECIPES)
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        p.error(f"unknown recipes {unknown}; known: {', '.join(RECIPES)}")
    run(names, args.out, args.jobs, args.data_dir, args.precision)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
