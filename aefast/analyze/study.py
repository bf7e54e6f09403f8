"""Run the study: train each configuration through aefast.train, score it, keep it, resume where it stopped.

Report folder layout:
  runs/<config name>/       aefast.train's run directory (model.safetensors, history, checkpoint, ...)
  results/<config name>.json  the finished configuration's ConfigResult (written last, atomically)
  report.md, *.png          rewritten after every finished configuration

Resume: a configuration with a results file is finished and skipped (if its settings match; otherwise the study
refuses rather than mixing two studies). One with a run directory but no results file was interrupted and continues
from its last checkpoint through aefast.train.resume.
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..train.baseline import served_mse, unclipped_mse
from ..train.config import TrainConfig
from .configs import SweepConfig
from .pca import fit_pca, pca_test_mse
from .report import write_report
from .results import ConfigResult
from ..errors import StudyError  # noqa: F401 (defined in aefast/errors.py)

THROUGHPUT_BATCH = 256
N_SAMPLE_DIGITS = 10  # the grid shows the first test image of each digit class 0..9


@dataclass
class StudyOptions:
    """What the study trains on. train_limit/test_limit: first N images (None: all); val_size: images held out of
    the training set for validation (the trainer's split); data_dir: MNIST folder (None: aefast.data's default)."""

    out: Path
    configs: list[SweepConfig]
    train_limit: int | None = None
    val_size: int = TrainConfig.val_size  # the trainer's default split
    test_limit: int | None = None
    seed: int = 0
    data_dir: str | None = None
    throughput_seconds: float = 1.0  # time spent timing compress per configuration
    command: str = "python -m aefast.analyze"
    extra_train: dict = field(default_factory=dict)  # further TrainConfig fields (tests: e.g. xla=False)


def train_config(opts: StudyOptions, cfg: SweepConfig) -> TrainConfig:
    per_config = {**dict(cfg.recipe), **({"lr": cfg.lr} if cfg.lr is not None else {})}
    if per_config.get("warmup", 0) >= cfg.epochs:   # an --epochs override shorter than the warm-up
        per_config["warmup"] = cfg.epochs - 1
    return TrainConfig(hidden=tuple(cfg.hidden), latent=cfg.latent, epochs=cfg.epochs, seed=opts.seed,
                       data_dir=opts.data_dir, out=str(opts.out / "runs"), name=cfg.name,
                       train_limit=opts.train_limit, val_size=opts.val_size, test_limit=opts.test_limit,
                       extra={"study": opts.command}, **{**per_config, **opts.extra_train})


def settings(opts: StudyOptions, cfg: SweepConfig) -> dict:
    """Everything that decides a configuration's numbers: its training config minus where files go."""
    d = train_config(opts, cfg).to_dict()
    for key in ("out", "name", "data_dir", "extra"):
        d.pop(key)
    d["throughput_batch"] = THROUGHPUT_BATCH
    return d


def _diff(a: dict, b: dict) -> str:
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    return ", ".join(f"{k}: {a.get(k)!r} there, {b.get(k)!r} now" for k in keys)


def _train(opts: StudyOptions, cfg: SweepConfig, log: Callable[[str], None]):
    """Train `cfg` (or continue its interrupted run) through aefast.train; returns its TrainResult."""
    from .. import train as trainer
    from ..train import artifacts

    config = train_config(opts, cfg)
    run_dir = Path(config.out) / cfg.name
    saved = run_dir / artifacts.CONFIG_NAME
    if saved.is_file():
        before = TrainConfig.from_dict(artifacts.read_json(saved)["config"]).to_dict()
        now = config.to_dict()
        for key in ("extra", "data_dir", "out"):
            before.pop(key), now.pop(key)
        if before != now:
            raise StudyError(f"{run_dir} was trained with other settings ({_diff(before, now)}); delete it or use "
                             "another --out")
        log(f"{cfg.name}: continuing the interrupted run in {run_dir}")
        return trainer.resume(run_dir)
    return trainer.train(config)


def measure_compress_throughput(engine, images: np.ndarray, seconds: float) -> float:
    """Images per second of engine.compress on one batch, the median of repeated timed calls (>= 5, >= `seconds`
    in all) after one warm-up call."""
    engine.compress(images)
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < 5 or time.perf_counter() - started < seconds:
        t = time.perf_counter()
        engine.compress(images)
        times.append(time.perf_counter() - t)
    return len(images) / statistics.median(times)


def sample_indices(labels: np.ndarray) -> np.ndarray:
    """The first index of each digit class present in `labels`, in class order."""
    return np.array([int(np.argmax(labels == d)) for d in range(10) if (labels == d).any()], dtype=np.int64)


def _evaluate(opts: StudyOptions, cfg: SweepConfig, result, test_x: np.ndarray, samples: np.ndarray,
              pca_scores: dict) -> ConfigResult:
    """Score the exported model with the aefast engine (not Keras): what ships is what is measured, its outputs
    clipped to [0, 1] as `aefast reconstruct` serves them (baseline.served_mse), beside clipped PCA."""
    import aefast

    engine = aefast.load(result.model_path)
    recon = engine.reconstruct(test_x)  # (N, 784) float32, unclipped (a linear output may leave [0, 1])
    target = test_x.astype(np.float64) / 255.0
    sample_recon = np.clip(np.rint(recon[samples] * 255.0), 0, 255).astype(np.uint8)
    batch = np.resize(test_x, (THROUGHPUT_BATCH, test_x.shape[1]))  # 256 test images (repeated if fewer)
    return ConfigResult(
        name=cfg.name, latent=cfg.latent, hidden=list(cfg.hidden), epochs=len(result.history),
        settings=settings(opts, cfg), test_mse=served_mse(recon, target),
        test_mse_unclipped=unclipped_mse(recon, target),
        pca_mse=pca_scores[cfg.latent]["mse"], pca_mse_clipped=pca_scores[cfg.latent]["mse_clipped"],
        train_seconds=float(sum(row["seconds"] for row in result.history)),
        compress_images_per_s=measure_compress_throughput(engine, batch, opts.throughput_seconds),
        history=[dict(row) for row in result.history], sample_reconstructions=sample_recon.tolist(),
        tutorial_mse=cfg.tutorial_mse, run_dir=str(result.run_dir), model_path=str(result.model_path),
        train_metrics=dict(result.metrics))


def _finished(opts: StudyOptions, log) -> dict[str, ConfigResult]:
    done = {}
    for cfg in opts.configs:
        path = opts.out / "results" / f"{cfg.name}.json"
        if path.is_file():
            r = ConfigResult.load(path)
            if r.settings != settings(opts, cfg):
                raise StudyError(f"{path} holds results for other settings ({_diff(r.settings, settings(opts, cfg))})"
                                 "; use another --out, or delete that file to retrain the configuration")
            log(f"{cfg.name}: finished earlier, skipped")
            done[cfg.name] = r
    return done


def run_study(opts: StudyOptions, log: Callable[[str], None] = print) -> Path:
    """Train every unfinished configuration, then write the report; returns the path of report.md."""
    from ..data import load_mnist

    opts = dataclasses.replace(opts, out=Path(opts.out))
    done = _finished(opts, log)
    mnist = load_mnist(opts.data_dir, dtype="uint8", validation_size=opts.val_size)
    train_x = mnist.train.x[: opts.train_limit]  # the trainer's training images: after the validation split
    test_x, test_y = mnist.test.x[: opts.test_limit], mnist.test.y[: opts.test_limit]
    samples = sample_indices(test_y)
    train_mean = train_x.mean(axis=0, dtype=np.float64) / 255.0
    context = {"train_images": len(train_x), "test_images": len(test_x), "command": opts.command,
               "test_variance": float(np.mean((test_x / 255.0 - train_mean) ** 2))}
    todo = [c for c in opts.configs if c.name not in done]
    pca_scores = {}
    if todo:
        log(f"PCA baseline: SVD of {len(train_x)} training images")
        pca_scores = pca_test_mse(fit_pca(train_x), test_x, sorted({c.latent for c in todo}))
    report = opts.out / "report.md"
    for i, cfg in enumerate(todo, 1):
        log(f"[{i}/{len(todo)}] {cfg.name}: {cfg.epochs} epochs")
        result = _train(opts, cfg, log)
        record = _evaluate(opts, cfg, result, test_x, samples, pca_scores)
        record.save(opts.out / "results")
        done[cfg.name] = record
        log(f"{cfg.name}: test MSE {record.test_mse:.4g} (PCA clipped {record.pca_mse_clipped:.4g}), "
            f"{record.train_seconds:.0f} s training")
        report = _write(opts, done, test_x[samples], context)
    if not todo:
        report = _write(opts, done, test_x[samples], context)
    log(f"report: {report}")
    return report


def _write(opts: StudyOptions, done: dict[str, ConfigResult], sample_images: np.ndarray, context: dict) -> Path:
    ordered = [done[c.name] for c in opts.configs if c.name in done]
    pending = [c.name for c in opts.configs if c.name not in done]
    return write_report(opts.out, ordered, sample_images, {**context, "pending": pending})
