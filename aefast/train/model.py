"""The Keras side of training: the device, the precision policy, the model, the optimizer.

Written against Keras 3 (keras.*) so it runs on the TensorFlow backend (default) and on JAX; only
`describe_device` looks at the backend to find the accelerator and its compute capability.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..keras_io import build_dense_chain
from .config import ConfigError, TrainConfig

# Tensor cores for float16 arrived with compute capability 7.0 (Volta).
MIN_FP16_COMPUTE_CAPABILITY = (7, 0)


@dataclass(frozen=True)
class Device:
    kind: str                                   # "cpu" or "gpu"
    name: str                                   # human-readable, for metrics.json
    compute_capability: tuple[int, int] | None  # GPUs only


def describe_device() -> Device:
    """The device Keras will train on (the first GPU if any, else the CPU)."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            cc = details.get("compute_capability")
            return Device("gpu", f"tensorflow {details.get('device_name', gpus[0].name)}",
                          tuple(cc) if cc else None)
    elif backend == "jax":
        import jax

        dev = jax.devices()[0]
        if dev.platform == "gpu":
            cc = getattr(dev, "compute_capability", None)
            return Device("gpu", f"jax {dev.device_kind}",
                          tuple(int(p) for p in cc.split(".")) if cc else None)
    return Device("cpu", f"{backend} cpu: {_cpu_model()} ({os.cpu_count()} logical cores)", None)


def _cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else the machine type."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def resolve_precision(requested: str, device: Device) -> str:
    """The dtype policy name: `requested`, or for "auto" mixed_float16 on a capable GPU, else float32."""
    if requested != "auto":
        return requested
    capable = device.kind == "gpu" and (device.compute_capability or (0, 0)) >= MIN_FP16_COMPUTE_CAPABILITY
    return "mixed_float16" if capable else "float32"


def output_bias(config: TrainConfig, train_x) -> "np.ndarray | None":
    """The output layer's starting bias for output_bias_init="mean": the model starts by drawing the training set's
    mean image (per pixel: its mean for a linear output, its logit for a sigmoid, clipped to [1e-3, 1 - 1e-3]), so a
    sigmoid output need not first unlearn 0.5 on the background. None for "zero"."""
    import numpy as np

    if config.output_bias_init == "zero":
        return None
    mean = np.asarray(train_x, np.float64).mean(axis=0)
    if config.output == "sigmoid":
        mean = np.clip(mean, 1e-3, 1 - 1e-3)
        return np.log(mean / (1 - mean)).astype(np.float32)
    return mean.astype(np.float32)


def build_autoencoder(config: TrainConfig, precision: str = "float32", start_bias=None):
    """The Keras model for `config`: hidden layers in `precision`, the output layer (and so the loss) in float32;
    start_bias: the output layer's initial bias (see output_bias), None for zeros."""
    import keras

    if config.output not in ("linear", "sigmoid"):
        raise ConfigError(f"output {config.output!r} is chosen from the data by the trainer (init.plan_start); build "
                          "the model with output linear or sigmoid")
    sizes = config.layer_sizes
    n_layers = len(sizes) - 1
    activations = ["elu"] * (n_layers - 1) + [config.output]
    activations[len(config.hidden)] = config.latent_activation   # the code layer
    regularizer = keras.regularizers.L2(config.l2) if config.l2 > 0 else None
    return build_dense_chain(sizes, activations, encoder_layers=len(config.hidden) + 1,
                             kernel_regularizer=regularizer, hidden_dtype=precision, output_bias=start_bias)


def learning_rate(config: TrainConfig, steps_per_epoch: int):
    """The learning rate Adam follows: `warmup` epochs rising linearly from 0 to `lr`, then cosine decay to 0 over
    the remaining epochs (or `lr` held constant). A float when there is nothing to schedule."""
    import keras

    warmup_steps = config.warmup * steps_per_epoch
    decay_steps = max(1, (config.epochs - config.warmup) * steps_per_epoch)
    if config.schedule == "constant" and not warmup_steps:
        return config.lr
    alpha = 1.0 if config.schedule == "constant" else 0.0   # alpha 1: the "decay" keeps lr
    start, peak = (0.0, config.lr) if warmup_steps else (config.lr, None)   # warmup_target None: no warm-up
    return keras.optimizers.schedules.CosineDecay(start, decay_steps=decay_steps, alpha=alpha, warmup_target=peak,
                                                  warmup_steps=warmup_steps)


def make_optimizer(config: TrainConfig, steps_per_epoch: int, precision: str):
    """Adam (AdamW when weight_decay > 0) on `learning_rate`'s schedule; loss scaling for float16."""
    import keras

    lr = learning_rate(config, steps_per_epoch)
    if config.weight_decay > 0:
        optimizer = keras.optimizers.AdamW(learning_rate=lr, weight_decay=config.weight_decay)
    else:
        optimizer = keras.optimizers.Adam(learning_rate=lr)
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


LOSS_NAMES = {"mse": "mse", "bce": "binary_crossentropy"}   # TrainConfig.loss -> Keras loss


def batch_progress(verbose: bool, epoch: int, epochs: int) -> list:
    """A callback list for one model.fit: a tqdm bar over the epoch's batches on stderr (removed when the epoch
    ends), only when `verbose` and stderr is a terminal; else []."""
    import sys

    if not (verbose and sys.stderr.isatty()):
        return []
    import keras
    from tqdm.auto import tqdm

    class BatchProgress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = tqdm(total=self.params.get("steps"), desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
                            leave=False, file=sys.stderr)

        def on_train_batch_end(self, batch, logs=None):
            self.bar.update(1)
            if logs and "loss" in logs and batch % 20 == 0:
                self.bar.set_postfix(loss=f"{float(logs['loss']):.5f}", refresh=False)

        def on_train_end(self, logs=None):
            self.bar.close()

    return [BatchProgress()]


def current_learning_rate(optimizer) -> float:
    """The learning rate the next step will use (schedules evaluated at the optimizer's step count)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    lr = inner.learning_rate
    return float(lr.numpy() if hasattr(lr, "numpy") else lr)
