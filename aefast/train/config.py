"""TrainConfig: every knob of a training run, validated up front (no TensorFlow needed to check it)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, RunDirError  # noqa: F401 (defined in aefast/errors.py)

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
SCHEDULES = ("cosine", "constant")
OUTPUTS = ("auto", "linear", "sigmoid")   # auto: see aefast/train/init.py, plan_start
LATENT_ACTIVATIONS = ("elu", "linear")   # the code layer's activation
LOSSES = ("mse", "bce")          # bce (binary cross-entropy) needs output="sigmoid"
OUTPUT_BIAS_INITS = ("mean", "zero")     # the output layer's starting bias: the mean training image, or zeros
INITS = ("pca", "random")       # pca: start from PCA at the code's size (aefast/train/init.py); random: Glorot
DISTRIBUTES = ("none", "mirrored", "multiworker")  # see aefast/train/distribute.py
MNIST_PIXELS = 784

# --quick: a few thousand images and a few epochs; finishes in well under a minute on 2 CPU cores.
QUICK = {"epochs": 5, "train_limit": 5000, "val_size": 1000, "test_limit": 2000}


# Keys added after run directories were first written: a config.json without one of them was trained like this.
LEGACY_DEFAULTS = {"latent_activation": "elu", "output_bias_init": "zero", "warmup": 0, "weight_decay": 0.0,
                   "loss": "mse", "init": "random", "min_steps": 0}

MAX_SEED = 2**32 - 1   # NumPy's legacy seeding (which Keras's set_random_seed uses) takes 0..2**32-1


@dataclass
class TrainConfig:
    """A training run. Model: pixels -> hidden... -> latent -> reversed(hidden)... -> pixels, ELU except the
    output; pixels = prod(input_shape) (784 for MNIST)."""

    hidden: tuple[int, ...] = (1000,)
    latent: int = 100
    # latent_activation and output: the defaults measured best in docs/analysis.md, "Recipe search"
    latent_activation: str = "linear"  # activation of the code layer: linear or elu
    # output: auto picks sigmoid or linear by which PCA start reconstructs the validation images better
    output: str = "auto"             # activation of the output layer: auto, sigmoid or linear
    init: str = "pca"                # pca: the model starts as PCA with `latent` components; random: Glorot
    output_bias_init: str = "mean"   # init random: output bias starts at the mean training image or zero
    l2: float = 0.0                  # L2 penalty on every kernel
    epochs: int = 40
    min_steps: int = 0               # > 0: at least this many optimizer steps in all; an epoch repeats passes over a
                                     # small training set (reshuffled) until epochs x steps reach it (see passes_per_epoch)
    batch_size: int = 128
    lr: float = 1e-3                 # Adam learning rate (the peak of the cosine schedule)
    schedule: str = "cosine"         # cosine decay to 0 over all epochs, or constant
    warmup: int = 0                  # epochs of linear learning-rate warm-up from 0 (then the schedule)
    weight_decay: float = 0.0        # > 0: AdamW with this decoupled weight decay (scaled by the learning rate)
    loss: str = "mse"                # training loss; model selection always uses the validation MSE
    precision: str = "auto"          # auto: mixed_float16 on a GPU with compute capability >= 7.0, else float32
    xla: bool = True                 # model.compile(jit_compile=...)
    patience: int = 10               # stop after this many epochs without a better validation MSE; 0: never
    seed: int = 0
    data_dir: str | None = None      # None: aefast.data's default location
    data: str | None = None          # your own images instead of MNIST: a folder, .npy, .npz or IDX file
    test_data: str | None = None     # with data: an explicit test set (else test_fraction of `data`)
    resize: tuple[int, int] | None = None  # with a folder: resize every image to (H, W)
    val_fraction: float = 0.1        # with data: share of the images held out for validation (seeded by seed)
    test_fraction: float = 0.1       # with data and no test_data: share held out for the test
    input_shape: tuple[int, ...] = (28, 28)  # image shape (H, W) or (H, W, C); with data, found by resolve_input_shape
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

        need(isinstance(self.hidden, (tuple, list)) and len(self.hidden) >= 1,
             f"hidden must list at least one layer width, e.g. 1000 or 1000,500,250, got {self.hidden!r:.100}")
        for width in self.hidden:
            positive_int(width, "each hidden width")
        positive_int(self.latent, "latent")
        # latent == 784 is allowed: the tutorial's no-compression baseline (aefast.analyze trains it).
        need(isinstance(self.latent_activation, str) and self.latent_activation in LATENT_ACTIVATIONS,
             f"latent_activation must be one of {LATENT_ACTIVATIONS}, got {self.latent_activation!r:.100}")
        need(isinstance(self.output, str) and self.output in OUTPUTS,
             f"output must be one of {OUTPUTS}, got {self.output!r:.100}")
        need(isinstance(self.l2, (int, float)) and not isinstance(self.l2, bool) and math.isfinite(self.l2)
             and self.l2 >= 0,
             f"l2 must be a finite number >= 0, got {self.l2!r}")
        positive_int(self.epochs, "epochs")
        positive_int(self.batch_size, "batch_size")
        need(isinstance(self.min_steps, int) and not isinstance(self.min_steps, bool) and self.min_steps >= 0,
             f"min_steps must be an integer >= 0 (0: one pass over the training images per epoch), got "
             f"{self.min_steps!r:.100}")
        need(isinstance(self.lr, (int, float)) and not isinstance(self.lr, bool) and math.isfinite(self.lr)
             and self.lr > 0,
             f"lr must be a positive number, got {self.lr!r}")
        need(isinstance(self.schedule, str) and self.schedule in SCHEDULES,
             f"schedule must be one of {SCHEDULES}, got {self.schedule!r:.100}")
        need(isinstance(self.warmup, int) and not isinstance(self.warmup, bool) and 0 <= self.warmup < self.epochs,
             f"warmup must be an integer number of epochs, 0 <= warmup < epochs ({self.epochs}), got {self.warmup!r}")
        need(isinstance(self.weight_decay, (int, float)) and not isinstance(self.weight_decay, bool)
             and math.isfinite(self.weight_decay) and 0 <= self.weight_decay < 1,
             f"weight_decay must be a number in [0, 1), got {self.weight_decay!r}")
        need(isinstance(self.loss, str) and self.loss in LOSSES,
             f"loss must be one of {LOSSES}, got {self.loss!r:.100}")
        need(isinstance(self.init, str) and self.init in INITS,
             f"init must be one of {INITS}, got {self.init!r:.100}")
        need(self.output_bias_init in OUTPUT_BIAS_INITS,
             f"output_bias_init must be one of {OUTPUT_BIAS_INITS}, got {self.output_bias_init!r:.100}")
        need(self.loss != "bce" or self.output in ("sigmoid", "auto"),
             f"loss bce needs output sigmoid (outputs in (0, 1)), got output {self.output!r:.100}")
        need(isinstance(self.precision, str) and self.precision in PRECISIONS,
             f"precision must be one of {PRECISIONS}, got {self.precision!r:.100}")
        need(isinstance(self.xla, bool), f"xla must be true or false, got {self.xla!r:.100}")
        need(isinstance(self.patience, int) and not isinstance(self.patience, bool) and self.patience >= 0,
             f"patience must be an integer >= 0 (0 disables early stopping), got {self.patience!r}")
        need(isinstance(self.seed, int) and not isinstance(self.seed, bool) and 0 <= self.seed <= MAX_SEED,
             f"seed must be an integer 0..{MAX_SEED}, got {self.seed!r:.100}")
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
            need(isinstance(self.data_dir, str) and Path(self.data_dir).is_dir(),
                 f"data_dir {self.data_dir!r:.200} is not a directory")
        need(isinstance(self.out, str) and bool(self.out), f"out must be a folder path, got {self.out!r:.200}")
        need(not Path(self.out).exists() or Path(self.out).is_dir(),
             f"out {self.out!r:.200} exists and is not a directory; expected the folder to hold run directories")
        self._validate_image_data(need)
        if self.name is not None:
            need(isinstance(self.name, str) and bool(self.name) and "/" not in self.name
                 and self.name not in (".", "..") and "\0" not in self.name,
                 f"name must be a plain directory name, got {self.name!r:.200}")
        need(isinstance(self.extra, dict), f"extra must be a JSON object, got {self.extra!r:.100}")
        return self

    def _validate_image_data(self, need) -> None:
        if self.data is None:
            need(self.test_data is None, "test_data needs data (a test set for your own images)")
            need(self.resize is None, "resize applies to your own images (data), not to MNIST")
        else:
            need(self.data_dir is None, "data (your own images) and data_dir (the MNIST folder) exclude each other")
            for name in ("data", "test_data"):
                value = getattr(self, name)
                need(value is None or Path(value).exists(), f"{name} {value!r}: no such file or folder")
            if self.resize is not None:
                need(len(self.resize) == 2 and all(isinstance(s, int) and s >= 1 for s in self.resize),
                     f"resize must be (H, W) with positive integers, got {self.resize!r}")
            need(isinstance(self.val_fraction, (int, float)) and 0 < self.val_fraction < 1,
                 f"val_fraction must be in (0, 1), got {self.val_fraction!r}")
            need(isinstance(self.test_fraction, (int, float)) and 0 <= self.test_fraction < 1
                 and self.val_fraction + self.test_fraction < 1,
                 f"test_fraction must be in [0, 1) with val_fraction + test_fraction < 1, got {self.test_fraction!r}")
        shape = tuple(self.input_shape)
        need(len(shape) in (2, 3) and all(isinstance(s, int) and s >= 1 for s in shape)
             and (len(shape) == 2 or shape[2] in (1, 3)),
             f"input_shape must be (H, W) or (H, W, C) with C 1 or 3, got {self.input_shape!r}")
        need(self.latent <= self.input_size, f"latent must be at most the {self.input_size} pixel values of one "
             f"image, got {self.latent}")

    @property
    def input_size(self) -> int:
        return math.prod(self.input_shape)

    @property
    def layer_sizes(self) -> list[int]:
        widths = list(self.hidden)
        return [self.input_size, *widths, self.latent, *reversed(widths), self.input_size]

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        d["input_shape"] = list(self.input_shape)
        d["resize"] = None if self.resize is None else list(self.resize)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown training config keys {unknown}")
        d = {**LEGACY_DEFAULTS, **d}
        if "hidden" in d and not isinstance(d["hidden"], (list, tuple)):
            raise ConfigError(f"hidden must be a list of layer widths, got {d['hidden']!r:.100}")
        for key in ("hidden", "input_shape", "resize"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return cls(**d)

    def passes_per_epoch(self, n_train: int) -> int:
        """Passes over the n_train training images that make one epoch: 1, or as many as min_steps needs
        (epochs x passes x (n_train // batch_size) >= min_steps)."""
        per_pass = max(1, n_train // self.batch_size)
        return max(1, math.ceil(self.min_steps / (self.epochs * per_pass)))

    def quick(self) -> "TrainConfig":
        """This config shrunk to the --quick preset."""
        return dataclasses.replace(self, **QUICK)
