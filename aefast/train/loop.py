"""The training loop behind `aefast.train.train` and `python -m aefast.train`.

One `model.fit(..., epochs=1)` per epoch on a freshly shuffled copy of the training set cut to whole batches
(every batch the same shape, so XLA compiles the step once). After each epoch: validation MSE, history.csv,
the best epoch's model.safetensors (when it improved) and checkpoint.npz, all written atomically. A NaN loss,
early stopping, the last epoch or Ctrl-C all end in `_finish`, which exports the best epoch's float32 master
weights and writes metrics.json and the plots, so the run directory is always complete and consistent.

Validation and test MSEs are those of the model as served (baseline.served_mse: outputs clipped to [0, 1], what
`aefast reconstruct` writes), so a linear output is ranked, exported and reported on what it serves and compared
with clipped PCA like with like; the training loss stays the unclipped MSE (clipping has no gradient outside
[0, 1]). metrics.json keeps the unclipped test figure as test_mse_unclipped.

Ctrl-C: an epoch counts once its checkpoint is written. Interrupted before that, the run goes back to the last
checkpointed epoch, and `_finish` rewrites history.csv, model.safetensors, metrics.json and the plots from it, with
further Ctrl-C deferred until they are written; so every file agrees with the checkpoint. Settings, data and the
run name are all checked before the run directory is created and before TensorFlow loads.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from ..keras_io import export_keras
from . import artifacts, baseline
from .checkpoint import CHECKPOINT_NAME, Checkpoint, assign, check_checkpoint, load_checkpoint, save_checkpoint
from .config import ConfigError, RunDirError, TrainConfig
from .ctrl_c import ctrl_c_handled
from .data import TrainingData, with_input_shape
from .distribute import Placement, check_batch, fit_epoch, make_placement, peer_failures
from .memory import EVAL_BATCH, check_memory
from .init import pca_start, plan_start
from .model import (LOSS_NAMES, batch_progress, build_autoencoder, current_learning_rate, describe_device,
                    make_optimizer, output_bias, resolve_precision)
from ..errors import TrainingError, TrainingInterrupted  # noqa: F401 (defined in aefast/errors.py)

MODEL_NAME = "model.safetensors"
N_RECONSTRUCTIONS = 10


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
    data: TrainingData
    model: object
    export_model: object
    optimizer: object
    history: list = field(default_factory=list)
    best_epoch: int | None = None
    best_val: float = math.inf
    best_weights: list | None = None
    initial_val: float | None = None   # init "pca": the validation MSE of the starting model, "epoch 0"
    start: object = None               # init.StartPlan: the output used, the PCA components, both starts' scores
    committed: tuple = (0, None, math.inf, None)   # (epochs, best_epoch, best_val, best_weights) in the checkpoint
    started: float = field(default_factory=time.perf_counter)
    cpu_started: float = field(default_factory=time.process_time)
    placement: Placement = field(default_factory=lambda: make_placement("none"))
    xla: bool = True                # XLA as used (off under a strategy on CPU: see Placement.jit_compile)


def epoch_order(n: int, batch_size: int, seed: int, epoch: int, passes: int = 1) -> np.ndarray:
    """Indices for one epoch: `passes` permutations, the first seeded by (seed, epoch), the others by (seed, epoch,
    pass), each cut to whole batches (the tail, fewer than batch_size images, is dropped; a different tail each
    time)."""
    orders = [np.random.default_rng([seed, epoch] if k == 0 else [seed, epoch, k]).permutation(n)
              for k in range(passes)]
    return np.concatenate([order[: (n // batch_size) * batch_size] for order in orders])


def _log(verbose: bool, msg: str) -> None:
    if verbose:
        print(msg, flush=True)


def _load_data(config: TrainConfig) -> TrainingData:
    """The run's splits, numpy only: run before TensorFlow loads and before the run
    directory is made, so bad data settings cost no folder and no TensorFlow start-up."""
    from .data import load_training_data

    return load_training_data(config, progress=True)   # a transient bar while a folder is decoded (terminals only)


def reconstruction_mse(model, x: np.ndarray) -> tuple[float, np.ndarray]:
    """The served MSE of `model` on x (baseline.served_mse: outputs clipped to [0, 1], float64 accumulation) and the
    (N, D) float32 reconstructions as the model computed them (unclipped)."""
    recon = np.asarray(model.predict(x, batch_size=EVAL_BATCH, verbose=0), dtype=np.float32)
    return baseline.served_mse(recon, x), recon


def _validation_mse(run: _Run) -> float:
    """The figure the best epoch is chosen by: the served validation MSE of the trained model's float32 weights
    (outputs clipped to [0, 1], as aefast serves them; a linear output may overshoot it)."""
    assign(run.export_model.weights, run.model.get_weights(), "model")
    return reconstruction_mse(run.export_model, run.data.validation)[0]


def _training_record(run: _Run) -> dict:
    start = {} if run.start is None or run.start.pca is None else {
        "pca_components": run.start.components, "pca_start_val_mse": run.start.val_mse}
    return {**run.config.to_dict(), "precision_used": run.precision, "best_epoch": run.best_epoch,
            "epochs_run": len(run.history), "backend": _backend_name(), "device": run.device.name,
            "initial_val_mse": run.initial_val, **start}


def _backend_name() -> str:
    import keras

    return f"keras {keras.__version__} / {keras.backend.backend()}"


def _export_best(run: _Run, metrics: dict, calibrate: bool) -> Path:
    """model.safetensors from the best weights. The int8 calibration means (a float64 pass over up to 10,000
    training images: about a second per epoch for hidden 1000 on 2 cores) are added only by the final export;
    the per-epoch files a killed run leaves serve int8 without bias correction."""
    assign(run.export_model.weights, run.best_weights, "model")
    return export_keras(run.export_model, run.run_dir / MODEL_NAME, training=_training_record(run),
                        metrics=metrics, data_sha256=run.data.sha256, input_shape=tuple(run.config.input_shape),
                        calibration_images=run.data.train if calibrate else None)


def _epoch(run: _Run, epoch: int, verbose: bool, callbacks) -> dict:
    cfg = run.config
    train_x, val_x = run.data.train, run.data.validation
    started = time.perf_counter()
    lr = current_learning_rate(run.optimizer)
    batch = train_x[epoch_order(len(train_x), cfg.batch_size, cfg.seed, epoch, cfg.passes_per_epoch(len(train_x)))]
    progress = [*callbacks, *batch_progress(verbose, epoch, cfg.epochs)]
    if run.placement.strategy is None:
        fitted = run.model.fit(batch, batch, batch_size=cfg.batch_size, epochs=1, shuffle=False, verbose=0,
                               callbacks=progress)
        train_loss = float(fitted.history["loss"][-1])
    else:
        # Each worker feeds its slice of every global batch; validation runs locally on the float32 copy, so every
        # worker computes the same figure and takes the same best-epoch / early-stopping decisions.
        train_loss = fit_epoch(run.placement, run.model, batch, cfg.batch_size, 0, progress)
    if run.placement.strategy is None and cfg.output == "sigmoid":
        # a sigmoid output lies in [0, 1]: Keras's MSE on the trained model is already the served figure
        val_loss = float(run.model.evaluate(val_x, val_x, batch_size=EVAL_BATCH, verbose=0,
                                            return_dict=True)["mse"])
    else:
        val_loss = _validation_mse(run)
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
                _export_best(run, {"val_mse": run.best_val}, calibrate=False)
            best_mark = " *"
        if run.placement.chief:
            _write_epoch_files(run)
        _commit(run)
        # printed once the epoch is in the checkpoint: a Ctrl-C after this line keeps it
        _log(verbose, f"epoch {row['epoch']}/{cfg.epochs}  train {row['train_loss']:.6f}  "
                      f"val {row['val_loss']:.6f}  lr {row['lr']:.2e}  {row['seconds']:.1f}s{best_mark}")
        if cfg.patience and row["epoch"] - run.best_epoch >= cfg.patience:
            _log(verbose, f"no better validation MSE for {cfg.patience} epochs: stopping early")
            return "early_stopping"
    return "completed"


def _commit(run: _Run) -> None:
    """The epochs so far are in the checkpoint: an interrupt from now on goes back to here."""
    run.committed = (len(run.history), run.best_epoch, run.best_val, run.best_weights)


def _roll_back(run: _Run) -> None:
    """Forget an epoch the interrupt caught before its checkpoint was written (best_weights is replaced, never
    changed in place, so the committed list is still the checkpoint's). With no epoch committed, the files that
    epoch may have written go too, leaving config.json alone."""
    n, run.best_epoch, run.best_val, run.best_weights = run.committed
    del run.history[n:]
    if n == 0 and run.placement.chief:   # only the chief writes the run directory
        for name in (MODEL_NAME, artifacts.HISTORY_NAME):
            (run.run_dir / name).unlink(missing_ok=True)


def _write_epoch_files(run: _Run) -> None:
    artifacts.write_history(run.run_dir / artifacts.HISTORY_NAME, run.history)
    save_checkpoint(run.run_dir / CHECKPOINT_NAME, Checkpoint(
        model=[np.array(w) for w in run.model.get_weights()],
        optimizer=[np.array(v.numpy()) for v in run.optimizer.variables],
        best=run.best_weights,
        state={"epoch": run.history[-1]["epoch"], "history": run.history, "best_epoch": run.best_epoch,
               "best_val": run.best_val, "initial_val": run.initial_val}))


def _finish(run: _Run, stopped: str, verbose: bool) -> TrainResult:
    """Write history.csv, the final model (best epoch), metrics.json and the plots; return the result."""
    if not run.placement.chief:  # a non-chief worker: the chief writes the run directory
        return TrainResult(run.run_dir, None, {}, run.history, run.best_epoch, stopped, [], chief=False)
    files = [run.run_dir / artifacts.CONFIG_NAME]
    if run.best_weights is None:
        return TrainResult(run.run_dir, None, {}, run.history, None, stopped, files)
    artifacts.write_history(run.run_dir / artifacts.HISTORY_NAME, run.history)
    assign(run.export_model.weights, run.best_weights, "model")
    test_x = run.data.test
    test_mse, recon = reconstruction_mse(run.export_model, test_x)   # served: clipped, as clipped PCA beside it
    cfg = run.config
    # PCA at the code size and the mean image, on the same test images (seconds: see aefast/train/baseline.py)
    baseline_started = time.perf_counter()
    reference = baseline.baseline_metrics(run.data.train, run.data.validation, test_x, cfg.latent, cfg.seed,
                                          pca=None if run.start is None else run.start.pca)
    baseline_seconds = round(time.perf_counter() - baseline_started, 3)
    metrics = {
        "test_mse": test_mse,
        "test_mse_unclipped": baseline.unclipped_mse(recon, test_x),
        **reference,
        "test_psnr_db": artifacts.psnr(test_mse),
        "val_mse": run.best_val,
        "compression_ratio": cfg.layer_sizes[0] / cfg.latent,
        "layer_sizes": cfg.layer_sizes,
        "best_epoch": run.best_epoch,
        "epochs_run": len(run.history),
        "stopped": stopped,
        "train_seconds": round(sum(row["seconds"] for row in run.history), 3),
        "baseline_seconds": baseline_seconds,
        "wall_seconds": round(time.perf_counter() - run.started, 3),
        # CPU time of this process (all threads): comparable across runs on a shared, busy machine.
        "cpu_seconds": round(time.process_time() - run.cpu_started, 3),
        "precision": run.precision,
        "xla": run.xla,
        "device": run.device.name,
        "backend": _backend_name(),
        "n_train": len(run.data.train),
        "n_val": len(run.data.validation),
        "n_test": len(test_x),
    }
    model_path = _export_best(run, {"val_mse": run.best_val, "test_mse": test_mse,
                                    "test_mse_unclipped": metrics["test_mse_unclipped"], **reference}, calibrate=True)
    files += [model_path, run.run_dir / artifacts.HISTORY_NAME, run.run_dir / CHECKPOINT_NAME,
              artifacts.write_json(run.run_dir / artifacts.METRICS_NAME, metrics),
              artifacts.plot_loss(run.run_dir / artifacts.LOSS_PLOT_NAME, run.history, run.best_epoch,
                                  pca_val_mse=reference["pca_clipped_val_mse"],
                                  pca_components=reference["pca_components"]),
              artifacts.plot_reconstructions(run.run_dir / artifacts.RECONSTRUCTIONS_NAME,
                                             test_x[:N_RECONSTRUCTIONS], recon[:N_RECONSTRUCTIONS],
                                             tuple(cfg.input_shape))]
    for line in summary_lines(metrics, model_path):
        _log(verbose, line)
    return TrainResult(run.run_dir, model_path, metrics, run.history, run.best_epoch, stopped, files)


def summary_lines(metrics: dict, model_path) -> list[str]:
    """The lines that end a run: the best epoch with its figures, then the test MSE beside PCA's and the mean
    image's (and a warning when PCA does better: baseline.report_lines). `aefast train --quiet` prints these too."""
    return [f"best epoch {metrics['best_epoch']}: val MSE {metrics['val_mse']:#.4g}, test PSNR "
            f"{metrics['test_psnr_db']:.2f} dB, {metrics['wall_seconds']:.0f}s -> {model_path}",
            *baseline.report_lines(metrics)]


def _new_run_dir(config: TrainConfig) -> Path:
    """out/name, created. Without a name: out/<timestamp>, or <timestamp>-2, -3, ... when that exists (mkdir is
    atomic, so two runs started in the same second get different folders)."""
    out = Path(config.out)
    try:
        if config.name:
            run_dir = out / config.name
            if run_dir.exists() and any(run_dir.iterdir()):
                raise ConfigError(f"run directory {run_dir} already exists and is not empty; pick another --name, "
                                  f"or continue it with --resume {run_dir}")
            run_dir.mkdir(parents=True, exist_ok=True)
            return run_dir
        out.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        for n in range(1, 10_000):
            run_dir = out / (stamp if n == 1 else f"{stamp}-{n}")
            try:
                run_dir.mkdir()
                return run_dir
            except FileExistsError:
                continue
        raise ConfigError(f"{out}: 10000 runs named {stamp}-* already exist; pick a --name")
    except OSError as e:
        raise ConfigError(f"cannot create the run directory in {out} ({e.strerror or e})") from None


def _prepare(config: TrainConfig, run_dir: Path, data, placement: Placement) -> _Run:
    import dataclasses

    import keras

    keras.utils.set_random_seed(config.seed)
    device = describe_device()
    precision = resolve_precision(config.precision, device)
    steps_per_epoch = len(data.train) // config.batch_size * config.passes_per_epoch(len(data.train))
    start = plan_start(config, data.train, data.validation)
    config = dataclasses.replace(config, output=start.output)   # "auto" resolved; config.json keeps what was asked
    with placement.scope():  # the trained model and its optimizer live on every replica
        model = build_autoencoder(config, precision, output_bias(config, data.train) if config.init == "random"
                                  else None)
        if config.init == "pca":
            assign(model.weights, pca_start(model.get_weights(), config.layer_sizes, start.output, data.train,
                                            latent_activation=config.latent_activation, pca=start.pca,
                                            soft_clip=start.soft_clip), "model")
        optimizer = make_optimizer(config, steps_per_epoch, precision)
        model.compile(optimizer=optimizer, loss=LOSS_NAMES[config.loss],
                      metrics=[keras.metrics.MeanSquaredError(name="mse")],
                      jit_compile=placement.jit_compile(config.xla, device.kind))
        optimizer.build(model.trainable_variables)
    export_model = build_autoencoder(config, "float32")
    return _Run(config, run_dir, precision, device, data, model, export_model, optimizer, placement=placement,
                xla=placement.jit_compile(config.xla, device.kind), start=start)


def _epoch_zero(run: _Run, verbose: bool) -> None:
    """init "pca": the starting model is the first candidate for the best epoch ("epoch 0"), so the exported model's
    validation MSE is never above the start's. Scored like every epoch (served, clipped to [0, 1]): with a linear
    output the start is PCA, so its figure is clipped PCA's and the exported model is never worse than clipped PCA
    on validation. Not committed: an interrupt before epoch 1 keeps nothing."""
    run.initial_val = _validation_mse(run)
    run.best_epoch, run.best_val = 0, run.initial_val
    run.best_weights = [np.array(w) for w in run.model.get_weights()]
    _log(verbose, f"epoch 0 (PCA start, {run.start.components} components, {run.start.output} output): "
                  f"val {run.initial_val:.6f}")


def _run(run: _Run, start_epoch: int, verbose: bool, callbacks) -> TrainResult:
    cfg = run.config
    _log(verbose, f"training {'-'.join(map(str, cfg.layer_sizes))} on {len(run.data.train)} images, "
                  f"{run.precision}, XLA {'on' if run.xla else 'off'}, {run.device.name}"
                  f"{run.placement.describe()} -> {run.run_dir}")
    _commit(run)
    if start_epoch == 0 and cfg.init == "pca":
        _epoch_zero(run, verbose)
    interrupted = False
    with ctrl_c_handled() as ctrl_c:
        try:
            with peer_failures(run.placement):
                stopped = _loop(run, start_epoch, verbose, callbacks)
                ctrl_c.defer()   # inside the try: a Ctrl-C before this line is an interrupt after the last epoch
        except KeyboardInterrupt:
            ctrl_c.defer()       # a KeyboardInterrupt raised by a callback rather than by Ctrl-C
            interrupted = True
            _roll_back(run)
            _log(verbose, "interrupted: writing the run directory from the last finished epoch")
            _finish(run, "interrupted", verbose)
        else:
            result = _finish(run, stopped, verbose)
    if interrupted:
        if run.best_weights is None:
            raise TrainingInterrupted(f"interrupted before the first epoch finished: {run.run_dir} holds only "
                                      f"{artifacts.CONFIG_NAME}; start it with --resume {run.run_dir}")
        raise TrainingInterrupted(
            f"interrupted: {run.run_dir} holds epochs 1..{len(run.history)} (best epoch {run.best_epoch}, val MSE "
            f"{run.best_val:.6f}); continue with --resume {run.run_dir}")
    if ctrl_c.pressed:
        raise TrainingInterrupted(f"interrupted after training ended ({stopped}): {run.run_dir} is complete")
    if result.model_path is None and result.chief:
        raise TrainingError(f"no epoch produced a finite loss (epoch 1: {run.history[0]}); "
                            "try a lower --lr or --precision float32")
    return result


def train(config: TrainConfig, *, verbose: bool = True, callbacks=()) -> TrainResult:
    """Train a new run described by `config` into config.out/config.name (a timestamp if None).

    callbacks: extra keras.callbacks.Callback objects passed to every model.fit (one fit per epoch).
    Ctrl-C: the run directory is finished with the best epoch so far, then KeyboardInterrupt propagates.
    """
    config = with_input_shape(config).validate()
    try:
        data = _load_data(config)
    except KeyboardInterrupt:
        raise TrainingInterrupted("interrupted while loading the data; no run directory was made") from None
    check_memory(config)   # with the data loaded: what is left must hold the model
    placement = make_placement(config.distribute)  # before any other TensorFlow work
    check_batch(placement, config.batch_size)
    if not placement.chief:   # the chief alone writes the run directory
        run_dir = Path(config.out) / (config.name or "<chief's run directory>")
        return _run(_prepare(config, run_dir, data, placement), 0, verbose, list(callbacks))
    run_dir = _new_run_dir(config)
    try:
        artifacts.write_json(run_dir / artifacts.CONFIG_NAME, {"config": config.to_dict(), "data_sha256": data.sha256})
        run = _prepare(config, run_dir, data, placement)
    except KeyboardInterrupt:
        if not (run_dir / artifacts.CONFIG_NAME).exists():
            run_dir.rmdir()
            raise TrainingInterrupted("interrupted while creating the run directory; nothing was kept") from None
        raise TrainingInterrupted(f"interrupted before the first epoch: {run_dir} holds only "
                                  f"{artifacts.CONFIG_NAME}; start it with --resume {run_dir}") from None
    return _run(run, 0, verbose, list(callbacks))


def resume(run_dir, *, verbose: bool = True, callbacks=(), distribute: str | None = None) -> TrainResult:
    """Continue the run in `run_dir` from its last checkpoint, with its saved config. distribute: run the rest
    under another --distribute mode than the saved one (same global batch, so the same training)."""
    run_dir = Path(run_dir)
    config = _saved_config(run_dir)
    if distribute is not None:
        config.distribute = distribute
        config.validate()
    ckpt_path = run_dir / CHECKPOINT_NAME
    ckpt = None
    if ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        check_checkpoint(ckpt, config.layer_sizes, config.epochs, ckpt_path)
    try:
        data = _load_data(config)
    except KeyboardInterrupt:
        raise TrainingInterrupted(f"interrupted while loading; {run_dir} is as it was: continue with "
                                  f"--resume {run_dir}") from None
    check_memory(config)
    _check_same_data(run_dir, data)
    placement = make_placement(config.distribute)  # every worker reads the run directory (shared storage)
    check_batch(placement, config.batch_size)
    run = _prepare(config, run_dir, data, placement)
    start_epoch = 0
    if ckpt is not None:
        try:
            assign(run.model.weights, ckpt.model, "model")
            assign(run.optimizer.variables, ckpt.optimizer, "optimizer")
        except ValueError as e:
            raise RunDirError(f"{ckpt_path}: checkpoint does not fit this run ({e})") from None
        run.best_weights = ckpt.best
        start_epoch = ckpt.state["epoch"]
        run.history = ckpt.state["history"]
        run.best_epoch, run.best_val = ckpt.state["best_epoch"], ckpt.state["best_val"]
        run.initial_val = ckpt.state.get("initial_val")
        _log(verbose, f"resuming {run_dir} after epoch {start_epoch} (best epoch {run.best_epoch})")
    return _run(run, start_epoch, verbose, list(callbacks))


def _recorded_data_sha256(run_dir: Path) -> dict | None:
    """The data hashes the run started with: config.json's "data_sha256", else (a run directory written before
    config.json held them) model.safetensors' data_sha256; None when neither is there."""
    recorded = artifacts.read_json(run_dir / artifacts.CONFIG_NAME).get("data_sha256")
    if isinstance(recorded, dict):
        return recorded
    if (run_dir / MODEL_NAME).is_file():
        from ..modelfile import read_model

        try:
            return dict(read_model(run_dir / MODEL_NAME).data_sha256) or None
        except ValueError:
            return None
    return None


def _check_same_data(run_dir: Path, data: TrainingData) -> None:
    """RunDirError naming both hashes when the data files changed since the run started."""
    recorded = _recorded_data_sha256(run_dir)
    if recorded is None or recorded == data.sha256:
        return
    changed = "; ".join(f"{name}: sha256 {recorded.get(name, 'absent')} when the run started, now "
                        f"{data.sha256.get(name, 'absent')}"
                        for name in sorted(set(recorded) | set(data.sha256))
                        if recorded.get(name) != data.sha256.get(name))
    raise RunDirError(f"{run_dir} was trained on other data than the files there now ({changed}); restore the "
                      "original data to continue this run, or start a new run")


def _saved_config(run_dir: Path) -> TrainConfig:
    """The TrainConfig in run_dir/config.json; RunDirError names the file and the defect."""
    config_path = run_dir / artifacts.CONFIG_NAME
    if not config_path.is_file():
        raise ConfigError(f"{run_dir} is not an aefast run directory (no {artifacts.CONFIG_NAME})")
    try:
        saved = artifacts.read_json(config_path)
    except (OSError, ValueError) as e:   # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise RunDirError(f"{config_path}: not readable JSON ({type(e).__name__}: {str(e)[:200]})") from None
    if not (isinstance(saved, dict) and isinstance(saved.get("config"), dict)):
        raise RunDirError(f'{config_path}: expected a JSON object {{"config": {{...}}}} as written by aefast.train, '
                          f"got {str(saved)[:100]}")
    try:
        return TrainConfig.from_dict(saved["config"]).validate()
    except (ConfigError, TypeError) as e:
        raise RunDirError(f"{config_path}: {e}") from None
