"""Every exception type aefast defines, in one module (each is re-exported where it is raised).

Families: bad files and data (ModelFileError, DataFileError: ValueErrors naming the file), bad settings
(ConfigError, RunDirError), training outcomes (TrainingError, TrainingInterrupted), bad command-line input
(UsageError), the analysis study (StudyError), and a benchmark contender that cannot run here (Skipped).
"""

import errno


class ModelFileError(ValueError):
    """A model file is missing, damaged, or not a valid aefast model (names the file and the problem)."""


class DataFileError(ValueError):
    """A data file (MNIST IDX, downloaded archive) is missing, damaged or mislabelled."""


class ConfigError(ValueError):
    """A TrainConfig field is out of range; the message names the field and what was expected."""


class RunDirError(ConfigError):
    """A run directory's config.json or checkpoint.npz is missing, damaged or inconsistent (names the file)."""


class TrainingError(RuntimeError):
    """Training could not produce a model (e.g. the loss was NaN from the first epoch)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run; `message` says what the run directory holds now (the CLI prints it)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class UsageError(Exception):
    """Bad input from the user (a file, a shape, a number): reported as `prog: error: ...`, exit status 2."""


class StudyError(RuntimeError):
    """The report folder holds results of a different study, or a run directory that does not fit."""


class Skipped(Exception):
    """A benchmark contender cannot run here; str(self) is the reason shown in the results."""


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
