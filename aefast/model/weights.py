"""AutoencoderWeights: a stacked dense autoencoder held in memory (the type every other floor passes around)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .ranges import check_value_range
from .validation import check_structure

# AutoencoderWeights.integrity: what the digest check said about the file the weights came from.
INTEGRITY_VERIFIED = "verified"     # the file's digest matched (format 2: metadata and tensors; 1: tensors)
INTEGRITY_ABSENT = "absent"         # a format-1 file without a digest: nothing was checked
INTEGRITY_UNCHECKED = "unchecked"   # built in memory, not read from a file


@dataclass
class AutoencoderWeights:
    """A stacked dense autoencoder: layer i maps (N, kernels[i].shape[0]) -> (N, kernels[i].shape[1]).

    kernels[i]: (in_i, out_i); biases[i]: (out_i,); activations[i] an activation string
    (aefast.model.activations: "relu", "tanh", "elu(0.5)", "leaky_relu(0.01)", ...).
    The first `encoder_layers` layers are the encoder; the output of layer encoder_layers-1 is the latent code.
    Pixels are stored as value / pixel_scale in [0, 1].
    NumPy scalars and arrays are accepted where numbers and tuples are meant (np.float32(255), np.array([28, 28]))
    and turned into plain Python values. `integrity` (set by the reader, not an argument): INTEGRITY_VERIFIED,
    INTEGRITY_ABSENT or INTEGRITY_UNCHECKED.
    """

    kernels: list[np.ndarray]
    biases: list[np.ndarray]
    activations: list[str]
    encoder_layers: int
    input_shape: tuple[int, ...] = (28, 28)
    pixel_scale: float = 255.0
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    data_sha256: dict = field(default_factory=dict)
    # Optional calibration: input_means[i] (in_i,) float32 is layer i's mean input over the training data (see
    # aefast.export.calibration); int8 engines use it to correct each channel's bias for its weights' rounding.
    input_means: list[np.ndarray] | None = None
    integrity: str = field(default=INTEGRITY_UNCHECKED, init=False, compare=False)

    def __post_init__(self) -> None:
        self.plain_values()

    def plain_values(self) -> None:
        """NumPy scalars -> Python numbers, a NumPy/list input_shape -> a tuple of Python ints (when it is one)."""
        self.encoder_layers = _plain(self.encoder_layers)
        self.pixel_scale = _plain(self.pixel_scale)
        shape = self.input_shape
        if isinstance(shape, np.ndarray) and shape.ndim == 1:
            shape = shape.tolist()
        if isinstance(shape, (list, tuple)):
            self.input_shape = tuple(_plain(s) for s in shape)

    @property
    def layer_sizes(self) -> list[int]:
        return [int(self.kernels[0].shape[0])] + [int(k.shape[1]) for k in self.kernels]

    @property
    def latent_size(self) -> int:
        return int(self.kernels[self.encoder_layers - 1].shape[1])

    @property
    def input_size(self) -> int:
        return int(self.kernels[0].shape[0])

    def validate(self, source: str = "model") -> "AutoencoderWeights":
        """Check the structural invariants (aefast.model.validation) and that no layer can overflow float32
        (aefast.model.ranges); raise ModelFileError naming `source` and the defect."""
        self.plain_values()
        check_structure(self, source)
        check_value_range(self, source)
        return self


def _plain(value):
    """A NumPy scalar as the Python number it holds; anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value
