"""The registry of contenders that `aefast bench` (runner.py, __main__.py) and `pytest bench/` (bench/test_forward.py)
both read: every family module's CONTENDERS, in the order of FAMILIES (aefast's engines first, then the peers)."""
from __future__ import annotations

from . import (aefast_engines, numpy_matmul, onnx_runtime, openvino_runtime, pytorch_modules, tensorflow_graphs,
               tflite_interpreters)
from .base import Contender

# One module per contender family; each defines CONTENDERS and imports its own library only when a contender runs.
FAMILIES = (aefast_engines, numpy_matmul, tensorflow_graphs, onnx_runtime, tflite_interpreters, openvino_runtime,
            pytorch_modules)

CONTENDERS: tuple[Contender, ...] = tuple(c for family in FAMILIES for c in family.CONTENDERS)
PEER_CONTENDERS: tuple[Contender, ...] = tuple(c for c in CONTENDERS if c.family == "peer")
# Selectable by name but not in the default set: aefast's engine on a module read by aefast.from_torch (the
# "your PyTorch model" comparison, `python -m aefast.bench --your-torch-model`).
EXTRA_CONTENDERS: tuple[Contender, ...] = pytorch_modules.FROM_TORCH_CONTENDERS
CONTENDERS_BY_NAME = {c.name: c for c in (*CONTENDERS, *EXTRA_CONTENDERS)}
if len(CONTENDERS_BY_NAME) != len(CONTENDERS) + len(EXTRA_CONTENDERS):
    raise RuntimeError("two contenders share a name: " + ", ".join(sorted(c.name for c in CONTENDERS)))


def select_contenders(names: list[str] | None) -> list[Contender]:
    """The contenders named (all when `names` is None); ValueError names any unknown one."""
    if names is None:
        return list(CONTENDERS)
    unknown = [n for n in names if n not in CONTENDERS_BY_NAME]
    if unknown:
        raise ValueError(f"unknown contenders {unknown}; known: {list(CONTENDERS_BY_NAME)}")
    return [CONTENDERS_BY_NAME[n] for n in names]
