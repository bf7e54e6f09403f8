"""Any model file aefast reads, by its suffix: `.onnx` (aefast.interop.onnx_read), else the aefast model file."""
from __future__ import annotations

import os
from pathlib import Path

from ..model.file import read_model
from ..model.weights import AutoencoderWeights


def is_onnx_path(path) -> bool:
    """Whether `path` names an ONNX file (suffix .onnx, any case)."""
    return isinstance(path, (str, os.PathLike)) and Path(path).suffix.lower() == ".onnx"


def read_any(path: str | os.PathLike, **onnx_options) -> AutoencoderWeights:
    """AutoencoderWeights from an .onnx file (onnx_options: read_onnx's input_shape, latent_layer, pixel_scale) or
    from an aefast model file (no options)."""
    if is_onnx_path(path):
        from .onnx_read import read_onnx

        return read_onnx(path, **onnx_options)
    if onnx_options:
        raise TypeError(f"{sorted(onnx_options)} apply to .onnx files only; {str(path)!r:.200} is read as an aefast "
                        "model file")
    return read_model(path)
