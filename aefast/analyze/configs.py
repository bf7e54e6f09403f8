"""Which autoencoders the study trains, and the tutorial's own results to compare them with.

A configuration is one architecture 784 -> hidden... -> latent -> ...hidden -> 784 with an epoch count.
The default epoch counts fit the full study in about 45 minutes on 2 Zen 4 cores (two hours is the limit);
docs/analysis.md gives the measured seconds per epoch behind them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace

from ..train.config import QUICK, TrainConfig  # QUICK: the trainer's --quick preset (a few thousand images, epochs)

INPUT_SIZE = 784

# The tutorial's "mean validation loss" per (latent, hidden): the only numbers in the study typed in by hand
# (/work/shared/reference/autoencoder-tutorial.txt, part 3).
TUTORIAL_MSE: dict[tuple[int, tuple[int, ...]], float] = {
    (784, (1000,)): 0.00027,
    (500, (1000,)): 0.00043,
    (300, (1000,)): 0.00174,
    (200, (1000,)): 0.00393,
    (100, (1000,)): 0.00694,
    (100, (10000,)): 0.00408,
}


@dataclass(frozen=True)
class SweepConfig:
    """One autoencoder of the sweep: hidden widths from the input inwards, then the latent width."""

    latent: int
    hidden: tuple[int, ...]
    epochs: int
    lr: float | None = None  # None: the trainer's default learning rate
    # Further TrainConfig settings for this configuration, as (field, value) pairs, e.g. (("loss", "bce"),).
    # A warm-up longer than an --epochs override is cut to epochs - 1 (study.train_config).
    recipe: tuple[tuple[str, object], ...] = ()

    def __post_init__(self):
        if not 1 <= self.latent <= INPUT_SIZE:
            raise ValueError(f"latent size must be between 1 and {INPUT_SIZE}, got {self.latent}")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden widths must be positive integers, got {self.hidden}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"learning rate must be positive, got {self.lr}")
        known = {f.name for f in dataclasses.fields(TrainConfig)} - {"hidden", "latent", "epochs", "lr"}
        unknown = sorted(k for k, _ in self.recipe if k not in known)
        if unknown:
            raise ValueError(f"recipe settings {unknown} are not TrainConfig fields (or are set by SweepConfig)")

    @property
    def name(self) -> str:
        """Folder-safe and unique per architecture, e.g. 'latent100-hidden1000' or 'latent30-hidden1000-500-250'."""
        return f"latent{self.latent}-hidden{'-'.join(map(str, self.hidden))}"

    @property
    def tutorial_mse(self) -> float | None:
        return TUTORIAL_MSE.get((self.latent, self.hidden))


# Epochs per configuration for the full study (55 000 training images), from the study's own measured training
# times on the 2-core machine (docs/analysis.md): hidden 1000 takes 6-10 s per epoch when the machine is quiet,
# hidden 10000 about 43 s. Every configuration trains with the trainer's defaults (linear code
# layer, sigmoid output, Adam 1e-3 with cosine decay, batch 128), except two, each measured (docs/analysis.md,
# "Recipe search"): hidden 10000 trains at lr 3e-4 (at 1e-3 its first epoch threw it into the mean-image solution,
# test MSE 0.067); the deep stack minimises binary cross-entropy (test MSE 0.00657 against 0.00697 with MSE at
# 30 epochs, ELU code; the best epoch is still picked by validation MSE); and codes of 500 values or more keep a
# linear output: there the model must copy pixel values almost exactly, which a sigmoid trained on MSE does slowly
# (latent 784: test MSE 0.000536 with the sigmoid against 7.1e-6 with the linear output, 30 epochs each).
DEEP_RECIPE = (("loss", "bce"),)
WIDE_CODE_RECIPE = (("output", "linear"),)
DEFAULT_SWEEP: tuple[SweepConfig, ...] = (
    SweepConfig(784, (1000,), epochs=30, recipe=WIDE_CODE_RECIPE),
    SweepConfig(500, (1000,), epochs=30, recipe=WIDE_CODE_RECIPE),
    SweepConfig(300, (1000,), epochs=30),
    SweepConfig(200, (1000,), epochs=30),
    SweepConfig(100, (1000,), epochs=30),
    SweepConfig(100, (10000,), epochs=5, lr=3e-4),
    SweepConfig(64, (1000,), epochs=30),
    SweepConfig(32, (1000,), epochs=30),
    SweepConfig(16, (1000,), epochs=30),
    SweepConfig(30, (1000, 500, 250), epochs=30, recipe=DEEP_RECIPE),
)


def select_configs(latents: list[int] | None = None, hidden: int | None = None, epochs: int | None = None,
                   quick: bool = False) -> list[SweepConfig]:
    """The study's configurations after the command-line overrides.

    latents: keep only these latent sizes (default sweep order); a latent size not in the default sweep gets
    hidden 1000 (or `hidden`).  hidden: one hidden width for every configuration (the deep stack included, which
    then becomes a single hidden layer).  epochs: one epoch count for all; quick: the trainer's QUICK epochs
    unless `epochs` is given.
    Duplicates (same architecture twice) are dropped.
    """
    configs = list(DEFAULT_SWEEP)
    if latents is not None:
        by_latent = [c for c in configs if c.latent in latents]
        known = {c.latent for c in by_latent}
        extra = [SweepConfig(lat, (1000,), epochs=DEFAULT_SWEEP[0].epochs) for lat in latents if lat not in known]
        configs = by_latent + extra
    if hidden is not None:
        configs = [replace(c, hidden=(hidden,)) for c in configs]
    n_epochs = epochs if epochs is not None else (QUICK["epochs"] if quick else None)
    if n_epochs is not None:
        configs = [replace(c, epochs=n_epochs) for c in configs]
    unique: dict[str, SweepConfig] = {}
    for c in configs:
        unique.setdefault(c.name, c)
    return list(unique.values())
