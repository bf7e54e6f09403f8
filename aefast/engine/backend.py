"""Which compute backend is available: the compiled `_core`, else numba (said once, as a warning)."""
from __future__ import annotations

import os
import warnings

core = None
core_error: str | None = None
if os.environ.get("AEFAST_DISABLE_CORE", "") not in ("", "0"):
    core_error = "disabled by AEFAST_DISABLE_CORE"
else:
    try:
        from .. import _core as core  # noqa: F811
    except ImportError as e:  # not built, or built for another Python/CPU
        core_error = f"{type(e).__name__}: {e}"

if core is None:
    warnings.warn(f"aefast: the compiled core is unavailable ({core_error}); falling back to the numba backend",
                  RuntimeWarning, stacklevel=2)
