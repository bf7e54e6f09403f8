"""The exception families aefast raises for bad files and bad data."""


class ModelFileError(ValueError):
    """A model file is missing, damaged, or not a valid aefast model (names the file and the problem)."""


class DataFileError(ValueError):
    """A data file (MNIST IDX, downloaded archive) is missing, damaged or mislabelled."""


class TrainingError(RuntimeError):
    """Training could not produce a model (e.g. the loss was NaN from the first epoch)."""
