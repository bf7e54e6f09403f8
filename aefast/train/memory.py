"""The memory a training run needs, estimated from its config before TensorFlow loads or a run directory exists.

    parameters  sum over the dense layers of in * out + out
    need        PARAMETER_COPIES * 4 bytes * parameters      (float32 values per parameter alive at the peak)
                + ACTIVATION_COPIES * 4 bytes * rows * sum(layer widths), rows = max(batch_size, EVAL_BATCH)
                + RUNTIME_BYTES                              (TensorFlow and Keras loaded, no model)

PARAMETER_COPIES is measured, not derived: the Keras variables, their gradients and Adam's two moments are four
copies; the float32 export model, the best epoch's weights, checkpoint.npz's copies of the model and optimizer, and
the final export add the rest. On an Intel Xeon VM (cpu family 6, model 167; 2 cores, TensorFlow 2.21 on the CPU),
runs of 2 epochs on 256 MNIST images, batch 64, peaked at 1.13 GiB RSS with hidden 16, 2.74 GiB with hidden 20000
(35.4 M parameters) and 4.35 GiB with hidden 40000 (70.8 M): 12.2 float32 values per parameter above the hidden-16
run, activations included. The whole estimate gives 3.04 and 5.07 GiB for those two, above what they took.
"""
from __future__ import annotations

import os
from pathlib import Path

from .config import ConfigError, TrainConfig

BYTES_PER_VALUE = 4          # float32 (mixed precision keeps float32 master weights and optimizer slots)
PARAMETER_COPIES = 12        # see the module docstring
ACTIVATION_COPIES = 3        # per layer output and row: the activation, its pre-activation and its gradient
EVAL_BATCH = 1000            # rows per validation/test prediction batch (the loop's)
RUNTIME_BYTES = 1 << 30      # TensorFlow's own footprint (the hidden-16 run less the MNIST arrays), rounded up

GIB = 1 << 30


def parameter_count(layer_sizes: list[int]) -> int:
    return sum(a * b + b for a, b in zip(layer_sizes, layer_sizes[1:]))


def training_bytes(config: TrainConfig) -> int:
    """The estimated peak memory of training `config` (see the module docstring)."""
    sizes = config.layer_sizes
    rows = max(config.batch_size, EVAL_BATCH)
    return (PARAMETER_COPIES * BYTES_PER_VALUE * parameter_count(sizes)
            + ACTIVATION_COPIES * BYTES_PER_VALUE * rows * sum(sizes) + RUNTIME_BYTES)


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None   # "max" (no limit) reads as None


def available_bytes() -> int | None:
    """Memory this process can still take: the kernel's MemAvailable, capped by the cgroup's limit less its usage
    (a container); None where neither can be read (then nothing is checked)."""
    found = []
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    v1 = "/sys/fs/cgroup/memory/memory."
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         (v1 + "limit_in_bytes", v1 + "usage_in_bytes")):
        cap, used = _read_int(limit), _read_int(usage)
        if cap is not None and used is not None and cap < (1 << 60):   # cgroup v1 says "no limit" with a huge number
            found.append(max(0, cap - used))
    if not found and hasattr(os, "sysconf"):
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError):
            pass
    return min(found) if found else None


def check_memory(config: TrainConfig, available: int | None = None) -> None:
    """ConfigError with both figures when the estimate exceeds the available memory (`available`: measured when
    None)."""
    available = available_bytes() if available is None else available
    need = training_bytes(config)
    if available is None or need <= available:
        return
    sizes = config.layer_sizes
    raise ConfigError(
        f"the model {'-'.join(map(str, sizes))} has {parameter_count(sizes):,} parameters; training it needs about "
        f"{need / GIB:,.1f} GiB of memory ({PARAMETER_COPIES} float32 copies of every parameter: weights, gradients, "
        f"Adam's two moments, the export, best-epoch and checkpoint copies; plus activations and TensorFlow), but "
        f"this machine has {available / GIB:,.1f} GiB available; use narrower --hidden widths")

