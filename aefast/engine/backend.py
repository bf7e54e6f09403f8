"""Which compute backend is available: the compiled `_core`, else numba (said once, as a warning); and which ISA
level isa="auto" means (resolve_isa)."""
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


def amx_in_auto() -> bool:
    """Whether isa="auto" runs the AMX kernels: AEFAST_AMX=1 asks for them (opt-in, docs/engine.md "AMX"); unset,
    empty or 0 leaves auto at the best level less amx. Any other value is a ValueError naming the variable."""
    value = os.environ.get("AEFAST_AMX", "")
    if value not in ("", "0", "1"):
        raise ValueError(f"AEFAST_AMX={value!r}: expected 1 (AMX kernels for isa='auto') or 0 / unset (not)")
    return value == "1"


def resolve_isa(isa: str) -> str:
    """The ISA name to hand to `_core` for `isa`: "auto" becomes "amx" where AEFAST_AMX=1 and the amx level runs
    here (the C++ "auto" never takes amx); every other name, and "auto" otherwise, is passed on as it is."""
    if isa == "auto" and amx_in_auto() and core is not None and "amx" in core.isas():
        return "amx"
    return isa
