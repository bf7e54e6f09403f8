"""The exception families aefast raises for bad files and bad data."""

import errno


class ModelFileError(ValueError):
    """A model file is missing, damaged, or not a valid aefast model (names the file and the problem)."""


class DataFileError(ValueError):
    """A data file (MNIST IDX, downloaded archive) is missing, damaged or mislabelled."""


class DiskFullError(OSError):
    """An output does not fit on its disk: names the output, the bytes it needs and the bytes free (errno ENOSPC)."""

    def __init__(self, path, needed: int, free: int, *, upper_bound: bool = False):
        need = f"up to {needed:,}" if upper_bound else f"{needed:,}"
        super().__init__(errno.ENOSPC, f"{path}: not enough disk space: needs {need} bytes, {free:,} free",
                         str(path))
        self.needed, self.free = needed, free

    def __str__(self) -> str:
        return self.strerror


class ClusterError(RuntimeError):
    """A Dask cluster could not run a job: its scheduler is unreachable or was lost, its workers died, or they cannot
    reach a file the job reads or writes (names the address or the path)."""
