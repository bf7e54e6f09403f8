"""TrainConfig: every knob of a training run, validated up front (no TensorFlow needed to check it)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
SCHEDULES = ("cosine", "constant")
OUTPUTS = ("linear", "sigmoid")
DISTRIBUTES = ("none", "mirrored", "multiworker")  # see aefast/train/distribute.py
MNIST_PIXELS = 784

# --quick: a few thousand images and a few epochs; finishes in well under a minute on 2 CPU cores.
QUICK = {"epochs": 5, "train_limit": 5000, "val_size": 1000, "test_limit": 2000}


class ConfigError(ValueError):
    """A TrainConfig field is out of range; the message names the field and what was expected."""


@dataclass
class TrainConfig:
    """A training run. Model: 784 -> hidden... -> latent -> reversed(hidden)... -> 784, ELU except the output."""

    hidden: tuple[int, ...] = (1000,)
    latent: int = 100
    output: str = "linear"           # activation of the output layer: linear or sigmoid
    l2: float = 0.0                  # L2 penalty on every kernel
    epochs: int = 40
    batch_size: int = 128
    lr: float = 1e-3                 # Adam learning rate (the peak of the cosine schedule)
    schedule: str = "cosine"         # cosine decay to 0 over all epochs, or constant
    precision: str = "auto"          # auto: mixed_float16 on a GPU with compute capability >= 7.0, else float32
    xla: bool = True                 # model.compile(jit_compile=...)
    patience: int = 10               # stop after this many epochs without a better validation MSE; 0: never
    seed: int = 0
    data_dir: str | None = None      # None: aefast.data's default location
    out: str = "runs"                # the run directory is out/name
    name: str | None = None          # None: a timestamp
    train_limit: int | None = None   # use only the first N training images (after the validation split)
    val_size: int = 5000             # images held out of the training set for validation (the tutorial's 5000)
    test_limit: int | None = None    # evaluate on the first N test images only
    distribute: str = "none"         # none | mirrored (local GPUs) | multiworker (TF_CONFIG); global batch unchanged
    extra: dict = field(default_factory=dict)  # free-form notes stored with the run (e.g. the CLI command)

    def validate(self) -> "TrainConfig":
        def need(ok: bool, msg: str):
            if not ok:
                raise ConfigError(msg)

        def positive_int(value, name):
            need(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                 f"{name} must be a positive integer, got {value!r}")

        need(len(self.hidden) >= 1, "hidden must list at least one layer width, e.g. 1000 or 1000,500,250")
        for width in self.hidden:
            positive_int(width, "each hidden width")
        positive_int(self.latent, "latent")
        # latent == 784 is allowed: the tutorial's no-compression baseline (aefast.analyze trains it).
        need(self.latent <= MNIST_PIXELS, f"latent must be at most {MNIST_PIXELS}, got {self.latent}")
        need(self.output in OUTPUTS, f"output must be one of {OUTPUTS}, got {self.output!r}")
        need(isinstance(self.l2, (int, float)) and math.isfinite(self.l2) and self.l2 >= 0,
             f"l2 must be a finite number >= 0, got {self.l2!r}")
        positive_int(self.epochs, "epochs")
        positive_int(self.batch_size, "batch_size")
        need(isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0,
             f"lr must be a positive number, got {self.lr!r}")
        need(self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        need(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        need(isinstance(self.patience, int) and self.patience >= 0,
             f"patience must be an integer >= 0 (0 disables early stopping), got {self.patience!r}")
        need(self.distribute in DISTRIBUTES, f"distribute must be one of {DISTRIBUTES}, got {self.distribute!r}")
        positive_int(self.val_size, "val_size")
        for name in ("train_limit", "test_limit"):
            value = getattr(self, name)
            if value is not None:
                positive_int(value, name)
        if self.train_limit is not None:
            need(self.train_limit >= self.batch_size,
                 f"train_limit {self.train_limit} is smaller than one batch ({self.batch_size})")
        if self.data_dir is not None:
            need(Path(self.data_dir).is_dir(), f"data_dir {self.data_dir!r} is not a directory")
        if self.name is not None:
            need(bool(self.name) and "/" not in self.name and self.name not in (".", ".."),
                 f"name must be a plain directory name, got {self.name!r}")
        return self

    @property
    def layer_sizes(self) -> list[int]:
        widths = list(self.hidden)
        return [MNIST_PIXELS, *widths, self.latent, *reversed(widths), MNIST_PIXELS]

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown training config keys {unknown}")
        d = dict(d)
        if "hidden" in d:
            d["hidden"] = tuple(d["hidden"])
        return cls(**d)

    def quick(self) -> "TrainConfig":
        """This config shrunk to the --quick preset."""
        return dataclasses.replace(self, **QUICK)
