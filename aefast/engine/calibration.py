"""The int8 calibration names under their original import path (and `python -m aefast.engine.calibration`).

The means are computed at export (aefast/export/calibration.py); the bias correction the engine applies at run
time is aefast.engine.precisions.corrected_bias. This module belongs to the exporters' floor
(docs/architecture.md): nothing in the engine imports it.
"""
from __future__ import annotations

from ..export.calibration import MAX_CALIBRATION_IMAGES, calibrated, layer_input_means, main  # noqa: F401
from .precisions import corrected_bias  # noqa: F401

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m aefast.engine.calibration"))
