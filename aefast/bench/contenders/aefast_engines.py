"""aefast's own engine as contenders: the C++ backend at every precision, on all cores and on one thread, and the
numba backend at fp32."""
from __future__ import annotations

from typing import Iterable

from ...engine.precisions import PRECISIONS
from .base import Contender, Runner
from .context import BuildContext


def _aefast(precision: str, backend: str, threads: int | None):
    def build(ctx: BuildContext, op: str, batch: int) -> Runner:
        return getattr(ctx.engine(precision, backend, threads), op)
    return build


def aefast_contenders(precisions: Iterable[str]) -> tuple[Contender, ...]:
    """The C++ engine at every precision in `precisions`, on all cores and on one thread; the numba backend at fp32."""
    engines = []
    for p in precisions:
        engines += [Contender(f"aefast cpp {p}", "aefast", p, _aefast(p, "cpp", None)),
                    Contender(f"aefast cpp {p} t=1", "aefast", p, _aefast(p, "cpp", 1))]
    return (*engines, Contender("aefast numba fp32", "aefast", "fp32", _aefast("fp32", "numba", None)))


# Every precision the engine offers (aefast.engine.precisions.PRECISIONS) gets its contenders.
CONTENDERS = aefast_contenders(PRECISIONS)
