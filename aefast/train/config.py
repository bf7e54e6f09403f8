"""TrainConfig: every knob of a training run, validated up front (no TensorFlow needed to check it)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
SCHEDULES = ("cosine", "constant")
OUTPUTS = ("linear", "sigmoid")
MNIST_PIXELS = 784

# --quick: a few thousand images and a few epochs; finishes in well under a minute on 2 CPU cores.
QUICK = {"epochs": 5, "train_limit": 5000, "val_size": 1000, "test_limit": 2000}


MAX_SEED = 2**32 - 1   # NumPy's legacy seeding (which Keras's set_random_seed uses) takes 0..2**32-1


class ConfigError(ValueError):
    """A TrainConfig field is out of range; the message names the field and what was expected."""


class RunDirError(ConfigError):
    """A run directory's config.json or checkpoint.npz is missing, damaged or inconsistent (names the file)."""


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
    extra: dict = field(default_factory=dict)  # free-form notes stored with the run (e.g. the CLI command)

    def validate(self) -> "TrainConfig":
        def need(ok: bool, msg: str):
            if not ok:
                raise ConfigError(msg)

        def positive_int(value, name):
            need(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                 f"{name} must be a positive integer, got {value!r}")

        need(isinstance(self.hidden, (tuple, list)) and len(self.hidden) >= 1,
             f"hidden must list at least one layer width, e.g. 1000 or 1000,500,250, got {self.hidden!r:.100}")
        for width in self.hidden:
            positive_int(width, "each hidden width")
        positive_int(self.latent, "latent")
        # latent == 784 is allowed: the tutorial's no-compression baseline (aefast.analyze trains it).
        need(self.latent <= MNIST_PIXELS, f"latent must be at most {MNIST_PIXELS}, got {self.latent}")
        need(isinstance(self.output, str) and self.output in OUTPUTS,
             f"output must be one of {OUTPUTS}, got {self.output!r:.100}")
        need(isinstance(self.l2, (int, float)) and not isinstance(self.l2, bool) and math.isfinite(self.l2)
             and self.l2 >= 0,
             f"l2 must be a finite number >= 0, got {self.l2!r}")
        positive_int(self.epochs, "epochs")
        positive_int(self.batch_size, "batch_size")
        need(isinstance(self.lr, (int, float)) and not isinstance(self.lr, bool) and math.isfinite(self.lr)
             and self.lr > 0,
             f"lr must be a positive number, got {self.lr!r}")
        need(isinstance(self.schedule, str) and self.schedule in SCHEDULES,
             f"schedule must be one of {SCHEDULES}, got {self.schedule!r:.100}")
        need(isinstance(self.precision, str) and self.precision in PRECISIONS,
             f"precision must be one of {PRECISIONS}, got {self.precision!r:.100}")
        need(isinstance(self.xla, bool), f"xla must be true or false, got {self.xla!r:.100}")
        need(isinstance(self.patience, int) and not isinstance(self.patience, bool) and self.patience >= 0,
             f"patience must be an integer >= 0 (0 disables early stopping), got {self.patience!r}")
        need(isinstance(self.seed, int) and not isinstance(self.seed, bool) and 0 <= self.seed <= MAX_SEED,
             f"seed must be an integer 0..{MAX_SEED}, got {self.seed!r:.100}")
        positive_int(self.val_size, "val_size")
        for name in ("train_limit", "test_limit"):
            value = getattr(self, name)
            if value is not None:
                positive_int(value, name)
        if self.train_limit is not None:
            need(self.train_limit >= self.batch_size,
                 f"train_limit {self.train_limit} is smaller than one batch ({self.batch_size})")
        if self.data_dir is not None:
            need(isinstance(self.data_dir, str) and Path(self.data_dir).is_dir(),
                 f"data_dir {self.data_dir!r:.200} is not a directory")
        need(isinstance(self.out, str) and bool(self.out), f"out must be a folder path, got {self.out!r:.200}")
        need(not Path(self.out).exists() or Path(self.out).is_dir(),
             f"out {self.out!r:.200} exists and is not a directory; expected the folder to hold run directories")
        if self.name is not None:
            need(isinstance(self.name, str) and bool(self.name) and "/" not in self.name
                 and self.name not in (".", "..") and "\0" not in self.name,
                 f"name must be a plain directory name, got {self.name!r:.200}")
        need(isinstance(self.extra, dict), f"extra must be a JSON object, got {self.extra!r:.100}")
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
            if not isinstance(d["hidden"], (list, tuple)):
                raise ConfigError(f"hidden must be a list of layer widths, got {d['hidden']!r:.100}")
            d["hidden"] = tuple(d["hidden"])
        return cls(**d)

    def quick(self) -> "TrainConfig":
        """This config shrunk to the --quick preset."""
        return dataclasses.replace(self, **QUICK)
