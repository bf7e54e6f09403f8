"""The training loop behind `aefast.train.train` and `python -m aefast.train`.

One `model.fit(..., epochs=1)` per epoch on a freshly shuffled copy of the training set cut to whole batches
(every batch the same shape, so XLA compiles the step once). After each epoch: validation MSE, history.csv,
the best epoch's model.safetensors (when it improved) and checkpoint.npz, all written atomically. A NaN loss,
early stopping, the last epoch or Ctrl-C all end in `_finish`, which exports the best epoch's float32 master
weights and writes metrics.json and the plots, so the run directory is always complete and consistent.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from ..keras_io import export_keras
from . import artifacts
from .checkpoint import CHECKPOINT_NAME, Checkpoint, assign, load_checkpoint, save_checkpoint
from .config import ConfigError, TrainConfig
from .distribute import Placement, check_batch, fit_epoch, make_placement, peer_failures
from .model import build_autoencoder, current_learning_rate, describe_device, make_optimizer, resolve_precision

MODEL_NAME = "model.safetensors"
EVAL_BATCH = 1000
N_RECONSTRUCTIONS = 10


class TrainingError(RuntimeError):
    """Training could not produce a model (e.g. the loss was NaN from the first epoch)."""


@dataclass
class TrainResult:
    run_dir: Path
    model_path: Path | None     # None only if no epoch finished
    metrics: dict
    history: list[dict]         # one dict per epoch: epoch, train_loss, val_loss, lr, seconds
    best_epoch: int | None
    stopped: str                # "completed", "early_stopping", "nan" or "interrupted"
    files: list[Path] = field(default_factory=list)
    chief: bool = True          # False on a non-chief multi-worker process, which wrote nothing


@dataclass
class _Run:
    """Everything the loop mutates, so _finish can be called from any exit path."""

    config: TrainConfig
    run_dir: Path
    precision: str
    device: object
    data: object
    model: object
    export_model: object
    optimizer: object
    history: list = field(default_factory=list)
    best_epoch: int | None = None
    best_val: float = math.inf
    best_weights: list | None = None
    started: float = field(default_factory=time.perf_counter)
    cpu_started: float = field(default_factory=time.process_time)
    placement: Placement = field(default_factory=lambda: make_placement("none"))
    xla: bool = True                # XLA as used (off under a strategy on CPU: see Placement.jit_compile)


def epoch_order(n: int, batch_size: int, seed: int, epoch: int) -> np.ndarray:
    """Indices for one epoch: a permutation seeded by (seed, epoch), cut to whole batches (the tail, fewer
    than batch_size images, is dropped; a different tail each epoch)."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return order[: (n // batch_size) * batch_size]


def _log(verbose: bool, msg: str) -> None:
    if verbose:
        print(msg, flush=True)


def _load_data(config: TrainConfig):
    from ..data import load_mnist

    mnist = load_mnist(config.data_dir, validation_size=config.val_size)
    train_x = mnist.train.x[: config.train_limit] if config.train_limit else mnist.train.x
    test_x = mnist.test.x[: config.test_limit] if config.test_limit else mnist.test.x
    if len(train_x) < config.batch_size:
        raise ConfigError(f"only {len(train_x)} training images, fewer than one batch ({config.batch_size})")
    return train_x, mnist.validation.x, test_x, dict(mnist.sha256)


def reconstruction_mse(model, x: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean squared pixel error of `model` on x (float64 accumulation) and the reconstructions."""
    recon = np.asarray(model.predict(x, batch_size=EVAL_BATCH, verbose=0), dtype=np.float32)
    return float(np.mean(np.square(recon.astype(np.float64) - x))), recon


def _training_record(run: _Run) -> dict:
    return {**run.config.to_dict(), "precision_used": run.precision, "best_epoch": run.best_epoch,
            "epochs_run": len(run.history), "backend": _backend_name(), "device": run.device.name}


def _backend_name() -> str:
    import keras

    return f"keras {keras.__version__} / {keras.backend.backend()}"


def _export_best(run: _Run, metrics: dict) -> Path:
    assign(run.export_model.weights, run.best_weights, "model")
    return export_keras(run.export_model, run.run_dir / MODEL_NAME, training=_training_record(run),
                        metrics=metrics, data_sha256=run.data[3])


def _epoch(run: _Run, epoch: int, verbose: bool, callbacks) -> dict:
    cfg = run.config
    train_x, val_x = run.data[0], run.data[1]
    started = time.perf_counter()
    lr = current_learning_rate(run.optimizer)
    batch = train_x[epoch_order(len(train_x), cfg.batch_size, cfg.seed, epoch)]
    progress = 1 if verbose and sys.stdout.isatty() else 0
    if run.placement.strategy is None:
        fitted = run.model.fit(batch, batch, batch_size=cfg.batch_size, epochs=1, shuffle=False,
                               verbose=progress, callbacks=callbacks)
        train_loss = float(fitted.history["loss"][-1])
        val_loss = float(run.model.evaluate(val_x, val_x, batch_size=EVAL_BATCH, verbose=0,
                                            return_dict=True)["mse"])
    else:
        # Each worker feeds its slice of every global batch; validation runs locally on the float32 copy, so every
        # worker computes the same figure and takes the same best-epoch / early-stopping decisions.
        train_loss = fit_epoch(run.placement, run.model, batch, cfg.batch_size, progress, callbacks)
        assign(run.export_model.weights, run.model.get_weights(), "model")
        val_loss = reconstruction_mse(run.export_model, val_x)[0]
    return {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss, "lr": lr,
            "seconds": round(time.perf_counter() - started, 3)}


def _loop(run: _Run, start_epoch: int, verbose: bool, callbacks) -> str:
    cfg = run.config
    for epoch in range(start_epoch, cfg.epochs):
        row = _epoch(run, epoch, verbose, callbacks)
        run.history.append(row)
        best_mark = ""
        if not (math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"])):
            _log(verbose, f"epoch {row['epoch']}/{cfg.epochs}: loss is not finite (train {row['train_loss']}, "
                          f"val {row['val_loss']}): stopping")
            if run.placement.chief:
                artifacts.write_history(run.run_dir / artifacts.HISTORY_NAME, run.history)
            return "nan"
        if row["val_loss"] < run.best_val:
            run.best_epoch, run.best_val = row["epoch"], row["val_loss"]
            run.best_weights = [np.array(w) for w in run.model.get_weights()]
            if run.placement.chief:
                _export_best(run, {"val_mse": run.best_val})
            best_mark = " *"
        _log(verbose, f"epoch {row['epoch']}/{cfg.epochs}  train {row['train_loss']:.6f}  "
                      f"val {row['val_loss']:.6f}  lr {row['lr']:.2e}  {row['seconds']:.1f}s{best_mark}")
        if run.placement.chief:
            _write_epoch_files(run)
        if cfg.patience and row["epoch"] - run.best_epoch >= cfg.patience:
            _log(verbose, f"no better validation MSE for {cfg.patience} epochs: stopping early")
            return "early_stopping"
    return "completed"


def _write_epoch_files(run: _Run) -> None:
    artifacts.write_history(run.run_dir / artifacts.HISTORY_NAME, run.history)
    save_checkpoint(run.run_dir / CHECKPOINT_NAME, Checkpoint(
        model=[np.array(w) for w in run.model.get_weights()],
        optimizer=[np.array(v.numpy()) for v in run.optimizer.variables],
        best=run.best_weights,
        state={"epoch": run.history[-1]["epoch"], "history": run.history, "best_epoch": run.best_epoch,
               "best_val": run.best_val}))


def _finish(run: _Run, stopped: str, verbose: bool) -> TrainResult:
    """Write the final model (best epoch), metrics.json and the plots; return the result."""
    if not run.placement.chief:  # a non-chief worker: the chief writes the run directory
        return TrainResult(run.run_dir, None, {}, run.history, run.best_epoch, stopped, [], chief=False)
    files = [run.run_dir / artifacts.CONFIG_NAME]
    if run.best_weights is None:
        return TrainResult(run.run_dir, None, {}, run.history, None, stopped, files)
    assign(run.export_model.weights, run.best_weights, "model")
    test_x = run.data[2]
    test_mse, recon = reconstruction_mse(run.export_model, test_x)
    cfg = run.config
    metrics = {
        "test_mse": test_mse,
        "test_psnr_db": artifacts.psnr(test_mse),
        "val_mse": run.best_val,
        "compression_ratio": cfg.layer_sizes[0] / cfg.latent,
        "layer_sizes": cfg.layer_sizes,
        "best_epoch": run.best_epoch,
        "epochs_run": len(run.history),
        "stopped": stopped,
        "train_seconds": round(sum(row["seconds"] for row in run.history), 3),
        "wall_seconds": round(time.perf_counter() - run.started, 3),
        # CPU time of this process (all threads): comparable across runs on a shared, busy machine.
        "cpu_seconds": round(time.process_time() - run.cpu_started, 3),
        "precision": run.precision,
        "xla": run.xla,
        "device": run.device.name,
        "backend": _backend_name(),
        "n_train": len(run.data[0]),
        "n_val": len(run.data[1]),
        "n_test": len(test_x),
    }
    model_path = _export_best(run, {"val_mse": run.best_val, "test_mse": test_mse})
    files += [model_path, run.run_dir / artifacts.HISTORY_NAME, run.run_dir / CHECKPOINT_NAME,
              artifacts.write_json(run.run_dir / artifacts.METRICS_NAME, metrics),
              artifacts.plot_loss(run.run_dir / artifacts.LOSS_PLOT_NAME, run.history, run.best_epoch),
              artifacts.plot_reconstructions(run.run_dir / artifacts.RECONSTRUCTIONS_NAME,
                                             test_x[:N_RECONSTRUCTIONS], recon[:N_RECONSTRUCTIONS])]
    _log(verbose, f"best epoch {run.best_epoch}: val MSE {run.best_val:.6f}, test MSE {test_mse:.6f} "
                  f"({metrics['test_psnr_db']:.2f} dB), {metrics['wall_seconds']:.0f}s -> {model_path}")
    return TrainResult(run.run_dir, model_path, metrics, run.history, run.best_epoch, stopped, files)


def _new_run_dir(config: TrainConfig) -> Path:
    name = config.name or datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(config.out) / name
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(f"run directory {run_dir} already exists and is not empty; pick another --name, "
                          f"or continue it with --resume {run_dir}")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _prepare(config: TrainConfig, run_dir: Path, placement: Placement) -> _Run:
    import keras

    keras.utils.set_random_seed(config.seed)
    device = describe_device()
    precision = resolve_precision(config.precision, device)
    data = _load_data(config)
    steps_per_epoch = len(data[0]) // config.batch_size
    with placement.scope():  # the trained model and its optimizer live on every replica
        model = build_autoencoder(config, precision)
        optimizer = make_optimizer(config, steps_per_epoch, precision)
        model.compile(optimizer=optimizer, loss="mse", metrics=[keras.metrics.MeanSquaredError(name="mse")],
                      jit_compile=placement.jit_compile(config.xla, device.kind))
        optimizer.build(model.trainable_variables)
    export_model = build_autoencoder(config, "float32")
    return _Run(config, run_dir, precision, device, data, model, export_model, optimizer, placement=placement,
                xla=placement.jit_compile(config.xla, device.kind))


def _run(run: _Run, start_epoch: int, verbose: bool, callbacks) -> TrainResult:
    cfg = run.config
    _log(verbose, f"training {'-'.join(map(str, cfg.layer_sizes))} on {len(run.data[0])} images, "
                  f"{run.precision}, XLA {'on' if run.xla else 'off'}, {run.device.name}"
                  f"{run.placement.describe()} -> {run.run_dir}")
    try:
        with peer_failures(run.placement):
            stopped = _loop(run, start_epoch, verbose, callbacks)
    except KeyboardInterrupt:
        _log(verbose, f"interrupted: saving the best epoch so far; continue with --resume {run.run_dir}")
        _finish(run, "interrupted", verbose)
        raise
    result = _finish(run, stopped, verbose)
    if result.model_path is None and result.chief:
        raise TrainingError(f"no epoch produced a finite loss (epoch 1: {run.history[0]}); "
                            "try a lower --lr or --precision float32")
    return result


def train(config: TrainConfig, *, verbose: bool = True, callbacks=()) -> TrainResult:
    """Train a new run described by `config` into config.out/config.name (a timestamp if None).

    callbacks: extra keras.callbacks.Callback objects passed to every model.fit (one fit per epoch).
    Ctrl-C: the run directory is finished with the best epoch so far, then KeyboardInterrupt propagates.
    """
    config.validate()
    placement = make_placement(config.distribute)  # before any other TensorFlow work
    check_batch(placement, config.batch_size)
    if placement.chief:
        run_dir = _new_run_dir(config)
        artifacts.write_json(run_dir / artifacts.CONFIG_NAME, {"config": config.to_dict()})
    else:
        run_dir = Path(config.out) / (config.name or "<chief's run directory>")
    return _run(_prepare(config, run_dir, placement), 0, verbose, list(callbacks))


def resume(run_dir, *, verbose: bool = True, callbacks=(), distribute: str | None = None) -> TrainResult:
    """Continue the run in `run_dir` from its last checkpoint, with its saved config. distribute: run the rest
    under another --distribute mode than the saved one (same global batch, so the same training)."""
    run_dir = Path(run_dir)
    config_path = run_dir / artifacts.CONFIG_NAME
    if not config_path.is_file():
        raise ConfigError(f"{run_dir} is not an aefast run directory (no {artifacts.CONFIG_NAME})")
    config = TrainConfig.from_dict(artifacts.read_json(config_path)["config"])
    if distribute is not None:
        config.distribute = distribute
    config.validate()
    placement = make_placement(config.distribute)  # every worker reads the run directory (shared storage)
    check_batch(placement, config.batch_size)
    run = _prepare(config, run_dir, placement)
    start_epoch = 0
    if (run_dir / CHECKPOINT_NAME).is_file():
        ckpt = load_checkpoint(run_dir / CHECKPOINT_NAME)
        assign(run.model.weights, ckpt.model, "model")
        assign(run.optimizer.variables, ckpt.optimizer, "optimizer")
        run.best_weights = ckpt.best
        start_epoch = ckpt.state["epoch"]
        run.history = ckpt.state["history"]
        run.best_epoch, run.best_val = ckpt.state["best_epoch"], ckpt.state["best_val"]
        _log(verbose, f"resuming {run_dir} after epoch {start_epoch} (best epoch {run.best_epoch})")
    return _run(run, start_epoch, verbose, list(callbacks))
