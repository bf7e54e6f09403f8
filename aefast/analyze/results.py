"""One finished configuration's results: what the report is made from, and what a resumed study keeps.

Saved as <report>/results/<config name>.json (atomically, after everything for that configuration is done), so
a file there means the configuration is finished.
"""
from __future__ import annotations

import json
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from .._io import write_text_atomic
from ..train.artifacts import psnr
from .configs import INPUT_SIZE

CODE_BYTES_PER_VALUE = 2  # latent codes stored as float16
IMAGE_BYTES = INPUT_SIZE  # an MNIST image: 784 uint8 pixels


@dataclass
class ConfigResult:
    """Results of one trained configuration, every number measured by the study.

    settings: everything that decides the result (architecture, epochs, image counts, seed); a resumed study
    reuses this result only if its settings are identical.  test_mse: the engine's reconstructions clipped to
    [0, 1], as served (aefast.train.baseline.served_mse); test_mse_unclipped: without the clip (None in results
    written before it was recorded).  history: per-epoch dicts as the trainer wrote them
    (aefast.train's keys: epoch, train_loss, val_loss, lr, seconds).  sample_reconstructions: (n_samples, 784) uint8 as nested lists, the
    autoencoder's output for the report's fixed test digits.
    """

    name: str
    latent: int
    hidden: list[int]
    epochs: int
    settings: dict
    test_mse: float
    pca_mse: float
    pca_mse_clipped: float
    train_seconds: float
    compress_images_per_s: float
    history: list[dict]
    sample_reconstructions: list[list[int]]
    tutorial_mse: float | None = None
    run_dir: str = ""
    model_path: str = ""
    train_metrics: dict = field(default_factory=dict)
    test_mse_unclipped: float | None = None   # test_mse is served (clipped to [0, 1]); this the raw outputs'

    @property
    def psnr_db(self) -> float:
        return psnr(self.test_mse)

    @property
    def ratio_dims(self) -> float:
        """Compression ratio in dimensions: 784 values in, `latent` values out."""
        return INPUT_SIZE / self.latent

    @property
    def ratio_bytes(self) -> float:
        """Compression ratio in bytes: the 784-byte uint8 image against its float16 code."""
        return IMAGE_BYTES / (CODE_BYTES_PER_VALUE * self.latent)

    def save(self, results_dir: str | os.PathLike) -> Path:
        return write_text_atomic(Path(results_dir) / f"{self.name}.json",
                                 json.dumps(asdict(self), indent=1, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ConfigResult":
        """Read a results file; ValueError names the file and what is wrong with it."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: cannot read study results ({e}); delete it to retrain that "
                             "configuration") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: study results must be a JSON object")
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        missing = sorted(required - raw.keys())
        if missing:
            raise ValueError(f"{path}: study results lack {missing}; delete it to retrain that configuration")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})
