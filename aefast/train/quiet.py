"""Keep TensorFlow's C++ start-up chatter (oneDNN, CUDA stubs, CPU features, XLA service lines) off the terminal.

TF_CPP_MIN_LOG_LEVEL alone does not do it: TensorFlow 2.21 logs through Abseil, and Abseil writes every message
logged before absl::InitializeLog() straight to file descriptor 2 whatever the level. So, unless the user asked
for them (--verbose, or their own TF_CPP_MIN_LOG_LEVEL), `tensorflow_quiet` sets the variable and routes fd 2
through the streaming chatter filter (aefast._quiet), which drops those lines and passes everything else on as it
is written. Python's own sys.stderr keeps writing to the real terminal (so tqdm bars and isatty() behave), only
C/C++ writes are filtered.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

from .._quiet import fd2_filtered

LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"


@contextlib.contextmanager
def tensorflow_quiet(verbose: bool = False) -> Iterator[None]:
    """Within the block, TensorFlow's C++ INFO/WARNING lines are hidden (see the module doc); a no-op when
    `verbose` or when the user set TF_CPP_MIN_LOG_LEVEL themselves."""
    if verbose or LOG_LEVEL_ENV in os.environ:
        yield
        return
    os.environ[LOG_LEVEL_ENV] = "2"   # read when TensorFlow loads: hides what still goes through TF's own logger
    with fd2_filtered(python_stderr_direct=True):
        yield
