"""What the trainer trains on: MNIST (the default) or your own images (TrainConfig.data), as float32 splits."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataFileError
from .config import ConfigError, TrainConfig


@dataclass(frozen=True)
class TrainingData:
    """The splits of one run, read by field name."""

    train: np.ndarray               # (n_train, pixels) float32 in [0, 1], train_limit applied
    validation: np.ndarray          # (n_val, pixels) float32 in [0, 1]
    test: np.ndarray                # (n_test, pixels) float32 in [0, 1], test_limit applied
    sha256: dict                    # file name -> SHA-256 of the data files (recorded in the model file)
    image_shape: tuple[int, ...]    # (H, W) or (H, W, C)


def with_input_shape(config: TrainConfig) -> TrainConfig:
    """`config` with input_shape set to the shape of its images (read from file headers; MNIST: 28x28).
    Call it before config.validate(), which checks the latent width against the image size."""
    if config.data is None or not Path(config.data).exists():   # validate() says what is missing
        return config
    from ..data.splits import peek_split_shape

    shape = peek_split_shape(config.data, test_data=config.test_data, resize=config.resize)
    if tuple(config.input_shape) == shape:
        return config
    return dataclasses.replace(config, input_shape=shape)


def load_training_data(config: TrainConfig, *, progress: bool = False) -> TrainingData:
    """The splits for `config`; train_limit / test_limit keep the first N of the (shuffled) splits."""
    if config.data is None:
        from ..data import load_mnist

        try:
            mnist = load_mnist(config.data_dir, validation_size=config.val_size)
        except DataFileError as e:
            if config.data_dir is None:
                raise   # the cache or a download failed: not a bad setting
            raise ConfigError(f"data_dir {config.data_dir}: {e}") from None
        except ValueError as e:   # validation_size larger than the training set
            raise ConfigError(f"val_size {config.val_size}: {e}") from None
        train_x = mnist.train.x[: config.train_limit]
        val_x = mnist.validation.x
        test_x = mnist.test.x[: config.test_limit]
        sha256 = dict(mnist.sha256)
        shape = (28, 28)
    else:
        from ..data.splits import load_image_splits

        splits = load_image_splits(config.data, test_data=config.test_data, resize=config.resize,
                                   val_fraction=config.val_fraction, test_fraction=config.test_fraction,
                                   seed=config.seed, progress=progress)
        # the limits cut the index lists, so only the images kept are converted to float32
        train_x = splits.images.float32(splits.train[: config.train_limit])
        val_x = splits.images.float32(splits.validation)
        test_x = splits.test_images.float32(splits.test[: config.test_limit])
        sha256, shape = splits.sha256, splits.image_shape
    if tuple(config.input_shape) != shape:
        raise ConfigError(f"the images are {shape}, but the run's input_shape is {tuple(config.input_shape)}")
    if len(train_x) < config.batch_size:
        held_out = (f"val_size {config.val_size} of {len(train_x) + len(val_x)} held out" if config.data is None
                    else f"val_fraction {config.val_fraction} and test_fraction {config.test_fraction} held out")
        raise ConfigError(f"only {len(train_x)} training images ({held_out}), fewer than one batch "
                          f"({config.batch_size}); lower the held-out share or batch_size")
    return TrainingData(train_x, val_x, test_x, sha256, shape)
