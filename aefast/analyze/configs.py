"""Which autoencoders the study trains, and the tutorial's own results to compare them with.

A configuration is one architecture 784 -> hidden... -> latent -> ...hidden -> 784 with an epoch count.
The default epoch counts fit the full study in about two hours on 2 CPU cores; docs/analysis.md gives the measured
seconds per epoch behind them.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..train.config import QUICK  # --quick: the trainer's preset (a few thousand images, a few epochs)

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

    def __post_init__(self):
        if not 1 <= self.latent <= INPUT_SIZE:
            raise ValueError(f"latent size must be between 1 and {INPUT_SIZE}, got {self.latent}")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden widths must be positive integers, got {self.hidden}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"learning rate must be positive, got {self.lr}")

    @property
    def name(self) -> str:
        """Folder-safe and unique per architecture, e.g. 'latent100-hidden1000' or 'latent30-hidden1000-500-250'."""
        return f"latent{self.latent}-hidden{'-'.join(map(str, self.hidden))}"

    @property
    def tutorial_mse(self) -> float | None:
        return TUTORIAL_MSE.get((self.latent, self.hidden))


# Epochs per configuration for the full study (55 000 training images), from the study's own measured training
# times on the 2-core machine (docs/analysis.md): hidden 1000 takes 6-12 s per epoch when the machine is quiet,
# hidden 10000 about 145 s. 30 epochs for each hidden-1000 and the deep configuration plus 5 for hidden 10000 is
# about 80 minutes of training when quiet and fits two hours on a shared machine. Hidden 10000 trains at lr 3e-4:
# at the trainer's 1e-3 its first epoch threw it into the mean-image solution (test MSE 0.067) it never left.
DEFAULT_SWEEP: tuple[SweepConfig, ...] = (
    SweepConfig(784, (1000,), epochs=30),
    SweepConfig(500, (1000,), epochs=30),
    SweepConfig(300, (1000,), epochs=30),
    SweepConfig(200, (1000,), epochs=30),
    SweepConfig(100, (1000,), epochs=30),
    SweepConfig(100, (10000,), epochs=5, lr=3e-4),
    SweepConfig(64, (1000,), epochs=30),
    SweepConfig(32, (1000,), epochs=30),
    SweepConfig(16, (1000,), epochs=30),
    SweepConfig(30, (1000, 500, 250), epochs=30),
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
